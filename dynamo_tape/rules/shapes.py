"""Shape rules: views and their copies, joining and splitting, flips, repeats, windows,
triangles and padding. g: cotangent of the output (a tuple for ops with several outputs);
return one cotangent per argument. Expansions need no work here: the engine sums cotangents
back to each input's shape. All are linear and blind to the values: right for complex values
as they are."""

import math

import torch

from ..ops import aten
from ..record import call, cat, narrow, pad, reshape, stack, zeros_like
from .fallback import autograd_vjp
from .helpers import filled, passes, self_adjoint, sized_kernel, to_input_shape


def _inverse(dims):
    n = len(dims)
    inverse = [0] * n
    for i, d in enumerate(dims):
        inverse[d % n] = i
    return inverse


def _unpermute(g, y, x, dims):
    return (g.permute(_inverse(dims)),)


def slice_rule(g, y, x, dim=0, start=None, end=None, step=1):
    start = 0 if start is None else start
    end = 2**63 - 1 if end is None else end
    return (call(aten.slice_backward.default, g, list(x.shape), dim, start, end, step),)


def repeat_rule(g, y, x, repeats):
    # split each output dim into (repeat, size) and sum the repeats; leading new dims are
    # summed by the engine
    lead = len(repeats) - x.dim()
    sizes = [1] * lead + list(x.shape)
    split = [n for r, s in zip(repeats, sizes, strict=True) for n in (r, s)]
    return (reshape(g, split).sum(list(range(0, 2 * len(sizes), 2))),)


def constant_pad_rule(g, y, x, widths, value=0):  # a negative pad crops the padding back off
    return (pad(g, [-p for p in widths], 0),)


def _storage_positions(x, size, stride, offset):
    """Which element of a contiguous x each element of as_strided(x, ...) reads."""
    positions = call(aten.arange.default, x.meta.numel(), dtype=torch.int64, device=x.meta.device)
    return positions.as_strided(size, stride, offset or 0)


def _reads_in_order(size, stride) -> bool:
    """Whether strides `stride` lay out `size` row-major, dims of size 1 aside: an as_strided
    of a contiguous x with them (offset 0, as many elements) is x.reshape(size)."""
    if not all(type(n) is int for n in (*size, *stride)):
        return False  # symbolic: the general rule
    expected = 1
    for n, s in reversed(list(zip(size, stride, strict=True))):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def as_strided_rule(op):
    def rule(g, y, x, size, stride, offset=None):
        meta = x.meta
        if not meta.is_contiguous() or meta.storage_offset() != 0:  # rare: left to torch
            return autograd_vjp(op, g, y, x, size, stride, offset)
        if not offset and _reads_in_order(size, stride) and math.prod(size) == meta.numel():
            # a reshape, or a restride of size-1 dims (adaptive_avg_pool2d's 1x1 output of a
            # channels-last input): g reshaped back, not a scatter of 7 entries
            return (reshape(g, meta.shape),)
        flat = g.new_zeros([meta.numel()])
        # (reshapes recorded as such: record.reshape would read through g's own reshapes)
        where_read = call(aten.reshape.default, _storage_positions(x, size, stride, offset), [-1])
        values = call(aten.reshape.default, g, [-1])
        # overlapping windows read an element more than once: their cotangents add up
        flat = flat.index_put([where_read], values, True)
        return (call(aten.reshape.default, flat, list(meta.shape)),)

    return rule


def cat_rule(g, y, tensors, dim=0):
    dim = dim % y.dim()
    pieces, start = [], 0
    for part in tensors:
        if part.dim() == 1 and part.shape[0] == 0 and y.dim() != 1:
            pieces.append(None)  # cat skips legacy empty 1-d tensors
            continue
        size = part.shape[dim]
        pieces.append(narrow(g, dim, start, size))
        start = start + size
    return (pieces,)


def unbind_copy_rule(g, y, x, dim=0):
    parts = [gi if gi is not None else zeros_like(yi) for gi, yi in zip(g, y, strict=True)]
    return (stack(parts, dim),)


RULES = {
    aten.view.default: to_input_shape,
    aten.view_copy.default: to_input_shape,
    aten._unsafe_view.default: to_input_shape,
    aten.reshape.default: to_input_shape,
    aten.squeeze.dim: to_input_shape,
    aten.squeeze.dims: to_input_shape,
    aten.unsqueeze.default: to_input_shape,
    aten.flatten.using_ints: to_input_shape,
    aten.expand.default: passes,
    aten.permute.default: _unpermute,
    aten.permute_copy.default: _unpermute,
    # a permute: it folds into the permutes around it
    aten.slice.Tensor: slice_rule,
    aten.select.int: sized_kernel(aten.select_backward.default),
    aten.narrow_copy.default: lambda g, y, x, dim, start, length: (
        call(aten.slice_backward.default, g, list(x.shape), dim, start, start + length, 1),
    ),
    aten.diagonal.default: sized_kernel(aten.diagonal_backward.default),
    aten.as_strided.default: as_strided_rule(aten.as_strided.default),
    aten.as_strided_copy.default: as_strided_rule(aten.as_strided_copy.default),
    aten.unfold.default: sized_kernel(aten.unfold_backward.default),
    aten.cat.default: cat_rule,
    # cat the pieces back
    aten.split_with_sizes.default: lambda g, y, x, sizes, dim=0: (cat(filled(g, y), dim),),
    aten.unbind_copy.int: unbind_copy_rule,
    aten.stack.default: lambda g, y, tensors, dim=0: (
        [g.select(dim, i) for i in range(len(tensors))],
    ),
    aten.flip.default: self_adjoint(aten.flip.default),
    aten.repeat.default: repeat_rule,
    aten.constant_pad_nd.default: constant_pad_rule,
    aten.tril.default: self_adjoint(aten.tril.default),
    aten.triu.default: self_adjoint(aten.triu.default),
}

COMPLEX_SAFE = set(RULES)
