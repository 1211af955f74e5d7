"""What the tracker records, as plain data: one GraphRecord per graph the backend compiled,
the break sites, recompiles and splits a session saw (tracker.py fills them in), and what
Dynamo's own compile records say happened without the backend: frames it ran as Python,
recompile limits hit, graphs compiled by other backends (`from_compiles`).

Each record's `as_dict()` is its JSON: Dynamo's full text, and beside it what the report shows
(`explained`: Dynamo's gb_type, explanation, hints and documentation link per graph break)."""

from __future__ import annotations

import linecache
import re
from dataclasses import asdict, dataclass, field, fields

import torch

from . import torch_private as tp

SKIPPED = "frame run as Python"  # the Split kind of a frame Dynamo compiled to no graph
# the frame Dynamo compiles for the rest of `fn` after a graph break at `line`
RESUME_FRAME = re.compile(r"torch_dynamo_resume_in_(.+)_at_(\d+)")


@dataclass
class GraphRecord:
    compile_id: str
    frame: str  # the code object Dynamo compiled (a `torch_dynamo_resume_in_*` after a break)
    dynamo_ops: int  # call nodes of Dynamo's graph: CompileCounter's op_count
    forward_entries: int
    fallback_ops: list[dict]  # {"op", "source"} of forward entries whose VJP is torch.autograd's
    compile_seconds: float
    ended_by: str  # Dynamo's reason for ending the graph, in one line
    ddp_bucket: bool = False  # one of several graphs DDPOptimizer made from one Dynamo graph
    not_on_tape: str | None = None  # why the tape could not compile it (then Dynamo's fallback)
    frame_file: str = ""  # the compiled frame's file
    ended_at: str = ""  # file:line of the graph break that ended it, if one did
    # the persistent compile cache (cache.py): hit, miss, off, or "not cacheable: <why>"
    cache: str = ""
    compiled: object = field(default=None, repr=False, compare=False)  # the CompiledGraph

    @property
    def function(self) -> str:
        """The user's function: `forward`, or `forward (resumed after line 17)`."""
        return function_label(self.frame)

    @property
    def plans(self) -> list:
        return list(self.compiled.plans.values()) if self.compiled is not None else []

    @property
    def backward_entries(self) -> int:
        # backward tapes are built per set of inputs requiring grad; the first is the one built
        # at compile time
        return len(self.compiled.program.final("backward").entries) if self.plans else 0

    @property
    def saved_bytes(self) -> int:
        return sum(_nbytes(v.meta) for v in self.plans[0].backward.saved) if self.plans else 0

    def tapes(self) -> list[str]:
        """The tapes that run: the last trace of each function generated so far, each entry run
        under a comment naming its module and the user's line."""
        if self.compiled is None:
            return []
        program = self.compiled.program
        return [program.final(function).text(sources=True) for function in program.code]

    def probes(self) -> list:
        """The probes (probes.py) of the graph and of its double backwards compiled so far."""
        if self.compiled is None:
            return []
        found = [self.compiled.probes]
        for plan in self.plans:
            if plan.recompute.graph is not None:
                found.append(plan.recompute.graph.probes)
        return found

    def profiles(self) -> list[dict]:
        """With `options={"profile": True}`: what each graph's profile (profile.py) timed."""
        label = {"compile_id": self.compile_id, "frame": self.frame, "function": self.function}
        return [
            {**label, **p.profile.as_dict(top=20)}
            for p in self.probes()
            if p.profile is not None and p.profile.functions
        ]

    def numerics(self) -> list[dict]:
        """With `options={"numerics": "float64"}`: each graph's entries that lost most
        precision (numerics.py), first."""
        label = {"compile_id": self.compile_id, "frame": self.frame, "function": self.function}
        return [
            {**label, **p.shadow.as_dict()}
            for p in self.probes()
            if p.shadow is not None and p.shadow.errors
        ]

    def as_dict(self, tapes: bool = True, timings: bool = True) -> dict:
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "compiled"}
        row.update(function=self.function)
        row.update(backward_entries=self.backward_entries, saved_bytes=self.saved_bytes)
        if not timings:  # what differs from run to run: the time, whether the cache had it
            del row["compile_seconds"], row["cache"]
        if tapes:
            row["tapes"] = self.tapes()
        return row


@dataclass
class BreakSite:
    filename: str
    lineno: int
    function: str
    reason: str  # Dynamo's full text; `kind` is its first line
    count: int = 1  # graphs compiled that ended here (once per compile, not per call)
    line: str = ""  # the source line's text
    stack: list[dict] = field(default_factory=list)  # user frames, outermost first: the calls
    # inlined on the way to the break ({filename, lineno, function, line})

    @property
    def kind(self) -> str:
        return first_line(self.reason)

    @property
    def short_reason(self) -> str:
        return one_line(self.reason)

    def as_dict(self) -> dict:
        explained = tp.graph_break_parts(self.reason)
        return {**asdict(self), "kind": self.kind, "short_reason": self.short_reason,
                "explained": explained}  # fmt: skip


@dataclass
class Recompile:
    compile_id: str
    frame: str
    reason: str  # the guard that failed, as Dynamo words it

    def as_dict(self) -> dict:
        parts = tp.recompile_reason_parts(self.reason)
        return {**asdict(self), "function": function_label(self.frame), **parts}


@dataclass
class Split:
    # "DDP bucket split" | "fallback op" | "graph not on tape" | "frame run as Python"
    kind: str
    frame: str
    where: str  # file:line, or the compile id
    reason: str
    count: int = 1
    # for a frame run as Python: the source line at `where`, and Dynamo's reasons explained
    line: str = ""
    explained: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {**asdict(self), "function": function_label(self.frame)}


@dataclass
class RecompileLimit:
    """A frame compiled as often as Dynamo's recompile limit allows: from then on the frame
    runs as Python for inputs that none of its compiled graphs' guards accept."""

    compile_id: str
    frame: str
    filename: str
    lineno: int
    recompile_reason: str  # the guard that failed last, as Dynamo words it
    reason: str  # Dynamo's message

    def as_dict(self) -> dict:
        guard = tp.recompile_reason_parts(self.recompile_reason)["guard"]
        row = {**asdict(self), "function": function_label(self.frame), "last_guard": guard}
        return {**row, "explained": tp.graph_break_parts(self.reason)}


@dataclass
class OtherBackendGraph:
    """A graph Dynamo compiled in the session that never reached the tape backend."""

    compile_id: str
    frame: str
    filename: str
    lineno: int
    dynamo_ops: int

    def as_dict(self) -> dict:
        return {**asdict(self), "function": function_label(self.frame)}


@dataclass
class IgnoredOption:
    option: str
    value: str
    why: str
    count: int = 1  # graphs compiled with it

    def as_dict(self) -> dict:
        return asdict(self)


def from_compiles(compiles: list, graphs: list[GraphRecord]):
    """What Dynamo's compile records (`tp.compiles_between`) say beyond the graphs the backend
    compiled: (frames run as Python, recompile limits hit, graphs of other backends).

    A frame Dynamo compiled to no graph after giving up on part of it, a module with backward
    hooks say, ran as Python, unless the rest of it resumed in a compiled frame (then it is a
    graph break). A compile that failed at the recompile limit is a limit hit; a compile with
    a graph that reached no backend call of ours is another backend's."""
    resumed = {m.group(1) for g in graphs if (m := RESUME_FRAME.fullmatch(g.frame))}
    seen = {g.compile_id for g in graphs}
    skipped: dict[tuple, Split] = {}
    limits, others = [], []
    for c in compiles:
        if c.compile_id in seen:
            continue
        parts = [p for r in c.reasons for p in tp.graph_break_parts(r)]
        compile_id = c.compile_id or "-"
        if c.failed and any(p["gb_type"] == tp.RECOMPILE_LIMIT_GB_TYPE for p in parts):
            reason = "\n\n".join(c.reasons)
            limit = RecompileLimit(
                compile_id, c.function, c.filename, c.lineno, c.recompile_reason, reason
            )
            limits.append(limit)
        elif c.graph_ops and not c.failed:
            graph = OtherBackendGraph(compile_id, c.function, c.filename, c.lineno, c.graph_ops)
            others.append(graph)
        elif not c.graph_ops and c.reasons and c.function not in resumed:
            filename, lineno = c.fail_filename or c.filename, c.fail_lineno or c.lineno
            where, reason = f"{filename}:{lineno}", "\n\n".join(c.reasons)
            if (c.function, where, reason) in skipped:
                skipped[c.function, where, reason].count += 1
                continue
            line = source_line(filename, lineno)
            split = Split(SKIPPED, c.function, where, reason, line=line, explained=parts)
            skipped[c.function, where, reason] = split
    return list(skipped.values()), limits, others


def function_label(frame: str) -> str:
    """`torch_dynamo_resume_in_forward_at_17` (Dynamo's frame for the rest of `forward` after
    a graph break at line 17) as `forward (resumed after line 17)`; other names as they are."""
    match = RESUME_FRAME.fullmatch(frame)
    if match is None:
        return frame
    function, line = match.groups()
    inner = RESUME_FRAME.fullmatch(function)
    return f"{inner.group(1) if inner else function} (resumed after line {line})"


def source_line(filename: str, lineno: int) -> str:
    return linecache.getline(filename, lineno).strip() if filename and lineno else ""


def user_frames(stack) -> list[dict]:
    return [
        {"filename": f.filename, "lineno": f.lineno, "function": f.name,
         "line": source_line(f.filename, f.lineno)}
        for f in stack
    ]  # fmt: skip


def _nbytes(meta) -> int:
    if not isinstance(meta, torch.Tensor):
        return 0
    numel = meta.numel()
    if isinstance(numel, torch.SymInt):
        numel = tp.size_hint(numel) or 0
    return int(numel) * meta.element_size()


def first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines()]
    return lines[0] if lines else ""


def one_line(reason: str) -> str:
    """Dynamo's first line, with its `Explanation:` line when it gives one."""
    lines = [line.strip() for line in str(reason).strip().splitlines() if line.strip()]
    explanation = next((x for x in lines if x.startswith("Explanation:")), "")
    explanation = explanation.removeprefix("Explanation:").strip()
    head = lines[0] if lines else ""
    return f"{head}: {explanation}" if explanation else head
