"""Dynamo: the compile in progress, and what it leaves behind.

Relies on what Dynamo holds while it compiles a frame and calls the backend: the compile id
(torch._guards.CompileContext), the code being compiled (symbolic_convert's
InstructionTranslator), why the graph ended (`gm.compile_subgraph_reason`,
torch._dynamo.utils.graph_break_reasons, the `exc` of `jump_graph_break` on the stack), the
metrics context and compilation metrics (torch._dynamo.utils), and its config; on the text of
its graph-break and guard-failure messages; on torch's folder layout, its structured trace
(torch._logging) and torch.utils._traceback. Where releases differ: the default backend is set
through torch.compiler from 2.13, by wrapping torch.compile on 2.11 and 2.12.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import sys
import textwrap

import torch
import torch._guards
import torch._logging

TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
# DDPOptimizer's graph splitting runs from this file of torch's
DDP_OPTIMIZER_FILE = os.path.join("_dynamo", "backends", "distributed.py")


def compile_subgraph_reason(gm):
    """Why Dynamo ended this graph: `.reason`, `.user_stack` (frames from the compiled one to the
    innermost inlined one), `.graph_break`; None for a graph Dynamo did not make."""
    return getattr(gm, "compile_subgraph_reason", None)


def current_compile_id():
    """ "frame/recompile" of the compile in progress ("0/1": frame 0's second compile), with
    `.frame_compile_id`; None outside a Dynamo compile."""
    return torch._guards.CompileContext.current_compile_id()


def compiled_code():
    """The code object Dynamo is compiling (after a break, the `torch_dynamo_resume_in_*`
    frame), or None outside a Dynamo compile."""
    from torch._dynamo.symbolic_convert import InstructionTranslator

    try:
        tx = InstructionTranslator.current_tx()
    except AttributeError:  # the backend was called directly
        return None
    return tx.f_code if tx is not None else None


# Dynamo enters a torch.nn module compiled whole (an `nn.Sequential`), whose own code it does
# not trace from, through a wrapper frame of its own: `wrap_inline`'s `inner(*args, **kwargs)`,
# which calls the module, its closure's `fn`. Its sources then say `L['fn']` for the module.
_WRAPPER_FILE = os.path.join("_dynamo", "external_utils.py")


def compiling_a_wrapped_module() -> bool:
    """Whether the frame being compiled is Dynamo's wrapper around a module's call."""
    code = compiled_code()
    return code is not None and code.co_name == "inner" and code.co_filename.endswith(_WRAPPER_FILE)


def recompile_reason() -> str | None:
    """The guard that failed, for the compile in progress: its metrics context holds it
    (`get_compilation_metrics()[i].recompile_reason` has it only once the compile ends)."""
    import torch._dynamo.utils

    metrics = getattr(torch._dynamo.utils.get_metrics_context(), "_metrics", {})
    return metrics.get("recompile_reason")


def graph_break_message(reason) -> str:
    """Dynamo's full message for why this graph ended (`reason`: `compile_subgraph_reason`).
    A call Dynamo cannot trace ends the graph with its Unsupported's message as the reason; a
    data-dependent branch only with `generic_jump TensorVariable()`, while the Unsupported with
    the message (gb_type, explanation, hints) is the local `exc` of symbolic_convert's
    `jump_graph_break`, which is on the stack while the graph compiles (2.11 to 2.15)."""
    text = reason.reason
    if not text.startswith("generic_jump"):
        return text
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "jump_graph_break" and code.co_filename.startswith(TORCH_DIR):
            message = getattr(frame.f_locals.get("exc"), "msg", None)
            return message if isinstance(message, str) and message else text
        frame = frame.f_back
    return text


def graph_break_reason_at(filename: str, lineno: int):
    """The latest GraphCompileReason of a break that passed through filename:lineno, else None:
    every one Dynamo makes is appended to `torch._dynamo.utils.graph_break_reasons` (cleared by
    `torch._dynamo.reset()`), also that of a break whose graph was empty and so never reached a
    backend."""
    import torch._dynamo.utils

    for reason in reversed(torch._dynamo.utils.graph_break_reasons):
        if any((f.filename, f.lineno) == (filename, lineno) for f in reason.user_stack or ()):
            return reason
    return None


# torch._dynamo.exc.format_graph_break_message (`unimplemented`, graph-break registry): gb_type on
# the first line, then "  Explanation: ...", "  Hint: ..." lines, "  Developer debug context:
# ...", and " For more details about this graph break, please visit: URL" where the registry
# has the gb_type; a graph break while handling another appends its message after this line.
_ANOTHER_BREAK = "*** While handling this graph break, another graph break occurred: ***"
_FIELDS = {
    "Explanation:": "explanation",
    "Hint:": "hints",
    "Developer debug context:": "context",
    "For more details about this graph break, please visit:": "doc_url",
}


def graph_break_parts(message: str) -> list[dict]:
    """Dynamo's message as {gb_type, explanation, hints, context, doc_url}, one per graph break
    it chains (the first is the one that happened first). A message in no such format is its
    first line as gb_type and the rest as explanation."""
    return [_graph_break_part(part) for part in str(message).split(_ANOTHER_BREAK)]


def _graph_break_part(text: str) -> dict:
    lines = text.strip("\n").splitlines()
    part = {"gb_type": lines[0].strip() if lines else "", "explanation": "", "hints": []}
    part.update(context="", doc_url="")
    field, first, rest = "explanation", "", []

    def close():
        value = (first + "\n" + textwrap.dedent("\n".join(rest))).strip()
        if field == "hints":
            part["hints"].append(" ".join(value.split()))
        elif field == "explanation":
            part["explanation"] = value
        elif value:
            part[field] = " ".join(value.split())

    for line in lines[1:]:
        stripped = line.strip()
        key = next((k for k in _FIELDS if stripped.startswith(k)), None)
        if key is None:
            rest.append(line)
            continue
        close()
        field, first, rest = _FIELDS[key], stripped[len(key) :].strip(), []
    close()
    return part


# torch._dynamo.guards.get_guard_fail_reason_helper: "<compile id>: <guard>  # <source>  # <file
# shortened>:<line> in <fn>", then (from 2.11) "User stack trace:" and traceback lines.
_STACK_LINE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<fn>\S+)')


def recompile_reason_parts(reason: str) -> dict:
    """A recompile reason as {failed_compile, guard, filename, lineno}: the compile whose guard
    failed ("0/0"), the guard alone, and the user line it came from ("" and 0 where not said)."""
    first = str(reason).strip().splitlines()[0] if str(reason).strip() else ""
    failed, sep, guard = first.partition(": ")
    if not sep or not re.fullmatch(r"\d+/\d+", failed):
        failed, guard = "", first
    guard = guard.split("  #")[0].strip()
    found = list(_STACK_LINE.finditer(str(reason)))
    filename, lineno = (found[-1]["file"], int(found[-1]["line"])) if found else ("", 0)
    return {"failed_compile": failed, "guard": guard, "filename": filename, "lineno": lineno}


# The gb_type of `unimplemented` when a frame has been compiled `recompile_limit` times (or
# `accumulated_recompile_limit`): convert_frame.py, the same on 2.11 to 2.15.
RECOMPILE_LIMIT_GB_TYPE = "Dynamo recompile limit exceeded"


@dataclasses.dataclass
class FrameCompile:
    compile_id: str | None
    function: str
    filename: str
    lineno: int
    graph_ops: int
    reasons: list[str]  # why Dynamo restarted or gave up on the frame
    failed: bool = False  # Dynamo gave up on the frame (an exception, a frame skipped)
    fail_filename: str = ""  # the user line it gave up at, where it says
    fail_lineno: int = 0
    recompile_reason: str = ""  # the guard that failed, for a recompile


def compiles_between(start_us: int, end_us: int | None) -> list[FrameCompile]:
    """Dynamo's record of each frame compile begun from `start_us` until `end_us` (microseconds
    since the epoch; None: now): `torch._dynamo.utils.get_compilation_metrics()`, a bounded
    deque (the last 64) of CompilationMetrics (compile_id, co_name, co_filename,
    co_firstlineno, graph_op_count, restart_reasons, fail_type, fail_reason,
    fail_user_frame_filename, fail_user_frame_lineno, recompile_reason, is_runtime,
    start_time_us; the same on every supported release). A compile that fails before Dynamo
    looks at the code (the recompile limit) has no co_name: it is taken from the frame's other
    compiles. Compiles at run time (a lazily compiled backward) are left out."""
    import torch._dynamo.utils

    metrics = [
        m
        for m in torch._dynamo.utils.get_compilation_metrics()
        if not m.is_runtime
        and start_us <= (m.start_time_us or 0)
        and (end_us is None or m.start_time_us < end_us)
    ]
    names = {}
    for m in metrics:
        if m.co_name and m.compile_id:
            names[m.compile_id.split("/")[0]] = (m.co_name, m.co_filename, m.co_firstlineno)
    compiles = []
    for m in metrics:
        frame_id = (m.compile_id or "").split("/")[0]
        name, filename, lineno = names.get(frame_id, (None, None, None))
        compiles.append(
            FrameCompile(
                m.compile_id,
                m.co_name or name or "?",
                m.co_filename or filename or "?",
                m.co_firstlineno or lineno or 0,
                m.graph_op_count or 0,
                sorted(m.restart_reasons or ()) + ([m.fail_reason] if m.fail_reason else []),
                failed=bool(m.fail_type),
                fail_filename=m.fail_user_frame_filename or "",
                fail_lineno=m.fail_user_frame_lineno or 0,
                recompile_reason=m.recompile_reason or "",
            )
        )
    return compiles


def recompile_limit(limit: int):
    """Inside the block, Dynamo compiles a frame at most `limit` times (a context manager:
    `torch._dynamo.config.patch(recompile_limit=...)`; the default is 8)."""
    import torch._dynamo.config

    return torch._dynamo.config.patch(recompile_limit=limit)


def shorten_filename(path: str) -> str:
    """A path as Dynamo's guard comments show it: without its common prefix with torch's folder
    (torch.utils._traceback.shorten_filename)."""
    import torch.utils._traceback

    return torch.utils._traceback.shorten_filename(path)


def trace_artifact(name: str, payload_fn, compile_id) -> None:
    """A string artifact in torch's structured trace (TORCH_TRACE=dir; tlparse shows it)."""
    torch._logging.trace_structured(
        "artifact",
        metadata_fn=lambda: {"name": name, "encoding": "string"},
        payload_fn=payload_fn,
        compile_id=compile_id,
    )


@contextlib.contextmanager
def outside_tracing():
    """Inside the block, torch sees no Dynamo compile under way (no TracingContext): `torch.load`
    inside a backend otherwise finds Dynamo's fake mode and loads meta tensors."""
    with torch._guards.tracing(None):
        yield


@contextlib.contextmanager
def default_backend(backend):
    """Inside the block, `torch.compile()` calls that name no backend use `backend` (None: leave
    torch's default as it is)."""
    if backend is None:
        yield
    elif hasattr(torch.compiler, "set_default_backend"):  # torch 2.13 on
        previous = torch.compiler.get_default_backend()
        torch.compiler.set_default_backend(backend)
        try:
            yield
        finally:
            torch.compiler.set_default_backend(previous)
    else:  # torch 2.11, 2.12: the default is torch.compile's keyword default, "inductor"
        compile_ = torch.compile

        @functools.wraps(compile_)
        def compile_with_default(*args, backend=backend, **kwargs):
            return compile_(*args, backend=backend, **kwargs)

        torch.compile = compile_with_default
        try:
            yield
        finally:
            torch.compile = compile_
