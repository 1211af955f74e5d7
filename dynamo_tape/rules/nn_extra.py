"""More network rules OpInfo reaches: resampling, grid sampling, 3-d and adaptive pooling, group
norm, pairwise distances. Each calls torch's own backward kernel.
g: cotangent of the output(s); return one cotangent per argument."""


from ..ops import aten
from ..record import call, reshape
from .fallback import autograd_vjp


def _resample(backward):
    # upsample_*(x, output_size, [align_corners,] scales...): the kernel takes the input size
    def rule(g, y, x, output_size, *rest):
        return (call(backward, g, output_size, list(x.shape), *rest),)

    return rule


def grid_sampler_rule(backward):
    def rule(g, y, x, grid, interpolation, padding, align_corners):
        mask = [x.dtype.is_floating_point, True]
        gx, ggrid = call(backward, g, x, grid, interpolation, padding, align_corners, mask)
        return (gx, ggrid)

    return rule


def group_norm_rule(g, y, x, weight, bias, n, c, hxw, group, eps):
    if g[1] is not None or g[2] is not None:  # the statistics' gradients: rare, left to torch
        return autograd_vjp(
            aten.native_group_norm.default, g, y, x, weight, bias, n, c, hxw, group, eps
        )
    mask = [True, weight is not None, bias is not None]
    return call(
        aten.native_group_norm_backward.default, g[0], x, y[1], y[2], weight, n, c, hxw, group, mask
    )


def max_pool2d_backward_rule(g, y, go, x, kernel, stride, padding, dilation, ceil_mode, indices):
    # linear in grad_output: pick g at each window's argmax (indices count within a plane)
    flat = reshape(g, [*g.shape[:-2], -1])
    idx = reshape(indices, [*indices.shape[:-2], -1])
    zero = call(aten.zeros_like.default, g)  # flat in x: zeros, as eager's
    return (reshape(call(aten.gather.default, flat, -1, idx), list(indices.shape)), zero)


def rrelu_rule(g, y, x, noise, lower=0.125, upper=1.0 / 3, training=False, generator=None):
    # the slopes drawn in the forward are its second output: the backward reuses them
    return (
        call(aten.rrelu_with_noise_backward.default, g[0], x, y[1], lower, upper, training, False),
    )


RULES = {
    aten.upsample_bilinear2d.default: _resample(aten.upsample_bilinear2d_backward.default),
    aten.upsample_bicubic2d.default: _resample(aten.upsample_bicubic2d_backward.default),
    aten.upsample_trilinear3d.default: _resample(aten.upsample_trilinear3d_backward.default),
    aten._upsample_bilinear2d_aa.default: _resample(aten._upsample_bilinear2d_aa_backward.default),
    aten.grid_sampler_2d.default: grid_sampler_rule(aten.grid_sampler_2d_backward.default),
    aten.grid_sampler_3d.default: grid_sampler_rule(aten.grid_sampler_3d_backward.default),
    aten.native_group_norm.default: group_norm_rule,
    aten.avg_pool3d.default: lambda g, y, x, *params: (
        call(aten.avg_pool3d_backward.default, g, x, *params),
    ),
    aten._adaptive_avg_pool3d.default: lambda g, y, x, size: (
        call(aten._adaptive_avg_pool3d_backward.default, g, x),
    ),
    aten.adaptive_max_pool2d.default: lambda g, y, x, size: (
        call(aten.adaptive_max_pool2d_backward.default, g[0], x, y[1]),
    ),
    aten.adaptive_max_pool3d.default: lambda g, y, x, size: (
        call(aten.adaptive_max_pool3d_backward.default, g[0], x, y[1]),
    ),
    aten.max_pool3d_with_indices.default: lambda g, y, x, *params: (
        call(aten.max_pool3d_with_indices_backward.default, g[0], x, *params, y[1]),
    ),
    aten.max_pool2d_with_indices_backward.default: max_pool2d_backward_rule,
    aten.fractional_max_pool2d.default: lambda g, y, x, kernel, size, samples: (
        call(aten.fractional_max_pool2d_backward.default, g[0], x, kernel, size, y[1]),
    ),
    aten.fractional_max_pool3d.default: lambda g, y, x, kernel, size, samples: (
        call(aten.fractional_max_pool3d_backward.default, g[0], x, kernel, size, y[1]),
    ),
    aten.rrelu_with_noise_functional.default: rrelu_rule,
    aten._pdist_forward.default: lambda g, y, x, p=2: (
        call(aten._pdist_backward.default, g, x, p, y),
    ),
}
