"""Rules for the backward kernels that other rules record (tanh_backward, slice_backward,
nll_loss_backward, ...), so that the backward tape is differentiable too: double backward is
the same algorithm applied to it. g: cotangent of the kernel's output; return one cotangent
per argument. Each kernel is linear in its first argument `go`, the cotangent it was given."""

from ..ops import aten
from ..record import both, call, reshape, where, zeros_like
from .conjugate import conj
from .fallback import autograd_vjp
from .helpers import self_adjoint


def silu_backward_rule(g, y, go, x):  # y = go s (1 + x (1 - s)), s = sigmoid(x)
    s = x.sigmoid()
    return (call(aten.silu_backward.default, g, x), g * go * s * (1 - s) * (2 + x * (1 - s * 2)))


def hardswish_backward_rule(g, y, go, x):  # y = go (x / 3 + 1/2) where -3 < x < 3, go above
    # derivatives.yaml: d/dx is g go / 3 strictly inside (-3, 3), 0 elsewhere
    inside = both(x > -3, x < 3)
    return (call(aten.hardswish_backward.default, g, x), where(inside, g * go / 3, 0))


def weight_norm_backward_rule(g, y, go, v, magnitude, norms, dim):
    # eager has no formula for the kernel: its double backward differentiates
    # _weight_norm_differentiable_backward, the same function in differentiable ops
    op = aten._weight_norm_differentiable_backward.default
    return autograd_vjp(op, g, y, go, v, magnitude, norms, dim)


def max_pool2d_backward_rule(g, y, go, x, kernel, stride, padding, dilation, ceil_mode, indices):
    # linear in grad_output: pick g at each window's argmax (indices count within a plane)
    flat = reshape(g, [*g.shape[:-2], -1])
    idx = reshape(indices, [*indices.shape[:-2], -1])
    zero = zeros_like(g)  # flat in x: zeros, as eager's
    return (reshape(flat.gather(-1, idx), list(indices.shape)), zero)


def nll_loss_backward(g, y, go, x, target, weight, reduction, ignore_index, total_weight):
    # linear in go, and piecewise constant in x: d/dgo = nll_loss(g), d/dx = 0
    forward = aten.nll_loss_forward.default if x.dim() <= 2 else aten.nll_loss2d_forward.default
    return (call(forward, g, target, weight, reduction, ignore_index)[0],)


RULES = {
    # for complex values they are go conj(h(out)): linear in go, antiholomorphic in out
    aten.tanh_backward.default: lambda g, y, go, out: (  # go (1 - out^2)
        call(aten.tanh_backward.default, g, conj(out)),
        conj(g) * go * conj(out) * -2,
    ),
    aten.sigmoid_backward.default: lambda g, y, go, out: (  # go out (1 - out)
        call(aten.sigmoid_backward.default, g, conj(out)),
        conj(g) * go * conj(1 - out * 2),
    ),
    # masks of go (where x > threshold, where min < x < max; the dropout mask times its
    # scale): their own transposes
    aten.threshold_backward.default: self_adjoint(aten.threshold_backward.default),
    aten.hardtanh_backward.default: self_adjoint(aten.hardtanh_backward.default),
    aten.hardsigmoid_backward.default: self_adjoint(aten.hardsigmoid_backward.default),
    aten.hardswish_backward.default: hardswish_backward_rule,
    # a backward kernel torch.autograd cannot differentiate (eager's create_graph formula is a
    # composite): its own rule, so that double backward goes through it
    aten.silu_backward.default: silu_backward_rule,
    aten.native_dropout_backward.default: self_adjoint(aten.native_dropout_backward.default),
    aten.max_pool2d_with_indices_backward.default: max_pool2d_backward_rule,
    aten._weight_norm_interface_backward.default: weight_norm_backward_rule,
    # the views they undo
    aten.slice_backward.default: lambda g, y, go, sizes, dim, start, end, step: (
        g.slice(dim, start, end, step),
    ),
    aten.select_backward.default: lambda g, y, go, sizes, dim, index: (g.select(dim, index),),
    aten.nll_loss_backward.default: nll_loss_backward,
    aten.nll_loss2d_backward.default: nll_loss_backward,
}

# Linear in go; tanh's and sigmoid's conjugate `out` themselves. threshold_backward takes no
# complex values.
COMPLEX_SAFE = {
    *(aten.tanh_backward.default, aten.sigmoid_backward.default),
    *(aten.slice_backward.default, aten.select_backward.default),
}
