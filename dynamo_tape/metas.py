"""Outputs' metadata, without running a kernel, of the ATen ops whose fake-tensor propagation
costs most of a compile.

FakeTensorMode has no meta kernel for BatchNorm, LayerNorm and some pointwise backward kernels
(gelu's, hardtanh's, threshold's): at each new shape it runs torch's Python decomposition, its
ATen ops each dispatched again (here 6 to 50 ms a call, against 0.1 to 1 ms for most ops); for
BatchNorm that was over half of lowering a ResNet and building its backward. `output_metas`
gives the fake outputs FakeTensorMode would give, for the cases it takes: CPU tensors of one
float dtype (float32, float64), contiguous or channels-last (LayerNorm: contiguous), concrete
sizes; None for any other, and the fake mode runs the op as before. tests/test_metas.py holds each
case against the kernel's outputs and FakeTensorMode's (which, unlike the kernel, also gives
batch norm backward's grad_input where its output_mask leaves it out).
"""

from __future__ import annotations

import torch

from .ops import aten
from .torch_private import FakeTensor, fake_empty_strided

_DTYPES = (torch.float32, torch.float64)


def output_metas(op, args, kwargs):
    """The fake outputs of `op(*args, **kwargs)` on fake tensors, or None: not one of ours."""
    make = _METAS.get(op)
    return None if make is None else make(*args, **kwargs)


def fake_call(op, args, kwargs):
    """`op(*args, **kwargs)` on fake tensors: the outputs' metadata made here where this module
    takes the call, else the op run under the fake mode."""
    out = output_metas(op, args, kwargs)
    return op(*args, **kwargs) if out is None else out


def _layout_taken(x) -> bool:
    """A CPU fake tensor of a float dtype, concrete sizes, contiguous or channels-last."""
    if not (isinstance(x, FakeTensor) and x.device.type == "cpu" and x.dtype in _DTYPES):
        return False
    if not all(isinstance(s, int) for s in (*x.shape, *x.stride(), x.storage_offset())):
        return False
    if x.storage_offset() != 0:
        return False
    return x.is_contiguous() or (
        x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    )


def _contiguous_strides(shape) -> tuple:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _like(x):
    return fake_empty_strided(x, x.shape, x.stride())


def _vector(x, n: int):
    return fake_empty_strided(x, (n,), (1,))


def _normalized(x, vectors, statistics: bool):
    """Batch norm's output, like x, and its saved mean and inverse std: x's channels where the
    batch's statistics are computed, else empty."""
    if x.dim() < 2 or not _layout_taken(x) or not _vectors_of(x, x.shape[1:2], vectors):
        return None
    n = x.shape[1] if statistics else 0
    return _like(x), _vector(x, n), _vector(x, n)


def _functional(x, weight, bias, running_mean, running_var, training, momentum, eps):
    out = _normalized(x, (weight, bias, running_mean, running_var), training)
    if out is None:
        return None
    return (*out, _like(running_mean), _like(running_var))


def _no_training(x, weight, bias, running_mean, running_var, momentum, eps):
    return _normalized(x, (weight, bias, running_mean, running_var), False)


def _no_stats(x, weight, bias, training, momentum, eps):
    return _normalized(x, (weight, bias), True) if training else None


def _backward(g, x, weight, running_mean, running_var, save_mean, save_invstd, training, eps,
              mask):  # fmt: skip
    if x.dim() < 2 or not _same_layout(g, x):
        return None
    if weight is None and (mask[1] or mask[2]):
        return None
    if not _vectors_of(x, x.shape[1:2], (weight, running_mean, running_var)):
        return None
    return (
        _like(x) if mask[0] else None,
        _vector(x, x.shape[1]) if mask[1] else None,
        _vector(x, x.shape[1]) if mask[2] else None,
    )


def _same_layout(*tensors) -> bool:
    """Fake tensors of one shape, strides and dtype, a layout `_layout_taken` takes."""
    first = tensors[0]
    return all(
        _layout_taken(t)
        and (t.shape, t.stride(), t.dtype) == (first.shape, first.stride(), first.dtype)
        for t in tensors
    )


def _pointwise_backward(g, x, *scalars, **options):
    """gelu_backward, hardtanh_backward, threshold_backward: the gradient, like x."""
    return _like(x) if _same_layout(g, x) else None


def _vectors_of(x, shape, tensors) -> bool:
    """Each of `tensors` (None allowed) a contiguous fake tensor of `shape` and x's dtype and
    device (BatchNorm's: vectors of x's channels; LayerNorm's: of its normalized shape)."""
    return all(
        t is None
        or (
            isinstance(t, FakeTensor)
            and (t.dtype, t.device, tuple(t.shape)) == (x.dtype, x.device, tuple(shape))
            and t.is_contiguous()
        )
        for t in tensors
    )


def _layer_norm_taken(x, normalized_shape, tensors) -> bool:
    k = len(normalized_shape)
    return (
        0 < k <= x.dim() and _layout_taken(x) and x.is_contiguous()
        and tuple(x.shape[x.dim() - k:]) == tuple(normalized_shape)
        and _vectors_of(x, normalized_shape, tensors)
    )  # fmt: skip


def _layer_norm(x, normalized_shape, weight, bias, eps):
    """(output like x, mean, rstd): the statistics' shape is x's with the normalized dims 1."""
    if not _layer_norm_taken(x, normalized_shape, (weight, bias)):
        return None
    stats = (*x.shape[: x.dim() - len(normalized_shape)], *[1] * len(normalized_shape))
    strides = _contiguous_strides(stats)
    return _like(x), fake_empty_strided(x, stats, strides), fake_empty_strided(x, stats, strides)


def _layer_norm_backward(g, x, normalized_shape, mean, rstd, weight, bias, mask):
    if not (_same_layout(g, x) and _layer_norm_taken(x, normalized_shape, (weight, bias))):
        return None
    if (mask[1] and weight is None) or (mask[2] and bias is None):
        return None
    return (
        _like(x) if mask[0] else None,
        _like(weight) if mask[1] else None,
        _like(bias) if mask[2] else None,
    )


_METAS = {
    aten._native_batch_norm_legit_functional.default: _functional,
    aten._native_batch_norm_legit_no_training.default: _no_training,
    aten._native_batch_norm_legit.no_stats: _no_stats,
    aten.native_batch_norm_backward.default: _backward,
    aten.native_layer_norm.default: _layer_norm,
    aten.native_layer_norm_backward.default: _layer_norm_backward,
    aten.gelu_backward.default: _pointwise_backward,
    aten.hardtanh_backward.default: _pointwise_backward,
    aten.threshold_backward.default: _pointwise_backward,
}
