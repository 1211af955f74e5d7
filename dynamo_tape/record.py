"""Recording: operations on Variables append entries to the tape being built.

Rules are written with these operations, so running a rule records its math onto the
backward tape instead of computing it. `recording(tape, ...)` makes a tape current; `call(op,
*args)` records any ATen overload; the functions below are the shorthand that rules read in.
Output metadata comes from running the op on the inputs' fake tensors.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from .ir import Namer, Tape, TapeEntry, Variable
from .metas import fake_call
from .ops import aten
from .torch_private import OpOverload, schema, tree_map


@dataclass
class Recorder:
    tape: Tape
    namer: Namer
    fake_mode: object
    source: str | None = None  # the user's file:line the recorded entries come from
    producers: dict = field(default_factory=dict)  # Variable -> the entry that recorded it
    active: set | None = None  # Variables the backward being recorded wants gradients for


_current: list[Recorder] = []


@contextlib.contextmanager
def recording(tape: Tape, namer: Namer, fake_mode):
    recorder = Recorder(tape, namer, fake_mode)
    _current.append(recorder)
    try:
        # no autograd on the fake values: recording only needs their metadata, and the user's
        # saved_tensors_hooks must not see fake tensors saved during a compile
        with fake_mode or contextlib.nullcontext(), torch.no_grad():
            yield recorder
    finally:
        _current.pop()


def needs_grad(v) -> bool:
    """Whether the backward being recorded wants a gradient for `v`: rules of ops whose
    backward kernel takes an output mask skip the gradients nobody reads (a first
    convolution's input gradient, for the images)."""
    active = current().active
    return isinstance(v, Variable) and (active is None or v in active)


def current() -> Recorder:
    if not _current:
        raise RuntimeError("Variable operations record onto a tape; none is being recorded")
    return _current[-1]


def normalize(op, args, kwargs) -> tuple[list, dict]:
    """Positional args for every positional schema argument, kwargs for keyword-only ones,
    defaults filled in: rules then see one fixed signature per overload."""
    if not isinstance(op, OpOverload):
        return list(args), dict(kwargs)
    positional, keyword = [], {}
    for i, a in enumerate(schema(op).arguments):
        if a.kwarg_only:
            if a.name in kwargs:
                keyword[a.name] = kwargs[a.name]
            elif a.has_default_value():
                keyword[a.name] = a.default_value
        elif i < len(args):
            positional.append(args[i])
        elif a.name in kwargs:
            positional.append(kwargs[a.name])
        elif a.has_default_value():
            positional.append(a.default_value)
        else:
            raise TypeError(f"{op}: missing argument {a.name!r}")
    return positional, keyword


def metas(tree):
    return tree_map(lambda v: v.meta if isinstance(v, Variable) else v, tree)


# How a recorded entry gets its rule: `rules.lookup`, which the rules package hands over when it
# is imported (it records its rules through this module, so this one does not import it).
_lookup: list = []


def use_rules(lookup) -> None:
    _lookup[:] = [lookup]


def call(op, *args, **kwargs):
    """Record `op(*args, **kwargs)`; returns a Variable, or a list of them for ops that return
    several tensors."""
    rec = current()
    args, kwargs = normalize(op, args, kwargs)
    meta_args, meta_kwargs = metas((args, kwargs))
    out = fake_call(op, meta_args, meta_kwargs)
    several = isinstance(out, tuple | list)
    outputs = [
        rec.namer(m) if isinstance(m, torch.Tensor) else None for m in (out if several else [out])
    ]
    entry = TapeEntry(op, args, kwargs, outputs, source=rec.source)
    own = getattr(op, "propagate", None)  # a custom autograd.Function's: the user's backward
    if own is not None:
        entry.propagate, entry.kind = own, "rule"
    elif _lookup:
        entry.propagate, entry.kind = _lookup[0](entry, False)
    else:
        raise RuntimeError(f"recording {op} before dynamo_tape.rules was imported: no rule table")
    rec.tape.entries.append(entry)
    rec.producers.update((v, entry) for v in outputs if v is not None)
    return outputs if several else outputs[0]


# The shorthand rules are written in: Variable's operators and methods (installed at the end of
# this module) and the functions below. Each names the ATen overload it records, here and
# nowhere else. Scalars may stand for either operand where ATen allows.
def _op(overload):
    """`overload(*args, **kwargs)`, recorded: the shorthand that is one ATen call as it stands."""
    return lambda *args, **kwargs: call(overload, *args, **kwargs)


def _is_tensor(v) -> bool:
    return isinstance(v, Variable) and v.is_tensor


def _tensor_or_scalar(tensor, scalar):
    """The overload for a tensor last operand, or the one for a number: `x >= lo` records
    ge.Tensor, `x >= 0` ge.Scalar (a number read off a tensor, `t.item()`, is a Scalar)."""
    return lambda x, *args: call(tensor if _is_tensor(args[-1]) else scalar, x, *args)


def add(x, y):
    return call(aten.add.Tensor, x, y)


def sub(x, y):
    return call(aten.sub.Tensor, x, y)


def rsub(x, c):
    return call(aten.rsub.Scalar, x, c)


def mul(x, y):
    return call(aten.mul.Tensor, x, y)


def div(x, y, rounding_mode=None):  # `x / y`; `x.div(y, rounding_mode="floor")`
    if rounding_mode is not None:
        return call(aten.div.Tensor_mode, x, y, rounding_mode=rounding_mode)
    return call(aten.div.Tensor, x, y)


def rdiv(x, c):
    return mul(call(aten.reciprocal.default, x), c)


def neg(x):
    return call(aten.neg.default, x)


def pow(x, exponent):
    if isinstance(exponent, Variable):
        return call(aten.pow.Tensor_Tensor, x, exponent)
    return call(aten.pow.Tensor_Scalar, x, exponent)


def rpow(x, base):  # `2.0 ** x`
    return call(aten.pow.Scalar, base, x)


# comparisons: `x < y`, `x >= 0`...; `==` stays Python's identity (Variables are dict keys)
lt = _tensor_or_scalar(aten.lt.Tensor, aten.lt.Scalar)
le = _tensor_or_scalar(aten.le.Tensor, aten.le.Scalar)
gt = _tensor_or_scalar(aten.gt.Tensor, aten.gt.Scalar)
ge = _tensor_or_scalar(aten.ge.Tensor, aten.ge.Scalar)
eq = _tensor_or_scalar(aten.eq.Tensor, aten.eq.Scalar)  # `eq(x, 0)`
ne = _tensor_or_scalar(aten.ne.Tensor, aten.ne.Scalar)
both = _op(aten.logical_and.default)
either = _op(aten.logical_or.default)


def where(cond, x, y):
    if not isinstance(y, Variable):
        y = call(aten.scalar_tensor.default, y, dtype=x.dtype, device=x.meta.device)
    if not isinstance(x, Variable):
        x = call(aten.scalar_tensor.default, x, dtype=y.dtype, device=y.meta.device)
    return call(aten.where.self, cond, x, y)


def sum(x, dims=None, keepdim=False):
    return call(aten.sum.dim_IntList, x, list(dims) if dims is not None else None, keepdim)


_RESHAPES = (aten.reshape.default, aten.view.default, aten._unsafe_view.default)


def reshape(x, shape):
    # a reshape of a reshape recorded here reads the original: both keep row-major order
    source = _current[-1].producers.get(x) if _current else None
    if source is not None and source.op in _RESHAPES:
        x = source.args[0]
    if list(x.shape) == list(shape):
        return x
    return call(aten.reshape.default, x, list(shape))


def expand(x, shape):
    if list(x.shape) == list(shape):
        return x
    return call(aten.expand.default, x, list(shape))


def permute(x, dims):
    # a permute of a permute recorded here is one permute of the original, often none at all
    # (the transposes that matmul rules stack up): z = x.permute(p).permute(q) = x.permute(p[q]).
    # Tapes hold no t or transpose: lowering decomposes them to permute, and rules record
    # permutes (transpose and t below).
    n = x.dim()
    dims = [d % n for d in dims]
    source = _current[-1].producers.get(x) if _current else None
    if source is not None and source.op is aten.permute.default:
        x, dims = source.args[0], [source.args[1][d] % n for d in dims]
    if dims == list(range(n)):
        return x
    return call(aten.permute.default, x, dims)


def transpose(x, d0=-2, d1=-1):  # `x.mT`: the last two dimensions
    dims = list(range(x.dim()))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(x, dims)


def t(x):
    return transpose(x, 0, 1) if x.dim() == 2 else x


def unsqueeze(x, dim):
    return call(aten.unsqueeze.default, x, dim)


def squeeze(x, dims):
    return call(aten.squeeze.dims, x, list(dims))


def to(x, dtype):
    if x.dtype == dtype:
        return x
    return call(aten._to_copy.default, x, dtype=dtype)


def narrow(x, dim, start, length):  # a slice by its length
    return call(aten.slice.Tensor, x, dim, start, start + length)


def contiguous(x):
    return call(aten.clone.default, x, memory_format=torch.contiguous_format)


def zeros(shape, like):  # zeros of `like`'s dtype and device
    return call(aten.zeros.default, list(shape), dtype=like.dtype, device=like.meta.device)


def inverse(a):  # A^-1, the first of linalg_inv_ex's (inverse, info)
    return call(aten.linalg_inv_ex.default, a)[0]


def solve_triangular(a, b, upper, left=True, unitriangular=False):  # A^-1 B, or B A^-1
    op = aten.linalg_solve_triangular.default
    return call(op, a, b, upper=upper, left=left, unitriangular=unitriangular)


mm = _op(aten.mm.default)
bmm = _op(aten.bmm.default)
matmul = _op(aten.matmul.default)  # `a @ b`
zeros_like = _op(aten.zeros_like.default)
ones_like = _op(aten.ones_like.default)
full_like = _op(aten.full_like.default)
cat = _op(aten.cat.default)
stack = _op(aten.stack.default)
pad = _op(aten.constant_pad_nd.default)  # pad(x, widths): zeros around x
scatter = _tensor_or_scalar(aten.scatter.src, aten.scatter.value)  # `g.scatter(dim, index, 0)`
index_fill = _tensor_or_scalar(aten.index_fill.int_Tensor, aten.index_fill.int_Scalar)
polygamma = _op(aten.polygamma.default)  # polygamma(n, x)
lu_solve = _op(aten.linalg_lu_solve.default)
lu_unpack = _op(aten.lu_unpack.default)
fft_c2c = _op(aten._fft_c2c.default)
fft_r2c = _op(aten._fft_r2c.default)


def sum_to(g, shape):
    """Sum `g` over the dimensions that broadcasting added or expanded to reach `shape`: done
    once, by the engine, when cotangents are accumulated."""
    shape = list(shape)
    if list(g.shape) == shape:
        return g
    lead = g.dim() - len(shape)
    dims = list(range(lead))
    kept = [lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1]
    if dims and not kept:  # only added leading dims: summing them away leaves `shape`
        return sum(g, dims)
    if dims or kept:
        g = sum(g, dims + kept, keepdim=True)
    return reshape(g, shape)


# Methods that are one overload called on the Variable, the rest of the arguments as given:
# `x.sgn()`, `x.tril(-1)`, `g.gather(dim, index)`, `x.mean(dims, True)`
_OPS = {
    "exp": aten.exp.default,
    "exp2": aten.exp2.default,
    "log": aten.log.default,
    "sqrt": aten.sqrt.default,
    "rsqrt": aten.rsqrt.default,
    "reciprocal": aten.reciprocal.default,
    "sin": aten.sin.default,
    "cos": aten.cos.default,
    "sinh": aten.sinh.default,
    "cosh": aten.cosh.default,
    "tanh": aten.tanh.default,
    "sigmoid": aten.sigmoid.default,
    "sign": aten.sign.default,
    "sgn": aten.sgn.default,
    "abs": aten.abs.default,
    "isnan": aten.isnan.default,
    "digamma": aten.digamma.default,
    "special_i0": aten.special_i0.default,
    "special_i0e": aten.special_i0e.default,
    "special_i1": aten.special_i1.default,
    "special_i1e": aten.special_i1e.default,
    "clone": aten.clone.default,
    "resolve_conj": aten.resolve_conj.default,
    "view_as_real": aten.view_as_real.default,
    "view_as_complex": aten.view_as_complex.default,
    "mean": aten.mean.dim,
    "cumsum": aten.cumsum.default,
    "cumprod": aten.cumprod.default,
    "logcumsumexp": aten.logcumsumexp.default,
    "flip": aten.flip.default,
    "slice": aten.slice.Tensor,
    "select": aten.select.int,
    "diagonal": aten.diagonal.default,
    "diag_embed": aten.diag_embed.default,
    "tril": aten.tril.default,
    "triu": aten.triu.default,
    "as_strided": aten.as_strided.default,
    "new_zeros": aten.new_zeros.default,
    "gather": aten.gather.default,
    "scatter_add": aten.scatter_add.default,
    "index": aten.index.Tensor,
    "index_put": aten.index_put.default,
    "index_select": aten.index_select.default,
    "index_add": aten.index_add.default,
    "put": aten.put.default,
    "take": aten.take.default,
    "masked_scatter": aten.masked_scatter.default,
    "slice_scatter": aten.slice_scatter.default,
    "diagonal_scatter": aten.diagonal_scatter.default,
    "mv": aten.mv.default,
    "matrix_exp": aten.linalg_matrix_exp.default,
    "cholesky_solve": aten.cholesky_solve.default,
    "triangular_solve": aten.triangular_solve.default,
}

METHODS = {
    "sum": sum,
    "reshape": reshape,
    "view": reshape,
    "expand": expand,
    "permute": permute,
    "transpose": transpose,
    "t": t,
    "unsqueeze": unsqueeze,
    "squeeze": squeeze,
    "to": to,
    "div": div,
    "contiguous": contiguous,
    "scatter": scatter,
    "index_fill": index_fill,
    **{name: _op(op) for name, op in _OPS.items()},
}


def _method(self, name):
    # `g.sum(...)`, `x.t()`... : any method in METHODS
    method = METHODS.get(name)
    if method is None:
        raise AttributeError(f"Variable has no operation {name!r}")
    return lambda *args, **kwargs: method(self, *args, **kwargs)


# Variable's operators record onto the current tape: they are what rules are written in.
Variable.__add__ = Variable.__radd__ = add
Variable.__sub__, Variable.__rsub__ = sub, rsub
Variable.__mul__ = Variable.__rmul__ = mul
Variable.__truediv__, Variable.__rtruediv__ = div, rdiv
Variable.__matmul__ = matmul
Variable.__neg__, Variable.__abs__ = neg, _op(aten.abs.default)
Variable.__pow__, Variable.__rpow__ = pow, rpow
Variable.__lt__, Variable.__le__, Variable.__gt__, Variable.__ge__ = lt, le, gt, ge
# properties: `z.real`, `z.imag`, `a.mT` (the transpose of the last two dimensions)
Variable.real = property(_op(aten.real.default))
Variable.imag = property(_op(aten.imag.default))
Variable.mT = property(transpose)
Variable.__getattr__ = _method
