"""The loss rules (rules/losses.py) against torch.autograd, float64, random cotangents: they
let aten_graph.py keep nll_loss and mse_loss whole, as eager runs them. The cases are LOSS_CASES of
tests/rule_cases.py."""

import pytest
import torch
from rule_cases import LOSS_CASES, MULTILABEL, TARGET, TOTAL_WEIGHT, WEIGHT, randn64

from dynamo_tape.ops import aten
from dynamo_tape.tools.check import check_rule


@pytest.mark.parametrize(
    "op, args", LOSS_CASES, ids=[f"{op}-{i}" for i, (op, _) in enumerate(LOSS_CASES)]
)
def test_loss_rule(op, args):
    result = check_rule(op, args, constants=(WEIGHT, TOTAL_WEIGHT))
    assert result.kind == "rule", f"{op} ran the {result.kind} path, not a rule of ours"
    assert result.ok, result.message


def test_multilabel_margin_loss_is_eagers_not_its_decompositions():
    # torch's decomposition gave another loss (3.3665 where eager gives 0.8726 in float64)
    x = randn64(3, 5).requires_grad_()
    f = torch.nn.functional.multilabel_margin_loss
    expected = f(x, MULTILABEL)
    (expected_grad,) = torch.autograd.grad(expected, x)
    loss = torch.compile(f, backend="tape", options={"fallback": "error"})(x, MULTILABEL)
    (grad,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=0)


def test_cross_entropy_stays_two_entries_forward_and_backward():
    from dynamo_tape.tracker import last_compiled

    logits = randn64(5, 4).requires_grad_()
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
