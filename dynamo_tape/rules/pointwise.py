"""Pointwise rules. g: cotangent of the output; return one cotangent per argument."""

import math

from ..ops import aten
from ..record import call, where


def _scaled(g, alpha):
    return g if alpha == 1 else g * alpha


def pow_tensor_scalar(g, y, x, e):  # d(x^e) = e x^(e-1) dx
    if e == 0:
        return (None,)
    if e == 1:
        return (g,)
    if e == 2:
        return (g * x * 2,)
    return (g * (x ** (e - 1)) * e,)


RULES = {
    aten.add.Tensor: lambda g, y, x, other, alpha=1: (g, _scaled(g, alpha)),
    aten.sub.Tensor: lambda g, y, x, other, alpha=1: (g, _scaled(-g, alpha)),
    aten.rsub.Scalar: lambda g, y, x, other, alpha=1: (_scaled(-g, alpha),),  # other - alpha x
    aten.mul.Tensor: lambda g, y, x, other: (g * other, g * x),  # d(xy) = y dx + x dy
    aten.mul.Scalar: lambda g, y, x, other: (g * other,),
    aten.div.Tensor: lambda g, y, x, other: (
        g / other,
        -(g * y) / other,
    ),  # d(x/u) = dx/u - (x/u) du/u
    aten.neg.default: lambda g, y, x: (-g,),
    aten.pow.Tensor_Scalar: pow_tensor_scalar,
    aten.pow.Tensor_Tensor: lambda g, y, x, e: (g * e * x ** (e - 1), g * y * x.log()),
    aten.pow.Scalar: lambda g, y, base, e: (None, g * y * math.log(base)),  # d b^e = b^e ln b de
    aten.exp.default: lambda g, y, x: (g * y,),  # d e^x = e^x dx
    aten.log.default: lambda g, y, x: (g / x,),
    aten.sqrt.default: lambda g, y, x: (g / (y * 2),),  # d sqrt(x) = dx / (2 sqrt(x))
    aten.rsqrt.default: lambda g, y, x: (g * y * y * y * -0.5,),  # d x^-1/2 = -x^-3/2 dx / 2
    aten.reciprocal.default: lambda g, y, x: (-(g * y * y),),
    aten.sin.default: lambda g, y, x: (g * x.cos(),),
    aten.cos.default: lambda g, y, x: (-(g * x.sin()),),
    aten.tanh.default: lambda g, y, x: (call(aten.tanh_backward.default, g, y),),  # g (1 - y^2)
    aten.sigmoid.default: lambda g, y, x: (call(aten.sigmoid_backward.default, g, y),),  # g y (1-y)
    aten.relu.default: lambda g, y, x: (call(aten.threshold_backward.default, g, y, 0),),
    aten.where.self: lambda g, y, cond, x, other: (None, where(cond, g, 0), where(cond, 0, g)),
    aten.clone.default: lambda g, y, x, memory_format=None: (g,),
    aten.alias.default: lambda g, y, x: (g,),
    # dtype and device changes are undone by the engine when it accumulates cotangents
    aten._to_copy.default: lambda g, y, x, **kw: (g,),
    # the backward kernels' own derivatives, so the backward tape is differentiable too
    aten.tanh_backward.default: lambda g, y, go, out: (
        call(aten.tanh_backward.default, g, out),
        g * go * out * -2,
    ),
    aten.sigmoid_backward.default: lambda g, y, go, out: (
        call(aten.sigmoid_backward.default, g, out),
        g * go * (1 - out * 2),
    ),
    aten.threshold_backward.default: lambda g, y, go, x, threshold: (
        call(aten.threshold_backward.default, g, x, threshold),
    ),
}
