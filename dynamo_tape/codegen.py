"""Tapes become straight-line Python functions.

`generate` is a pure step from a tape to `(source, globals)`; `compile_source` turns that into
a function registered with `linecache`, so tracebacks show the generated line and users can
read the code (`CompiledTape.source`). Each entry of the tape is one line calling its ATen
overload's C++ callable, in order, none left out or merged (the passes that change what runs
made the tape: passes.py); each value is dropped right after its last use; sizes that are
symbolic (dynamic shapes) are bound once from the inputs and written as Python expressions.
A backward takes its arguments boxed, in one list that it empties as it unpacks it
(`def backward(args): v3, v5, syms, = args; args.clear()`): its saved tensors are then held by
its own names only, and each is freed after its last use, as eager's autograd frees a node's
saved tensors once the node ran, rather than all at the end.

A probed variant (`CompiledTape.probed`, built on first use, only when a probe is active:
probes.py) is the same code with a trailing `probe` parameter called right after each entry's
line, before its inputs are dropped: `probe(entry_3, (v1, v2), (v4,), 'forward')`. The plain
code has no such call; the probed one runs the same lines, the calls only observe. An entry
whose op runs bodies of its own (a checkpointed region, torch.cond...: bodies.py) calls, in the
probed variant, the op's `probed_call` under the same name: it runs its bodies' probed variants
with the probe of the code calling it (`execution.run_body`), so the probe sees their entries too.
"""

from __future__ import annotations

import functools
import itertools
import linecache
import math
import re
import types
import weakref
from dataclasses import dataclass, field

import sympy
import torch

from .fastcall import fast_callable, without_defaults
from .ir import SYM, Tape, TapeEntry, Variable, op_name, size_symbols
from .torch_private import FakeTensor, OpOverload, PythonPrinter, kernel, schema, symbolic_expr

_file_ids = itertools.count()


@dataclass
class CompiledTape:
    fn: object
    source: str
    filename: str
    line_entries: dict[int, TapeEntry] = field(default_factory=dict)
    # in a probed variant: the line of each probe call -> the entry it shows
    probe_lines: dict[int, TapeEntry] = field(default_factory=dict)
    # makes the probed variant for a phase (the module docstring); None for code that has none
    make_probed: object = field(default=None, repr=False)
    name: str = ""  # the function's name: forward_train, backward...
    phase: str = "forward"  # what its probed variant tells its probe
    _variants: dict = field(default_factory=dict, repr=False)  # phase -> probed variant
    boxed: bool = False  # takes its arguments in one list, which it empties

    @functools.cached_property
    def probed(self) -> CompiledTape:
        """The same code calling its trailing `probe` argument after each entry."""
        return self.probed_in(self.phase)

    def probed_in(self, phase: str) -> CompiledTape:
        """The probed variant telling its probe `phase`: a body's code runs in the forward, or in
        a backward (its op on a backward tape, or in a double backward's recompute)."""
        if phase not in self._variants:
            if self.make_probed is None:
                raise ValueError(f"{self.filename} has no probed variant")
            self._variants[phase] = self.make_probed(phase=phase)
        return self._variants[phase]

    def entry_at(self, tb) -> tuple[TapeEntry, bool] | None:
        """The tape entry whose generated line raised, from a traceback, and whether that line
        is its probe's call."""
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.filename:
                line = tb.tb_lineno
                if line in self.probe_lines:
                    return self.probe_lines[line], True
                entry = self.line_entries.get(line)
                return None if entry is None else (entry, False)
            tb = tb.tb_next
        return None


def symbols_of(tape: Tape) -> list:
    """Free symbols (s0, s1...) of the sizes a tape's inputs carry, in a fixed order."""
    found = {}
    for v in tape.inputs:
        for s in _sym_sizes(v):
            for sym in symbolic_expr(s).free_symbols:
                found.setdefault(str(sym), sym)
    return [found[k] for k in sorted(found)]


def _sym_sizes(v: Variable):
    if isinstance(v.meta, SYM):
        yield v.meta
    elif isinstance(v.meta, torch.Tensor):
        yield from (s for s in v.meta.shape if isinstance(s, torch.SymInt))


def generate(tape: Tape, name: str, params: list, returns, symbols=None, phase=None, boxed=False):
    """Source of `def name(*params)` running `tape`; `returns` is a nested tuple of Variables
    and constants. Symbols are bound from the params' sizes, or when `symbols` (a list) is
    given, from a trailing `syms` parameter holding their values in that order. `phase`
    ("forward" or "backward"): the probed variant, with a trailing `probe` parameter called
    after each entry with the entry, its input and output values and the phase. `boxed`:
    `def name(args)` instead, unpacking and emptying the list `args` of those parameters. Returns
    the source, its globals, and the entry of each line: the entries' lines, then the probe
    calls'."""
    w = _Writer(_fake_mode_of(tape), probed=phase is not None)
    names = [p.name for p in params]
    if symbols is not None:
        names.append("syms")
    header = ["args"] if boxed else list(names)
    if phase is not None:
        header.append("probe")
    lines = [f"def {name}({', '.join(header)}):"]
    if boxed and names:
        lines += [f"    {', '.join(names)}, = args", "    args.clear()"]
    bound = set()
    if symbols is not None:
        if symbols:
            lines.append(f"    {', '.join(map(str, symbols))}, = syms")
        bound.update(map(str, symbols))
    lines += [f"    {line}" for line in _bind_symbols(params, bound)]

    last_use = {}
    for i, e in enumerate(tape.entries):
        for v in e.inputs:
            last_use[v] = i
    kept = {v for v in _flat(returns) if isinstance(v, Variable)}
    line_entries, probe_lines = {}, {}
    for i, e in enumerate(tape.entries):
        outs = [v.name if v is not None else "_" for v in e.outputs]
        if e.single_output or (len(outs) == 1 and _returns_one(e.op)):
            target = outs[0] if isinstance(e.op, OpOverload) else f"{outs[0]}, "
        else:
            target = ", ".join(outs) + ("," if len(outs) == 1 else "")
        if isinstance(e.op, OpOverload) and not schema(e.op).returns:
            target = "_"  # returns None (`_assert_tensor_metadata`): nothing to unpack
        lines.append(f"    {target} = {w.call(e)}  # {e.source or ''}".rstrip(" #"))
        line_entries[len(lines)] = e
        if phase is not None:
            ins = w.value(tuple(e.inputs))
            outs = w.value(tuple(v if v is not None and target != "_" else None for v in e.outputs))
            # bound under a name of its own: every other name stays the plain code's
            w.globals[f"entry_{i}"] = e
            lines.append(f"    probe(entry_{i}, {ins}, {outs}, {phase!r})")
            probe_lines[len(lines)] = e
        # sizes known only now (masked_select's u0): bound before later entries read them
        lines += [f"    {line}" for line in _bind_symbols([v for v in e.outputs if v], bound)]
        dead = [v.name for v in e.inputs if last_use.get(v) == i and v not in kept]
        dead += [v.name for v in e.outputs if v is not None and v not in last_use and v not in kept]
        if dead:
            lines.append(f"    del {', '.join(dict.fromkeys(dead))}")
    lines.append(f"    return {w.value(returns)}")
    return "\n".join(lines) + "\n", w.globals, (line_entries, probe_lines)


def compile_source(source: str, globals_: dict, name: str, label: str, lines: tuple, code=None):
    """`lines`: the entry of each line, then of each probe call (`generate`'s). `code`: the
    source compiled already, under another file name (the compile cache's: cache.py)."""
    filename = f"<dynamo_tape {label} #{next(_file_ids)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = dict(globals_)
    if code is None:
        code = compile(source, filename, "exec")
    else:
        code = _renamed(code, filename)
    exec(code, namespace)
    # the source stays readable for as long as the function lives, and no longer
    weakref.finalize(namespace[name], linecache.cache.pop, filename, None)
    return CompiledTape(namespace[name], source, filename, *lines)


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(
        _renamed(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def compile_tape(
    tape: Tape,
    name: str,
    params: list,
    returns,
    symbols=None,
    phase="forward",
    probed=False,
    boxed=False,
) -> CompiledTape:
    """The plain code of `tape`, able to make its probed variant (`CompiledTape.probed`) for
    `phase` (or another: `probed_in`); `probed`: that variant itself; `boxed`: taking its
    arguments in one list."""
    source, globals_, lines = generate(
        tape, name, params, returns, symbols, phase if probed else None, boxed
    )
    label = f"{tape.name} {name}" + (" probed" if probed else "")
    code = compile_source(source, globals_, name, label, lines)
    code.name, code.phase, code.boxed = name, phase, boxed
    if not probed:
        code.make_probed = functools.partial(
            compile_tape, tape, name, params, returns, symbols, probed=True, boxed=boxed
        )
    return code


def compile_whole(tape: Tape, name: str, phase="forward") -> CompiledTape:
    """`tape` as a function of its inputs returning its outputs (a body's tape, run by the op
    of its entry; a forward without a backward)."""
    return compile_tape(tape, name, tape.inputs, tuple(tape.outputs), phase=phase)


def compile_body(tape: Tape) -> CompiledTape:
    """A body's tape (run by the op of its entry) as a function named after it: `cond.true`
    runs as `cond_true`, and the profile tells one body's function from another's."""
    return compile_whole(tape, re.sub(r"\W", "_", tape.name))


def _fake_mode_of(tape: Tape):
    for v in tape.variables():
        if isinstance(v.meta, FakeTensor):
            return v.meta.fake_mode
    return None


def _returns_one(op) -> bool:
    """A lone value, not a tuple: `x.item()`'s number as well as a tensor."""
    if not isinstance(op, OpOverload):
        return True
    returns = schema(op).returns
    return len(returns) == 1 and not isinstance(returns[0].type, torch.ListType)


def _bind_symbols(params, bound: set):
    for symbol, v, dim in size_symbols(params):
        if symbol not in bound:
            bound.add(symbol)
            yield f"{symbol} = {v.name}" if dim is None else f"{symbol} = {v.name}.size({dim})"


def _flat(x):
    if isinstance(x, list | tuple):
        for i in x:
            yield from _flat(i)
    else:
        yield x


class _Writer:
    """Writes calls and constants as Python text; anything without a literal form becomes a
    named global."""

    def __init__(self, fake_mode=None, probed=False):
        self.fake_mode = fake_mode  # checks that a Python binding matches an overload
        self.probed = probed  # writing a probed variant: ops running bodies probe them too
        self.globals = {"torch": torch, "math": math}
        self._names = {}
        self._printer = PythonPrinter()

    def bind(self, obj, hint: str) -> str:
        key = id(obj)
        if key not in self._names:
            name = f"{hint}_{len(self._names)}"
            self._names[key] = name
            self.globals[name] = obj
        return self._names[key]

    def call(self, e: TapeEntry) -> str:
        args, kwargs = e.args, e.kwargs
        if isinstance(e.op, OpOverload):
            # a binding gets every argument: its own defaults may differ from the schema's
            # (torch._C._nn.mse_loss does not reduce by default), and fake tensors cannot always
            # tell; the overload itself goes without those equal to its schema's defaults
            binding = fast_callable(e.op, args, kwargs, self.fake_mode)
            if binding is not None:
                fn = self.bind(binding, binding.__name__)
            else:
                args, kwargs = without_defaults(e.op, args, kwargs)
                fn = self.bind(kernel(e.op), op_name(e.op).replace(".", "_"))
        else:
            fn = self.bind(e.op, getattr(e.op, "__name__", "fn"))
            if self.probed and hasattr(e.op, "probed_call"):  # the same name, its bodies probed
                self.globals[fn] = e.op.probed_call
        parts = [self.value(a) for a in args]
        parts += [f"{k}={self.value(a)}" for k, a in kwargs.items()]
        return f"{fn}({', '.join(parts)})"

    def value(self, a) -> str:
        if isinstance(a, Variable):
            return a.name
        if isinstance(a, SYM):
            return f"({self._printer.doprint(symbolic_expr(a))})"
        if isinstance(a, sympy.Basic):  # a size symbol itself, e.g. the forward returning `syms`
            return f"({self._printer.doprint(a)})"
        if a is None or isinstance(a, bool | int | str):
            return repr(a)
        if isinstance(a, float):
            return repr(a) if math.isfinite(a) else f"float({str(a)!r})"
        if isinstance(a, list):
            return "[" + ", ".join(self.value(x) for x in a) + "]"
        if isinstance(a, tuple):
            inner = ", ".join(self.value(x) for x in a)
            return f"({inner},)" if len(a) == 1 else f"({inner})"
        return self.bind(a, "c")
