"""Neural-network rules: convolution, normalisation, softmax, activations, embedding, pooling,
resampling, grid sampling, dropout, pairwise distances. g: cotangent of the output (a tuple
for ops with several outputs); return one cotangent per argument. Where PyTorch differentiates
an op with an ATen `*_backward` kernel the rule records that kernel, so the tape computes
eager's numbers."""

from ..ops import aten
from ..record import call, needs_grad
from .fallback import autograd_vjp
from .helpers import kernel

# --- convolution, normalisation ----------------------------------------------------------------


def convolution(g, y, x, w, b, *params):
    # params: stride, padding, dilation, transposed, output_padding, groups
    bias_sizes = list(b.shape) if b is not None else None
    mask = [needs_grad(x), needs_grad(w), needs_grad(b)]
    return tuple(call(aten.convolution_backward.default, g, x, w, bias_sizes, *params, mask))


def _batch_norm(g, x, w, b, mean, var, saved_mean, saved_invstd, training, eps):
    mask = [needs_grad(x), needs_grad(w), needs_grad(b)]
    backward = aten.native_batch_norm_backward.default
    return tuple(call(backward, g, x, w, mean, var, saved_mean, saved_invstd, training, eps, mask))


def batch_norm_functional(g, y, x, w, b, running_mean, running_var, training, momentum, eps):
    # y: (out, save_mean, save_invstd, new_running_mean, new_running_var); only `out` is
    # differentiable, the running statistics are state (NONDIFFERENTIABLE_OUTPUTS)
    if g[0] is None:
        return ()
    if training:  # the batch's own statistics (y[1], y[2]) are used, not the running ones,
        running_mean = running_var = None  # which are mutated in place after the forward
    return _batch_norm(g[0], x, w, b, running_mean, running_var, y[1], y[2], training, eps)


def batch_norm_no_stats(g, y, x, w, b, training, momentum, eps):
    # F.batch_norm(x, None, None, training=True): the batch's statistics, no running ones
    if g[0] is None:
        return ()
    return _batch_norm(g[0], x, w, b, None, None, y[1], y[2], training, eps)


def batch_norm_no_training(g, y, x, w, b, running_mean, running_var, momentum, eps):
    # eval mode normalises with the running statistics: y = (x - mean) / sqrt(var + eps) w + b
    if g[0] is None:
        return ()
    return _batch_norm(g[0], x, w, b, running_mean, running_var, y[1], y[2], False, eps)


def layer_norm(g, y, x, normalized_shape, w, b, eps):  # y: (out, mean, rstd)
    if g[0] is None:
        return ()
    mask = [needs_grad(x), needs_grad(w), needs_grad(b)]
    backward = aten.native_layer_norm_backward.default
    gx, gw, gb = call(backward, g[0], x, normalized_shape, y[1], y[2], w, b, mask)
    return (gx, None, gw, gb)


def weight_norm_rule(g, y, v, magnitude, dim=0):
    # y: (w, norm), w = v magnitude / norm, norm = ||v|| over every dim but `dim`. Eager's
    # formula (derivatives.yaml) reads w's cotangent only: none goes through norm
    if g[0] is None:
        return ()
    if not (v.meta.is_contiguous() and magnitude.meta.is_contiguous()):  # the kernel reads
        return autograd_vjp(aten._weight_norm_interface.default, g, y, v, magnitude, dim)  # flat
    # so it does grad_w: eager hands it grad.contiguous(), a cotangent's strides are not known
    go = g[0].contiguous()
    return tuple(call(aten._weight_norm_interface_backward.default, go, v, magnitude, y[1], dim))


def group_norm_rule(g, y, x, weight, bias, n, c, hxw, group, eps):
    if g[1] is not None or g[2] is not None:  # the statistics' gradients: rare, left to torch
        return autograd_vjp(
            aten.native_group_norm.default, g, y, x, weight, bias, n, c, hxw, group, eps
        )
    mask = [True, weight is not None, bias is not None]
    return call(
        aten.native_group_norm_backward.default, g[0], x, y[1], y[2], weight, n, c, hxw, group, mask
    )


# --- activations -------------------------------------------------------------------------------


def rrelu_rule(g, y, x, noise, lower=0.125, upper=1.0 / 3, training=False, generator=None):
    # the slopes drawn in the forward are its second output: the backward reuses them
    return (
        call(aten.rrelu_with_noise_backward.default, g[0], x, y[1], lower, upper, training, False),
    )


# --- pooling, dropout ------------------------------------------------------------------------


def _at_indices(backward, n_params):
    """The rule of a max pooling, y = (out, indices): its kernel puts g back where the forward
    picked each maximum, `backward(g, x, *params, indices)` with the op's first `n_params`
    parameters."""
    return lambda g, y, x, *params: (call(backward, g[0], x, *params[:n_params], y[1]),)


def _dropout_scale(p, train):
    if train is False:
        return 1.0
    return 0.0 if p == 1 else 1.0 / (1.0 - p)


def native_dropout(g, y, x, p, train):
    # y = (x * mask * scale, mask): the backward reuses the forward's mask, never a new draw
    if g[0] is None:
        return ()
    return (call(aten.native_dropout_backward.default, g[0], y[1], _dropout_scale(p, train)),)


def _softmax(backward):
    # softmax(x, dim, ...): the kernel reads the output and the input's dtype
    return lambda g, y, x, dim, *rest: (call(backward, g, y, dim, x.dtype),)


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


def embedding_renorm(g, y, w, indices, max_norm, norm_type):
    # nn.Embedding(max_norm=...) renormalizes its weight under no_grad, and later reads are the
    # weight's (lower.py): no gradient reaches this rule there. Elsewhere, as eager:
    raise RuntimeError("derivative for aten::embedding_renorm is not implemented")


_EMBEDDING_BACKWARD = {
    False: aten.embedding_dense_backward.default,
    True: aten.embedding_sparse_backward.default,
}

RULES = {
    aten.convolution.default: convolution,
    aten._native_batch_norm_legit_functional.default: batch_norm_functional,
    aten._native_batch_norm_legit_no_training.default: batch_norm_no_training,
    aten._native_batch_norm_legit.no_stats: batch_norm_no_stats,
    aten.native_layer_norm.default: layer_norm,
    aten.native_group_norm.default: group_norm_rule,
    # weight_norm's fused kernel, whole: one entry each way where its decomposition ran 5
    # forward and 14 backward (wav2vec2's positional convolution)
    aten._weight_norm_interface.default: weight_norm_rule,
    aten._softmax.default: _softmax(aten._softmax_backward_data.default),  # y (g - sum(g y))
    aten._safe_softmax.default: _softmax(aten._softmax_backward_data.default),
    aten._log_softmax.default: _softmax(aten._log_softmax_backward_data.default),  # g - e^y sum(g)
    # activations: torch's own backward kernels
    aten.gelu.default: kernel(aten.gelu_backward.default),
    aten.silu.default: kernel(aten.silu_backward.default),
    aten.hardswish.default: kernel(aten.hardswish_backward.default),
    aten.hardsigmoid.default: kernel(aten.hardsigmoid_backward.default),
    aten.elu.default: lambda g, y, x, alpha=1, scale=1, input_scale=1: (
        call(aten.elu_backward.default, g, alpha, scale, input_scale, False, x),
    ),
    aten.hardtanh.default: kernel(aten.hardtanh_backward.default),
    aten.leaky_relu.default: lambda g, y, x, slope=0.01: (
        call(aten.leaky_relu_backward.default, g, x, slope, False),
    ),
    aten.rrelu_with_noise_functional.default: rrelu_rule,
    # `nn.Embedding(sparse=True)`: a sparse COO gradient, as eager's (SparseAdam needs one)
    aten.embedding.default: lambda g, y, w, indices, padding_idx=-1, scale=False, sparse=False: (
        call(_EMBEDDING_BACKWARD[sparse], g, indices, w.shape[0], padding_idx, scale),
    ),
    aten.embedding_renorm.default: embedding_renorm,
    # pooling. max_pool*d's params: kernel_size, stride, padding, dilation, ceil_mode
    aten.max_pool2d_with_indices.default: _at_indices(
        aten.max_pool2d_with_indices_backward.default, 5
    ),
    aten.max_pool3d_with_indices.default: _at_indices(
        aten.max_pool3d_with_indices_backward.default, 5
    ),
    # params: kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    aten.avg_pool2d.default: kernel(aten.avg_pool2d_backward.default),
    aten.avg_pool3d.default: kernel(aten.avg_pool3d_backward.default),
    # the output size is not the kernel's: it reads the input's
    aten._adaptive_avg_pool2d.default: kernel(aten._adaptive_avg_pool2d_backward.default, 0),
    aten._adaptive_avg_pool3d.default: kernel(aten._adaptive_avg_pool3d_backward.default, 0),
    aten.adaptive_max_pool2d.default: _at_indices(aten.adaptive_max_pool2d_backward.default, 0),
    aten.adaptive_max_pool3d.default: _at_indices(aten.adaptive_max_pool3d_backward.default, 0),
    # params: kernel_size, output_size, random_samples (drawn in the forward: not the kernel's)
    aten.fractional_max_pool2d.default: _at_indices(aten.fractional_max_pool2d_backward.default, 2),
    aten.fractional_max_pool3d.default: _at_indices(aten.fractional_max_pool3d_backward.default, 2),
    # resampling, grid sampling, dropout, distances
    aten.upsample_bilinear2d.default: _resample(aten.upsample_bilinear2d_backward.default),
    aten.upsample_bicubic2d.default: _resample(aten.upsample_bicubic2d_backward.default),
    aten.upsample_trilinear3d.default: _resample(aten.upsample_trilinear3d_backward.default),
    aten._upsample_bilinear2d_aa.default: _resample(aten._upsample_bilinear2d_aa_backward.default),
    aten.grid_sampler_2d.default: grid_sampler_rule(aten.grid_sampler_2d_backward.default),
    aten.grid_sampler_3d.default: grid_sampler_rule(aten.grid_sampler_3d_backward.default),
    aten.native_dropout.default: native_dropout,
    aten._pdist_forward.default: lambda g, y, x, p=2: (
        call(aten._pdist_backward.default, g, x, p, y),
    ),
}

COMPLEX_SAFE: set = set()
