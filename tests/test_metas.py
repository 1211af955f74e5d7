"""dynamo_tape/metas.py: the outputs' metadata it gives without a kernel (shape, strides,
offset, dtype, device) are the kernel's and FakeTensorMode's, in every case it takes; the others
it leaves to the fake mode."""

import itertools

import pytest
import torch

from dynamo_tape.metas import output_metas
from dynamo_tape.torch_private import FakeTensor, FakeTensorMode

aten = torch.ops.aten


def _described(out):
    out = out if isinstance(out, tuple | list) else (out,)
    return [
        None if t is None else (tuple(t.shape), t.stride(), t.storage_offset(), t.dtype, t.device)
        for t in out
    ]


def _cases():
    """(op, args) on real tensors: each BatchNorm kernel in training and eval, with and
    without weights, contiguous and channels-last, 2-d to 5-d, float32 and float64."""
    shapes = [(4, 3), (4, 3, 5), (2, 3, 4, 5), (2, 3, 2, 4, 5)]
    for dtype, shape, channels_last, affine, training in itertools.product(
        (torch.float32, torch.float64), shapes, (False, True), (True, False), (True, False)
    ):
        if channels_last and len(shape) != 4:
            continue
        c = shape[1]
        x = torch.randn(shape, dtype=dtype)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        w, b = (
            (torch.randn(c, dtype=dtype), torch.randn(c, dtype=dtype)) if affine else (None, None)
        )
        mean, var = torch.zeros(c, dtype=dtype), torch.ones(c, dtype=dtype)
        yield (
            aten._native_batch_norm_legit_functional.default,
            (x, w, b, mean, var, training, 0.1, 1e-5),
        )
        yield aten._native_batch_norm_legit_no_training.default, (x, w, b, mean, var, 0.1, 1e-5)
        if training:
            yield aten._native_batch_norm_legit.no_stats, (x, w, b, True, 0.1, 1e-5)
        _, save_mean, save_invstd, *_ = aten._native_batch_norm_legit_functional.default(
            x, w, b, mean, var, training, 0.1, 1e-5
        )
        g = torch.randn_like(x)
        for mask in ([True, affine, affine], [False, affine, False], [True, False, False]):
            running = (None, None) if training else (mean, var)
            args = (g, x, w, *running, save_mean, save_invstd, training, 1e-5, mask)
            yield aten.native_batch_norm_backward.default, args


def _more_cases():
    """LayerNorm forward and backward (one and two normalized dims, with and without weights),
    and the pointwise backward kernels, contiguous and channels-last."""
    for dtype, (shape, normalized), affine in itertools.product(
        (torch.float32, torch.float64),
        [((2, 5, 8), [8]), ((2, 5, 8), [5, 8]), ((6, 4), [4])],
        (True, False),
    ):
        x = torch.randn(shape, dtype=dtype)
        w, b = (torch.randn(normalized, dtype=dtype),) * 2 if affine else (None, None)
        yield aten.native_layer_norm.default, (x, normalized, w, b, 1e-5), {}
        _, mean, rstd = aten.native_layer_norm.default(x, normalized, w, b, 1e-5)
        for mask in ([True, affine, affine], [True, False, False], [False, affine, affine]):
            args = (torch.randn_like(x), x, normalized, mean, rstd, w, b, mask)
            yield aten.native_layer_norm_backward.default, args, {}
    for dtype, channels_last in itertools.product((torch.float32, torch.float64), (False, True)):
        x = torch.randn(2, 3, 4, 5, dtype=dtype)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        g = torch.randn_like(x)
        for approximate in ("none", "tanh"):
            yield aten.gelu_backward.default, (g, x), {"approximate": approximate}
        yield aten.hardtanh_backward.default, (g, x, 0.0, 6.0), {}
        yield aten.threshold_backward.default, (g, x, 0.0), {}


CASES = [(op, args, {}) for op, args in _cases()] + list(_more_cases())


def _faked(mode, args):
    return [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]


@pytest.mark.parametrize(
    "op, args, kwargs", CASES, ids=[f"{op}-{i}" for i, (op, *_) in enumerate(CASES)]
)
def test_metas_are_the_fake_modes_and_the_kernels(op, args, kwargs):
    mode = FakeTensorMode()
    fake_args = _faked(mode, args)
    ours = output_metas(op, fake_args, kwargs)
    assert ours is not None, "a case metas.py takes"
    ours = ours if isinstance(ours, tuple) else (ours,)
    with mode:
        theirs = op(*fake_args, **kwargs)
    real = op(*args, **kwargs)
    assert _described(ours) == _described(real)  # the kernel's outputs: layout, dtype, shape
    assert all(t is None or (isinstance(t, FakeTensor) and t.fake_mode is mode) for t in ours)
    # the fake mode's, where the kernel gives a tensor (its batch norm backward also gives
    # grad_input where output_mask leaves it out, and the kernel gives None)
    real = real if isinstance(real, tuple) else (real,)
    kept = [i for i, t in enumerate(real) if t is not None]
    assert [_described(ours)[i] for i in kept] == [_described(theirs)[i] for i in kept]


def _not_taken():
    x = torch.randn(2, 3, 4, 5)
    c = torch.ones(3)
    functional = aten._native_batch_norm_legit_functional.default
    yield (
        "bfloat16",
        functional,
        (x.bfloat16(), c.bfloat16(), c.bfloat16(), c.bfloat16(), c.bfloat16(), True, 0.1, 1e-5),
    )
    yield "permuted", functional, (x.permute(0, 1, 3, 2), c, c, c, c, True, 0.1, 1e-5)
    yield "offset", functional, (torch.randn(121)[1:].view(2, 3, 4, 5), c, c, c, c, True, 0.1, 1e-5)
    yield "mixed weights", functional, (x, c.double(), c, c, c, True, 0.1, 1e-5)
    mean, invstd = torch.zeros(3), torch.ones(3)
    backward = aten.native_batch_norm_backward.default
    cl = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    statistics = (mean, invstd, True, 1e-5)
    yield "grad of another layout", backward, (cl, x, c, None, None, *statistics, [True] * 3)
    no_weight = (x, x, None, None, None, *statistics, [True, True, False])
    yield "no weight, its grad asked", backward, no_weight
    layer_norm = aten.native_layer_norm.default
    yield "layer norm, transposed", layer_norm, (x.transpose(2, 3), [4], None, None, 1e-5)
    yield "layer norm, weight of another shape", layer_norm, (x, [5], c, None, 1e-5)
    yield "gelu's grad of another layout", aten.gelu_backward.default, (cl, x)


NOT_TAKEN = list(_not_taken())


@pytest.mark.parametrize("why, op, args", NOT_TAKEN, ids=[n for n, *_ in NOT_TAKEN])
def test_other_cases_are_left_to_the_fake_mode(why, op, args):
    assert output_metas(op, _faked(FakeTensorMode(), args), {}) is None


def test_real_tensors_and_other_ops_are_left_alone():
    x, c = torch.randn(2, 3, 4), torch.ones(3)
    args = (x, c, c, c, c, True, 0.1, 1e-5)
    assert output_metas(aten._native_batch_norm_legit_functional.default, args, {}) is None
    assert output_metas(aten.add.Tensor, _faked(FakeTensorMode(), (x, x)), {}) is None
