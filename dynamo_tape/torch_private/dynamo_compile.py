"""Every read of torch's private surface, in one place.

The rest of the package imports public torch APIs only, and this module for anything else.
Each name below says what it relies on; all of them were checked on torch 2.11.0, 2.12.1,
2.13.0, 2.14.1 and 2.15.0 (the supported range, `torch>=2.11,<2.16`) by the default suite
running on each (`scripts/test_release.sh VERSION`). Where releases differ, the switch is here.
It is longer than the package's other modules on purpose: one file to read when a torch
release changes, in sections by area (ops, dispatch, lowering, run time, subclasses, Dynamo, tools).
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
import torch._decomp
import torch._guards
import torch._logging
import torch.fx._lazy_graph_module
import torch.utils._python_dispatch
import torch.utils._pytree
import torch.utils.checkpoint
from torch._functorch.aot_autograd import aot_export_module
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.fx.experimental.proxy_tensor import make_fx
from torch.fx.experimental.symbolic_shapes import statically_known_true
from torch.utils._sympy.printers import PythonPrinter
from torch.utils.checkpoint import SAC_IGNORED_OPS, CheckpointPolicy, SelectiveCheckpointContext

# ---- ops and their schemas ---------------------------------------------------------------
# `torch.ops.aten.add.Tensor` is a torch._ops.OpOverload; its FunctionSchema (`arguments`,
# `returns`, `name`, `is_mutable`, each argument's `alias_info`, `kwarg_only`, `type`) is
# `op._schema`, its overload name `op._overloadname`, and the unbound C++ kernel `op._op`.
OpOverload = torch._ops.OpOverload


def schema(op: OpOverload):
    return op._schema


def overload_name(op: OpOverload) -> str:
    return op._overloadname


def kernel(op: OpOverload):
    """The op's C++ entry point without OpOverload's Python `__call__` (one frame cheaper)."""
    return op._op


# ---- pytrees, dispatch modes, fake tensors -------------------------------------------------
tree_map = torch.utils._pytree.tree_map
tree_flatten = torch.utils._pytree.tree_flatten
tree_unflatten = torch.utils._pytree.tree_unflatten
tree_leaves = torch.utils._pytree.tree_leaves
TorchDispatchMode = torch.utils._python_dispatch.TorchDispatchMode
# FakeTensor, FakeTensorMode: torch._subclasses.fake_tensor (imported above)


def detect_fake_mode(example_inputs):
    """The fake mode of Dynamo's example inputs (torch._guards.detect_fake_mode), else None."""
    return torch._guards.detect_fake_mode(example_inputs)


# ---- lowering: decompositions, tracing, the ATen graph -------------------------------------
# torch._decomp._core_aten_decompositions_post_autograd is the core list without the walk over
# every composite op that core_aten_decompositions() adds (0.08 s per process); it exists on
# every supported release, and the public function is the fallback should it go.
core_aten_decompositions = getattr(
    torch._decomp,
    "_core_aten_decompositions_post_autograd",
    torch._decomp.core_aten_decompositions,
)
# aot_export_module(gm, args, trace_joint=False, decompositions=...) -> (graph, signature);
# `signature.user_inputs_to_mutate` maps output names to the input names they update.
# make_fx(fn, decomposition_table=..., tracing_mode="real") under a fake mode.
# statically_known_true(expr): a size comparison known without guarding on it.
# (all imported above)
# A GraphModule whose Python code is generated on first use (torch.fx._lazy_graph_module).
LazyGraphModule = torch.fx._lazy_graph_module._LazyGraphModule
# The value of a `get_attr` node: `gm.a.b` for the target "a.b".
get_attr = torch.fx.graph_module._get_attr
# A custom torch.autograd.Function in Dynamo's graph: autograd_function_apply(fwd_body,
# bwd_body, *operands, non_differentiable_idx=[...], saved_for_backward_idx=[...]); the bodies
# are submodules. torch 2.11 and 2.12 return extra forward values in the outputs tuple, which
# the backward body takes cotangent slots for (their example value is None).
autograd_function_apply = torch.ops.higher_order.autograd_function_apply
_ONCE_DIFFERENTIABLE = re.compile(
    r"autograd[/\\]function\.py\", line \d+, in wrapper\n.*\n(?:.*\n)*?.*in backward"
)


def is_once_differentiable(backward_body) -> bool:
    """Whether a custom Function's backward is `@once_differentiable`: Dynamo inlines the
    decorator, so its ops' stack traces pass through its `wrapper` in torch/autograd/function.py
    (checked on 2.11, 2.13, 2.15; the graph carries no other mark)."""
    traces = (n.meta.get("stack_trace") or "" for n in backward_body.graph.nodes)
    return any(_ONCE_DIFFERENTIABLE.search(t) for t in traces)


# A torch.utils.checkpoint region: tag_activation_checkpoint(body, *operands, use_reentrant=...);
# the body is a submodule.
tag_activation_checkpoint = torch.ops.higher_order.tag_activation_checkpoint


class NotSelective(Exception):
    """A checkpoint's `context_fn` that is not `create_selective_checkpoint_contexts(...)`."""


def checkpoint_policy(body: torch.fx.GraphModule):
    """The selective-checkpointing policy of a checkpointed region's body, else None. Dynamo
    keeps the region's `context_fn` in `body.meta["_checkpoint_context_fn"]`; that of
    `create_selective_checkpoint_contexts(policy)` makes a forward context (a
    `torch.utils.checkpoint._CachingTorchDispatchMode`) holding the policy as `.policy_fn`
    (a list of ops given to it made into a function). Any other context_fn: NotSelective."""
    context_fn = body.meta.get("_checkpoint_context_fn")
    if context_fn is None:
        return None
    forward_context, _ = context_fn()
    if not isinstance(forward_context, torch.utils.checkpoint._CachingTorchDispatchMode):
        raise NotSelective(context_fn)
    return forward_context.policy_fn


def checkpoint_policy_says_save(policy, func, args, kwargs, out) -> bool:
    """What the policy says of one op of the region's forward: save (MUST_SAVE, PREFER_SAVE, or
    True), or recompute. The ops the policy is not asked about (torch.utils.checkpoint's
    SAC_IGNORED_OPS: detach, metadata queries) are recomputed. torch 2.11's
    SelectiveCheckpointContext takes no `op_output`."""
    if func in SAC_IGNORED_OPS:
        return False
    try:
        context = SelectiveCheckpointContext(is_recompute=False, op_output=out)
    except TypeError:
        context = SelectiveCheckpointContext(is_recompute=False)
    said = policy(context, func, *args, **kwargs)
    if isinstance(said, bool):
        return said
    return said in (CheckpointPolicy.MUST_SAVE, CheckpointPolicy.PREFER_SAVE)


def is_register_hook(target) -> bool:
    """`torch.ops.higher_order.register_hook(y, hook_body)`: a tensor hook registered inside the
    graph (torch 2.13 on; the op exists only once Dynamo has made one; 2.11 and 2.12 hand a hook
    over as a custom autograd.Function)."""
    return target is getattr(torch.ops.higher_order, "register_hook", None) is not None


# torch.cond(pred, true_fn, false_fn, operands): cond(pred, true_graph, false_graph, operands)
cond = torch.ops.higher_order.cond
# torch._higher_order_ops.map(f, xs, *args): map_impl(body_graph, [xs...], [args...])
map_impl = torch.ops.higher_order.map_impl
# while_loop(cond_fn, body_fn, carried, additional): while_loop(cond_graph, body_graph,
# (carried...), (additional...)), the functions taking the carried then the additional values
while_loop = getattr(torch.ops.higher_order, "while_loop", None)
# mark_compile_region(fn) (torch._higher_order_ops.invoke_subgraph): at each call
# invoke_subgraph(subgraph, identifier, *operands), one identifier per region
invoke_subgraph = getattr(torch.ops.higher_order, "invoke_subgraph", None)
# torch.nn.attention.flex_attention: flex_attention(q, k, v, score_mod, block_mask (sizes,
# tensors, None, the mask_mod graph), scale, kernel_options, score_mod_other_buffers,
# mask_mod_other_buffers) -> (out, logsumexp, ...); called with plain functions for the two
# graphs, its CPU kernel vmaps them over the scores as eager's does
flex_attention = getattr(torch.ops.higher_order, "flex_attention", None)
# Dynamo writes `with torch.no_grad():` inside a graph as calls of this function.
set_grad_enabled = torch._C._set_grad_enabled


def symbolic_expr(s):
    """The sympy expression of a SymInt / SymFloat / SymBool (`s.node.expr`)."""
    return s.node.expr


def size_hint(s) -> int | None:
    """The example value behind a symbolic size, or None (an unbacked size has none)."""
    return s.node.hint if s.node.has_hint() else None


# PythonPrinter (torch.utils._sympy.printers) prints a size expression as Python code.


# ---- tensors at run time ------------------------------------------------------------------
def storage_id(x: torch.Tensor) -> int:
    """One number per storage: views share it. A wrapper subclass (DTensor) has none of its
    own: its first inner tensor's (`__tensor_flatten__` names them, and from torch 2.13 a
    DTensor's DeviceMesh too)."""
    if is_traceable_wrapper_subclass(x):
        inner = (getattr(x, name) for name in x.__tensor_flatten__()[0])
        return storage_id(next(t for t in inner if isinstance(t, torch.Tensor)))
    return x.untyped_storage()._cdata


def is_alias_of(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch._C._is_alias_of(a, b)


def version(x: torch.Tensor) -> int | None:
    """The tensor's version counter: bumped by every in-place write. None for a tensor made
    under `torch.inference_mode()`, which has none (and is written only inside that mode)."""
    return None if x.is_inference() else x._version


def versions(tensors) -> list:
    """`version` of each, at one attribute read a tensor where none is an inference tensor
    (a training step reads them for every input its double backward would recompute from)."""
    try:
        return [x._version for x in tensors]
    except RuntimeError:  # "Inference tensors do not track version counter"
        return [version(x) for x in tensors]


foreach_copy_ = torch._foreach_copy_  # copy_ of many tensors in one call


def is_functorch_wrapped(x) -> bool:
    return isinstance(x, torch.Tensor) and torch._C._functorch.is_functorch_wrapped_tensor(x)


functorch_transforms_active = torch._C._are_functorch_transforms_active


def c_apply(function_class):
    """`function_class.apply` without `Function.apply`'s Python wrapper, which checks every
    argument for a dead functorch wrapper (autograd's C++ `_FunctionBase.apply`)."""
    return torch._C._FunctionBase.__dict__["apply"].__get__(None, function_class)


# The Python bindings where an ATen op may have a cheaper entry point than `op._op`
# (torch.addmm, torch._C._nn.gelu, Tensor.expand): searched by name, in this order.
BINDINGS = (
    torch._C._VariableFunctions,
    torch._C._nn,
    torch._C._linalg,
    torch._C._special,
    torch._C._fft,
    torch._C.TensorBase,  # methods: Tensor.expand(self, size)
)

# ---- tensor subclasses ---------------------------------------------------------------------
# A subclass Dynamo traces through: it has __tensor_flatten__ / __tensor_unflatten__
# (torch.utils._python_dispatch.is_traceable_wrapper_subclass).
is_traceable_wrapper_subclass = torch.utils._python_dispatch.is_traceable_wrapper_subclass


def real_object(x):
    """The object behind a FakeScriptObject (torch._library.fake_class_registry; its
    `real_obj`): Dynamo's example value of a DeviceMesh graph input from torch 2.13 on."""
    return getattr(x, "real_obj", x) if type(x).__name__ == "FakeScriptObject" else x


# Dynamo's names for DTensor's calls in its graph: from torch 2.13 `DTensor.from_local` itself
# and the methods by name; on 2.11 and 2.12, closures over the constant arguments, named
# "prim from_local", "prim_redistribute", "prim_to_local" (torch/_dynamo/variables/).
_DTENSOR_METHODS = {"redistribute", "to_local"}
_DTENSOR_CLOSURES = {
    "prim from_local": "from_local",
    "prim_redistribute": "redistribute",
    "prim_to_local": "to_local",
}


def dtensor_call_kind(node) -> str | None:
    """ "from_local", "redistribute" or "to_local" for a node of Dynamo's graph making that
    DTensor call, else None."""
    if node.op == "call_method":
        return node.target if node.target in _DTENSOR_METHODS else None
    if node.op != "call_function":
        return None
    from torch.distributed.tensor import DTensor

    if node.target is DTensor.from_local:
        return "from_local"
    return _DTENSOR_CLOSURES.get(getattr(node.target, "__name__", None))


# ---- Dynamo: what its graph's inputs are --------------------------------------------------
# Dynamo writes where a value comes from as a Source, which names itself as the guards read it
# (`L['self']._modules['conv1']._parameters['weight']`, `L['x']`): `source.name()` (a method
# on the supported releases; a property on some earlier ones).


def _source_text(source) -> str | None:
    name = getattr(source, "name", None)
    try:
        text = name() if callable(name) else name
    except Exception:  # noqa: BLE001 - a source that cannot name itself
        return None
    return text if isinstance(text, str) and text else None


def input_source(node) -> str | None:
    """Where a placeholder of Dynamo's graph comes from, as Dynamo writes it: the source of
    its `node.meta["grapharg"]` (a GraphArg), else of `node._dynamo_source`; None if neither."""
    grapharg = node.meta.get("grapharg")
    source = getattr(grapharg, "source", None) or getattr(node, "_dynamo_source", None)
    return _source_text(source)


def attribute_sources(gm) -> dict[str, str]:
    """For the tensors Dynamo's graph reads as attributes (`get_attr`: a compiled optimizer
    step's parameters and state), attribute name -> where it comes from, as Dynamo writes it:
    the graph module's `_param_name_to_source`."""
    sources = getattr(gm, "_param_name_to_source", None) or {}
    return {name: text for name, s in sources.items() if (text := _source_text(s))}


# ---- Dynamo: the compile in progress ------------------------------------------------------
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


# ---- tools ------------------------------------------------------------------------------
def opinfo_database() -> list:
    """PyTorch's OpInfo entries (torch.testing._internal, which needs `expecttest`)."""
    from torch.testing._internal.common_methods_invocations import op_db

    return op_db


__all__ = [
    "BINDINGS",
    "DDP_OPTIMIZER_FILE",
    "FakeTensor",
    "FakeTensorMode",
    "LazyGraphModule",
    "OpOverload",
    "PythonPrinter",
    "TORCH_DIR",
    "TorchDispatchMode",
    "aot_export_module",
    "attribute_sources",
    "autograd_function_apply",
    "c_apply",
    "compile_subgraph_reason",
    "compiled_code",
    "compiles_between",
    "compiling_a_wrapped_module",
    "graph_break_message",
    "graph_break_parts",
    "graph_break_reason_at",
    "cond",
    "core_aten_decompositions",
    "current_compile_id",
    "default_backend",
    "dtensor_call_kind",
    "detect_fake_mode",
    "flex_attention",
    "foreach_copy_",
    "get_attr",
    "functorch_transforms_active",
    "invoke_subgraph",
    "input_source",
    "is_alias_of",
    "is_functorch_wrapped",
    "is_once_differentiable",
    "is_register_hook",
    "is_traceable_wrapper_subclass",
    "kernel",
    "make_fx",
    "map_impl",
    "opinfo_database",
    "overload_name",
    "real_object",
    "RECOMPILE_LIMIT_GB_TYPE",
    "recompile_limit",
    "recompile_reason",
    "recompile_reason_parts",
    "schema",
    "set_grad_enabled",
    "shorten_filename",
    "size_hint",
    "statically_known_true",
    "tag_activation_checkpoint",
    "checkpoint_policy",
    "checkpoint_policy_says_save",
    "NotSelective",
    "storage_id",
    "symbolic_expr",
    "trace_artifact",
    "tree_flatten",
    "tree_leaves",
    "tree_map",
    "tree_unflatten",
    "version",
    "versions",
    "while_loop",
]
