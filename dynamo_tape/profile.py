"""Where a compiled graph's time goes: the profile probe, and torch.profiler ranges per entry.

With `options={"profile": True}` each graph's probes (probes.py) run inside a `Profile`: a
probe runs after its entry, so an entry's time is the interval from the end of the previous
probe call (or from the start of the generated function: `run()` calls `begin`) to the start of
this one. The profile takes the time first thing in each call, runs the other probes (numerics,
anomaly, the user's), and takes the time again last, so that what the probes cost is left out
of every entry's time and of the function's. `end` (run() again) closes each call of a
generated function: its time, less the probes', less its entries' is the tape's own overhead
(binding sizes, unpacking, dropping values, the return). `as_dict()` sums each by op, by module
and by source line, forward and backward apart; `text()` is its table. An entry's time includes
the generated code's dropping of the values the previous entry was the last to read.

A graph's profile sees its own calls only. `profile_step()` (tracker.py) times a whole block (a
training step) and splits it into the graph calls of profiled graphs (their entries, tape
overhead and runtime) and the time between and around them, outside every graph: calling the
compiled function (Dynamo's guards and its code gathering the graph's inputs), the Python
between graph calls, autograd's engine after the last backward (gradient accumulation). Every
profile adds its probes' time to one process-wide clock (`_clock`), which the step leaves out.

Under torch.profiler (`torch.profiler.profile()`), whatever the options, each entry runs
inside a `record_function` range named `op outputs [module]`, so a Chrome trace shows the tape's
structure: `Ranges` opens the first entry's range when the function starts and, after each
entry, closes its range and opens the next one's.
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch

from .ir import op_name
from .text import short_source

PHASES = ("forward", "backward")


class _Clock:
    """Sums over every profile of the process: probes' time, entries' time, generated
    functions' time less the probes' (a body's code's time is its own, not its caller's), so
    that a step can take differences around each graph call; `steps`, the `Step`s recording."""

    def __init__(self):
        self.probes_s = self.entries_s = self.functions_s = 0.0
        self.steps: list = []


_clock = _Clock()


class Profile:
    """The profile of one compiled graph; `inner`: the probe it runs (the others), or None."""

    def __init__(self, graph: str, inner=None):
        self.graph, self.inner = graph, inner
        self.label = graph  # in a step's parts: the backend sets "compile id function"
        # entry -> [phase, seconds, calls]; function name -> [phase, calls, seconds, probes']
        self.entries: dict = {}
        self.functions: dict = {}
        self._last = 0.0  # when the previous probe call (or the function's start) ended
        self._started: list = []  # (function start, probe seconds so far) of calls in flight
        self._probes_s = 0.0  # the probes' own time, all calls
        # phase -> [calls, seconds]: the whole graph calls (runtime.py's Python and autograd's
        # Function around the generated functions), less the probes
        self.graph_calls: dict = {}

    def __call__(self, entry, inputs, outputs, phase: str) -> None:
        now = time.perf_counter()
        seconds = now - self._last
        seen = self.entries.get(entry)
        if seen is None:
            self.entries[entry] = [phase, seconds, 1]
        else:
            seen[1] += seconds
            seen[2] += 1
        _clock.entries_s += seconds
        if self.inner is not None:
            self.inner(entry, inputs, outputs, phase)
        self._last = time.perf_counter()
        self._probes_s += self._last - now
        _clock.probes_s += self._last - now

    def begin(self, code) -> None:
        if self.inner is not None and hasattr(self.inner, "begin"):
            self.inner.begin(code)
        self._started.append((time.perf_counter(), self._probes_s))
        self._last = time.perf_counter()

    def end(self, code) -> None:
        end = time.perf_counter()
        start, probes_before = self._started.pop()
        if self.inner is not None and hasattr(self.inner, "end"):
            self.inner.end(code)
        seconds, probes = end - start, self._probes_s - probes_before
        row = self.functions.setdefault(code.name, [code.phase, 0, 0.0, 0.0])
        row[1] += 1
        row[2] += seconds
        row[3] += probes
        _clock.functions_s += seconds - probes
        if self._started:  # a body's code, run by an entry of the call in flight: not its time
            outer, outer_probes = self._started[-1]
            self._started[-1] = (outer + seconds, outer_probes + probes)
            self._last = time.perf_counter()  # that entry's time goes on from here

    def timed_call(self, phase: str, fn, *args):
        """`fn(*args)`, its time (less the probes') counted as a graph call of `phase`, and
        by the innermost `Step` recording."""
        step = _clock.steps[-1] if _clock.steps else None
        outer = step is not None and step.enter()
        before = _clock.probes_s, _clock.entries_s, _clock.functions_s
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            end = time.perf_counter()
            seconds = end - start - (_clock.probes_s - before[0])
            row = self.graph_calls.setdefault(phase, [0, 0.0])
            row[0] += 1
            row[1] += seconds
            if outer:
                entries, functions = _clock.entries_s - before[1], _clock.functions_s - before[2]
                step.leave(self.label, phase, start, end, seconds, entries, functions)
            elif step is not None:
                step.leave_inner()

    def clear(self) -> None:
        """Forget what was timed (after a warm-up, say)."""
        self.entries.clear()
        self.functions.clear()
        self.graph_calls.clear()

    def totals(self) -> dict[str, dict]:
        """Per phase: seconds in the generated functions (less the probes), in their entries,
        the tape's overhead (the difference), and where the graph calls were timed (the
        forward's call from Dynamo's code, autograd's call of the backward), their seconds and
        what the runtime's Python and autograd's Function added to the functions'."""
        out = {p: {"seconds": 0.0, "entries_seconds": 0.0, "calls": 0} for p in PHASES}
        for phase, calls, seconds, probes in self.functions.values():
            out[_phase(phase)]["seconds"] += seconds - probes
            out[_phase(phase)]["calls"] += calls
        for phase, seconds, _ in self.entries.values():
            out[_phase(phase)]["entries_seconds"] += seconds
        for phase, row in out.items():
            row["overhead_seconds"] = row["seconds"] - row["entries_seconds"]
            if phase in self.graph_calls:
                calls, seconds = self.graph_calls[phase]
                row.update(graph_calls=calls, graph_seconds=seconds)
                row["runtime_seconds"] = seconds - row["seconds"]
        return out

    def as_dict(self, top: int | None = None) -> dict:
        """Plain data: the totals, the generated functions, and time by op, module and line."""
        groups = {"op": _op, "module": _module, "line": _line}
        by = {}
        for name, key in groups.items():
            sums = defaultdict(lambda: [0.0, 0])
            for entry, (phase, seconds, calls) in self.entries.items():
                row = sums[_phase(phase), key(entry)]
                row[0] += seconds
                row[1] += calls
            rows = [
                {"phase": phase, name: k, "seconds": s, "calls": c}
                for (phase, k), (s, c) in sums.items()
            ]
            rows.sort(key=lambda r: -r["seconds"])
            by[f"by_{name}"] = rows[:top] if top else rows
        functions = [
            {"function": name, "phase": _phase(phase), "calls": calls,
             "seconds": seconds - probes, "probes_seconds": probes}
            for name, (phase, calls, seconds, probes) in self.functions.items()
        ]  # fmt: skip
        return {"graph": self.graph, "totals": self.totals(), "functions": functions, **by}

    def text(self, top: int = 10) -> str:
        data = self.as_dict()
        lines = [f"# profile of graph {self.graph}"]
        for phase, t in data["totals"].items():
            if t["calls"]:
                line = (
                    f"{phase}: {t['calls']} calls, {_ms(t['seconds'])} ms, entries "
                    f"{_ms(t['entries_seconds'])} ms, tape overhead {_ms(t['overhead_seconds'])} ms"
                )
                if "graph_seconds" in t:
                    line += (
                        f"; graph calls {_ms(t['graph_seconds'])} ms, runtime "
                        f"{_ms(t['runtime_seconds'])} ms"
                    )
                lines.append(line)
        for name in ("op", "module", "line"):
            lines.append(f"{'ms':>9} {'calls':>6} {'phase':<8} {name}")
            lines += [
                f"{_ms(r['seconds']):>9} {r['calls']:>6} {r['phase']:<8} {r[name]}"
                for r in data[f"by_{name}"][:top]
            ]
        return "\n".join(lines)


class Step:
    """The time of a block (`profile_step()`), less every probe's, split into parts in order:
    each call of a profiled graph (`graph`: entries, tape overhead, runtime) and the time
    outside graph calls before, between and after them (`outside`). Graph calls made inside
    another (a double backward's recompute) are part of the outer call."""

    def __init__(self):
        self.calls: list[dict] = []
        self.start = self.end = None
        self.probes_seconds = 0.0
        self._depth = 0

    def enter(self) -> bool:
        self._depth += 1
        return self._depth == 1

    def leave_inner(self) -> None:
        self._depth -= 1

    def leave(self, graph, phase, start, end, seconds, entries, functions) -> None:
        self._depth -= 1
        self.calls.append(
            {"graph": graph, "phase": phase, "start": start, "end": end, "seconds": seconds,
             "entries_seconds": entries, "overhead_seconds": functions - entries,
             "runtime_seconds": seconds - functions}
        )  # fmt: skip

    @property
    def seconds(self) -> float:
        """The block's time less the probes'."""
        return self.end - self.start - self.probes_seconds

    def parts(self) -> list[dict]:
        """Graph calls and the outside time around them, in order; their seconds add up to
        `seconds`. Outside parts: the wall time between graph calls, less the probes' (which
        run only inside graph calls)."""
        parts, last = [], self.start
        for k, call in enumerate(self.calls):
            parts.append(_outside("before" if k == 0 else "between", call["start"] - last))
            parts.append({"part": "graph", **{k: v for k, v in call.items() if k not in
                                                ("start", "end")}})  # fmt: skip
            last = call["end"]
        parts.append(_outside("after" if self.calls else "no graph call", self.end - last))
        return parts

    def as_dict(self) -> dict:
        parts = self.parts()
        graph = [p for p in parts if p["part"] == "graph"]
        inside = sum(p["seconds"] for p in graph)
        return {
            "seconds": self.seconds,
            "probes_seconds": self.probes_seconds,
            "graph_seconds": inside,
            "outside_seconds": self.seconds - inside,
            **{
                f"{k}_seconds": sum(p[f"{k}_seconds"] for p in graph)
                for k in ("entries", "overhead", "runtime")
            },  # fmt: skip
            "parts": parts,
        }

    def text(self) -> str:
        d = self.as_dict()
        lines = [
            f"# step: {_ms(d['seconds'])} ms, the probes' own {_ms(d['probes_seconds'])} ms left "
            f"out; graph calls {_ms(d['graph_seconds'])} ms, outside them "
            f"{_ms(d['outside_seconds'])} ms",
            f"{'ms':>9} {'share':>6}  part",
        ]
        for p in d["parts"]:
            share = f"{100 * p['seconds'] / d['seconds']:5.1f}%" if d["seconds"] else ""
            lines.append(f"{_ms(p['seconds']):>9} {share:>6}  {part_label(p)}")
        return "\n".join(lines)


OUTSIDE = {
    "before": "outside: before the first graph call (Dynamo's guards, gathering the inputs)",
    "between": "outside: between graph calls (the caller's Python, `.backward()` into autograd)",
    "after": "outside: after the last graph call (autograd's engine: accumulating gradients)",
    "no graph call": "outside: no graph compiled with options={'profile': True} ran",
}


def part_label(part: dict) -> str:
    if part["part"] != "graph":
        return OUTSIDE[part["where"]]
    return (
        f"{part['phase']} of graph {part['graph']}: entries {_ms(part['entries_seconds'])}, tape "
        f"overhead {_ms(part['overhead_seconds'])}, runtime {_ms(part['runtime_seconds'])}"
    )


def _outside(where: str, seconds: float) -> dict:
    return {"part": "outside", "where": where, "seconds": seconds}


def recording(step: Step):
    """Make `step` record the graph calls until `stopped(step)`."""
    _clock.steps.append(step)
    step.probes_seconds = -_clock.probes_s
    step.start = time.perf_counter()


def stopped(step: Step) -> None:
    step.end = time.perf_counter()
    step.probes_seconds += _clock.probes_s
    _clock.steps.remove(step)


class Ranges:
    """Under torch.profiler: each entry of a generated function inside a `record_function`
    range (the module docstring). Its own state per call in flight (calls nest)."""

    def __init__(self):
        self._open: list = []  # per call in flight: [entries in order, next position, range]

    def begin(self, code) -> None:
        entries = [code.line_entries[line] for line in sorted(code.line_entries)]
        self._open.append([entries, 0, None])
        self._next()

    def __call__(self, entry, inputs, outputs, phase: str) -> None:
        self._close()
        self._next()

    def end(self, code) -> None:
        self._close()
        self._open.pop()

    def _next(self):
        call = self._open[-1]
        entries, k = call[0], call[1]
        if k < len(entries):
            call[2] = torch.autograd.profiler.record_function(range_name(entries[k]))
            call[2].__enter__()
            call[1] = k + 1

    def _close(self):
        call = self._open[-1]
        if call[2] is not None:
            call[2].__exit__(None, None, None)
            call[2] = None


def range_name(entry) -> str:
    """`mm v3 [layers.0.fc]`: the op, the outputs, the module."""
    outs = ",".join(v.name for v in entry.outputs if v is not None)
    module = f" [{entry.module}]" if entry.module else ""
    return f"{_op(entry)} {outs}{module}"


def _phase(phase) -> str:
    return "forward" if phase == "forward" else "backward"


def _op(entry) -> str:
    return op_name(entry.op)


def _module(entry) -> str:
    return entry.module or "(top)"


def _line(entry) -> str:
    return short_source(entry.source) or "(no line)"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"
