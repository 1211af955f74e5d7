"""Reduction rules. g: cotangent of the output; return one cotangent per argument."""


from ..ops import aten
from ..record import call, expand, sum, unsqueeze


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
    mask = call(aten.eq.Tensor, x, y)
    mask = call(aten._to_copy.default, mask, dtype=g.dtype)
    count = sum(mask, _reduced_dims(x, dims), keepdim=True)
    return (_unreduce(g, x, dims, keepdim) / count * mask,)


RULES = {
    aten.sum.dim_IntList: sum_rule,
    aten.sum.default: lambda g, y, x, dtype=None: (expand(g, x.shape),),
    aten.mean.dim: mean_rule,
    aten.mean.default: lambda g, y, x, dtype=None: (expand(g, x.shape) / x.meta.numel(),),
    aten.amax.default: amax_rule,
    aten.amin.default: amax_rule,
}

# sum and mean are linear; amax and amin take no complex values
COMPLEX_SAFE = {aten.sum.dim_IntList, aten.sum.default, aten.mean.dim, aten.mean.default}
