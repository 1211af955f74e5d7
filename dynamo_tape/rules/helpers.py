"""The shapes rules come in, and the small pieces they are written with, in one place.

Most rules are one line: `times(d)` for an op whose cotangent is g times a factor d(x, y)
(written with its conjugate where the op takes complex values, see conjugate.py), `over(d)` for
g divided by one, `passes` for an op that hands g on unchanged, `zero` for an op flat everywhere,
`self_adjoint(op)` for a linear op that is its own transpose, `kernel(op)` for an op whose
gradient is torch's backward kernel called as `op(g, x, *params)` (`output_kernel(op)`: as
`op(g, y)`; `sized_kernel(op)`: as `op(g, x.shape, *params)`, for views).
"""

from ..record import call, reshape, where, zeros, zeros_like
from .conjugate import conj


def times(factor):
    """The rule of a one-argument op with dy = factor(x, y) dx: (g * factor,)."""
    return lambda g, y, x: (g * factor(x, y),)


def over(denominator):
    """The rule of a one-argument op with dy = dx / denominator(x, y): (g / denominator,)."""
    return lambda g, y, x: (g / denominator(x, y),)


def self_adjoint(op):
    """The rule of an op linear in its first argument and its own transpose (a flip, a
    triangle's mask, a backward kernel linear in go): (op(g, *params),)."""
    return lambda g, y, x, *params: (call(op, g, *params),)


def kernel(backward, n_params=None):
    """The rule of an op whose gradient is `backward(g, x, *params, **kwargs)`, given only the
    op's first `n_params` parameters where that is set."""
    return lambda g, y, x, *params, **kwargs: (call(backward, g, x, *params[:n_params], **kwargs),)


def output_kernel(backward, *constants):
    """The rule of a one-argument op whose gradient is `backward(g, y, *constants)`, a kernel
    that reads the output (tanh, sigmoid, relu)."""
    return lambda g, y, x: (call(backward, g, y, *constants),)


def sized_kernel(backward):
    """The rule of a view whose gradient is `backward(g, x.shape, *params)`: the view's kernel
    that puts g back into zeros of the input's size (select, diagonal, unfold...)."""
    return lambda g, y, x, *params: (call(backward, g, list(x.shape), *params),)


def passes(g, y, x, *args, **kwargs):  # y = x (a copy, a cast, a shift by a constant)
    return (g,)


def zero(g, y, *args, **kwargs):
    """Ops flat everywhere (rounding, sign, a random draw's parameters): eager's output requires
    grad, and each tensor argument gets a zero gradient (derivatives.yaml: zeros_like(grad))."""
    zero = zeros_like(g)  # the engine sums it down to each argument's shape
    return (zero,) * len(args)


def to_input_shape(g, y, x, *args):  # views and copies that only reshape
    return (reshape(g, x.shape),)


def scaled(g, c):  # g conj(c), for a constant c
    return g if c == 1 else g * conj(c)


def keep(mask, g):  # g where mask holds, 0 elsewhere
    return where(mask, g, 0)


def filled(gs, ys):
    """Cotangents of several outputs, zeros where an output received none."""
    return [g if g is not None else zeros(y.shape, y) for g, y in zip(gs, ys, strict=True)]
