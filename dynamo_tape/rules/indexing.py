"""Indexing rules: gathers and scatters, advanced indexing, masks, puts and takes, scatters into
slices and diagonals, and scatters with reductions. g: cotangent of the output; return one
cotangent per argument (None for the indices and masks). Math from derivatives.yaml and
FunctionsManual.cpp."""

import torch

from ..ops import aten
from ..record import call, eq, ones_like, where, zeros, zeros_like
from .fallback import autograd_vjp
from .helpers import sized_kernel


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
        count = ones_like(g) if include_self else zeros_like(g)
        count = add(count, ones_like(src))
        share = g / where(eq(count, 0), 1.0, count)
        gx, gsrc = share, pick(share)
    else:  # amax, amin
        x_won = eq(x, y).to(g.dtype)
        src_won = eq(src, pick(y)).to(g.dtype)
        share = g / add(x_won, src_won)
        gx, gsrc = x_won * share, src_won * pick(share)
    if not include_self:
        gx = fill(gx)
    return (gx, None, None, gsrc)


def scatter_reduce_rule(g, y, x, dim, index, src, reduce, include_self=True):
    return _reduce_rule(
        aten.scatter_reduce.two,
        lambda t: t.gather(dim, index),
        lambda t, s: t.scatter_add(dim, index, s),
        lambda t: t.scatter(dim, index, 0),
        g, y, x, dim, index, src, reduce, include_self,
    )  # fmt: skip


def index_reduce_rule(g, y, x, dim, index, source, reduce, include_self=True):
    return _reduce_rule(
        aten.index_reduce.default,
        lambda t: t.index_select(dim, index),
        lambda t, s: t.index_add(dim, index, s),
        lambda t: t.index_fill(dim, index, 0),
        g, y, x, dim, index, source, reduce, include_self,
    )  # fmt: skip


def masked_select_rule(g, y, x, mask):  # put g back where the mask selected
    shape = list(torch.broadcast_shapes(x.shape, mask.shape))
    blank = g.new_zeros(shape)
    # (expanded even to its own shape: record.expand would skip that)
    return (blank.masked_scatter(call(aten.expand.default, mask, shape), g),)


def slice_scatter_rule(g, y, x, src, dim=0, start=None, end=None, step=1):
    gx = g.slice_scatter(zeros_like(src), dim, start, end, step)
    return (gx, g.slice(dim, start, end, step))


def diagonal_scatter_rule(g, y, x, src, offset=0, d1=0, d2=1):
    gx = g.diagonal_scatter(zeros_like(src), offset, d1, d2)
    return (gx, g.diagonal(offset, d1, d2))


def masked_scatter_rule(g, y, x, mask, source):
    gx = where(mask, 0, g)
    return (gx, None, call(aten.masked_scatter_backward.default, g, mask, list(source.shape)))


def index_put(g, y, x, indices, values, accumulate=False):
    gx = g
    if not accumulate:  # overwritten positions do not reach the output
        gx = g.index_put(indices, zeros([], g), False)
    return (gx, None, g.index(indices))


RULES = {
    # scatter g back to where it came from
    aten.gather.default: lambda g, y, x, dim, index, sparse_grad=False: (
        zeros(x.shape, g).scatter_add(dim, index, g),
    ),
    aten.scatter_add.default: lambda g, y, x, dim, index, src: (
        g,
        None,
        None,
        g.gather(dim, index),
    ),
    aten.scatter.src: lambda g, y, x, dim, index, src: (
        g.scatter(dim, index, 0),
        None,
        None,
        g.gather(dim, index),
    ),
    aten.scatter.value: lambda g, y, x, dim, index, value: (g.scatter(dim, index, 0),),
    aten.scatter_reduce.two: scatter_reduce_rule,
    aten.index_reduce.default: index_reduce_rule,
    # accumulate: an index may be picked several times
    aten.index.Tensor: lambda g, y, x, indices: (zeros(x.shape, g).index_put(indices, g, True),),
    aten.index_put.default: index_put,
    aten.index_select.default: sized_kernel(aten.index_select_backward.default),
    aten.masked_fill.Scalar: lambda g, y, x, mask, value: (where(mask, 0, g),),
    aten.masked_fill.Tensor: lambda g, y, x, mask, value: (
        where(mask, 0, g),
        None,
        where(mask, g, 0),  # the engine sums it down to the fill value's shape
    ),
    aten.masked_scatter.default: masked_scatter_rule,
    aten.masked_select.default: masked_select_rule,
    aten.put.default: lambda g, y, x, index, source, accumulate=False: (
        g if accumulate else g.put(index, zeros_like(source), False),
        None,
        g.take(index),
    ),
    aten.take.default: lambda g, y, x, index: (zeros_like(x).put(index, g, True),),
    aten.slice_scatter.default: slice_scatter_rule,
    aten.diagonal_scatter.default: diagonal_scatter_rule,
}

# Linear and blind to the values: right for complex values too, but for the reductions' extremes.
COMPLEX_SAFE = set(RULES) - {aten.scatter_reduce.two, aten.index_reduce.default}
