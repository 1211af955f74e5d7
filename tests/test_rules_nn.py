"""The rules of rules/nn.py against torch.autograd: float64, a random cotangent, one table.

Same harness as tests/test_rules.py (`check_rule`, the tensor specs). Ops whose eager autograd
cannot run on a one-op tape with every float input requiring a gradient (batch norm's running
statistics, dropout's random draw) are checked through the backend instead, on a compiled
function against eager with the RNG seeded alike.
"""

import pytest
import torch
import torch.nn.functional as F
from test_rules import A, C, Fixed, Index, M, T, U, assert_own_rule_matches_autograd, case

from dynamo_tape.ops import aten
from dynamo_tape.rules import RULES, nn

CASES = [
    # convolution: stride, padding, groups, with and without bias, transposed
    case(aten.convolution.default, T(2, 4, 7, 7), T(6, 2, 3, 3), T(6), [2, 2], [1, 1], [1, 1],
         False, [0, 0], 2),
    case(aten.convolution.default, T(2, 3, 6, 6), T(4, 3, 1, 1), None, [1, 1], [0, 0], [1, 1],
         False, [0, 0], 1),
    case(aten.convolution.default, T(2, 4, 5, 5), T(4, 3, 3, 3), T(3), [2, 2], [1, 1], [1, 1],
         True, [1, 1], 1),
    # normalisation, softmax, activations
    case(aten.native_layer_norm.default, T(3, 4, 5), [5], T(5), T(5), 1e-5),
    case(aten.native_layer_norm.default, T(3, 4, 5), [4, 5], None, None, 1e-5),
    case(aten._softmax.default, T(3, 5), 1, False),
    case(aten._softmax.default, T(2, 3, 4), 0, False),
    case(aten._log_softmax.default, T(3, 5), 1, False),
    case(aten._log_softmax.default, T(2, 3, 4), -2, False),
    case(aten.gelu.default, T(3, 4)),
    case(aten.gelu.default, T(3, 4), approximate="tanh"),
    case(aten.silu.default, T(3, 4)),
    # embedding, pooling, dropout in eval
    case(aten.embedding.default, T(10, 4), Index(10, 3, 5)),
    case(aten.embedding.default, T(10, 4), Index(10, 20), 2),
    case(aten.max_pool2d_with_indices.default, A(2, 3, 6, 6), [2, 2], [2, 2]),
    case(aten.max_pool2d_with_indices.default, A(2, 3, 7, 7), [3, 3], [2, 2], [1, 1], [1, 1],
         True),
    case(aten._adaptive_avg_pool2d.default, T(2, 3, 6, 6), [1, 1]),
    case(aten._adaptive_avg_pool2d.default, T(2, 3, 7, 5), [3, 2]),
    case(aten.avg_pool2d.default, T(2, 3, 6, 6), [2, 2], [2, 2]),
    case(aten.avg_pool2d.default, T(2, 3, 7, 7), [3, 3], [2, 2], [1, 1], True, False),
    case(aten.native_dropout.default, T(3, 4), 0.3, False),
    case(aten.native_dropout_backward.default, T(3, 4), M(3, 4), 1.25),
    # indexing and masking
    case(aten.gather.default, T(3, 5), 1, Index(5, 3, 7)),
    case(aten.scatter_add.default, T(3, 5), 1, Index(5, 3, 4), T(3, 4)),
    case(aten.index.Tensor, T(5, 4), [Index(5, 7)]),
    case(aten.index.Tensor, T(5, 4, 3), [None, Index(4, 2, 3)]),
    case(aten.index_put.default, T(6, 4), [Index(6, 3, unique=True)], T(3, 4)),
    case(aten.index_put.default, T(6, 4), [Index(6, 5)], T(4), True),
    case(aten.masked_fill.Scalar, T(3, 4), M(3, 4), -2.5),
    case(aten.masked_fill.Tensor, T(3, 4), M(3, 1), T()),
    # joining and splitting
    case(aten.cat.default, [T(2, 3), T(4, 3)]),
    case(aten.cat.default, [T(2, 3), T(2, 1), T(2, 2)], -1),
    case(aten.split_with_sizes.default, T(3, 7), [2, 5], 1),
    case(aten.stack.default, [T(3, 4), T(3, 4)], 1),
    # activations the decompositions leave whole, resampling, 3-d and adaptive pooling
    case(aten.elu.default, T(3, 4), 0.7, 1.2, 0.9),
    case(aten.hardtanh.default, A(3, 4), -0.5, 0.8),
    case(aten.leaky_relu.default, A(3, 4), 0.2),
    case(aten.rrelu_with_noise_functional.default, A(3, 4), T(3, 4), 0.1, 0.3, False),
    case(aten._safe_softmax.default, T(3, 5), 1),
    case(aten.native_group_norm.default, T(2, 6, 4), T(6), T(6), 2, 6, 4, 3, 1e-5),
    case(aten.upsample_bilinear2d.default, T(1, 2, 3, 4), [5, 6], False),
    case(aten.upsample_bicubic2d.default, T(1, 2, 3, 4), [5, 6], True),
    case(aten.upsample_trilinear3d.default, T(1, 2, 2, 3, 3), [3, 4, 5], False),
    case(aten._upsample_bilinear2d_aa.default, T(1, 2, 6, 6), [4, 3], False),
    case(aten.grid_sampler_2d.default, T(1, 2, 4, 5), U(1, 3, 3, 2), 0, 0, False),
    case(aten.grid_sampler_3d.default, T(1, 2, 3, 4, 5), U(1, 2, 2, 3, 3), 0, 0, True),
    case(aten.avg_pool3d.default, T(1, 2, 4, 4, 4), [2, 2, 2], [2, 2, 2]),
    case(aten._adaptive_avg_pool3d.default, T(1, 2, 5, 4, 3), [2, 2, 1]),
    case(aten.adaptive_max_pool2d.default, T(2, 3, 6, 5), [3, 2]),
    case(aten.adaptive_max_pool3d.default, T(1, 2, 4, 4, 4), [2, 2, 2]),
    case(aten.max_pool3d_with_indices.default, T(1, 2, 4, 4, 4), [2, 2, 2], [2, 2, 2]),
    case(aten.fractional_max_pool2d.default, T(1, 2, 7, 7), [2, 2], [4, 4], Fixed('U', 1, 2, 2)),
    case(aten.fractional_max_pool3d.default, T(1, 2, 5, 5, 5), [2, 2, 2], [3, 3, 3],
         Fixed('U', 1, 2, 3)),
    case(aten._pdist_forward.default, T(5, 3), 2.0),
    case(aten._pdist_forward.default, T(4, 3), 1.0),
    # complex values: the rules in rules.COMPLEX_SAFE (linear, blind to the values)
    case(aten.gather.default, C(3, 5), 1, Index(5, 3, 7)),
    case(aten.scatter_add.default, C(3, 5), 1, Index(5, 3, 4), C(3, 4)),
    case(aten.index.Tensor, C(5, 4), [Index(5, 7)]),
    case(aten.index_put.default, C(6, 4), [Index(6, 3, unique=True)], C(3, 4)),
    case(aten.index_put.default, C(6, 4), [Index(6, 5)], C(4), True),
    case(aten.masked_fill.Scalar, C(3, 4), M(3, 4), -2.5),
    case(aten.masked_fill.Tensor, C(3, 4), M(3, 1), C()),
    case(aten.cat.default, [C(2, 3), C(4, 3)]),
    case(aten.cat.default, [C(2, 3), T(2, 1)], -1),  # a real piece, promoted
    case(aten.split_with_sizes.default, C(3, 7), [2, 5], 1),
    case(aten.stack.default, [C(3, 4), C(3, 4)], 1),
]  # fmt: skip


@pytest.mark.parametrize("op, args, kwargs", CASES)
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
    checked = {p.values[0] for p in CASES} | {
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
