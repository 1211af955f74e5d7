"""More pointwise rules: the special functions, activations and binary ops OpInfo reaches,
complex numbers' own ops, and the ops whose gradient is zero everywhere (rounding, sign, fill,
random draws). g: cotangent of the output; return one cotangent per argument. Math from
derivatives.yaml; the rules in COMPLEX_SAFE follow its `.conj()`s (see conjugate.py)."""

import math

import torch

from ..ops import aten
from ..record import call, where, zeros_like
from .conjugate import conj

LN2, LN10 = math.log(2.0), math.log(10.0)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
SQRT_2PI = math.sqrt(2.0 * math.pi)


def _and(a, b):
    return call(aten.logical_and.default, a, b)


def _or(a, b):
    return call(aten.logical_or.default, a, b)


def _keep(mask, g):  # g where mask holds, 0 elsewhere
    return where(mask, g, 0)


def _scale(g, c):
    return g if c == 1 else g * c


def clamp_rule(g, y, x, lo=None, hi=None):  # the gradient passes where lo <= x <= hi
    mask = None
    if lo is not None:
        mask = call(aten.ge.Scalar, x, lo)
    if hi is not None:
        below = call(aten.le.Scalar, x, hi)
        mask = below if mask is None else _and(mask, below)
    return (g if mask is None else _keep(mask, g),)


def clamp_tensor_rule(g, y, x, lo=None, hi=None):
    # torch's clamp_backward_min_max: a bound gets the gradient where it is the active one
    if lo is not None and hi is not None:
        gx = _keep(_and(call(aten.ge.Tensor, x, lo), call(aten.le.Tensor, x, hi)), g)
        glo = _keep(_and(call(aten.lt.Tensor, x, lo), call(aten.lt.Tensor, lo, hi)), g)
        ghi = _keep(_or(call(aten.gt.Tensor, x, hi), call(aten.lt.Tensor, hi, lo)), g)
        return (gx, glo, ghi)
    if lo is not None:
        return (_keep(call(aten.ge.Tensor, x, lo), g), _keep(call(aten.lt.Tensor, x, lo), g), None)
    if hi is not None:
        return (_keep(call(aten.le.Tensor, x, hi), g), None, _keep(call(aten.gt.Tensor, x, hi), g))
    return (g,)


def clamp_min_tensor(g, y, x, lo):
    return (_keep(call(aten.ge.Tensor, x, lo), g), _keep(call(aten.lt.Tensor, x, lo), g))


def clamp_max_tensor(g, y, x, hi):
    return (_keep(call(aten.le.Tensor, x, hi), g), _keep(call(aten.gt.Tensor, x, hi), g))


def maximum_rule(g, y, a, b, a_loses=aten.lt.Tensor, b_loses=aten.gt.Tensor):
    # ties split the gradient in half, as in torch
    shared = where(call(aten.eq.Tensor, a, b), g * 0.5, g)
    return (where(call(a_loses, a, b), 0, shared), where(call(b_loses, a, b), 0, shared))


def minimum_rule(g, y, a, b):
    return maximum_rule(g, y, a, b, aten.gt.Tensor, aten.lt.Tensor)


def fmax_rule(g, y, a, b, a_wins=aten.ge.Tensor):  # NaN loses to a number
    wins = _or(call(a_wins, a, b), call(aten.isnan.default, b))
    return (_keep(wins, g), where(wins, 0, g))


def fmin_rule(g, y, a, b):
    return fmax_rule(g, y, a, b, aten.le.Tensor)


def copysign_rule(g, y, x, other=None):  # y = |x| sign(other): dy/dx = y / x, 0 at x = 0
    ratio = where(call(aten.eq.Scalar, x, 0), 0, y / x)
    return (g * ratio, zeros_like(g))  # flat in other: zeros, as eager's


def xlogy_rule(g, y, x, other):  # d(x log u) = log u dx + x/u du; 0 where x = 0 and u <= 0
    gx = call(aten.xlogy.Tensor, g, other)
    gx = where(_and(call(aten.eq.Scalar, x, 0), call(aten.le.Scalar, other, 0)), 0, gx)
    return (gx, g * x / other)


def div_mode_rule(g, y, x, other, rounding_mode=None):  # rounded quotients are flat
    if rounding_mode is not None:
        zero = zeros_like(g)  # zeros, as eager's (not None)
        return (zero, zero)
    return (g / other, -(g * y) / other)


def i1_rule(g, y, x):  # I1' = I0 - I1/x, 1/2 at 0
    slope = call(aten.special_i0.default, x) - y / x
    return (g * where(call(aten.eq.Scalar, x, 0), 0.5, slope),)


def i1e_rule(g, y, x):  # I1e' = I0e - I1e (sgn x + 1/x), 1/2 at 0
    sgn = call(aten.sgn.default, x)
    slope = call(aten.special_i0e.default, x) - y * (sgn + call(aten.reciprocal.default, x))
    return (g * where(call(aten.eq.Scalar, x, 0), 0.5, slope),)


def lerp_tensor(g, y, x, end, w):  # x + w (end - x)
    return (g * conj(1 - w), g * conj(w), g * conj(end - x))


def acosh_rule(g, y, x):  # 1 / sqrt(x^2 - 1), taken as two square roots on complex branches
    if x.dtype.is_complex:
        slope = call(aten.rsqrt.default, x + 1) * call(aten.rsqrt.default, x - 1)
        return (g * conj(slope),)
    return (g * call(aten.rsqrt.default, x * x - 1),)


def logaddexp_rule(g, y, a, b):  # d log(e^a + e^b) = da / (1 + e^(b-a)) + db / (1 + e^(a-b))
    return (g / (call(aten.exp.default, b - a) + 1), g / (call(aten.exp.default, a - b) + 1))


def logaddexp2_rule(g, y, a, b):
    return (
        g / (call(aten.pow.Scalar, 2.0, b - a) + 1),
        g / (call(aten.pow.Scalar, 2.0, a - b) + 1),
    )


def sinc_rule(g, y, x):  # sinc(x) = sin(pi x)/(pi x): (cos(pi x) - sinc(x)) / x, 0 at x = 0
    slope = (call(aten.cos.default, x * math.pi) - y) / x
    return (g * where(call(aten.eq.Scalar, x, 0), 0, slope),)


def angle_rule(g, y, x):  # real inputs: piecewise constant; complex: d arg z = Im(dz / z)
    if not x.dtype.is_complex:
        return (zeros_like(g),)
    slope = g * x / (call(aten.abs.default, x) ** 2) * 1j
    return (where(call(aten.eq.Scalar, x, 0), 0, slope),)


def polar_rule(g, y, r, theta):  # y = r e^(i theta)
    g_conj = call(aten._conj.default, g)
    g_r = call(aten.real.default, g_conj * call(aten.sgn.default, y))
    g_theta = call(aten.real.default, g_conj * (y * 1j))
    return (g_r, g_theta)


def sgn_rule(g, y, x):
    # real: piecewise constant. complex: sgn z = z / |z| moves only across the direction of z,
    # (g - sgn Re(g conj(sgn))) / |z|, 0 at z = 0 (torch's sgn_backward)
    if not x.dtype.is_complex:
        return (zeros_like(g),)
    absx = call(aten.abs.default, x)
    along = call(aten.real.default, g * conj(y))
    return (where(call(aten.eq.Scalar, absx, 0), 0, (g - y * along) / absx),)


def _zero(g, y, *args, **kwargs):
    """Ops flat everywhere (rounding, sign, a random draw's parameters): eager's output requires
    grad, and each tensor argument gets a zero gradient (derivatives.yaml: zeros_like(grad))."""
    zero = zeros_like(g)  # the engine sums it down to each argument's shape
    return (zero,) * len(args)


def fill_tensor_rule(g, y, x, value):  # every element is `value`: it gets the sum of g
    return (zeros_like(g), call(aten.sum.default, g))


def _contiguous(x):
    return call(aten.clone.default, x, memory_format=torch.contiguous_format)


RULES = {
    # flat everywhere: a zero gradient, as in eager (not "no gradient": the outputs require grad)
    aten.sign.default: _zero,
    aten.floor.default: _zero,
    aten.ceil.default: _zero,
    aten.round.default: _zero,
    aten.round.decimals: _zero,
    aten.trunc.default: _zero,
    aten.fill.Scalar: _zero,
    aten.fill.Tensor: fill_tensor_rule,
    # torch defines a draw's gradient with respect to its parameters as zero (bernoulli.p has no
    # formula in eager, whose backward refuses; its output does not depend on self's values)
    aten.bernoulli.default: _zero,
    aten.bernoulli.p: _zero,
    aten.normal.Tensor_Tensor: _zero,
    aten.normal.Tensor_float: _zero,
    aten.normal.float_Tensor: _zero,
    aten.poisson.default: _zero,
    aten.frac.default: lambda g, y, x: (g,),  # x - trunc(x): slope 1
    aten.sgn.default: sgn_rule,
    aten.abs.default: lambda g, y, x: (g * call(aten.sgn.default, x),),
    aten.acos.default: lambda g, y, x: (-(g * conj(call(aten.rsqrt.default, 1 - x * x))),),
    aten.asin.default: lambda g, y, x: (g * conj(call(aten.rsqrt.default, 1 - x * x)),),
    aten.acosh.default: acosh_rule,
    aten.asinh.default: lambda g, y, x: (g * conj(call(aten.rsqrt.default, x * x + 1)),),
    aten.atan.default: lambda g, y, x: (g / conj(x * x + 1),),
    aten.atanh.default: lambda g, y, x: (g / conj(1 - x * x),),
    aten.atan2.default: lambda g, y, a, b: (g * b / (a * a + b * b), -(g * a) / (a * a + b * b)),
    aten.sinh.default: lambda g, y, x: (g * conj(call(aten.cosh.default, x)),),
    aten.cosh.default: lambda g, y, x: (g * conj(call(aten.sinh.default, x)),),
    aten.tan.default: lambda g, y, x: (g * conj(y * y + 1),),  # tan' = 1 + tan^2
    aten.erf.default: lambda g, y, x: (g * call(aten.exp.default, -(x * x)) * TWO_OVER_SQRT_PI,),
    aten.erfc.default: lambda g, y, x: (g * call(aten.exp.default, -(x * x)) * -TWO_OVER_SQRT_PI,),
    aten.erfinv.default: lambda g, y, x: (
        g * call(aten.exp.default, y * y) * (math.sqrt(math.pi) / 2),
    ),
    aten.special_erfcx.default: lambda g, y, x: (g * (x * y * 2 - TWO_OVER_SQRT_PI),),
    aten.special_ndtri.default: lambda g, y, x: (
        g * call(aten.exp.default, y * y * 0.5) * SQRT_2PI,
    ),
    # d log Phi(x) = phi(x) / Phi(x) = exp(-(y + x^2/2)) / sqrt(2 pi)
    aten.special_log_ndtr.default: lambda g, y, x: (
        g * call(aten.exp.default, -(y + x * x * 0.5)) / SQRT_2PI,
    ),
    aten.exp2.default: lambda g, y, x: (g * conj(y) * LN2,),
    aten.expm1.default: lambda g, y, x: (g * conj(y + 1),),
    aten.log2.default: lambda g, y, x: (g / (conj(x) * LN2),),
    aten.log10.default: lambda g, y, x: (g / (conj(x) * LN10),),
    aten.log1p.default: lambda g, y, x: (g / conj(x + 1),),
    aten.lgamma.default: lambda g, y, x: (g * call(aten.digamma.default, x),),
    aten.digamma.default: lambda g, y, x: (g * call(aten.polygamma.default, 1, x),),
    aten.polygamma.default: lambda g, y, n, x: (None, g * call(aten.polygamma.default, n + 1, x)),
    aten.i0.default: lambda g, y, x: (g * call(aten.special_i1.default, x),),
    aten.special_i0e.default: lambda g, y, x: (
        g * (call(aten.special_i1e.default, x) - call(aten.sgn.default, x) * y),
    ),
    aten.special_i1.default: i1_rule,
    aten.special_i1e.default: i1e_rule,
    aten.sinc.default: sinc_rule,
    aten.nan_to_num.default: lambda g, y, x, *_: (_keep(call(aten.isfinite.default, x), g),),
    aten.logit.default: lambda g, y, x, eps=None: (call(aten.logit_backward.default, g, x, eps),),
    # activations: torch's own backward kernels
    aten.elu.default: lambda g, y, x, alpha=1, scale=1, input_scale=1: (
        call(aten.elu_backward.default, g, alpha, scale, input_scale, False, x),
    ),
    aten.hardtanh.default: lambda g, y, x, lo=-1, hi=1: (
        call(aten.hardtanh_backward.default, g, x, lo, hi),
    ),
    aten.leaky_relu.default: lambda g, y, x, slope=0.01: (
        call(aten.leaky_relu_backward.default, g, x, slope, False),
    ),
    aten.softplus.default: lambda g, y, x, beta=1, threshold=20: (
        call(aten.softplus_backward.default, g, x, beta, threshold),
    ),
    aten.hardsigmoid.default: lambda g, y, x: (call(aten.hardsigmoid_backward.default, g, x),),
    aten.hardswish.default: lambda g, y, x: (call(aten.hardswish_backward.default, g, x),),
    aten.mish.default: lambda g, y, x: (call(aten.mish_backward.default, g, x),),
    aten.log_sigmoid_forward.default: lambda g, y, x: (
        call(aten.log_sigmoid_backward.default, g[0], x, y[1]),
    ),
    aten.clamp.default: clamp_rule,
    aten.clamp.Tensor: clamp_tensor_rule,
    aten.clamp_min.default: lambda g, y, x, lo: clamp_rule(g, y, x, lo, None),
    aten.clamp_max.default: lambda g, y, x, hi: clamp_rule(g, y, x, None, hi),
    aten.clamp_min.Tensor: clamp_min_tensor,
    aten.clamp_max.Tensor: clamp_max_tensor,
    aten.maximum.default: maximum_rule,
    aten.minimum.default: minimum_rule,
    aten.fmax.default: fmax_rule,
    aten.fmin.default: fmin_rule,
    aten.hypot.default: lambda g, y, a, b: (g * a / y, g * b / y),
    aten.copysign.Tensor: copysign_rule,
    aten.copysign.Scalar: copysign_rule,
    aten.xlogy.Tensor: xlogy_rule,
    aten.remainder.Tensor: lambda g, y, x, u: (
        g,
        -(g * call(aten.div.Tensor_mode, x, u, rounding_mode="floor")),
    ),
    aten.remainder.Scalar: lambda g, y, x, u: (g,),
    aten.fmod.Tensor: lambda g, y, x, u: (
        g,
        -(g * call(aten.div.Tensor_mode, x, u, rounding_mode="trunc")),
    ),
    aten.fmod.Scalar: lambda g, y, x, u: (g,),
    aten.add.Scalar: lambda g, y, x, other, alpha=1: (g,),
    aten.sub.Scalar: lambda g, y, x, other, alpha=1: (g,),
    aten.div.Scalar: lambda g, y, x, other: (g / conj(other),),
    aten.div.Tensor_mode: div_mode_rule,
    aten.lerp.Scalar: lambda g, y, x, end, w: (g * conj(1 - w), g * conj(w)),
    aten.lerp.Tensor: lerp_tensor,
    aten.logaddexp.default: logaddexp_rule,
    aten.logaddexp2.default: logaddexp2_rule,
    aten.ldexp.Tensor: lambda g, y, x, e: (g * call(aten.pow.Scalar, 2.0, e), g * y * LN2),
    # the exponent is an integer output: only the mantissa carries a gradient
    aten.frexp.Tensor: lambda g, y, x: (g[0] / call(aten.exp2.default, y[1]),),
    aten.nextafter.default: lambda g, y, x, other: (
        _keep(call(aten.ne.Tensor, x, other), g),
        zeros_like(g),
    ),
    aten.addcmul.default: lambda g, y, x, a, b, value=1: (
        g,
        _scale(g * conj(b), conj(value)),
        _scale(g * conj(a), conj(value)),
    ),
    aten.addcdiv.default: lambda g, y, x, a, b, value=1: (
        g,
        _scale(g / conj(b), conj(value)),
        _scale(-(g * conj(a)) / conj(b * b), conj(value)),
    ),
    # a gamma draw moves with its concentration along the drawn sample (implicit reparameterization)
    aten._standard_gamma.default: lambda g, y, x, generator=None: (
        g * call(aten._standard_gamma_grad.default, x, y),
    ),
    aten.square.default: lambda g, y, x: (g * conj(x) * 2,),
    # y = src, in x's place: x's values are overwritten (a zero gradient, as copy_'s), src's
    # pass through
    aten.copy.default: lambda g, y, x, src, non_blocking=False: (zeros_like(g), g),
    aten.lift_fresh_copy.default: lambda g, y, x: (g,),
    # complex numbers: cotangents are conjugate-linear, as in torch
    aten._conj.default: lambda g, y, x: (call(aten._conj.default, g),),
    aten._conj_physical.default: lambda g, y, x: (call(aten._conj_physical.default, g),),
    aten.resolve_conj.default: lambda g, y, x: (g,),
    aten.resolve_neg.default: lambda g, y, x: (g,),
    # Re z and Im z: a real cotangent g goes back as g and i g (the engine makes g complex)
    aten.real.default: lambda g, y, x: (g,),
    aten.imag.default: lambda g, y, x: (g * 1j,),
    aten.complex.default: lambda g, y, re, im: (
        call(aten.real.default, g),
        call(aten.imag.default, g),
    ),
    aten.view_as_real.default: lambda g, y, x: (
        call(aten.view_as_complex.default, _contiguous(g)),
    ),
    aten.view_as_complex.default: lambda g, y, x: (
        call(aten.view_as_real.default, _contiguous(call(aten.resolve_conj.default, g))),
    ),
    aten.angle.default: angle_rule,
    aten.polar.default: polar_rule,
}


# Right for complex values too (each has a complex128 case in tests/test_rules.py); every other
# rule here is for real values, and complex entries of its op run on the generic fallback.
COMPLEX_SAFE = {
    aten.fill.Scalar,
    aten.fill.Tensor,
    aten.sgn.default,
    aten.abs.default,
    aten.acos.default,
    aten.asin.default,
    aten.acosh.default,
    aten.asinh.default,
    aten.atan.default,
    aten.atanh.default,
    aten.sinh.default,
    aten.cosh.default,
    aten.tan.default,
    aten.exp2.default,
    aten.expm1.default,
    aten.log2.default,
    aten.log10.default,
    aten.log1p.default,
    aten.add.Scalar,
    aten.sub.Scalar,
    aten.div.Scalar,
    aten.lerp.Scalar,
    aten.lerp.Tensor,
    aten.addcmul.default,
    aten.addcdiv.default,
    aten.square.default,
    aten.copy.default,
    aten.lift_fresh_copy.default,
    aten._conj.default,
    aten._conj_physical.default,
    aten.resolve_conj.default,
    aten.resolve_neg.default,
    aten.real.default,
    aten.imag.default,
    aten.complex.default,
    aten.view_as_real.default,
    aten.view_as_complex.default,
    aten.angle.default,
    aten.polar.default,
}
