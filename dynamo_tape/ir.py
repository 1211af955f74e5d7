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
number for scalars; inputs a `label` where known, what they are to the user (`conv1.weight`,
the argument `x`). Entries carry where they come from: the user's line (`source`, and its text,
`code`) and the module they ran in (`module`: `layer1.0.conv1`). `Tape.text()` prints a tape,
its inputs named, long lines wrapped; `text(sources=True)` also puts each run of entries under
a comment saying where it comes from.

This module imports nothing of the package but `torch_private` and `text` (the short names of
dtypes and SymInts, and the wrapping of long lines, that its printer uses); record.py gives
Variables their operators, which record new entries onto the tape being built: how rules write
backward tapes.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Any

import torch

from .text import (
    WIDTH,
    clipped,
    code_at,
    placement_text,
    short_dtype,
    short_source,
    sym_text,
    wrapped,
)
from .torch_private import OpOverload, overload_name, schema, symbolic_expr

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


class Variable:
    """A named value on a tape; `meta` gives its type (see the module docstring). `name` is
    what the tape and its generated code call it (`v0`); `label`, where known, what it is to
    the user (`conv1.weight`, the argument `x`), for printing only."""

    __slots__ = ("name", "meta", "label")

    def __init__(self, name: str, meta: Any, label: str | None = None):
        self.name = name
        self.meta = meta
        self.label = label

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
            where = "{" + ",".join(map(placement_text, placements)) + "}" if placements else ""
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
    source: str | None = None  # the user's `file:line in fn` that produced this entry
    module: str | None = None  # the path of the module it ran in: `layer1.0.conv1`
    # for an entry of a backward: the forward entry whose rule recorded it (autodiff)
    derivative_of: TapeEntry | None = field(default=None, repr=False)

    @property
    def code(self) -> str | None:
        """The text of the user's line that produced this entry (`x = self.conv1(x)`)."""
        return code_at(self.source)

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

    def text(self, sources: bool = False) -> str:
        """The tape as text: a header naming its inputs (`v0:f32[8,3,3,3] conv1.weight`), a line
        per entry, its return; lines longer than `WIDTH` go on over indented lines. `sources`:
        before each run of entries from one module and line of the user's code, a comment
        naming them: `# layer1.0.conv1 | model.py:12 in forward | x = self.conv1(x)`."""
        lines = _header(self.name, self.inputs)
        where = (None, None)
        for e in self.entries:
            if sources and (e.module, e.source) != where:
                where = (e.module, e.source)
                lines += _where_lines(e)
            lines += wrapped(f"  {e.text()}", " " * 6)
        outs = ", ".join(_value_text(o) for o in self.outputs)
        comma = "," if len(self.outputs) == 1 else ""  # a tuple
        lines += wrapped(f"  return ({outs}{comma})", " " * len("  return ("))
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


_LABEL_COLUMN = 32  # at most this wide, the `v0:f32[...]` before an input's label


def _typed(v: Variable) -> str:
    return f"{v.name}:{v.type_text()}"


def _header(name: str, inputs: list[Variable]) -> list[str]:
    """`forward(v0:f32[8] bn.running_mean, v1:f32[4,3] x):` on one line where it fits, else one
    line per input that has a label (labels aligned), the others packed between them."""
    parts = [f"{_typed(v)} {v.label}" if v.label else _typed(v) for v in inputs]
    one = f"{name}({', '.join(parts)}):"
    if len(one) <= WIDTH:
        return [one]
    column = min(max((len(_typed(v)) for v in inputs if v.label), default=0), _LABEL_COLUMN)
    lines, unlabeled = [f"{name}("], []

    def pack():
        if unlabeled:
            lines.extend(wrapped("    " + ", ".join(unlabeled) + ",", "    "))
            unlabeled.clear()

    for v in inputs:
        if v.label:
            pack()
            lines.append(f"    {_typed(v).ljust(column)} {v.label},")
        else:
            unlabeled.append(_typed(v))
    pack()
    return [*lines, "):"]


def _where_lines(e: TapeEntry) -> list[str]:
    """The comment before a run of entries from one place: `# module | file:line in fn | code`,
    the code on a line of its own where the three do not fit in one."""
    fields = [f for f in (e.module, short_source(e.source)) if f]
    if not fields:
        return ["  # (no source line)"]
    head, code = "  # " + " | ".join(fields), e.code
    if code and len(f"{head} | {code}") <= WIDTH:
        return [f"{head} | {code}"]
    return [clipped(head), *([clipped(f"  #   {code}")] if code else [])]


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
