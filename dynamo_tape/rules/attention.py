"""Fused scaled-dot-product attention: rules that call PyTorch's own `*_backward` kernels.
g: cotangents of the outputs (only `output` is differentiable, as in derivatives.yaml);
return one cotangent per argument.

On CUDA, `F.scaled_dot_product_attention` lowers to one of these fused ops instead of its math
decomposition, and their backward kernels read what the forward returned (logsumexp, the
dropout RNG state). Dense inputs carry no cumulative sequence lengths and their `max_q`/`max_k`
are the sequence lengths, as in the ops' meta functions (torch/_meta_registrations.py).
"""

from ..ir import Variable
from ..ops import aten
from ..record import call
from .fallback import autograd_vjp


def _differentiable(x) -> bool:
    return isinstance(x, Variable) and (x.meta.is_floating_point() or x.meta.is_complex())


def _bias_grad(g, query, key, value, bias, dropout_p, is_causal, scale, op):
    """Gradient of an additive mask that the fused kernel does not differentiate: the math
    attention's VJP, recomputed. When the mask needs no gradient (a padding mask) the entry is
    dead and the engine drops it; with dropout the recomputation would draw other dropout."""
    if not _differentiable(bias):
        return None
    if dropout_p != 0:
        raise NotImplementedError(
            f"dynamo_tape: aten.{op} has no gradient for a floating-point attn_bias when "
            "dropout_p > 0; pass a boolean mask or pick another SDPA backend"
        )
    math = aten._scaled_dot_product_attention_math.default
    args = (query, key, value, bias, 0.0, is_causal)
    return autograd_vjp(math, (g, None), None, *args, scale=scale)[3]


def flash_attention(
    g, y, query, key, value, dropout_p=0.0, is_causal=False, return_debug_mask=False, *, scale=None
):
    if g[0] is None:
        return ()
    out, logsumexp, cum_seq_q, cum_seq_k, _, _, rng_state, unused, _ = y
    return call(
        aten._scaled_dot_product_flash_attention_backward.default,
        g[0],
        query,
        key,
        value,
        out,
        logsumexp,
        cum_seq_q,
        cum_seq_k,
        query.shape[2],
        key.shape[2],
        dropout_p,
        is_causal,
        rng_state,
        unused,
        scale=scale,
    )


def efficient_attention(
    g,
    y,
    query,
    key,
    value,
    attn_bias,
    compute_log_sumexp,
    dropout_p=0.0,
    is_causal=False,
    *,
    scale=None,
):
    if g[0] is None:
        return ()
    if not compute_log_sumexp:  # see WITH_LOGSUMEXP below: lowering always asks for it
        raise RuntimeError("dynamo_tape: efficient attention ran without its logsumexp")
    out, logsumexp, philox_seed, philox_offset = y
    # One kernel gives all four gradients; the mask's is computed whenever it is floating point.
    return call(
        aten._scaled_dot_product_efficient_attention_backward.default,
        g[0],
        query,
        key,
        value,
        attn_bias,
        out,
        logsumexp,
        philox_seed,
        philox_offset,
        dropout_p,
        [True, True, True, _differentiable(attn_bias)],
        is_causal,
        scale=scale,
    )


def cudnn_attention(
    g,
    y,
    query,
    key,
    value,
    attn_bias,
    compute_log_sumexp,
    dropout_p=0.0,
    is_causal=False,
    return_debug_mask=False,
    *,
    scale=None,
):
    if g[0] is None:
        return ()
    if not compute_log_sumexp:
        raise RuntimeError("dynamo_tape: cuDNN attention ran without its logsumexp")
    out, logsumexp, cum_seq_q, cum_seq_k, _, _, philox_seed, philox_offset, _ = y
    gq, gk, gv = call(
        aten._scaled_dot_product_cudnn_attention_backward.default,
        g[0],
        query,
        key,
        value,
        out,
        logsumexp,
        philox_seed,
        philox_offset,
        attn_bias,
        cum_seq_q,
        cum_seq_k,
        query.shape[2],
        key.shape[2],
        dropout_p,
        is_causal,
        scale=scale,
    )
    op = "_scaled_dot_product_cudnn_attention"
    g_bias = _bias_grad(g[0], query, key, value, attn_bias, dropout_p, is_causal, scale, op)
    return gq, gk, gv, g_bias


def flash_attention_cpu(
    g, y, query, key, value, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None
):
    if g[0] is None:
        return ()
    # Lowering keeps this op only without a mask (unmasked_whole): here when called directly
    if _differentiable(attn_mask):  # keyword-only, so no cotangent can be returned for it
        raise NotImplementedError(
            "dynamo_tape: aten._scaled_dot_product_flash_attention_for_cpu with a floating-point "
            "attn_mask has no tape rule"
        )
    out, logsumexp = y
    return call(
        aten._scaled_dot_product_flash_attention_for_cpu_backward.default,
        g[0],
        query,
        key,
        value,
        out,
        logsumexp,
        dropout_p,
        is_causal,
        attn_mask=attn_mask,
        scale=scale,
    )


RULES = {
    aten._scaled_dot_product_flash_attention.default: flash_attention,
    aten._scaled_dot_product_efficient_attention.default: efficient_attention,
    aten._scaled_dot_product_cudnn_attention.default: cudnn_attention,
    aten._scaled_dot_product_flash_attention_for_cpu.default: flash_attention_cpu,
}


def _with_logsumexp(op):
    # Lowering traces the inference graph (under no_grad), where SDPA asks these kernels for no
    # logsumexp; their backward needs it, so the forward always computes it (a by-product).
    def decomposition(query, key, value, attn_bias, compute_log_sumexp, *args, **kwargs):
        if compute_log_sumexp:
            return NotImplemented
        return op(query, key, value, attn_bias, True, *args, **kwargs)

    return decomposition


COMPLEX_SAFE: set = set()


WITH_LOGSUMEXP = {
    op: _with_logsumexp(op)
    for op in (
        aten._scaled_dot_product_efficient_attention.default,
        aten._scaled_dot_product_cudnn_attention.default,
    )
}


def unmasked_whole(decomposition):
    # Eager's SDPA on CPU runs this fused kernel, one each way, where the math decomposition
    # records a dozen entries forward and more backward (wav2vec2's step 1.12 of eager's, 1.08
    # kept whole). With a mask it stays math: a floating-point mask may need a gradient (a
    # learned bias), which lowering, tracing under no_grad, cannot tell, and which the rule
    # cannot give this keyword-only argument. Double backward stops here, as eager's does.
    def decompose(query, key, value, dropout_p=0.0, is_causal=False, *, attn_mask=None,
                  scale=None):  # fmt: skip
        if attn_mask is None:
            return NotImplemented  # recorded whole
        return decomposition(
            query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale
        )

    return decompose


CPU_FLASH = aten._scaled_dot_product_flash_attention_for_cpu.default
