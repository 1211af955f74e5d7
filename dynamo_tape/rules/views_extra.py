"""More view and indexing rules: copies of views, scatters into slices and diagonals, flips,
repeats, windows and padding. g: cotangent of the output; return one cotangent per argument."""


from ..ops import aten
from ..record import call, permute, reshape, sum, where, zeros_like
from .views import _inverse


def repeat_rule(g, y, x, repeats):
    # split each output dim into (repeat, size) and sum the repeats; leading new dims are
    # summed by the engine
    lead = len(repeats) - x.dim()
    sizes = [1] * lead + list(x.shape)
    split = [n for r, s in zip(repeats, sizes, strict=True) for n in (r, s)]
    return (sum(reshape(g, split), list(range(0, 2 * len(sizes), 2))),)


def slice_scatter_rule(g, y, x, src, dim=0, start=None, end=None, step=1):
    gx = call(aten.slice_scatter.default, g, zeros_like(src), dim, start, end, step)
    return (gx, call(aten.slice.Tensor, g, dim, start, end, step))


def select_scatter_rule(g, y, x, src, dim, index):
    gx = call(aten.select_scatter.default, g, zeros_like(src), dim, index)
    return (gx, call(aten.select.int, g, dim, index))


def diagonal_scatter_rule(g, y, x, src, offset=0, d1=0, d2=1):
    gx = call(aten.diagonal_scatter.default, g, zeros_like(src), offset, d1, d2)
    return (gx, call(aten.diagonal.default, g, offset, d1, d2))


def constant_pad_rule(g, y, x, pad, value=0):  # a negative pad crops the padding back off
    return (call(aten.constant_pad_nd.default, g, [-p for p in pad], 0),)


def masked_scatter_rule(g, y, x, mask, source):
    gx = where(mask, 0, g)
    return (gx, None, call(aten.masked_scatter_backward.default, g, mask, list(source.shape)))


_back_to_input_shape = lambda g, y, x, *args: (reshape(g, x.shape),)


def unbind_copy_rule(g, y, x, dim=0):
    parts = [gi if gi is not None else zeros_like(yi) for gi, yi in zip(g, y, strict=True)]
    return (call(aten.stack.default, parts, dim),)


RULES = {
    aten.view_copy.default: _back_to_input_shape,
    aten.permute_copy.default: lambda g, y, x, dims: (permute(g, _inverse(dims)),),
    aten.diagonal.default: lambda g, y, x, offset=0, d1=0, d2=1: (
        call(aten.diagonal_backward.default, g, list(x.shape), offset, d1, d2),
    ),
    aten.diagonal_copy.default: lambda g, y, x, offset=0, d1=0, d2=1: (
        call(aten.diagonal_backward.default, g, list(x.shape), offset, d1, d2),
    ),
    aten.diagonal_scatter.default: diagonal_scatter_rule,
    aten.slice_scatter.default: slice_scatter_rule,
    aten.select_scatter.default: select_scatter_rule,
    aten.narrow_copy.default: lambda g, y, x, dim, start, length: (
        call(aten.slice_backward.default, g, list(x.shape), dim, start, start + length, 1),
    ),
    aten.flip.default: lambda g, y, x, dims: (call(aten.flip.default, g, dims),),
    aten.roll.default: lambda g, y, x, shifts, dims=(): (
        call(aten.roll.default, g, [-s for s in shifts], dims),
    ),
    aten.repeat.default: repeat_rule,
    aten.unfold.default: lambda g, y, x, dim, size, step: (
        call(aten.unfold_backward.default, g, list(x.shape), dim, size, step),
    ),
    aten.index_select.default: lambda g, y, x, dim, index: (
        call(aten.index_select_backward.default, g, list(x.shape), dim, index),
    ),
    aten.constant_pad_nd.default: constant_pad_rule,
    aten.masked_scatter.default: masked_scatter_rule,
    aten.tril.default: lambda g, y, x, k=0: (call(aten.tril.default, g, k),),
    aten.triu.default: lambda g, y, x, k=0: (call(aten.triu.default, g, k),),
    aten.scatter.src: lambda g, y, x, dim, index, src: (
        call(aten.scatter.value, g, dim, index, 0),
        None,
        None,
        call(aten.gather.default, g, dim, index),
    ),
    aten.scatter.value: lambda g, y, x, dim, index, value: (
        call(aten.scatter.value, g, dim, index, 0),
    ),
    aten.put.default: lambda g, y, x, index, source, accumulate=False: (
        g if accumulate else call(aten.put.default, g, index, zeros_like(source), False),
        None,
        call(aten.take.default, g, index),
    ),
    aten.take.default: lambda g, y, x, index: (
        call(aten.put.default, zeros_like(x), index, g, True),
    ),
    aten.unbind_copy.int: unbind_copy_rule,
}

# Linear and blind to the values: right for complex values as they are.
COMPLEX_SAFE = set(RULES)
