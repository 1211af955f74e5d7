"""Probes: callables that see every tape entry run, and the anomaly check built on them.

A probe is any callable

    probe(entry: TapeEntry, inputs: tuple, outputs: tuple, phase: str) -> None

called right after each entry of the generated code runs (before its inputs are dropped):
`entry` is the `TapeEntry` (`entry.text()`, `entry.op`, `entry.source`, `entry.code`,
`entry.module`, and for an entry of a backward, `entry.derivative_of`: the forward entry whose
derivative it computes); `inputs` the values of `entry.inputs`, in that order; `outputs` those of
`entry.outputs` (None for an output nothing reads); `phase` is "forward" while the compiled
graph's forward runs and "backward" while autograd's backward does (a double backward's
recompute of the forward included). Its return value is ignored; it must not change the values
it is shown (it observes). Pass one with `options={"probe": fn}`; it then sees every graph the
compiled function runs, the backward (and double backward) of each, and a compiled optimizer
step's. Several probes: one function calling each (`combined`). A probe that also has
`begin(code)` and `end(code)` has them called as each generated function starts and ends
(`execution.run`): the profile (profile.py, `options={"profile": True}`), which runs the other
probes inside it to leave their time out, and the torch.profiler ranges, on while torch.profiler
records (looked at on each call, as anomaly mode is). An error a probe raises carries a note
naming the entry it was shown, the phase and the user's line (`dynamo_tape: while probing tape
entry ...`), so that it reads as the probe's error, not the op's.

The bodies of higher-order ops are probed too: the entries of a checkpointed region, of the
branch torch.cond takes, of map's and while_loop's bodies (each slice, each iteration), of a
custom autograd.Function's forward and of an invoke_subgraph region are shown as they run,
before the entry of the op that runs them, each with its own source line and module, in the
phase of the code that runs the op (a cond's backward runs its branch's joint tape in the
backward). How: `execution.run` makes the probe current while the probed code runs, and that
code calls such an op's `probed_call` (codegen.py), which runs the bodies' own probed code with
it (`execution.run_body`), `begin` and `end` called around each (the profile times a body's
function apart from the one calling it). Backward bodies that are replayed onto the backward
tape (a region's recompute, a Function's backward) are entries of that tape. Not probed:
flex_attention's score_mod and mask_mod, which torch's op runs batched over every score.

The code that runs with no probe is the plain generated code (`dynamo_tape.last_code()`):
the probed variant (`CompiledTape.probed`) is generated the first time a probe is active, and
each call of a graph picks one of the two once, so a probe costs nothing where there is none
(the plain code's ops run their bodies' plain code).

Anomaly detection is a probe: under `torch.autograd.set_detect_anomaly(True)` (looked at on
each call) or with `options={"detect_anomaly": True}`, every entry's outputs are checked; the
first entry to make a NaN from inputs holding none, or an infinity from finite inputs (not where
a constant argument is one: `masked_fill(mask, -inf)`), raises `NonFiniteError` naming it, its
user line, and for a backward entry the forward entry it differentiates. A NaN that a graph's
input already holds is named as such where an entry first passes it on. In a DTensor program
the NaN test is DTensor's own (its collectives run on every rank, so every rank raises); the
message's extremes are those of this rank's shard.
"""

from __future__ import annotations

import math

import torch

from . import torch_private as tp
from .ir import TapeEntry, Variable
from .profile import Profile, Ranges
from .text import short_source


def combined(*probes):
    """One probe calling each of `probes` (None ones left out) in order; None if none. Probes
    with `begin(code)` and `end(code)` (profile.py) have them called as each generated function
    starts and ends."""
    probes = [p for p in probes if p is not None]
    if len(probes) <= 1:
        return probes[0] if probes else None
    return (_Hooked if any(hasattr(p, "begin") for p in probes) else _Combined)(probes)


class _Combined:
    def __init__(self, probes):
        self.probes = probes

    def __call__(self, entry, inputs, outputs, phase):
        for p in self.probes:
            p(entry, inputs, outputs, phase)


class _Hooked(_Combined):
    """Combined probes of which some have `begin` and `end`."""

    def begin(self, code):
        for p in self.probes:
            if hasattr(p, "begin"):
                p.begin(code)

    def end(self, code):
        for p in self.probes:
            if hasattr(p, "end"):
                p.end(code)


class Probes:
    """The probes of one compiled graph: the options' probe, the float64 shadow of `numerics`
    (numerics.py), and the anomaly check, which runs with the option and whenever torch's
    anomaly mode is on; all of them inside the `profile` (profile.py) where it is on, and
    torch.profiler ranges around each entry while torch.profiler records."""

    def __init__(self, graph: str, probe=None, detect_anomaly=False, numerics=None, profile=False):
        self.graph, self.probe, self.detect_anomaly = graph, probe, detect_anomaly
        self.numerics, self.profiling = numerics, profile
        self.shadow = self.profile = None
        if numerics is not None:
            from .numerics import Numerics

            self.shadow = Numerics(graph)
        if profile:
            self.profile = Profile(graph)
        self._anomaly, self._ranges = AnomalyCheck(graph), Ranges()
        self._made = {}
        self._off = self._make(False, False)

    def now(self):
        """The probe a call runs with, None for the plain code: looked at once per call."""
        anomaly, profiler = torch.is_anomaly_enabled(), tp.profiler_enabled()
        if not (anomaly or profiler):
            probe = self._off
        else:
            key = anomaly, profiler
            if key not in self._made:
                self._made[key] = self._make(anomaly, profiler)
            probe = self._made[key]
        if self.profile is None:
            return probe
        self.profile.inner = probe  # the one Profile of the graph runs this call's probes
        return self.profile

    def _make(self, anomaly: bool, profiler: bool):
        return combined(
            self.probe,
            self.shadow,
            self._anomaly if anomaly or self.detect_anomaly else None,
            self._ranges if profiler else None,
        )

    def of(self, graph: str) -> Probes:
        """The same probes for another graph (a double backward's)."""
        return Probes(graph, self.probe, self.detect_anomaly, self.numerics, self.profiling)


class NonFiniteError(RuntimeError):
    """Raised by the anomaly check (see the module docstring). `entry`: the tape entry that
    made the NaN or infinity (for a NaN a graph's input held: the first that passed it on);
    `phase`; `graph`: the compiled graph's name; `forward_entry`: for a backward entry, the
    forward entry it differentiates; `input`: the graph input's Variable where the NaN came
    from outside."""

    def __init__(self, message, entry, phase, graph, input=None):
        super().__init__(message)
        self.entry, self.phase, self.graph, self.input = entry, phase, graph, input
        self.forward_entry = entry.derivative_of


class AnomalyCheck:
    """The anomaly probe of one compiled graph (named in its messages)."""

    def __init__(self, graph: str):
        self.graph = graph

    def __call__(self, entry: TapeEntry, inputs, outputs, phase: str) -> None:
        made = [_flags(o) for o in outputs]
        nan_out = any(f[0] for f in made)
        if not nan_out and not any(f[1] for f in made):
            return
        had = [_flags(i) for i in inputs]
        nan_in = any(f[0] for f in had)
        if nan_out and not nan_in:
            self._raise(entry, inputs, outputs, phase, "nan")
        if nan_out:
            # the first entry to put out a NaN that it was given: an earlier entry making one
            # would have raised, so the NaN was in an input of the graph
            for v, f in zip(entry.inputs, had, strict=True):
                if f[0]:
                    self._raise(entry, inputs, outputs, phase, "nan", came_in=v)
        if not nan_in and not any(f[1] for f in had) and not _non_finite_constant(entry):
            self._raise(entry, inputs, outputs, phase, "inf")

    def _raise(self, entry, inputs, outputs, phase, kind, came_in=None):
        where = f"the {phase} of graph {self.graph}"
        if came_in is not None:
            label = f" ({came_in.label})" if came_in.label else ""
            head = f"input {came_in.name}{label} of {where} is already nan; it reaches"
        else:
            made = "a NaN from inputs holding none" if kind == "nan" else "inf from finite inputs"
            head = f"{where} made {made} at"
        lines = [f"dynamo_tape: {head} tape entry `{entry.text()}` (op {_op_text(entry.op)})"]
        lines += _where(entry)
        forward = entry.derivative_of
        if forward is not None:
            lines.append(f"  the derivative of forward entry `{forward.text()}`")
            lines += _where(forward, indent="    ")
        lines.append("  inputs:  " + _values(entry.inputs, inputs))
        lines.append("  outputs: " + _values(entry.outputs, outputs))
        raise NonFiniteError("\n".join(lines), entry, phase, self.graph, came_in)


def _flags(value) -> tuple[bool, bool]:
    """(holds a NaN, holds an infinity) of a floating tensor or number; (False, False) else."""
    if isinstance(value, torch.Tensor):
        if not (value.is_floating_point() or value.is_complex()) or value.numel() == 0:
            return False, False
        return bool(value.isnan().any()), bool(value.isinf().any())
    if isinstance(value, float | torch.SymFloat):
        value = float(value)
        return math.isnan(value), math.isinf(value)
    return False, False


def _non_finite_constant(entry: TapeEntry) -> bool:
    args = [*entry.args, *entry.kwargs.values()]
    return any(isinstance(a, float) and not math.isfinite(a) for a in args)


def _op_text(op) -> str:
    return str(op) if isinstance(op, torch._ops.OpOverload) else getattr(op, "__name__", str(op))


def _where(entry: TapeEntry, indent="  ") -> list[str]:
    lines = []
    if entry.module:
        lines.append(f"{indent}in module {entry.module}")
    if entry.source:
        code = entry.code
        lines.append(f"{indent}at {short_source(entry.source)}" + (f": {code}" if code else ""))
    return lines


def _values(variables, values) -> str:
    parts = []
    for v, x in zip(variables, values, strict=False):
        if v is None:
            continue
        name = v.name if isinstance(v, Variable) else str(v)
        parts.append(f"{name} {_extremes(x)}")
    return "; ".join(parts) or "(none)"


def _extremes(x) -> str:
    """dtype, shape, finite extremes and NaN/inf counts; of a DTensor, its shard on this rank
    (no collective)."""
    if isinstance(x, torch.Tensor):
        if not (x.is_floating_point() or x.is_complex()) or x.numel() == 0:
            return f"{str(x.dtype).removeprefix('torch.')}{list(x.shape)}"
        text = f"{str(x.dtype).removeprefix('torch.')}{list(x.shape)}"
        x = x.detach()
        if hasattr(x, "placements"):  # a DTensor
            x = tp.local_tensor(x)
            text += f", this rank's shard {list(x.shape)}:"
        else:
            x = tp.local_tensor(x)  # an AsyncCollectiveTensor's value
        nan, inf = x.isnan(), x.isinf()
        finite = x[~(nan | inf)] if x.is_floating_point() else x.new_empty(0)
        if finite.numel():
            text += f" min {finite.min().item():.4g} max {finite.max().item():.4g}"
        if nan.any():
            text += f" nan {int(nan.sum())}/{x.numel()}"
        if inf.any():
            text += f" inf {int(inf.sum())}/{x.numel()}"
        return text
    return repr(x)
