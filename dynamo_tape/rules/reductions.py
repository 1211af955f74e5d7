"""Reduction rules: sums and means, extremes and selections (max, sort, topk...), scans,
variances, norms and products. g: cotangent of the output (a tuple for ops returning values and
indices); return one cotangent per argument. Math from derivatives.yaml."""

from ..ops import aten
from ..record import call, cat, eq, expand, gt, lt, ones_like, unsqueeze, where
from .conjugate import conj


def _reduced_dims(x, dims):
    n = x.dim()
    if not dims:  # None or []: every dimension
        return list(range(n))
    return sorted(d % n if n else 0 for d in dims)


def _unreduce(g, x, dims, keepdim):
    """Put the reduced dimensions back into g (size 1), ready to broadcast against x."""
    if not keepdim and x.dim():
        for d in _reduced_dims(x, dims):
            g = unsqueeze(g, d)
    return g


def _count(x, dims):
    n = 1
    for d in _reduced_dims(x, dims):
        n = n * x.shape[d] if x.dim() else n
    return n


def sum_rule(g, y, x, dims, keepdim=False, dtype=None):
    return (expand(_unreduce(g, x, dims, keepdim), x.shape),)


def mean_rule(g, y, x, dims, keepdim=False, dtype=None):
    return (expand(_unreduce(g, x, dims, keepdim), x.shape) / _count(x, dims),)


def amax_rule(g, y, x, dims=(), keepdim=False):
    # ties share the cotangent equally, as in PyTorch
    y = _unreduce(y, x, dims, keepdim)
    mask = eq(x, y).to(g.dtype)
    count = mask.sum(_reduced_dims(x, dims), keepdim=True)
    return (_unreduce(g, x, dims, keepdim) / count * mask,)


def _selected(g, y, x, dim, keepdim):
    # values picked by index (max.dim, sort, topk...): scatter g back to where they came from
    return (
        call(aten.value_selecting_reduction_backward.default, g[0], dim, y[1], x.shape, keepdim),
    )


def _evenly(g, y, x, *_):  # a full max/min/median: ties share the gradient equally
    mask = eq(x, y).to(g.dtype)
    return (mask * (g / mask.sum()),)


def cumsum_rule(g, y, x, dim, dtype=None):  # the gradient of a prefix sum is a suffix sum
    return (g.flip([dim]).cumsum(dim).flip([dim]),)


def var_mean_rule(g, y, x, dims=None, correction=None, keepdim=False):
    # var = sum((x - mean)^2) / (n - correction): dvar = 2 (x - mean) / (n - correction) dx
    n = _count(x, dims)
    correction = 1 if correction is None else correction
    g_var, g_mean = g
    mean = _unreduce(y[1], x, dims, keepdim)
    gx = None
    if g_var is not None:
        gx = _unreduce(g_var, x, dims, keepdim) * (x - mean) * (2.0 / max(n - correction, 0))
    if g_mean is not None:
        gm = expand(_unreduce(g_mean, x, dims, keepdim), x.shape) / n
        gx = gm if gx is None else gx + gm
    return (gx,)


def var_rule(g, y, x, dims=None, correction=None, keepdim=False):
    mean = x.mean(_reduced_dims(x, dims), True)
    n = _count(x, dims)
    correction = 1 if correction is None else correction
    return (_unreduce(g, x, dims, keepdim) * (x - mean) * (2.0 / max(n - correction, 0)),)


def vector_norm_rule(g, y, x, p=2, dims=None, keepdim=False, dtype=None):
    g, y = _unreduce(g, x, dims, keepdim), _unreduce(y, x, dims, keepdim)
    if p == 0:  # piecewise constant: no gradient (torch's is undefined, x.grad stays None)
        return (None,)
    if p == 1:
        return (g * x.sgn(),)
    if p == 2:  # x / |x|, 0 at |x| = 0
        return (where(eq(y, 0), 0, g * x / y),)
    if p in (float("inf"), float("-inf")):  # ties at the extreme share the gradient
        mask = eq(abs(x), y).to(g.dtype)
        count = mask.sum(_reduced_dims(x, dims), keepdim=True)
        return (x.sgn() * mask * (g / count),)
    # d |x|_p = x |x|^(p-2) / |x|_p^(p-1); p < 1 is infinite at 0, as in torch
    scale = x * abs(x) ** (p - 2) / y ** (p - 1)
    if p >= 1:
        scale = where(eq(y, 0), 0, scale)
    return (g * scale,)


def dist_rule(g, y, x, other, p=2):  # dist = |x - other|_p
    (d,) = vector_norm_rule(g, y, x - other, p)
    return (d, None if d is None else -d)


def _products_of_the_others(x, dim):
    # exclusive prefix and suffix products: correct with zeros, unlike y / x
    n = x.shape[dim]
    ones = ones_like(x.slice(dim, 0, 1))
    before = cat([ones, x.slice(dim, 0, n - 1)], dim)
    after = cat([x.slice(dim, 1, n), ones], dim)
    suffix = after.flip([dim]).cumprod(dim).flip([dim])
    return before.cumprod(dim) * suffix


def prod_dim_rule(g, y, x, dim, keepdim=False, dtype=None):
    if x.dim() == 0:
        return (g,)
    return (_unreduce(g, x, [dim], keepdim) * conj(_products_of_the_others(x, dim)),)


def prod_rule(g, y, x, dtype=None):
    if x.dim() == 0:
        return (g,)
    flat = call(aten.reshape.default, x, [-1])
    others = conj(_products_of_the_others(flat, 0))
    return (call(aten.reshape.default, g * others, list(x.shape)),)


def logcumsumexp_rule(g, y, x, dim):
    # gx_i = sum_{j >= i} g_j exp(x_i - y_j), summed in log space separately for g > 0, g < 0
    if x.dim() == 0:
        return (g,)
    log_g = abs(g).log() - y
    total = []
    for sign in (gt, lt):
        terms = where(sign(g, 0), log_g, float("-inf"))
        total.append((x + terms.flip([dim]).logcumsumexp(dim).flip([dim])).exp())
    return (total[0] - total[1],)


def _running_extreme(g, y, x, dim):  # cummax, cummin: g goes where each running extreme was
    return (call(aten.cummaxmin_backward.default, g[0], x, y[1], dim),)


def _picked(g, y, x, dim, keepdim=False):  # max.dim, min.dim, median.dim, nanmedian.dim
    return _selected(g, y, x, dim, keepdim)


RULES = {
    aten.sum.dim_IntList: sum_rule,
    aten.sum.default: lambda g, y, x, dtype=None: (expand(g, x.shape),),
    aten.mean.dim: mean_rule,
    aten.mean.default: lambda g, y, x, dtype=None: (expand(g, x.shape) / x.meta.numel(),),
    aten.amax.default: amax_rule,
    aten.amin.default: amax_rule,
    aten.max.default: _evenly,
    aten.min.default: _evenly,
    aten.median.default: _evenly,
    aten.nanmedian.default: _evenly,
    aten.max.dim: _picked,
    aten.min.dim: _picked,
    aten.median.dim: _picked,
    aten.nanmedian.dim: _picked,
    aten.mode.default: lambda g, y, x, dim=-1, keepdim=False: _selected(g, y, x, dim, keepdim),
    aten.kthvalue.default: lambda g, y, x, k, dim=-1, keepdim=False: _selected(
        g, y, x, dim, keepdim
    ),
    aten.sort.default: lambda g, y, x, dim=-1, descending=False: _selected(g, y, x, dim, True),
    aten.sort.stable: lambda g, y, x, stable=None, dim=-1, descending=False: _selected(
        g, y, x, dim, True
    ),
    aten.topk.default: lambda g, y, x, k, dim=-1, largest=True, sorted=True: _selected(
        g, y, x, dim, True
    ),
    aten.cummax.default: _running_extreme,
    aten.cummin.default: _running_extreme,
    aten.cumsum.default: cumsum_rule,
    aten.cumprod.default: lambda g, y, x, dim, dtype=None: (
        call(aten.cumprod_backward.default, g, x, dim, y),
    ),
    aten.logcumsumexp.default: logcumsumexp_rule,
    aten.var_mean.correction: var_mean_rule,
    aten.var.correction: var_rule,
    aten.linalg_vector_norm.default: vector_norm_rule,
    aten.dist.default: dist_rule,
    aten.prod.default: prod_rule,
    aten.prod.dim_int: prod_dim_rule,
}

# Right for complex values too (each has a complex128 case in tests/test_rules.py): sums and
# means are linear; the norms and variances of complex values are real, and their rules already
# read x / |x|. amax and amin take no complex values.
COMPLEX_SAFE = {
    *(aten.sum.dim_IntList, aten.sum.default, aten.mean.dim, aten.mean.default),
    *(aten.cumsum.default, aten.var_mean.correction, aten.var.correction),
    *(aten.linalg_vector_norm.default, aten.dist.default, aten.prod.default, aten.prod.dim_int),
}  # fmt: skip
