"""Neural-network rules (convolution, normalisation, pooling, dropout, softmax, indexing,
joining and splitting). g: cotangent of the output (a tuple for ops with several outputs);
return one cotangent per argument. Where PyTorch differentiates an op with an ATen
`*_backward` kernel the rule records that kernel, so the tape computes eager's numbers."""


from ..ops import aten
from ..record import call, needs_grad, where


def _zeros(shape, like):
    return call(aten.zeros.default, list(shape), dtype=like.dtype, device=like.meta.device)


def _filled(gs, ys):
    """Cotangents of several outputs, zeros where an output received none."""
    return [g if g is not None else _zeros(y.shape, y) for g, y in zip(gs, ys, strict=True)]


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


# --- pooling, dropout ------------------------------------------------------------------------


def max_pool2d(g, y, x, *params):  # y: (out, indices)
    # params: kernel_size, stride, padding, dilation, ceil_mode
    return (call(aten.max_pool2d_with_indices_backward.default, g[0], x, *params, y[1]),)


def avg_pool2d(g, y, x, *params):
    # params: kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    return (call(aten.avg_pool2d_backward.default, g, x, *params),)


def _dropout_scale(p, train):
    if train is False:
        return 1.0
    return 0.0 if p == 1 else 1.0 / (1.0 - p)


def native_dropout(g, y, x, p, train):
    # y = (x * mask * scale, mask): the backward reuses the forward's mask, never a new draw
    if g[0] is None:
        return ()
    return (call(aten.native_dropout_backward.default, g[0], y[1], _dropout_scale(p, train)),)


# --- indexing, joining, splitting --------------------------------------------------------------


def gather(g, y, x, dim, index, sparse_grad=False):  # scatter g back to where it came from
    return (call(aten.scatter_add.default, _zeros(x.shape, g), dim, index, g),)


def index(g, y, x, indices):  # accumulate: an index may be picked several times
    return (call(aten.index_put.default, _zeros(x.shape, g), indices, g, True),)


def index_put(g, y, x, indices, values, accumulate=False):
    gx = g
    if not accumulate:  # overwritten positions do not reach the output
        gx = call(aten.index_put.default, g, indices, _zeros([], g), False)
    return (gx, None, call(aten.index.Tensor, g, indices))


def cat(g, y, tensors, dim=0):
    dim = dim % y.dim()
    pieces, start = [], 0
    for t in tensors:
        if t.dim() == 1 and t.shape[0] == 0 and y.dim() != 1:
            pieces.append(None)  # cat skips legacy empty 1-d tensors
            continue
        size = t.shape[dim]
        pieces.append(call(aten.slice.Tensor, g, dim, start, start + size))
        start = start + size
    return (pieces,)


def split(g, y, x, sizes, dim=0):  # split.Tensor and split_with_sizes: cat the pieces back
    return (call(aten.cat.default, _filled(g, y), dim),)


def unbind(g, y, x, dim=0):
    return (call(aten.stack.default, _filled(g, y), dim),)


def stack(g, y, tensors, dim=0):
    return ([call(aten.select.int, g, dim, i) for i in range(len(tensors))],)


def silu_backward_rule(g, y, go, x):  # y = go s (1 + x (1 - s)), s = sigmoid(x)
    s = x.sigmoid()
    return (call(aten.silu_backward.default, g, x), g * go * s * (1 - s) * (2 + x * (1 - s * 2)))


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
    aten._softmax.default: lambda g, y, x, dim, half_to_float: (
        call(aten._softmax_backward_data.default, g, y, dim, x.dtype),  # y (g - sum(g y))
    ),
    aten._log_softmax.default: lambda g, y, x, dim, half_to_float: (
        call(aten._log_softmax_backward_data.default, g, y, dim, x.dtype),  # g - e^y sum(g)
    ),
    aten.gelu.default: lambda g, y, x, approximate="none": (
        call(aten.gelu_backward.default, g, x, approximate=approximate),
    ),
    aten.silu.default: lambda g, y, x: (call(aten.silu_backward.default, g, x),),
    # a backward kernel torch.autograd cannot differentiate (eager's create_graph formula is a
    # composite): its own rule, so that double backward goes through it
    aten.silu_backward.default: silu_backward_rule,
    # `nn.Embedding(sparse=True)`: a sparse COO gradient, as eager's (SparseAdam needs one)
    aten.embedding.default: lambda g, y, w, indices, padding_idx=-1, scale=False, sparse=False: (
        call(
            _EMBEDDING_BACKWARD[sparse], g, indices, w.shape[0], padding_idx, scale
        ),
    ),
    aten.embedding_renorm.default: embedding_renorm,
    aten.max_pool2d_with_indices.default: max_pool2d,
    aten._adaptive_avg_pool2d.default: lambda g, y, x, output_size: (
        call(aten._adaptive_avg_pool2d_backward.default, g, x),
    ),
    aten.avg_pool2d.default: avg_pool2d,
    aten.native_dropout.default: native_dropout,
    aten.native_dropout_backward.default: lambda g, y, go, mask, scale: (
        call(aten.native_dropout_backward.default, g, mask, scale),  # linear in go
    ),
    aten.gather.default: gather,
    aten.scatter_add.default: lambda g, y, x, dim, index, src: (
        g,
        None,
        None,
        call(aten.gather.default, g, dim, index),
    ),
    aten.index.Tensor: index,
    aten.index_put.default: index_put,
    aten.masked_fill.Scalar: lambda g, y, x, mask, value: (where(mask, 0, g),),
    aten.masked_fill.Tensor: lambda g, y, x, mask, value: (
        where(mask, 0, g),
        None,
        where(mask, g, 0),  # the engine sums it down to the fill value's shape
    ),
    aten.cat.default: cat,
    aten.split.Tensor: split,
    aten.split_with_sizes.default: split,
    aten.unbind.int: unbind,
    aten.stack.default: stack,
}

# Linear and blind to the values (joining, splitting, indexing): right for complex values too.
COMPLEX_SAFE = {
    aten.gather.default,
    aten.scatter_add.default,
    aten.index.Tensor,
    aten.index_put.default,
    aten.masked_fill.Scalar,
    aten.masked_fill.Tensor,
    aten.cat.default,
    aten.split.Tensor,
    aten.split_with_sizes.default,
    aten.unbind.int,
    aten.stack.default,
}
