"""The rules of rules/nn.py against torch.autograd: float64, a random cotangent, one table.

Same harness as tests/test_rules.py (tests/helpers.py), the cases in tests/rule_cases.py
(NN_CASES). Ops whose eager autograd
cannot run on a one-op tape with every float input requiring a gradient (batch norm's running
statistics, dropout's random draw) are checked through the backend instead, on a compiled
function against eager with the RNG seeded alike.
"""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_own_rule_matches_autograd
from rule_cases import NN_CASES

from dynamo_tape.ops import aten
from dynamo_tape.rules import RULES, nn


@pytest.mark.parametrize("op, args, kwargs", NN_CASES)
def test_nn_rule(op, args, kwargs):
    assert_own_rule_matches_autograd(op, args, kwargs)


# --- through the backend: stateful and random ops, and outputs left without a cotangent --------


def batch_norm_train(x, w, b, running_mean, running_var):
    return F.batch_norm(x, running_mean, running_var, w, b, training=True, momentum=0.3)


def batch_norm_without_statistics(x, w, b, running_mean, running_var):
    return F.batch_norm(x, None, None, w, b, training=True)


def batch_norm_eval(x, w, b, running_mean, running_var):
    return F.batch_norm(x, running_mean, running_var, w, b, training=False)


def dropout_train(x, w, b, running_mean, running_var):
    return F.dropout(x * w[:, None, None], p=0.4, training=True) + b[:, None, None]


def native_dropout_train(x, w, b, running_mean, running_var):
    return torch.native_dropout(x * w[:, None, None], 0.4, True)[0] + b[:, None, None]


def one_piece_of_a_split(x, w, b, running_mean, running_var):
    a, _, c = x.split([1, 3, 1], dim=2)  # the middle piece gets no cotangent
    return a.sin() * c + w[:, None, None] * b[:, None, None]


@pytest.mark.parametrize(
    "fn, ops",
    [
        (batch_norm_train, {aten._native_batch_norm_legit_functional.default}),
        (batch_norm_eval, {aten._native_batch_norm_legit_no_training.default}),
        (batch_norm_without_statistics, {aten._native_batch_norm_legit.no_stats}),
        # on the CPU, F.dropout is eager's own kernel: a bernoulli draw, a division, a product
        (dropout_train, {aten.bernoulli.p}),
        (native_dropout_train, {aten.native_dropout.default}),
        (one_piece_of_a_split, {aten.split_with_sizes.default}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_nn_rule_through_the_backend(fn, ops):
    from dynamo_tape.tracker import last_compiled

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64, generator=generator)
    w, b = torch.randn(2, 3, dtype=torch.float64, generator=generator)
    stats = [torch.randn(3, dtype=torch.float64, generator=generator).abs() for _ in range(2)]
    runs = {}
    for name, run in [("tape", torch.compile(fn, backend="tape", options={"fallback": "error"})),
                      ("eager", fn)]:  # fmt: skip
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        running = [s.clone() for s in stats]
        torch.manual_seed(1)
        out = run(*leaves, *running)
        cotangent = torch.randn(out.shape, dtype=out.dtype, generator=generator.manual_seed(2))
        grads = torch.autograd.grad(out, leaves, cotangent)
        runs[name] = [out, *grads, *running]
    for ours, theirs in zip(runs["tape"], runs["eager"], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    entries = last_compiled().tape.entries
    assert ops <= {e.op for e in entries if e.kind == "rule"}


def test_every_nn_rule_has_a_case():
    checked = {p.values[0] for p in NN_CASES} | {
        aten._native_batch_norm_legit_functional.default,
        aten._native_batch_norm_legit_no_training.default,
        aten._native_batch_norm_legit.no_stats,
        # eager has no derivative for silu_backward to check against: its rule is checked by
        # second-order gradients of silu in tests/test_robustness.py
        aten.silu_backward.default,
        # eager has no derivative for it either: test_embedding_renorm_refuses_a_gradient
        aten.embedding_renorm.default,
    }
    assert not set(nn.RULES) - checked
    assert set(nn.RULES) <= set(RULES)


def test_convolution_skips_the_input_gradient_nobody_reads():
    from dynamo_tape.tracker import last_compiled

    generator = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, dtype=torch.float64)
    images = torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=generator)  # no gradient
    cotangent = torch.randn(2, 4, 6, 6, dtype=torch.float64, generator=generator)
    compiled = torch.compile(conv, backend="tape", options={"fallback": "error"})
    ours = torch.autograd.grad(compiled(images), list(conv.parameters()), cotangent)
    theirs = torch.autograd.grad(conv(images), list(conv.parameters()), cotangent)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    (plan,) = last_compiled().plans.values()
    (entry,) = [e for e in plan.backward.tape.entries if e.op is aten.convolution_backward.default]
    assert entry.args[-1] == [False, True, True] and entry.outputs[0] is None


def test_embedding_renorm_refuses_a_gradient_as_eager_does():
    def f(w, indices):
        return torch.embedding_renorm_(w * 1, indices, 1.0, 2.0).sum()

    w = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    indices = torch.tensor([1, 4])
    with pytest.raises(RuntimeError, match="embedding_renorm"):
        f(w, indices).backward()
    with pytest.raises(RuntimeError, match="embedding_renorm"):
        torch.compile(f, backend="tape")(w, indices).backward()


@pytest.mark.parametrize("inplace", [False, True], ids=["out_of_place", "in_place"])
@pytest.mark.parametrize(
    "activation, backward",
    [
        (F.hardswish, aten.hardswish_backward.default),
        (F.hardsigmoid, aten.hardsigmoid_backward.default),
    ],
    ids=["hardswish", "hardsigmoid"],
)
def test_hard_activations_stay_one_entry_each_way(activation, backward, inplace):
    # eager runs one kernel forward and one backward; their decompositions ran five and twelve
    from dynamo_tape.tracker import last_compiled

    def f(x):
        return activation(x * 1, inplace=inplace)

    x = torch.linspace(-5, 5, 24).reshape(4, 6).requires_grad_()  # float32, as the models
    cotangent = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    compiled = torch.compile(f, backend="tape", options={"fallback": "error"})
    ours = compiled(x)
    theirs = f(x)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    ours_grad, theirs_grad = (torch.autograd.grad(out, x, cotangent) for out in (ours, theirs))
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=0, atol=0)  # eager's kernels
    compiled_graph = last_compiled()
    (plan,) = compiled_graph.plans.values()
    forward = [e.op for e in compiled_graph.tape.entries if e.op is not aten.mul.Tensor]
    assert forward == [getattr(aten, activation.__name__).default]
    assert [e.op for e in plan.backward.tape.entries if e.op is not aten.mul.Tensor] == [backward]


@pytest.mark.parametrize("dim", [0, 2], ids=["first_dim", "last_dim"])
def test_weight_norm_whole_is_eager_one_entry_each_way(dim):
    # kept whole (aten_graph.KEEP_WHOLE): one kernel each way, as eager; decomposed, weight_norm
    # ran 5 entries forward, 14 backward
    from dynamo_tape.tracker import last_compiled

    def f(v, g, x):  # as nn.utils.parametrizations.weight_norm, then a convolution
        return F.conv1d(x, torch._weight_norm(v, g, dim))

    generator = torch.Generator().manual_seed(0)
    v = torch.randn(6, 4, 3, generator=generator, requires_grad=True)  # float32, as the models
    g = torch.randn(6 if dim == 0 else 3, generator=generator)
    g = g.reshape([6, 1, 1] if dim == 0 else [1, 1, 3]).requires_grad_()
    x = torch.randn(2, 4, 9, generator=generator)
    cotangent = torch.randn(2, 6, 7, generator=generator)
    compiled = torch.compile(f, backend="tape", options={"fallback": "error"})
    ours, theirs = compiled(v, g, x), f(v, g, x)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    ours_grads, theirs_grads = (torch.autograd.grad(y, [v, g], cotangent) for y in (ours, theirs))
    torch.testing.assert_close(ours_grads, theirs_grads, rtol=0, atol=0)  # eager's kernels
    compiled_graph = last_compiled()
    (plan,) = compiled_graph.plans.values()
    ops = lambda tape: [e.op for e in tape.entries if "weight_norm" in str(e.op)]
    assert ops(compiled_graph.tape) == [aten._weight_norm_interface.default]
    assert ops(plan.backward.tape) == [aten._weight_norm_interface_backward.default]
    assert len(compiled_graph.tape.entries) == 2  # _weight_norm_interface, convolution


def test_weight_norm_whole_double_backward_is_eagers():
    # the backward kernel has no formula of its own: eager differentiates its differentiable twin
    def f(v, g):
        return torch._weight_norm(v, g, 0)

    generator = torch.Generator().manual_seed(0)
    v = torch.randn(5, 3, 2, dtype=torch.float64, generator=generator, requires_grad=True)
    g = torch.randn(5, 1, 1, dtype=torch.float64, generator=generator, requires_grad=True)
    cotangent = torch.randn(5, 3, 2, dtype=torch.float64, generator=generator)
    outer = [torch.randn(5, 3, 2, dtype=torch.float64, generator=generator),
             torch.randn(5, 1, 1, dtype=torch.float64, generator=generator)]  # fmt: skip
    compiled = torch.compile(f, backend="tape", options={"fallback": "error"})

    def second(fn):
        first = torch.autograd.grad(fn(v, g), [v, g], cotangent, create_graph=True)
        return torch.autograd.grad(first, [v, g], outer)

    torch.testing.assert_close(second(compiled), second(f), rtol=1e-10, atol=1e-10)


def test_global_average_pool_of_channels_last_is_a_reshape_back():
    # adaptive_avg_pool2d(x, 1) of a channels-last x: eager's mean, then an as_strided that only
    # restrides the 1x1 dims (ConvNeXt's head); its gradient is g, not a scatter into zeros
    from dynamo_tape.tracker import last_compiled

    def f(x):
        return F.adaptive_avg_pool2d(x.permute(0, 3, 1, 2), 1)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 3, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    cotangent = torch.randn(2, 5, 1, 1, dtype=torch.float64, generator=generator)
    compiled = torch.compile(f, backend="tape", options={"fallback": "error"})
    ours, theirs = compiled(x), f(x)
    assert ours.stride() == theirs.stride()
    grads = [torch.autograd.grad(y, x, cotangent)[0] for y in (ours, theirs)]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)
    compiled_graph = last_compiled()
    (plan,) = compiled_graph.plans.values()
    assert aten.as_strided.default in [e.op for e in compiled_graph.tape.entries]
    backward = [e.op for e in plan.backward.tape.entries]
    assert aten.index_put.default not in backward and aten.new_zeros.default not in backward
