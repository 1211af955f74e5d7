"""What the tracker records, as plain data: one GraphRecord per graph the backend compiled,
the break sites, recompiles and splits a session saw (tracker.py fills them in)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from . import torch_private as tp


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
    compiled: object = field(default=None, repr=False, compare=False)  # the CompiledGraph

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
        """The tapes that run: the last trace of each function generated so far."""
        if self.compiled is None:
            return []
        program = self.compiled.program
        return [program.final(function).text() for function in program.code]

    def as_dict(self, tapes: bool = True) -> dict:
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "compiled"}
        row.update(backward_entries=self.backward_entries, saved_bytes=self.saved_bytes)
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

    @property
    def kind(self) -> str:
        return first_line(self.reason)

    @property
    def short_reason(self) -> str:
        return one_line(self.reason)

    def as_dict(self) -> dict:
        return {**asdict(self), "kind": self.kind, "short_reason": self.short_reason}


@dataclass
class Recompile:
    compile_id: str
    frame: str
    reason: str  # the guard that failed, as Dynamo words it


@dataclass
class Split:
    # "graph break" | "DDP bucket split" | "fallback op" | "graph not on tape" | "frame run
    # as Python"
    kind: str
    frame: str
    where: str  # file:line, or the compile id
    reason: str
    count: int = 1


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
