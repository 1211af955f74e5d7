"""Rules for the special functions: error functions, the gamma family, Bessel functions,
mantissas and exponents, a gamma draw. Real values only (complex entries of these ops run on
the generic fallback). g: cotangent of the output; return one cotangent per argument.
Math from derivatives.yaml."""

import math

from ..ops import aten
from ..record import call, eq, polygamma, where
from .helpers import times

LN2 = math.log(2.0)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
SQRT_2PI = math.sqrt(2.0 * math.pi)


def i1_slope(x, y):  # I1' = I0 - I1/x, 1/2 at 0
    slope = x.special_i0() - y / x
    return where(eq(x, 0), 0.5, slope)


def i1e_slope(x, y):  # I1e' = I0e - I1e (sgn x + 1/x), 1/2 at 0
    sgn = x.sgn()
    slope = x.special_i0e() - y * (sgn + x.reciprocal())
    return where(eq(x, 0), 0.5, slope)


RULES = {
    # error functions: erf' = 2 e^(-x^2) / sqrt(pi)
    aten.erf.default: lambda g, y, x: (g * (-(x * x)).exp() * TWO_OVER_SQRT_PI,),
    aten.erfc.default: lambda g, y, x: (g * (-(x * x)).exp() * -TWO_OVER_SQRT_PI,),
    aten.erfinv.default: lambda g, y, x: (g * (y * y).exp() * (math.sqrt(math.pi) / 2),),
    aten.special_erfcx.default: times(lambda x, y: x * y * 2 - TWO_OVER_SQRT_PI),
    aten.special_ndtri.default: lambda g, y, x: (g * (y * y * 0.5).exp() * SQRT_2PI,),
    # d log Phi(x) = phi(x) / Phi(x) = exp(-(y + x^2/2)) / sqrt(2 pi)
    aten.special_log_ndtr.default: lambda g, y, x: (g * (-(y + x * x * 0.5)).exp() / SQRT_2PI,),
    # the gamma family: lgamma' = digamma, digamma' = polygamma(1)
    aten.lgamma.default: times(lambda x, y: x.digamma()),
    aten.digamma.default: times(lambda x, y: polygamma(1, x)),
    aten.polygamma.default: lambda g, y, n, x: (None, g * polygamma(n + 1, x)),
    # a gamma draw moves with its concentration along the drawn sample (implicit reparameterization)
    aten._standard_gamma.default: lambda g, y, x, generator=None: (
        g * call(aten._standard_gamma_grad.default, x, y),
    ),
    # modified Bessel functions: I0' = I1, I0e' = I1e - sgn(x) I0e
    aten.i0.default: times(lambda x, y: x.special_i1()),
    aten.special_i0e.default: times(lambda x, y: x.special_i1e() - x.sgn() * y),
    aten.special_i1.default: times(i1_slope),
    aten.special_i1e.default: times(i1e_slope),
    # x 2^e: d = 2^e dx + y ln 2 de
    aten.ldexp.Tensor: lambda g, y, x, e: (g * 2.0**e, g * y * LN2),
    # the exponent is an integer output: only the mantissa carries a gradient
    aten.frexp.Tensor: lambda g, y, x: (g[0] / y[1].exp2(),),
}

COMPLEX_SAFE: set = set()
