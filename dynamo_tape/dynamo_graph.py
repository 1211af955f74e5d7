"""Dynamo's graph as the lowering sees it: read once into plain facts, or copied.

`read(gm)` walks Dynamo's torch-level FX graph once and returns what the lowering needs to know
of it (`DynamoGraph`): Dynamo's own values of the inputs and their fake mode, the nodes inside
`torch.no_grad()` regions, the inputs written only there, the outputs that are inputs, those
that are fresh tensors, whether the graph may mutate at all, and what in it only the recorder
can lower. The lowering reads those facts, not the graph's metadata.

The rest reads or copies graphs where facts would not do: the lowering traces a copy without
the grad-mode calls (`without_grad_mode_changes`: the facts say where the regions were), the
backend hands it a copy whose attributes are inputs (`lift_attributes`), and the recorder runs
the bodies of higher-order ops, which are graphs of their own (`example_values`,
`function_name`). `source_of` reads the user's line off a node, of Dynamo's graph or of an
ATen graph recorded from it (its nodes carry Dynamo's stack traces), for the `LoweringError`s
every stage of the lowering raises, and for the tape's entries; `module_of` the module path it
ran in (`layer1.0.conv1`). `input_name` names an input as the user does (`conv1.weight`, `x`).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import torch
import torch.fx

from . import torch_private as tp
from .subclasses import inner_tensors, is_dtensor


class LoweringError(RuntimeError):
    """The graph could not be lowered to a tape."""


@dataclass(frozen=True)
class Seen:
    """A node of some kind, as an error names it: the user's line it comes from, and a name."""

    source: str | None
    name: str = ""


@dataclass(frozen=True)
class DynamoGraph:
    """What the lowering knows of one of Dynamo's graphs; see the module docstring."""

    inputs: list  # Dynamo's own value of each input: a fake tensor, or a size
    input_names: list  # what each input is to the user (`conv1.weight`, `x`), None if unknown
    # their fake mode, or None where they are not all fake tensors of one mode with static sizes
    fake_mode: object
    no_grad: frozenset[str]  # names of the nodes inside `torch.no_grad()` regions
    # inputs whose in-place updates (`w.add_(1)`, `w -= lr * g`) all sit in no-grad regions:
    # autograd does not record them, as in eager
    written_under_no_grad: frozenset[int]
    returns_input: dict[int, int]  # output position -> input index, for outputs that ARE it
    fresh_outputs: list[int]  # output positions whose values are tensors of their own, no views
    may_mutate: bool  # a cheap look: BatchNorm, `x.add_(1)`, `x += 1`, `inplace=True`
    subclass: Seen | None  # the first traceable tensor subclass other than DTensor, by name
    # what make_fx and aot_export_module cannot lower, the first of each kind
    dtensor: Seen | None
    custom_function: Seen | None  # named by the Function's class
    flex_attention: Seen | None


def read(gm: torch.fx.GraphModule) -> DynamoGraph:
    """The facts of one of Dynamo's graphs, in one walk over its nodes."""
    inputs = example_values(gm)
    placeholders = {n: i for i, n in enumerate(gm.graph.find_nodes(op="placeholder"))}
    no_grad, enabled = set(), True
    under_no_grad: dict[int, set[bool]] = {}  # input index -> where each of its writes sits
    may_mutate = False
    subclass, dtensors, function, attention = None, [], None, None
    for node in gm.graph.nodes:
        # Dynamo writes a `torch.no_grad()` region as `torch._C._set_grad_enabled` calls
        if node.op == "call_function" and node.target is tp.set_grad_enabled:
            enabled = bool(node.args[0])
        elif not enabled:
            no_grad.add(node.name)
        if node.op in ("call_function", "call_method"):
            in_place = in_place_call(node)
            first = node.args[0] if node.args else None
            if in_place and first in placeholders:
                under_no_grad.setdefault(placeholders[first], set()).add(node.name in no_grad)
            may_mutate = may_mutate or (
                in_place or "batch_norm" in _name_of(node) or node.kwargs.get("inplace") is True
            )
        for v in tp.tree_leaves(node.meta.get("example_value")):
            if not tp.is_traceable_wrapper_subclass(v):
                continue
            if is_dtensor(v):
                dtensors.append(node)
            elif subclass is None:
                kind = type(v)
                subclass = Seen(source_of(node), f"{kind.__module__}.{kind.__qualname__}")
        if node.op == "call_function" and node.target is tp.autograd_function_apply:
            function = function or Seen(source_of(node), function_name(node)[0])
        if tp.flex_attention is not None and node.target is tp.flex_attention:
            attention = attention or Seen(source_of(node, outside_torch=True))
    outputs = _output_values(gm)
    root = module_root()
    return DynamoGraph(
        inputs=inputs,
        input_names=[input_name(n, root) for n in placeholders],
        fake_mode=_fake_mode_of(inputs),
        no_grad=frozenset(no_grad),
        written_under_no_grad=frozenset(i for i, w in under_no_grad.items() if w == {True}),
        # in Dynamo's graph an in-place op's result carries its input's own fake tensor
        # (`self.n += 1` makes Dynamo return the buffer itself)
        returns_input={
            position: index
            for position, value in enumerate(outputs)
            for index, x in enumerate(inputs)
            if isinstance(value, torch.Tensor) and value is x
        },
        fresh_outputs=[
            p for p, v in enumerate(outputs) if isinstance(v, torch.Tensor) and v._base is None
        ],
        may_mutate=may_mutate,
        subclass=subclass,
        # a DTensor node's line, the first one known
        dtensor=Seen(next(filter(None, map(source_of, dtensors)), None)) if dtensors else None,
        custom_function=function,
        flex_attention=attention,
    )


def example_values(gm: torch.fx.GraphModule) -> list:
    """Dynamo's own value of each graph input: a fake tensor, or a size."""
    return [n.meta.get("example_value") for n in gm.graph.find_nodes(op="placeholder")]


def _output_values(gm: torch.fx.GraphModule) -> list:
    """Dynamo's own value of each graph output (None for a constant)."""
    (output,) = gm.graph.find_nodes(op="output")
    return [
        n.meta.get("example_value") if isinstance(n, torch.fx.Node) else None
        for n in tp.tree_leaves(output.args[0])
    ]


def _fake_mode_of(fakes):
    """The fake mode of Dynamo's input values, or None where they are not all fake tensors of
    one mode (Dynamo lifts only tensors and sizes, and sizes are symbolic)."""
    values = [x for x in fakes if tp.real_object(x) is x]  # not a DeviceMesh input
    parts = [t for x in values for t in inner_tensors(x) or [x]]  # a DTensor's local tensor
    modes = {getattr(x, "fake_mode", None) for x in parts}
    return modes.pop() if len(modes) == 1 and not any(map(symbolic, parts)) else None


def symbolic(x) -> bool:
    """Whether a value has a size, stride or value known only at run time."""
    if isinstance(x, torch.Tensor):
        return any(isinstance(s, torch.SymInt) for s in (*x.shape, *x.stride(), x.storage_offset()))
    return isinstance(x, torch.SymInt | torch.SymFloat | torch.SymBool)


_INPLACE_OPERATORS = {
    operator.setitem,
    operator.iadd,
    operator.isub,
    operator.imul,
    operator.itruediv,
    operator.ifloordiv,
    operator.imod,
    operator.ipow,
    operator.iand,
    operator.ior,
    operator.ixor,
    operator.ilshift,
    operator.irshift,
    operator.imatmul,
}


def in_place_call(node: torch.fx.Node) -> bool:
    """`x.add_(1)`, `torch.relu_(x)`, `x += 1`: a call of Dynamo's graph that writes into its
    first argument."""
    name = _name_of(node)
    return (name.endswith("_") and not name.endswith("__")) or (
        node.op == "call_function" and node.target in _INPLACE_OPERATORS
    )


def _name_of(node: torch.fx.Node) -> str:
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")


def _copy(gm: torch.fx.GraphModule) -> torch.fx.Graph:
    """A copy of the graph, same node names and metadata, to rewrite."""
    graph = torch.fx.Graph()
    graph.output(graph.graph_copy(gm.graph, {}))
    return graph


def without_grad_mode_changes(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A copy of Dynamo's graph without its `_set_grad_enabled` calls (same node names): the
    lowering traces forward only, and the tape stops gradients itself (`DynamoGraph.no_grad`);
    switched on while tracing, grad mode made aot_export_module trace a joint graph."""
    if not gm.graph.find_nodes(op="call_function", target=tp.set_grad_enabled):
        return gm
    graph = _copy(gm)
    for node in graph.find_nodes(op="call_function", target=tp.set_grad_enabled):
        graph.erase_node(node)
    return torch.fx.GraphModule(gm, graph)


def lift_attributes(gm: torch.fx.GraphModule) -> tuple[torch.fx.GraphModule, list]:
    """Dynamo's graph with its parameter and buffer attributes (`get_attr` nodes: a compiled
    optimizer step's parameters and state) made trailing inputs, and those tensors: the
    caller passes them after the graph's own inputs, so the tape reads and updates the live
    tensors rather than constants of the moment it was compiled."""
    owned = {name for name, _ in gm.named_parameters()} | {n for n, _ in gm.named_buffers()}
    lifted = [n for n in gm.graph.find_nodes(op="get_attr") if n.target in owned]
    if not lifted:
        return gm, []
    sources = tp.attribute_sources(gm)
    graph = _copy(gm)
    last = list(graph.find_nodes(op="placeholder"))[-1:]
    tensors = []
    for node in [n for n in graph.find_nodes(op="get_attr") if n.target in owned]:
        anchor = last[0].next if last else next(iter(graph.nodes))
        with graph.inserting_before(anchor):
            placeholder = graph.placeholder(node.name)
        # what the attribute is, for `input_name`: where it comes from, else its name
        placeholder.meta.update(node.meta, attribute=sources.get(node.target, node.target))
        node.replace_all_uses_with(placeholder)
        graph.erase_node(node)
        last = [placeholder]
        tensors.append(tp.get_attr(gm, node.target))
    return torch.fx.GraphModule(gm, graph), tensors


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def source_of(node: torch.fx.Node, outside_torch: bool = False) -> str | None:
    """`file:line in function` of the user code that produced a node (its innermost frame;
    `outside_torch`: the innermost outside torch, where torch's own wrapper made the node)."""
    frames = _FRAME.findall(node.meta.get("stack_trace") or "")
    if outside_torch:
        frames = [f for f in frames if not f[0].startswith(tp.TORCH_DIR)]
    if not frames:
        return None
    filename, line, fn = frames[-1]
    return f"{filename}:{line} in {fn}"


def module_root() -> str:
    """What Dynamo's sources call the module being compiled, for `readable` to leave out:
    `self`, or `fn` where Dynamo entered it through a wrapper (a torch.nn module compiled
    whole, such as an `nn.Sequential`)."""
    return "fn" if tp.compiling_a_wrapped_module() else "self"


def module_of(node: torch.fx.Node, root: str = "self") -> str | None:
    """The path of the innermost module a node ran in, as `named_modules` writes it
    (`layer1.0.conv1`; Dynamo's `L['self'].layer1.0.conv1`), or None outside any."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None
    path = list(stack.values())[-1]
    return readable(path[0] if isinstance(path, tuple | list) else str(path), root) or None


# the containers of a module's parts in Dynamo's sources: `._modules['conv1']` is `.conv1`
_PARTS = re.compile(r"\._(?:modules|parameters|buffers)\['([^']*)'\]")
_ROOT = re.compile(r"^[LG]\['([^']*)'\]")
_KEY = re.compile(r"list\(dict\.keys\([^()]*\)\)\[(\d+)\]")
# the same in a placeholder's name: `L_self_modules_conv1_parameters_weight_`
_MANGLED_PARTS = re.compile(r"_(?:modules|parameters|buffers)_")


def readable(source: str, root: str = "self") -> str:
    """A Dynamo source as the user's code writes it: `L['self']._modules['bn1']._buffers[
    'running_mean']` -> `bn1.running_mean` (the compiled module's own `self.`, `root`, left
    out, as `named_parameters` does), `L['x']` -> `x`, `G['model']` -> `model`."""
    name = _ROOT.sub(r"\1", _PARTS.sub(r".\1", source))
    # an optimizer's state, keyed by parameters: `state[list(dict.keys(state))[1]]` is
    # `state[#1]`, its second key
    while (shorter := _KEY.sub(r"#\1", name)) != name:
        name = shorter
    return "" if name == root else name.removeprefix(f"{root}.")


def input_name(node: torch.fx.Node, root: str = "self") -> str | None:
    """What a placeholder of Dynamo's graph is to the user: where Dynamo says it comes from (a
    parameter's or buffer's path, an argument's name; for an attribute `lift_attributes` made
    an input, a compiled optimizer step's parameters and state, where that attribute comes
    from), else read off the name Dynamo gave it."""
    source = node.meta.get("attribute") or tp.input_source(node)
    if source:
        return readable(source, root) or None
    target = str(node.target)
    if not re.match(r"^[LG]_", target):
        return None
    return readable(_MANGLED_PARTS.sub(".", target[2:].removesuffix("_")), root) or None


def where(source: str | None) -> str:
    return f" (from {source})" if source else ""


_APPLY = re.compile(r"([A-Za-z_][\w.]*)\.apply\(")


def function_name(node: torch.fx.Node, forward=None) -> tuple[str, str | None]:
    """(the custom Function's class name as the user's call names it, `file:line in forward`
    of its forward body where known)."""
    calls = _APPLY.findall(node.meta.get("stack_trace") or "")
    name = calls[-1].split(".")[-1] if calls else "autograd.Function"
    body = forward.graph.nodes if forward is not None else ()
    defined_at = next((s for s in map(source_of, body) if s), None)
    return name, defined_at
