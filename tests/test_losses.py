"""The loss rules (rules/losses.py) against torch.autograd, float64, random cotangents: they
let lower.py keep nll_loss and mse_loss whole, as eager runs them."""

import pytest
import torch

from dynamo_tape.ops import aten
from dynamo_tape.tools.check import check_rule


def _randn(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _log_probs(*shape):
    return torch.log_softmax(_randn(*shape), dim=min(1, len(shape) - 1))


TARGET = torch.tensor([0, 3, 1, 3, 2])
TARGET_IGNORED = torch.tensor([0, -100, 1, 3, -100])
TARGET_2D = torch.tensor([[[0, 1, 2], [2, 1, 0]], [[1, 1, 1], [0, 2, -100]]])
WEIGHT = _randn(4, seed=1).abs()  # class weights: constants, torch.autograd gives them no gradient
TOTAL_WEIGHT = torch.tensor(0.0, dtype=torch.float64)
# each row's targets, ended by -1
MULTILABEL = torch.tensor([[3, 0, -1, 1, 0], [1, 2, 4, -1, 0], [0, -1, 0, 0, 0]])

CASES = [
    (aten.nll_loss_forward.default, (_log_probs(5, 4), TARGET, None, 1, -100)),  # mean
    (aten.nll_loss_forward.default, (_log_probs(5, 4), TARGET, None, 2, -100)),  # sum
    (aten.nll_loss_forward.default, (_log_probs(5, 4), TARGET, None, 0, -100)),  # none
    (aten.nll_loss_forward.default, (_log_probs(5, 4), TARGET_IGNORED, WEIGHT, 1, -100)),
    (aten.nll_loss_forward.default, (_log_probs(4), torch.tensor(2), None, 1, -100)),  # one sample
    (aten.nll_loss2d_forward.default, (_log_probs(2, 3, 2, 3), TARGET_2D, None, 1, -100)),
    (
        aten.nll_loss_backward.default,
        (_randn(5, seed=2), _log_probs(5, 4), TARGET, WEIGHT, 0, -100, TOTAL_WEIGHT),
    ),
    (aten.mse_loss.default, (_randn(3, 4), _randn(3, 4, seed=3), 1)),
    (aten.mse_loss.default, (_randn(3, 4), _randn(3, 4, seed=3), 0)),
    (aten.multilabel_margin_loss_forward.default, (_randn(3, 5), MULTILABEL, 1)),
    (aten.multilabel_margin_loss_forward.default, (_randn(3, 5), MULTILABEL, 0)),
]


@pytest.mark.parametrize("op, args", CASES, ids=[f"{op}-{i}" for i, (op, _) in enumerate(CASES)])
def test_loss_rule(op, args):
    result = check_rule(op, args, constants=(WEIGHT, TOTAL_WEIGHT))
    assert result.kind == "rule", f"{op} ran the {result.kind} path, not a rule of ours"
    assert result.ok, result.message


def test_multilabel_margin_loss_is_eagers_not_its_decompositions():
    # torch's decomposition gave another loss (3.3665 where eager gives 0.8726 in float64)
    x = _randn(3, 5).requires_grad_()
    f = torch.nn.functional.multilabel_margin_loss
    expected = f(x, MULTILABEL)
    (expected_grad,) = torch.autograd.grad(expected, x)
    loss = torch.compile(f, backend="tape", options={"fallback": "error"})(x, MULTILABEL)
    (grad,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=0)


def test_cross_entropy_stays_two_entries_forward_and_backward():
    from dynamo_tape.tracker import last_compiled

    logits = _randn(5, 4).requires_grad_()
    loss = torch.compile(torch.nn.functional.cross_entropy, backend="tape")(logits, TARGET)
    loss.backward()
    compiled = last_compiled()
    (plan,) = compiled.plans.values()
    forward_ops = [e.op for e in compiled.tape.entries]
    assert forward_ops == [aten._log_softmax.default, aten.nll_loss_forward.default]
    assert [e.op for e in plan.backward.tape.entries] == [
        aten.nll_loss_backward.default,
        aten._log_softmax_backward_data.default,
    ]
    expected = logits.detach().requires_grad_()
    torch.nn.functional.cross_entropy(expected, TARGET).backward()
    torch.testing.assert_close(logits.grad, expected.grad, rtol=0, atol=0)
