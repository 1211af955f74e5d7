"""Rules for scatters with reductions, strided views and masked selection, and for the FFT
primitives. g: cotangent of the output; return one cotangent per argument.
Math from derivatives.yaml and FunctionsManual.cpp."""

import torch

from ..ops import aten
from ..record import call, where, zeros_like
from .fallback import autograd_vjp


def _as_float(mask, like):
    return call(aten._to_copy.default, mask, dtype=like.dtype)


def _reduce_rule(op, pick, add, fill, g, y, x, dim, index, src, reduce, include_self):
    # sum: each element passes g on; mean: divided by how many met there; amax/amin: ties at
    # the extreme share g. prod is left to torch (its zeros need care).
    # `pick` reads the slots index points at, `add` accumulates into them, `fill` clears them:
    # gather / scatter_add / scatter for scatter_reduce, index_select / index_add / index_fill
    # for index_reduce.
    if reduce == "prod":
        return autograd_vjp(op, g, y, x, dim, index, src, reduce, include_self=include_self)
    if reduce == "sum":
        gx, gsrc = g, pick(g)
    elif reduce == "mean":
        count = call(aten.ones_like.default, g) if include_self else zeros_like(g)
        count = add(count, call(aten.ones_like.default, src))
        share = g / where(call(aten.eq.Scalar, count, 0), 1.0, count)
        gx, gsrc = share, pick(share)
    else:  # amax, amin
        x_won = _as_float(call(aten.eq.Tensor, x, y), g)
        src_won = _as_float(call(aten.eq.Tensor, src, pick(y)), g)
        share = g / add(x_won, src_won)
        gx, gsrc = x_won * share, src_won * pick(share)
    if not include_self:
        gx = fill(gx)
    return (gx, None, None, gsrc)


def scatter_reduce_rule(g, y, x, dim, index, src, reduce, include_self=True):
    return _reduce_rule(
        aten.scatter_reduce.two,
        lambda t: call(aten.gather.default, t, dim, index),
        lambda t, s: call(aten.scatter_add.default, t, dim, index, s),
        lambda t: call(aten.scatter.value, t, dim, index, 0),
        g, y, x, dim, index, src, reduce, include_self,
    )  # fmt: skip


def index_reduce_rule(g, y, x, dim, index, source, reduce, include_self=True):
    return _reduce_rule(
        aten.index_reduce.default,
        lambda t: call(aten.index_select.default, t, dim, index),
        lambda t, s: call(aten.index_add.default, t, dim, index, s),
        lambda t: call(aten.index_fill.int_Scalar, t, dim, index, 0),
        g, y, x, dim, index, source, reduce, include_self,
    )  # fmt: skip


def _storage_positions(x, size, stride, offset):
    """Which element of a contiguous x each element of as_strided(x, ...) reads."""
    positions = call(aten.arange.default, x.meta.numel(), dtype=torch.int64, device=x.meta.device)
    return call(aten.as_strided.default, positions, size, stride, offset or 0)


def as_strided_rule(op):
    def rule(g, y, x, size, stride, offset=None):
        meta = x.meta
        if not meta.is_contiguous() or meta.storage_offset() != 0:  # rare: left to torch
            return autograd_vjp(op, g, y, x, size, stride, offset)
        flat = call(aten.new_zeros.default, g, [meta.numel()])
        where_read = call(aten.reshape.default, _storage_positions(x, size, stride, offset), [-1])
        values = call(aten.reshape.default, g, [-1])
        # overlapping windows read an element more than once: their cotangents add up
        flat = call(aten.index_put.default, flat, [where_read], values, True)
        return (call(aten.reshape.default, flat, list(meta.shape)),)

    return rule


def masked_select_rule(g, y, x, mask):  # put g back where the mask selected
    shape = list(torch.broadcast_shapes(x.shape, mask.shape))
    zeros = call(aten.new_zeros.default, g, shape)
    return (call(aten.masked_scatter.default, zeros, call(aten.expand.default, mask, shape), g),)


def fft_r2c_rule(g, y, x, dim, normalization, onesided):
    # the adjoint of a real-to-complex FFT: the inverse c2c of g, the dropped half zero-filled
    last = dim[-1]
    missing = x.shape[last] - g.shape[last]
    if onesided and missing > 0:
        shape = list(g.shape)
        shape[last] = missing
        g = call(aten.cat.default, [g, call(aten.new_zeros.default, g, shape)], last)
    return (call(aten.real.default, call(aten._fft_c2c.default, g, dim, normalization, False)),)


def fft_c2r_rule(g, y, x, dim, normalization, last_dim_size):
    # the adjoint of c2r: a onesided r2c, the bins that stood for two counted twice
    gx = call(aten._fft_r2c.default, g, dim, normalization, True)
    last = dim[-1]
    doubled = g.shape[last] - gx.shape[last]
    if doubled > 0:
        n = gx.shape[last]
        ones = call(aten.ones_like.default, call(aten.slice.Tensor, gx, last, 0, 1))
        twos = call(aten.full_like.default, call(aten.slice.Tensor, gx, last, 1, 1 + doubled), 2)
        rest = call(aten.ones_like.default, call(aten.slice.Tensor, gx, last, 1 + doubled, n))
        gx = gx * call(aten.cat.default, [ones, twos, rest], last)
    return (gx,)


RULES = {
    aten.scatter_reduce.two: scatter_reduce_rule,
    aten.index_reduce.default: index_reduce_rule,
    aten.as_strided.default: as_strided_rule(aten.as_strided.default),
    aten.as_strided_copy.default: as_strided_rule(aten.as_strided_copy.default),
    aten.masked_select.default: masked_select_rule,
    aten._fft_r2c.default: fft_r2c_rule,
    aten._fft_c2r.default: fft_c2r_rule,
    aten._fft_c2c.default: lambda g, y, x, dim, normalization, forward: (
        call(aten._fft_c2c.default, g, dim, normalization, not forward),
    ),
}

# The FFTs' adjoints are the FFTs the other way (complex by nature); the rest is linear.
COMPLEX_SAFE = {
    aten.as_strided.default,
    aten.as_strided_copy.default,
    aten.masked_select.default,
    aten._fft_r2c.default,
    aten._fft_c2r.default,
    aten._fft_c2c.default,
}
