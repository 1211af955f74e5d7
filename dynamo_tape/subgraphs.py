"""Higher-order ops that call a graph of the user's: `invoke_subgraph` and `flex_attention`.

`mark_compile_region(fn)` reaches the backend as `invoke_subgraph(subgraph, identifier,
*operands)` at each call, every call of one region naming the same identifier. Lowering makes
one `InvokeSubgraph` per identifier, its body one tape, and each call an entry whose op is that
one object: the body is printed once however often it runs. Its rule records, onto the backward
tape, a call of another `InvokeSubgraph` whose body is the region's joint tape (the body again,
then its backward), shared by all the calls' backward entries and itself differentiable.

`flex_attention(q, k, v, score_mod, block_mask, scale, kernel_options, score_buffers,
mask_buffers)` stays one entry: its op calls torch's own flex_attention op, which computes what
eager computes, with the score_mod and the block mask's mask_mod each lowered to a tape (printed
beside the graph's tape) and run as the functions torch applies to every score.
"""

from __future__ import annotations

import operator

import torch
import torch.fx

from . import record
from . import torch_private as tp
from .bodies import Body, RunsOneBody
from .control_flow import differentiable, joint_tape, materialized, placed
from .ir import Tape
from .ops import aten


class InvokeSubgraph(RunsOneBody):
    """The op of every call of one `mark_compile_region` region; see the module docstring."""

    __name__ = "invoke_subgraph"

    def __init__(self, graph, name: str):
        self.graph = graph  # the region's ATen graph, made a tape by the lowering
        self.body: Tape | None = None
        self.name = name  # how its entries print: `v5:f64[4,4] = invoke_subgraph.subgraph_0 v0 v1`
        self._backwards: dict[tuple[int, ...], InvokeSubgraph] = {}  # per wrt

    @classmethod
    def of_tape(cls, body: Tape, name: str) -> InvokeSubgraph:
        op = cls(None, name)
        op.body = body
        return op

    def bodies_to_lower(self) -> list[Body]:
        return [] if self.body is not None else [Body(self.graph, self.name)]

    def take_bodies(self, tapes: list[Tape]) -> None:
        (self.body,) = tapes

    def text(self) -> str:
        return f"# {self.name}: one tape, run by each of its calls\n{self.body.text()}"

    def propagate(self, g, y, *operands):
        cotangents = materialized(g, y)
        wrt = tuple(k for k, o in enumerate(operands) if differentiable(o))
        if not wrt:
            return ()
        if wrt not in self._backwards:
            rec = record.current()
            joint = joint_tape(self.body, list(wrt), rec.namer, rec.fake_mode)
            self._backwards[wrt] = InvokeSubgraph.of_tape(joint, f"{self.name}.backward")
        return placed(list(wrt), len(operands), self._backwards[wrt], *operands, *cotangents)


class FlexAttention:
    """The op of a `flex_attention` entry; see the module docstring. Its operands are the
    tensors among the op's arguments, in order; the rest of the arguments are kept here."""

    name = "flex_attention"
    __name__ = "flex_attention"
    FUNCTIONS = ("score_mod", "mask_mod")  # the graphs among its arguments, in this order

    def __init__(self, arguments: list, spec, graphs: list):
        self.arguments = arguments  # flat: OPERAND where an operand goes or a graph
        self.spec = spec  # the pytree spec that rebuilds the op's arguments from them
        self.graphs = graphs  # (flat position, ATen graph) of score_mod, then mask_mod
        self.tapes: list[Tape] | None = None
        self._functions = None

    def bodies_to_lower(self) -> list[Body]:
        if self.tapes is not None:
            return []
        names = (f"flex_attention.{name}" for name in self.FUNCTIONS)
        return [Body(graph, name) for (_, graph), name in zip(self.graphs, names)]

    def take_bodies(self, tapes: list[Tape]) -> None:
        self.tapes = list(tapes)

    def _compiled(self) -> dict[int, object]:
        if self._functions is None:
            from .codegen import compile_whole

            self._functions = {}
            for (position, _), tape, name in zip(self.graphs, self.tapes, self.FUNCTIONS):
                fn = compile_whole(tape, name).fn
                self._functions[position] = lambda *scalars, fn=fn: fn(*scalars)[0]
        return self._functions

    def __call__(self, *operands):
        functions, tensors = self._compiled(), iter(operands)
        flat = [
            functions[i] if i in functions else next(tensors) if a is OPERAND else a
            for i, a in enumerate(self.arguments)
        ]
        return list(tp.flex_attention(*tp.tree_unflatten(flat, self.spec)))

    def text(self) -> str:
        head = "# flex_attention: torch's op, with these applied to each score"
        return "\n".join([head, *(t.text() for t in self.tapes)])

    def propagate(self, g, y, *operands):
        source = record.current().source
        raise NotImplementedError(
            "dynamo_tape: flex_attention has no backward on the tape"
            + (f" (from {source})" if source else "")
            + "; eager's runs on GPUs only (on the CPU it refuses inputs that require grad)"
        )


OPERAND = object()  # in FlexAttention.arguments: a tensor operand's (or a graph's) place


def flex_attention_arguments(args) -> tuple[list, list, object, list[int]] | None:
    """(flat arguments with OPERAND for each tensor and graph, the tensors, the pytree spec, the
    flat positions of the graphs: score_mod, then mask_mod), or None where the arguments hold
    other than those two graphs."""
    flat, spec = tp.tree_flatten(list(args))
    graphs = [i for i, a in enumerate(flat) if isinstance(a, torch.fx.GraphModule)]
    if len(graphs) != len(FlexAttention.FUNCTIONS):
        return None
    tensors = [a for a in flat if isinstance(a, torch.Tensor)]
    arguments = [OPERAND if isinstance(a, torch.Tensor | torch.fx.GraphModule) else a for a in flat]
    return arguments, tensors, spec, graphs


def indexing_by_score_indices(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A score_mod or mask_mod with `bias[h, k]` (an index by 0-d integer tensors, the
    score's indices) written as `aten.index.Tensor(bias, [h, k])`, as torch's vmap over the
    scores runs it: recorded on 0-d fakes, `bias[h]` would read the index's value."""
    graph = torch.fx.Graph()
    graph.output(graph.graph_copy(gm.graph, {}))
    for node in graph.find_nodes(op="call_function", target=operator.getitem):
        base, index = node.args
        index = index if isinstance(index, tuple) else (index,)
        if all(_is_score_index(i) for i in index) and isinstance(base, torch.fx.Node):
            node.target, node.args = aten.index.Tensor, (base, list(index))
    return torch.fx.GraphModule(gm, graph)


def _is_score_index(node) -> bool:
    value = node.meta.get("example_value") if isinstance(node, torch.fx.Node) else None
    return (
        isinstance(value, torch.Tensor)
        and value.dim() == 0
        and not value.dtype.is_floating_point
        and value.dtype is not torch.bool
    )
