"""The tape: plain data with one printer.

A `Tape` is a straight list of `TapeEntry`s over named `Variable`s:

- every Variable is bound once, either as a tape input or as an output of one entry;
- entries are in execution order, and an entry only reads Variables bound before it;
- `outputs` name existing Variables (or hold constants such as ints);
- an entry's `args`/`kwargs` follow its ATen schema in full (defaults filled in), with a
  Variable wherever a tensor flows and plain Python values (ints, SymInts, dtypes...) for
  constants;
- `propagate` is the entry's vector-Jacobian rule, looked up when the entry is created, so a
  missing rule is known at compile time. `kind` says where the rule came from: "rule" (this
  project's table), "fallback" (the generic torch.autograd VJP) or "nondiff" (no gradient:
  computed under no_grad, or made by a pass after differentiation, so never differentiated).

`Tape.check()` verifies these rules (tests run it on every trace a program makes).

Variables carry a `meta`: a fake tensor for tensors (dtype, shape, device), or the SymInt /
number for scalars. This module imports nothing of the package but `torch_private`; record.py
gives Variables their operators, which record new entries onto the tape being built: how rules
write backward tapes.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Any

import torch

from .torch_private import OpOverload, overload_name, schema, symbolic_expr

_DTYPE_NAMES = {
    torch.float64: "f64",
    torch.float32: "f32",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
    torch.complex64: "c64",
    torch.complex128: "c128",
    torch.int64: "i64",
    torch.int32: "i32",
    torch.int16: "i16",
    torch.int8: "i8",
    torch.uint8: "u8",
    torch.bool: "b8",
}


def short_dtype(dtype: torch.dtype) -> str:
    return _DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


SYM = torch.SymInt | torch.SymFloat | torch.SymBool


def size_symbols(variables):
    """(symbol, Variable, dim) for each size symbol (`s0`, not `2*s0`) the Variables carry, each
    once: a tensor's size `dim`, or a SymInt / SymFloat Variable itself (dim None). Generated
    code binds a symbol from the first Variable that carries it."""
    seen = set()
    for v in variables:
        if isinstance(v.meta, torch.SymInt | torch.SymFloat):
            found = [(v.meta, None)]
        elif isinstance(v.meta, torch.Tensor):
            found = [(s, d) for d, s in enumerate(v.meta.shape) if isinstance(s, torch.SymInt)]
        else:
            found = []
        for s, d in found:
            if symbolic_expr(s).is_Symbol and str(s) not in seen:
                seen.add(str(s))
                yield str(s), v, d


def sym_text(value) -> str:
    """An int or SymInt as text: `8`, `s77`, `2*s77`."""
    if isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool):
        return str(symbolic_expr(value))
    return str(value)


def _placement_text(p) -> str:
    """`S(0)`, `R`, `P(sum)`: a DTensor placement as DTensor's own short repr writes it."""
    return (
        str(p)
        if not hasattr(p, "is_shard")
        else (f"S({p.dim})" if p.is_shard() else "R" if p.is_replicate() else f"P({p.reduce_op})")
    )


class Variable:
    """A named value on a tape; `meta` gives its type (see the module docstring)."""

    __slots__ = ("name", "meta")

    def __init__(self, name: str, meta: Any):
        self.name = name
        self.meta = meta

    @property
    def is_tensor(self) -> bool:
        return isinstance(self.meta, torch.Tensor)

    @property
    def shape(self):
        return self.meta.shape

    @property
    def dtype(self):
        return self.meta.dtype

    def dim(self) -> int:
        return self.meta.dim()

    def type_text(self) -> str:
        if self.is_tensor:
            dims = ",".join(sym_text(s) for s in self.meta.shape)
            placements = getattr(self.meta, "placements", None)  # a DTensor's: `{S(0),R}`
            where = "{" + ",".join(map(_placement_text, placements)) + "}" if placements else ""
            return f"{short_dtype(self.meta.dtype)}[{dims}]{where}"
        return type(self.meta).__name__.lower().removeprefix("sym")

    def __repr__(self) -> str:
        return self.name


def op_name(op) -> str:
    """`addmm` for a default overload, `sum.dim_IntList` otherwise, a callable's own name."""
    if isinstance(op, OpOverload):
        packet = schema(op).name.split("::")[-1]
        overload = overload_name(op)
        return packet if overload == "default" else f"{packet}.{overload}"
    return getattr(op, "name", None) or getattr(op, "__name__", repr(op))


@dataclass(eq=False)
class TapeEntry:
    op: Any  # an ATen OpOverload, or a callable such as the generic fallback VJP
    args: list
    kwargs: dict
    outputs: list  # Variables (None where an output is unused)
    propagate: Any = None  # rule(g, y, *args, **kwargs) -> one cotangent per positional arg
    kind: str = "rule"  # "rule" | "fallback" | "nondiff"
    source: str | None = None  # the user's file:line that produced this entry

    @property
    def single_output(self) -> bool:
        """Rules see `g`, `y` as one Variable for ops returning one Tensor, tuples otherwise."""
        if not isinstance(self.op, OpOverload):
            return False
        returns = schema(self.op).returns
        return len(returns) == 1 and str(returns[0].type) == "Tensor"

    @functools.cached_property
    def inputs(self) -> list[Variable]:
        # cached: every pass over a tape reads it, and an entry's arguments are never changed
        # after it is made (passes make new entries)
        return [v for v in _flat(self.args) + _flat(list(self.kwargs.values())) if _is_var(v)]

    def text(self) -> str:
        outs = " ".join(f"{v.name}:{v.type_text()}" if v is not None else "_" for v in self.outputs)
        positional, defaults = _schema(self.op)
        operands, params = [], []
        for i, a in enumerate(self.args):
            name = positional[i] if i < len(positional) else str(i)
            if _is_var(a) or (isinstance(a, list | tuple) and a and all(map(_is_var, a))):
                operands.append(_value_text(a))
            elif name not in defaults or not _same(defaults[name], a):
                params.append(f"{name}={_value_text(a)}")
        for k, a in self.kwargs.items():
            if k not in defaults or not _same(defaults[k], a):
                params.append(f"{k}={_value_text(a)}")
        line = f"{outs} = {op_name(self.op)}"
        if operands:
            line += " " + " ".join(operands)
        if params:
            line += " [" + ", ".join(params) + "]"
        return line


@dataclass(eq=False)
class Tape:
    name: str
    inputs: list[Variable] = field(default_factory=list)
    entries: list[TapeEntry] = field(default_factory=list)
    outputs: list = field(default_factory=list)

    def text(self) -> str:
        head = ", ".join(f"{v.name}:{v.type_text()}" for v in self.inputs)
        lines = [f"{self.name}({head}):"]
        lines += [f"  {e.text()}" for e in self.entries]
        outs = ", ".join(_value_text(o) for o in self.outputs)
        lines.append(f"  return ({outs}{',' if len(self.outputs) == 1 else ''})")  # a tuple
        return "\n".join(lines)

    __str__ = text

    def check(self) -> None:
        """Raise `TapeError` unless the tape keeps the rules of the module docstring: each
        Variable bound once, read only after it is bound, outputs bound, and each ATen entry's
        arguments and outputs as many as its schema has."""
        bound: set[Variable] = set()

        def bind(v: Variable, where: str) -> None:
            if v in bound or any(b.name == v.name for b in bound):
                raise TapeError(f"{self.name}: {v.name} bound twice ({where})")
            bound.add(v)

        for v in self.inputs:
            bind(v, "input")
        for e in self.entries:
            unbound = [v.name for v in e.inputs if v not in bound]
            if unbound:
                raise TapeError(f"{self.name}: `{e.text()}` reads {', '.join(unbound)} unbound")
            _check_arity(e, self.name)
            for v in e.outputs:
                if v is not None:
                    bind(v, f"`{e.text()}`")
        missing = [v.name for v in _flat(self.outputs) if _is_var(v) and v not in bound]
        if missing:
            raise TapeError(f"{self.name}: returns {', '.join(missing)}, never bound")

    def variables(self):
        yield from self.inputs
        for e in self.entries:
            yield from (v for v in e.outputs if v is not None)


class TapeError(AssertionError):
    """A tape that breaks the rules of the module docstring (a bug of ours, not the user's)."""


def _check_arity(e: TapeEntry, tape: str) -> None:
    if not isinstance(e.op, OpOverload):
        return
    args = schema(e.op).arguments
    positional = [a for a in args if not a.kwarg_only]
    keywords = {a.name for a in args if a.kwarg_only}
    returns = schema(e.op).returns
    lists = len(returns) == 1 and isinstance(returns[0].type, torch.ListType)
    problems = []
    if len(e.args) != len(positional):
        problems.append(f"{len(e.args)} positional arguments, its schema {len(positional)}")
    if not set(e.kwargs) <= keywords:
        problems.append(f"keywords {sorted(set(e.kwargs) - keywords)} not in its schema")
    if not lists and len(e.outputs) != max(len(returns), 1):
        problems.append(f"{len(e.outputs)} outputs, its schema {len(returns)}")
    if problems:
        raise TapeError(f"{tape}: `{e.text()}` has {'; '.join(problems)}")


class Namer:
    """Hands out v0, v1, ...: one Namer per compiled graph, so the forward and backward tapes
    of a graph never reuse a name."""

    def __init__(self):
        self._count = itertools.count()

    def __call__(self, meta) -> Variable:
        return Variable(f"v{next(self._count)}", meta)


def _is_var(v) -> bool:
    return isinstance(v, Variable)


def _flat(values) -> list:
    out = []
    for v in values:
        if isinstance(v, list | tuple):
            out.extend(_flat(v))
        else:
            out.append(v)
    return out


def _schema(op) -> tuple[list[str], dict]:
    """An op's positional argument names and its defaults (for printing only what differs)."""
    if not isinstance(op, OpOverload):
        return [], {}
    args = schema(op).arguments
    positional = [a.name for a in args if not a.kwarg_only]
    defaults = {a.name: a.default_value for a in args if a.has_default_value()}
    return positional, defaults


def _same(default, value) -> bool:
    if isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool | Variable):
        return False
    try:
        return type(default) is type(value) and bool(default == value)
    except Exception:
        return False


def _value_text(a) -> str:
    if _is_var(a):
        return a.name
    if isinstance(a, list | tuple):
        return "[" + ", ".join(_value_text(x) for x in a) + "]"
    if isinstance(a, torch.SymInt | torch.SymFloat | torch.SymBool):
        return sym_text(a)
    if isinstance(a, torch.dtype):
        return short_dtype(a)
    if isinstance(a, torch.Tensor):
        return f"tensor:{short_dtype(a.dtype)}{list(a.shape)}"
    return repr(a)


def is_differentiable(meta) -> bool:
    """Whether a value can carry a gradient: a floating-point or complex tensor."""
    return isinstance(meta, torch.Tensor) and (meta.is_floating_point() or meta.is_complex())


def is_random(op) -> bool:
    """Whether an op draws random numbers (running it again draws new ones)."""
    return isinstance(op, OpOverload) and torch.Tag.nondeterministic_seeded in op.tags
