"""Indexing rules: gathers and scatters, advanced indexing, masks, puts and takes, scatters into
slices and diagonals, and scatters with reductions. g: cotangent of the output; return one
cotangent per argument (None for the indices and masks). Math from derivatives.yaml and
FunctionsManual.cpp."""

import torch

from ..ops import aten
from ..record import call, where, zeros, zeros_like
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


def masked_select_rule(g, y, x, mask):  # put g back where the mask selected
    shape = list(torch.broadcast_shapes(x.shape, mask.shape))
    blank = call(aten.new_zeros.default, g, shape)
    return (call(aten.masked_scatter.default, blank, call(aten.expand.default, mask, shape), g),)


def slice_scatter_rule(g, y, x, src, dim=0, start=None, end=None, step=1):
    gx = call(aten.slice_scatter.default, g, zeros_like(src), dim, start, end, step)
    return (gx, call(aten.slice.Tensor, g, dim, start, end, step))


def diagonal_scatter_rule(g, y, x, src, offset=0, d1=0, d2=1):
    gx = call(aten.diagonal_scatter.default, g, zeros_like(src), offset, d1, d2)
    return (gx, call(aten.diagonal.default, g, offset, d1, d2))


def masked_scatter_rule(g, y, x, mask, source):
    gx = where(mask, 0, g)
    return (gx, None, call(aten.masked_scatter_backward.default, g, mask, list(source.shape)))


def gather(g, y, x, dim, index, sparse_grad=False):  # scatter g back to where it came from
    return (call(aten.scatter_add.default, zeros(x.shape, g), dim, index, g),)


def index(g, y, x, indices):  # accumulate: an index may be picked several times
    return (call(aten.index_put.default, zeros(x.shape, g), indices, g, True),)


def index_put(g, y, x, indices, values, accumulate=False):
    gx = g
    if not accumulate:  # overwritten positions do not reach the output
        gx = call(aten.index_put.default, g, indices, zeros([], g), False)
    return (gx, None, call(aten.index.Tensor, g, indices))


RULES = {
    aten.gather.default: gather,
    aten.scatter_add.default: lambda g, y, x, dim, index, src: (
        g,
        None,
        None,
        call(aten.gather.default, g, dim, index),
    ),
    aten.scatter.src: lambda g, y, x, dim, index, src: (
        call(aten.scatter.value, g, dim, index, 0),
        None,
        None,
        call(aten.gather.default, g, dim, index),
    ),
    aten.scatter.value: lambda g, y, x, dim, index, value: (
        call(aten.scatter.value, g, dim, index, 0),
    ),
    aten.scatter_reduce.two: scatter_reduce_rule,
    aten.index_reduce.default: index_reduce_rule,
    aten.index.Tensor: index,
    aten.index_put.default: index_put,
    aten.index_select.default: lambda g, y, x, dim, index: (
        call(aten.index_select_backward.default, g, list(x.shape), dim, index),
    ),
    aten.masked_fill.Scalar: lambda g, y, x, mask, value: (where(mask, 0, g),),
    aten.masked_fill.Tensor: lambda g, y, x, mask, value: (
        where(mask, 0, g),
        None,
        where(mask, g, 0),  # the engine sums it down to the fill value's shape
    ),
    aten.masked_scatter.default: masked_scatter_rule,
    aten.masked_select.default: masked_select_rule,
    aten.put.default: lambda g, y, x, index, source, accumulate=False: (
        g if accumulate else call(aten.put.default, g, index, zeros_like(source), False),
        None,
        call(aten.take.default, g, index),
    ),
    aten.take.default: lambda g, y, x, index: (
        call(aten.put.default, zeros_like(x), index, g, True),
    ),
    aten.slice_scatter.default: slice_scatter_rule,
    aten.diagonal_scatter.default: diagonal_scatter_rule,
}

# Linear and blind to the values: right for complex values too, but for the reductions' extremes.
COMPLEX_SAFE = set(RULES) - {aten.scatter_reduce.two, aten.index_reduce.default}
