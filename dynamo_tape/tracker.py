"""Records every graph the backend compiles: graphs, graph breaks, splits and recompiles.

The backend calls `graph_compiled` (or `graph_failed`) once per graph Dynamo hands it. What
Dynamo knows about that graph is read at that moment, through `torch_private`:

- `gm.compile_subgraph_reason` (`reason`, `user_stack`, `graph_break`): why the graph ended;
  `user_stack` runs from the compiled frame to the innermost (inlined) user frame;
- `CompileContext.current_compile_id()`: "frame/recompile" ("0/1" is frame 0's second compile);
- the frame being compiled: the instruction translator's code object (`user_stack[0]` is not
  it: after a break it names the original function, not the `torch_dynamo_resume_in_*` frame);
- the recompile reason (the guard that failed): the metrics of the compile in progress, which
  `get_compilation_metrics()[i].recompile_reason` reports only once the compile has finished;
- Dynamo's full message for a break (gb_type, explanation, hints: `tp.graph_break_message`),
  which for a data-dependent branch is not the graph's reason.

What never reaches the backend is read from Dynamo's compile records of the session's time
(`records.from_compiles`): frames Dynamo ran as Python, recompile limits hit, graphs other
backends compiled. `mode=` (inductor's) is recorded as an option ignored (`mode_ignored`).

A break site is counted by (file, line, kind) of the innermost user frame, once however often
it is compiled or called; `counters["graph_break"]` instead counts every compile attempt. A
break with no graph before it never reaches the backend; its resume frame
(`torch_dynamo_resume_in_<fn>_at_<line>`) still names its line, so it is counted from there,
with the reason Dynamo recorded for a break through that line (`tp.graph_break_reason_at`).
A break is a break site only, not also a split. Graphs compiled by the same Dynamo compile
(same compile id) under DDPOptimizer are DDP bucket splits. Nothing is recorded unless a
`TapeCounter` or `track()` is active, except the last compiled graph (for `last_tapes()`) and
the structured-trace artifacts (free without a trace).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass

from . import profile
from . import torch_private as tp
from .ir import op_name
from .records import (
    RESUME_FRAME,
    BreakSite,
    GraphRecord,
    IgnoredOption,
    Recompile,
    Split,
    first_line,
    from_compiles,
    one_line,
    source_line,
    user_frames,
)

_last: list = []
_active: list[Tracked] = []


class Tracked:
    """What a tracking session saw; `backend.TapeCounter` and `track()` both give one."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        # Dynamo's compiles from now on (until a `track()` block ends) are this session's
        self._since_us, self._until_us = time.time_ns() // 1000, None
        self.graphs: list[GraphRecord] = []
        self._breaks: dict[tuple, BreakSite] = {}
        self._user_lines: set[tuple[str, int]] = set()  # every user frame a break passed through
        self.recompiles: list[Recompile] = []
        self._options: dict[tuple[str, str], IgnoredOption] = {}
        self.steps: list[profile.Step] = []  # profile_step() blocks that ended in the session

    # CompileCounter's meaning: one frame per backend call, op_count sums its graphs' call nodes
    @property
    def frame_count(self) -> int:
        return len(self.graphs)

    @property
    def op_count(self) -> int:
        return sum(g.dynamo_ops for g in self.graphs)

    @property
    def graph_count(self) -> int:
        return len(self.graphs)

    @property
    def breaks(self) -> list[BreakSite]:
        return list(self._breaks.values())

    @property
    def graph_break_count(self) -> int:
        return len(self._breaks)

    @property
    def recompile_count(self) -> int:
        return len(self.recompiles)

    @property
    def fallback_op_count(self) -> int:
        return sum(len(g.fallback_ops) for g in self.graphs)

    @property
    def splits(self) -> list[Split]:
        """Where the program left the tape other than at a graph break (`breaks` has those):
        DDP bucket splits, graphs not on the tape, fallback ops, and frames Dynamo ran as
        Python (kind "frame run as Python", also `skipped_frames`)."""
        return self._graph_splits() + self._fallback_splits() + self._from_compiles()[0]

    @property
    def skipped_frames(self) -> list[Split]:
        return self._from_compiles()[0]

    @property
    def recompile_limits(self) -> list:
        return self._from_compiles()[1]

    @property
    def other_backends(self) -> list:
        return self._from_compiles()[2]

    @property
    def options_ignored(self) -> list[IgnoredOption]:
        return list(self._options.values())

    def _from_compiles(self):
        """Frames Dynamo compiled to no graph, having given up on one (it ran them as Python),
        recompile limits hit, and graphs of other backends, read from Dynamo's compile records
        of the time this session was active (`records.from_compiles`)."""
        return from_compiles(tp.compiles_between(self._since_us, self._until_us), self.graphs)

    def _graph_splits(self) -> list[Split]:
        """Graphs the tape could not compile, and graphs DDPOptimizer cut at bucket boundaries."""
        splits, buckets = [], {}
        for g in self.graphs:
            if g.not_on_tape:
                splits.append(Split("graph not on tape", g.frame, g.compile_id, g.not_on_tape))
            if g.ddp_bucket:
                buckets.setdefault(g.compile_id, []).append(g)
        for compile_id, graphs in buckets.items():
            if len(graphs) < 2:  # parameters that fit one bucket: the graph was not cut
                continue
            reason = f"DDPOptimizer compiled Dynamo's graph as {len(graphs)} bucket graphs"
            splits.append(
                Split("DDP bucket split", graphs[0].frame, compile_id, reason, len(graphs))
            )
        return splits

    def _fallback_splits(self) -> list[Split]:
        """One row per fallback op and source line, counted over the graphs that hold it."""
        splits: dict[tuple, Split] = {}
        for g in self.graphs:
            for op in g.fallback_ops:
                key = (g.frame, op["op"], op["source"])
                if key in splits:
                    splits[key].count += 1
                    continue
                reason = f"no tape rule for aten.{op['op']}: its VJP runs through torch.autograd"
                splits[key] = Split("fallback op", g.frame, op["source"] or "?", reason)
        return list(splits.values())

    def add(self, record: GraphRecord, facts: _CompileFacts):
        self.graphs.append(record)
        self._user_lines.update(facts.user_lines)
        resumed = facts.resumed_site
        if resumed is not None and (resumed.filename, resumed.lineno) not in self._user_lines:
            self._count_break(BreakSite(**asdict(resumed)))
        if facts.break_site is not None:  # each session counts on its own copy
            self._count_break(BreakSite(**asdict(facts.break_site)))
        recompile = facts.recompile
        if recompile is not None and all(
            r.compile_id != recompile.compile_id for r in self.recompiles
        ):
            self.recompiles.append(recompile)

    def _count_break(self, site: BreakSite) -> None:
        key = (site.filename, site.lineno, site.kind)
        if key in self._breaks:
            self._breaks[key].count += 1
        else:
            self._breaks[key] = site

    def ignore_option(self, option: str, value: str, why: str) -> None:
        key = (option, value)
        if key in self._options:
            self._options[key].count += 1
        else:
            self._options[key] = IgnoredOption(option, value, why)

    def summary(self, timings: bool = True) -> dict:
        return self._summary(*self._from_compiles(), timings=timings)

    def _summary(self, skipped, limits, others, timings: bool = True) -> dict:
        summary = {
            "graphs": self.graph_count,
            "dynamo_ops": self.op_count,
            "graph_break_sites": self.graph_break_count,
            "splits": len(self._graph_splits() + self._fallback_splits()),
            "frames_skipped": len(skipped),
            "recompiles": self.recompile_count,
            "recompile_limits": len(limits),
            "other_backend_graphs": len(others),
            "options_ignored": len(self._options),
            "fallback_ops": self.fallback_op_count,
            "graphs_not_on_tape": sum(1 for g in self.graphs if g.not_on_tape),
        }
        if timings:
            summary["compile_seconds"] = round(sum(g.compile_seconds for g in self.graphs), 4)
        return summary

    def as_dict(self, tapes: bool = True, timings: bool = True) -> dict:
        """The session as plain data (the JSON); `timings=False` leaves out compile seconds,
        which differ from run to run."""
        skipped, limits, others = self._from_compiles()
        splits = self._graph_splits() + self._fallback_splits() + skipped
        data = {
            "summary": self._summary(skipped, limits, others, timings),
            "graphs": [g.as_dict(tapes, timings) for g in self.graphs],
            "breaks": [b.as_dict() for b in self.breaks],
            "splits": [s.as_dict() for s in splits],
            "recompiles": [r.as_dict() for r in self.recompiles],
            "recompile_limits": [r.as_dict() for r in limits],
            "other_backends": [g.as_dict() for g in others],
            "options_ignored": [o.as_dict() for o in self.options_ignored],
        }
        # where a probe option was on: what it found (profiles are timings)
        numerics = [n for g in self.graphs for n in g.numerics()]
        if numerics:
            data["numerics"] = numerics
        profiles = [p for g in self.graphs for p in g.profiles()] if timings else []
        if profiles:
            data["profiles"] = profiles
        if timings and self.steps:
            data["steps"] = [s.as_dict() for s in self.steps]
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1)

    def report(self, title: str = "dynamo-tape compile report") -> str:
        from .report import markdown

        return markdown(self.as_dict(), title)


@contextlib.contextmanager
def recording_into(tracked: Tracked):
    """Inside the block, every compile is recorded into `tracked` (and any other active one)."""
    _active.append(tracked)
    try:
        yield tracked
    finally:
        _active.remove(tracked)


@contextlib.contextmanager
def track():
    """Record every `backend="tape"` compile inside the block."""
    tracked = Tracked()
    try:
        with recording_into(tracked):
            yield tracked
    finally:
        tracked._until_us = time.time_ns() // 1000


@contextlib.contextmanager
def profile_step():
    """Time the block and split it into the calls of graphs compiled with
    `options={"profile": True}` and the time outside them (profile.py's `Step`: `text()`,
    `as_dict()`); every tracker active at the end records it (the report's Steps section)."""
    step = profile.Step()
    profile.recording(step)
    try:
        yield step
    finally:
        profile.stopped(step)
        for tracked in _active:
            tracked.steps.append(step)


# ---- hooks called by the backend ---------------------------------------------------------


def graph_compiled(gm, example_inputs, compiled, seconds: float) -> None:
    _last[:] = [compiled]
    compile_id = tp.current_compile_id()
    _trace_tapes(compiled, compile_id)
    if not _active:
        return
    fallbacks = [
        {"op": op_name(e.op), "source": e.source}
        for e in compiled.tape.entries
        if e.kind == "fallback"
    ]
    record = _record(gm, compile_id, seconds, len(compiled.forward_tape.entries), fallbacks)
    record.compiled = compiled
    record.cache = getattr(compiled, "cache", "")
    _add(gm, record, compile_id)


def graph_failed(gm, example_inputs, error: Exception, seconds: float) -> None:
    if not _active:
        return
    compile_id = tp.current_compile_id()
    record = _record(gm, compile_id, seconds, 0, [])
    record.not_on_tape = f"{type(error).__name__}: {first_line(str(error))}"
    _add(gm, record, compile_id)


def last_compiled():
    return _last[0] if _last else None


def mode_ignored(mode: str | None) -> None:
    """`torch.compile(..., backend="tape", mode=...)`: modes tune inductor, the tape has one way
    to run. Warns once per mode in a process, and every active session records it per graph."""
    if mode is None:
        return
    if mode not in _warned_modes:
        _warned_modes.add(mode)
        warnings.warn(f'backend="tape" ignores mode={mode!r}: {_MODE_IGNORED}', stacklevel=2)
    for tracked in _active:
        tracked.ignore_option("mode", str(mode), _MODE_IGNORED)


_warned_modes: set[str] = set()
_MODE_IGNORED = "modes tune inductor; the tape has one way to run"


def _record(gm, compile_id, seconds, forward_entries, fallbacks) -> GraphRecord:
    reason = tp.compile_subgraph_reason(gm)
    code = tp.compiled_code()
    return GraphRecord(
        compile_id=str(compile_id) if compile_id is not None else "-",
        frame=code.co_name if code is not None else type(gm).__name__,
        dynamo_ops=sum(1 for n in gm.graph.nodes if "call" in n.op),
        forward_entries=forward_entries,
        fallback_ops=fallbacks,
        compile_seconds=seconds,
        ended_by=one_line(tp.graph_break_message(reason)) if reason is not None else "",
        ddp_bucket=_inside_ddp_optimizer(),
        frame_file=code.co_filename if code is not None else "",
    )


@dataclass
class _CompileFacts:
    """What one backend call tells every active session besides its GraphRecord."""

    break_site: BreakSite | None  # where the graph ended at a break, in the user's code
    user_lines: list[tuple[str, int]]  # every user frame on the way to that break
    resumed_site: BreakSite | None  # the break a resume frame continues after
    recompile: Recompile | None


_UNSEEN_BREAK = (
    "graph break seen only from its resume frame: the frame compiled no graph before it, so "
    "Dynamo's reason never reached the backend (TORCH_LOGS=graph_breaks shows it)"
)


def _add(gm, record: GraphRecord, compile_id) -> None:
    site, user_lines, resumed = None, [], None
    # DDPOptimizer marks its bucket boundaries as breaks inside torch: they are splits instead
    if not record.ddp_bucket:
        reason = tp.compile_subgraph_reason(gm)
        site, user_lines = _break_site(reason, tp.graph_break_message(reason) if reason else "")
        if site is not None:
            record.ended_at = f"{site.filename}:{site.lineno}"
        match = RESUME_FRAME.fullmatch(record.frame)
        if match:
            resumed = _resumed_site(record.frame_file, *match.groups())
    recompile = None
    if compile_id is not None and compile_id.frame_compile_id:
        recompile = Recompile(record.compile_id, record.frame, tp.recompile_reason() or _NO_REASON)
    facts = _CompileFacts(site, user_lines, resumed, recompile)
    for tracked in _active:
        tracked.add(record, facts)


def _resumed_site(filename: str, function: str, line: str) -> BreakSite:
    """The break a resume frame continues after: what Dynamo recorded for a break through that
    line, else only where it was."""
    reason = tp.graph_break_reason_at(filename, int(line))
    if reason is not None:
        site, _ = _break_site(reason)
        if site is not None:
            return site
    return BreakSite(
        filename, int(line), function, _UNSEEN_BREAK, line=source_line(filename, int(line))
    )


def _break_site(reason, message: str | None = None):
    """The break site of a GraphCompileReason (`message`: Dynamo's full text for it, if not the
    reason's), and every user frame on the way there: (BreakSite | None, [(file, line)])."""
    if reason is None or not reason.graph_break or not reason.user_stack:
        return None, []
    message = reason.reason if message is None else message
    user = [f for f in reason.user_stack if not f.filename.startswith(tp.TORCH_DIR)]
    frame = (user or list(reason.user_stack))[-1]
    stack = user_frames(user or [frame])
    site = BreakSite(frame.filename, frame.lineno, frame.name, message.strip(),
                     line=stack[-1]["line"], stack=stack)  # fmt: skip
    return site, [(f.filename, f.lineno) for f in user]


_NO_REASON = "(torch gave no reason)"


def _inside_ddp_optimizer() -> bool:
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_filename.endswith(tp.DDP_OPTIMIZER_FILE):
            return True
        frame = frame.f_back
    return False


def _trace_tapes(compiled, compile_id) -> None:
    """Put the tapes that run into torch's structured trace (TORCH_TRACE=dir, rendered by
    tlparse): one artifact per generated function, `dynamo_tape_forward_train`, ..."""
    program = compiled.program
    for function in program.code:
        text = functools.partial(program.final(function).text, sources=True)
        tp.trace_artifact(f"dynamo_tape_{function}", text, compile_id)
