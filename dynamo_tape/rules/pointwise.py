"""Pointwise rules. g: cotangent of the output; return one cotangent per argument.
Rules in COMPLEX_SAFE are also right for complex values (see conjugate.py): a holomorphic op's
cotangent is g times the conjugate of its derivative."""

import cmath
import math

from ..ops import aten
from ..record import call, where, zeros_like
from .conjugate import conj


def _scaled(g, alpha):
    return g if alpha == 1 else g * conj(alpha)


def pow_tensor_scalar(g, y, x, e):  # d(x^e) = e x^(e-1) dx
    if e == 0:
        return (zeros_like(g),)
    if e == 1:
        return (g,)
    if e == 2:
        return (g * conj(x) * 2,)
    return (g * conj(x ** (e - 1)) * conj(e),)


def _nonnegative_real(e):
    if not e.dtype.is_complex:
        return call(aten.ge.Scalar, e, 0)
    real_part = call(aten.ge.Scalar, call(aten.real.default, e), 0)
    return call(
        aten.logical_and.default, real_part, call(aten.eq.Scalar, call(aten.imag.default, e), 0)
    )


def pow_tensor_tensor(g, y, x, e):
    # torch's pow_backward_self / _exponent: 0 where e = 0 (x^e is 1 there whatever x is), and
    # for the exponent where x = 0 and e is real and >= 0
    gx = where(call(aten.eq.Scalar, e, 0), 0, g * conj(e * x ** (e - 1)))
    base = x if x.dtype == y.dtype else call(aten._to_copy.default, x, dtype=y.dtype)
    flat = call(aten.logical_and.default, call(aten.eq.Scalar, x, 0), _nonnegative_real(e))
    return (gx, where(flat, 0, g * conj(y * base.log())))


def pow_scalar(g, y, base, e):  # d b^e = b^e ln b de
    if e.dtype.is_complex or isinstance(base, complex):
        log = cmath.log(base) if base != 0 else float("-inf")
    else:  # as torch's Scalar log: nan below 0
        log = math.log(base) if base > 0 else float("-inf") if base == 0 else float("nan")
    ge = g * conj(y * log)
    if base == 0:  # 0^e is flat where e is real and >= 0
        ge = where(_nonnegative_real(e), 0, ge)
    return (None, ge)


def div_rule(g, y, x, other):  # d(x/u) = dx/u - (x/u) du/u
    return (g / conj(other), -(g * conj(y)) / conj(other))


RULES = {
    aten.add.Tensor: lambda g, y, x, other, alpha=1: (g, _scaled(g, alpha)),
    aten.sub.Tensor: lambda g, y, x, other, alpha=1: (g, _scaled(-g, alpha)),
    aten.rsub.Scalar: lambda g, y, x, other, alpha=1: (_scaled(-g, alpha),),  # other - alpha x
    aten.mul.Tensor: lambda g, y, x, other: (g * conj(other), g * conj(x)),  # d(xy) = y dx + x dy
    aten.mul.Scalar: lambda g, y, x, other: (g * conj(other),),
    aten.div.Tensor: div_rule,
    aten.neg.default: lambda g, y, x: (-g,),
    aten.pow.Tensor_Scalar: pow_tensor_scalar,
    aten.pow.Tensor_Tensor: pow_tensor_tensor,
    aten.pow.Scalar: pow_scalar,
    aten.exp.default: lambda g, y, x: (g * conj(y),),  # d e^x = e^x dx
    aten.log.default: lambda g, y, x: (g / conj(x),),
    aten.sqrt.default: lambda g, y, x: (g / (conj(y) * 2),),  # d sqrt(x) = dx / (2 sqrt(x))
    # d x^-1/2 = -x^-3/2 dx / 2
    aten.rsqrt.default: lambda g, y, x: (g * conj(y) * conj(y) * conj(y) * -0.5,),
    aten.reciprocal.default: lambda g, y, x: (-(g * conj(y) * conj(y)),),
    aten.sin.default: lambda g, y, x: (g * conj(x.cos()),),
    aten.cos.default: lambda g, y, x: (-(g * conj(x.sin())),),
    # the kernels conjugate complex values themselves: g conj(1 - y^2), g conj(y (1 - y))
    aten.tanh.default: lambda g, y, x: (call(aten.tanh_backward.default, g, y),),
    aten.sigmoid.default: lambda g, y, x: (call(aten.sigmoid_backward.default, g, y),),
    aten.relu.default: lambda g, y, x: (call(aten.threshold_backward.default, g, y, 0),),
    aten.where.self: lambda g, y, cond, x, other: (None, where(cond, g, 0), where(cond, 0, g)),
    aten.clone.default: lambda g, y, x, memory_format=None: (g,),
    aten.alias.default: lambda g, y, x: (g,),
    # dtype and device changes are undone by the engine when it accumulates cotangents
    aten._to_copy.default: lambda g, y, x, **kw: (g,),
    # the backward kernels' own derivatives, so the backward tape is differentiable too; for
    # complex values they are go conj(h(out)): linear in go, antiholomorphic in out
    aten.tanh_backward.default: lambda g, y, go, out: (
        call(aten.tanh_backward.default, g, conj(out)),
        conj(g) * go * conj(out) * -2,
    ),
    aten.sigmoid_backward.default: lambda g, y, go, out: (
        call(aten.sigmoid_backward.default, g, conj(out)),
        conj(g) * go * conj(1 - out * 2),
    ),
    aten.threshold_backward.default: lambda g, y, go, x, threshold: (
        call(aten.threshold_backward.default, g, x, threshold),
    ),
}

# Right for complex values too (each has a complex128 case in tests/test_rules.py). relu and
# threshold_backward take no complex values.
COMPLEX_SAFE = set(RULES) - {aten.relu.default, aten.threshold_backward.default}
