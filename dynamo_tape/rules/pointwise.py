"""Pointwise rules: arithmetic, powers, exponentials and logarithms, trigonometry, comparisons
and clamps, copies and casts, and the ops whose gradient is zero everywhere (rounding, sign,
fill, random draws). g: cotangent of the output; return one cotangent per argument, None for
none. Math from derivatives.yaml. Rules in COMPLEX_SAFE are also right for complex values (see
conjugate.py): a holomorphic op's cotangent is g times the conjugate of its derivative."""

import cmath
import math

from ..ops import aten
from ..record import both, call, either, eq, ge, gt, le, lt, ne, where, zeros_like
from .conjugate import conj
from .helpers import keep, output_kernel, over, passes, scaled, self_adjoint, times, zero

LN2, LN10 = math.log(2.0), math.log(10.0)


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
        return e >= 0
    return both(e.real >= 0, eq(e.imag, 0))


def pow_tensor_tensor(g, y, x, e):
    # torch's pow_backward_self / _exponent: 0 where e = 0 (x^e is 1 there whatever x is), and
    # for the exponent where x = 0 and e is real and >= 0
    gx = where(eq(e, 0), 0, g * conj(e * x ** (e - 1)))
    base = x.to(y.dtype)
    flat = both(eq(x, 0), _nonnegative_real(e))
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


def div_mode_rule(g, y, x, other, rounding_mode=None):  # rounded quotients are flat
    if rounding_mode is not None:
        zero = zeros_like(g)  # zeros, as eager's (not None)
        return (zero, zero)
    return (g / other, -(g * y) / other)


def acosh_rule(g, y, x):  # 1 / sqrt(x^2 - 1), taken as two square roots on complex branches
    if x.dtype.is_complex:
        return (g * conj((x + 1).rsqrt() * (x - 1).rsqrt()),)
    return (g * (x * x - 1).rsqrt(),)


def sgn_rule(g, y, x):
    # real: piecewise constant. complex: sgn z = z / |z| moves only across the direction of z,
    # (g - sgn Re(g conj(sgn))) / |z|, 0 at z = 0 (torch's sgn_backward)
    if not x.dtype.is_complex:
        return (zeros_like(g),)
    absx = abs(x)
    along = (g * conj(y)).real
    return (where(eq(absx, 0), 0, (g - y * along) / absx),)


def clamp_rule(g, y, x, lo=None, hi=None):  # the gradient passes where lo <= x <= hi
    mask = None
    if lo is not None:
        mask = x >= lo
    if hi is not None:
        below = x <= hi
        mask = below if mask is None else both(mask, below)
    return (g if mask is None else keep(mask, g),)


def clamp_tensor_rule(g, y, x, lo=None, hi=None):
    # torch's clamp_backward_min_max: a bound gets the gradient where it is the active one
    if lo is not None and hi is not None:
        gx = keep(both(x >= lo, x <= hi), g)
        glo = keep(both(x < lo, lo < hi), g)
        ghi = keep(either(x > hi, hi < lo), g)
        return (gx, glo, ghi)
    if lo is not None:
        return (keep(x >= lo, g), keep(x < lo, g), None)
    if hi is not None:
        return (keep(x <= hi, g), None, keep(x > hi, g))
    return (g,)


def maximum_rule(g, y, a, b, a_loses=lt, b_loses=gt):
    # ties split the gradient in half, as in torch
    shared = where(eq(a, b), g * 0.5, g)
    return (where(a_loses(a, b), 0, shared), where(b_loses(a, b), 0, shared))


def minimum_rule(g, y, a, b):
    return maximum_rule(g, y, a, b, gt, lt)


def fmax_rule(g, y, a, b, a_wins=ge):  # NaN loses to a number
    wins = either(a_wins(a, b), b.isnan())
    return (keep(wins, g), where(wins, 0, g))


def fmin_rule(g, y, a, b):
    return fmax_rule(g, y, a, b, le)


def copysign_rule(g, y, x, other=None):  # y = |x| sign(other): dy/dx = y / x, 0 at x = 0
    ratio = where(eq(x, 0), 0, y / x)
    return (g * ratio, zeros_like(g))  # flat in other: zeros, as eager's


def lerp_tensor(g, y, x, end, w):  # x + w (end - x)
    return (g * conj(1 - w), g * conj(w), g * conj(end - x))


def fill_tensor_rule(g, y, x, value):  # every element is `value`: it gets the sum of g
    return (zeros_like(g), call(aten.sum.default, g))


def angle_rule(g, y, x):  # real inputs: piecewise constant; complex: d arg z = Im(dz / z)
    if not x.dtype.is_complex:
        return (zeros_like(g),)
    slope = g * x / (abs(x) ** 2) * 1j
    return (where(eq(x, 0), 0, slope),)


def polar_rule(g, y, r, theta):  # y = r e^(i theta): Re(conj(g) sgn y), Re(conj(g) i y)
    g_conj = conj(g)
    return ((g_conj * y.sgn()).real, (g_conj * (y * 1j)).real)


RULES = {
    # arithmetic
    aten.add.Tensor: lambda g, y, x, other, alpha=1: (g, scaled(g, alpha)),
    aten.sub.Tensor: lambda g, y, x, other, alpha=1: (g, scaled(-g, alpha)),
    aten.rsub.Scalar: lambda g, y, x, other, alpha=1: (scaled(-g, alpha),),  # other - alpha x
    aten.add.Scalar: passes,
    aten.sub.Scalar: passes,
    aten.mul.Tensor: lambda g, y, x, other: (g * conj(other), g * conj(x)),  # d(xy) = y dx + x dy
    aten.mul.Scalar: lambda g, y, x, other: (g * conj(other),),
    # d(x/u) = dx/u - (x/u) du/u
    aten.div.Tensor: lambda g, y, x, other: (g / conj(other), -(g * conj(y)) / conj(other)),
    aten.div.Scalar: lambda g, y, x, other: (g / conj(other),),
    aten.div.Tensor_mode: div_mode_rule,
    aten.neg.default: lambda g, y, x: (-g,),
    aten.square.default: lambda g, y, x: (g * conj(x) * 2,),
    # x - floor(x / u) u, x - trunc(x / u) u
    aten.remainder.Tensor: lambda g, y, x, u: (g, -(g * x.div(u, rounding_mode="floor"))),
    aten.remainder.Scalar: passes,
    aten.fmod.Tensor: lambda g, y, x, u: (g, -(g * x.div(u, rounding_mode="trunc"))),
    aten.fmod.Scalar: passes,
    aten.lerp.Scalar: lambda g, y, x, end, w: (g * conj(1 - w), g * conj(w)),
    aten.lerp.Tensor: lerp_tensor,
    aten.addcmul.default: lambda g, y, x, a, b, value=1: (  # x + value a b
        g,
        scaled(g * conj(b), value),
        scaled(g * conj(a), value),
    ),
    aten.addcdiv.default: lambda g, y, x, a, b, value=1: (  # x + value a / b
        g,
        scaled(g / conj(b), value),
        scaled(-(g * conj(a)) / conj(b * b), value),
    ),
    # powers, exponentials, logarithms
    aten.pow.Tensor_Scalar: pow_tensor_scalar,
    aten.pow.Tensor_Tensor: pow_tensor_tensor,
    aten.pow.Scalar: pow_scalar,
    aten.exp.default: times(lambda x, y: conj(y)),  # d e^x = e^x dx
    aten.exp2.default: lambda g, y, x: (g * conj(y) * LN2,),  # d 2^x = 2^x ln 2 dx
    aten.expm1.default: times(lambda x, y: conj(y + 1)),
    aten.log.default: over(lambda x, y: conj(x)),  # d ln x = dx / x
    aten.log2.default: over(lambda x, y: conj(x) * LN2),
    aten.log10.default: over(lambda x, y: conj(x) * LN10),
    aten.log1p.default: over(lambda x, y: conj(x + 1)),
    aten.sqrt.default: over(lambda x, y: conj(y) * 2),  # d sqrt(x) = dx / (2 sqrt(x))
    # d x^-1/2 = -x^-3/2 dx / 2
    aten.rsqrt.default: lambda g, y, x: (g * conj(y) * conj(y) * conj(y) * -0.5,),
    aten.reciprocal.default: lambda g, y, x: (-(g * conj(y) * conj(y)),),  # d 1/x = -dx / x^2
    # trigonometric and hyperbolic functions
    aten.sin.default: times(lambda x, y: conj(x.cos())),
    aten.cos.default: lambda g, y, x: (-(g * conj(x.sin())),),
    aten.tan.default: times(lambda x, y: conj(y * y + 1)),  # tan' = 1 + tan^2
    aten.asin.default: times(lambda x, y: conj((1 - x * x).rsqrt())),
    aten.acos.default: lambda g, y, x: (-(g * conj((1 - x * x).rsqrt())),),
    aten.atan.default: over(lambda x, y: conj(x * x + 1)),
    aten.atan2.default: lambda g, y, a, b: (g * b / (a * a + b * b), -(g * a) / (a * a + b * b)),
    aten.sinh.default: times(lambda x, y: conj(x.cosh())),
    aten.cosh.default: times(lambda x, y: conj(x.sinh())),
    aten.asinh.default: times(lambda x, y: conj((x * x + 1).rsqrt())),
    aten.acosh.default: acosh_rule,
    aten.atanh.default: over(lambda x, y: conj(1 - x * x)),
    aten.hypot.default: lambda g, y, a, b: (g * a / y, g * b / y),  # d |(a, b)| = (a da + b db) / y
    # the kernels conjugate complex values themselves: g conj(1 - y^2), g conj(y (1 - y))
    aten.tanh.default: output_kernel(aten.tanh_backward.default),
    aten.sigmoid.default: output_kernel(aten.sigmoid_backward.default),
    aten.relu.default: output_kernel(aten.threshold_backward.default, 0),  # g where y > 0
    # signs, magnitudes, clamps, selections
    aten.abs.default: times(lambda x, y: x.sgn()),
    aten.sgn.default: sgn_rule,
    aten.copysign.Tensor: copysign_rule,
    aten.copysign.Scalar: copysign_rule,
    aten.clamp.default: clamp_rule,
    aten.clamp.Tensor: clamp_tensor_rule,
    aten.maximum.default: maximum_rule,
    aten.minimum.default: minimum_rule,
    aten.fmax.default: fmax_rule,
    aten.fmin.default: fmin_rule,
    aten.where.self: lambda g, y, cond, x, other: (None, where(cond, g, 0), where(cond, 0, g)),
    aten.nextafter.default: lambda g, y, x, other: (keep(ne(x, other), g), zeros_like(g)),
    # copies and casts; dtype and device changes are undone by the engine when it accumulates
    aten.clone.default: passes,
    aten.alias.default: passes,
    aten._to_copy.default: passes,
    aten.lift_fresh_copy.default: passes,
    # y = src, in x's place: x's values are overwritten (a zero gradient, as copy_'s), src's
    # pass through
    aten.copy.default: lambda g, y, x, src, non_blocking=False: (zeros_like(g), g),
    # flat everywhere: a zero gradient, as in eager (not "no gradient": the outputs require grad)
    aten.sign.default: zero,
    aten.floor.default: zero,
    aten.ceil.default: zero,
    aten.round.default: zero,
    aten.round.decimals: zero,
    aten.trunc.default: zero,
    aten.fill.Scalar: zero,
    aten.fill.Tensor: fill_tensor_rule,
    # torch defines a draw's gradient with respect to its parameters as zero (bernoulli.p has no
    # formula in eager, whose backward refuses; its output does not depend on self's values)
    aten.bernoulli.default: zero,
    aten.bernoulli.p: zero,
    aten.normal.Tensor_Tensor: zero,
    aten.normal.Tensor_float: zero,
    aten.normal.float_Tensor: zero,
    aten.poisson.default: zero,
    # complex numbers: cotangents are conjugate-linear, as in torch
    aten._conj.default: self_adjoint(aten._conj.default),
    aten._conj_physical.default: self_adjoint(aten._conj_physical.default),
    aten.resolve_conj.default: passes,
    aten.resolve_neg.default: passes,
    # Re z and Im z: a real cotangent g goes back as g and i g (the engine makes g complex)
    aten.real.default: passes,
    aten.imag.default: lambda g, y, x: (g * 1j,),
    aten.complex.default: lambda g, y, re, im: (g.real, g.imag),
    aten.view_as_real.default: lambda g, y, x: (g.contiguous().view_as_complex(),),
    aten.view_as_complex.default: lambda g, y, x: (g.resolve_conj().contiguous().view_as_real(),),
    aten.angle.default: angle_rule,
    aten.polar.default: polar_rule,
}

# Right for complex values too (each has a complex128 case in tests/test_rules.py); every other
# rule here is for real values, and complex entries of its op run on the generic fallback.
COMPLEX_SAFE = {
    *(aten.add.Tensor, aten.sub.Tensor, aten.rsub.Scalar, aten.add.Scalar, aten.sub.Scalar),
    *(aten.mul.Tensor, aten.mul.Scalar, aten.div.Tensor, aten.div.Scalar, aten.neg.default),
    *(aten.square.default, aten.lerp.Scalar, aten.lerp.Tensor),
    *(aten.addcmul.default, aten.addcdiv.default),
    *(aten.pow.Tensor_Scalar, aten.pow.Tensor_Tensor, aten.pow.Scalar),
    *(aten.exp.default, aten.exp2.default, aten.expm1.default),
    *(aten.log.default, aten.log2.default, aten.log10.default, aten.log1p.default),
    *(aten.sqrt.default, aten.rsqrt.default, aten.reciprocal.default),
    *(aten.sin.default, aten.cos.default, aten.tan.default),
    *(aten.asin.default, aten.acos.default, aten.atan.default),
    *(aten.sinh.default, aten.cosh.default, aten.asinh.default, aten.acosh.default),
    *(aten.atanh.default, aten.tanh.default, aten.sigmoid.default),
    *(aten.abs.default, aten.sgn.default, aten.where.self),
    *(aten.clone.default, aten.alias.default, aten._to_copy.default),
    *(aten.lift_fresh_copy.default, aten.copy.default, aten.fill.Scalar, aten.fill.Tensor),
    *(aten._conj.default, aten._conj_physical.default, aten.resolve_conj.default),
    *(aten.resolve_neg.default, aten.real.default, aten.imag.default, aten.complex.default),
    *(aten.view_as_real.default, aten.view_as_complex.default),
    *(aten.angle.default, aten.polar.default),
}  # fmt: skip
