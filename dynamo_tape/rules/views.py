"""View and shape rules. g: cotangent of the output; return one cotangent per argument.
Expansions need no work here: the engine sums cotangents back to each input's shape."""


from ..ops import aten
from ..record import call, permute, reshape, t, transpose


def _inverse(dims):
    n = len(dims)
    inverse = [0] * n
    for i, d in enumerate(dims):
        inverse[d % n] = i
    return inverse


def transpose_rule(g, y, x, d0, d1):
    return (transpose(g, d0, d1),)  # a permute: it folds into the permutes around it


def slice_rule(g, y, x, dim=0, start=None, end=None, step=1):
    start = 0 if start is None else start
    end = 2**63 - 1 if end is None else end
    return (call(aten.slice_backward.default, g, list(x.shape), dim, start, end, step),)


_back_to_input_shape = lambda g, y, x, *args: (reshape(g, x.shape),)

RULES = {
    aten.view.default: _back_to_input_shape,
    aten._unsafe_view.default: _back_to_input_shape,
    aten.reshape.default: _back_to_input_shape,
    aten.squeeze.default: _back_to_input_shape,
    aten.squeeze.dim: _back_to_input_shape,
    aten.squeeze.dims: _back_to_input_shape,
    aten.unsqueeze.default: _back_to_input_shape,
    aten.flatten.using_ints: _back_to_input_shape,
    aten.expand.default: lambda g, y, x, size, implicit=False: (g,),
    aten.permute.default: lambda g, y, x, dims: (permute(g, _inverse(dims)),),
    aten.transpose.int: transpose_rule,
    aten.t.default: lambda g, y, x: (t(g),),
    aten.slice.Tensor: slice_rule,
    aten.select.int: lambda g, y, x, dim, index: (
        call(aten.select_backward.default, g, list(x.shape), dim, index),
    ),
    aten.slice_backward.default: lambda g, y, go, sizes, dim, start, end, step: (
        call(aten.slice.Tensor, g, dim, start, end, step),
    ),
    aten.select_backward.default: lambda g, y, go, sizes, dim, index: (
        call(aten.select.int, g, dim, index),
    ),
}

# Linear and blind to the values: right for complex values as they are.
COMPLEX_SAFE = set(RULES)
