"""An ATen graph -> a forward Tape: one entry per ATen node, its rule looked up here.

Entries computed under `torch.no_grad()` inside Dynamo's graph (the names of the Dynamo nodes
they come from are given) are non-differentiable. Entries of body-running ops (`BODIES`: a
custom Function, a checkpointed region, torch.cond...) have rules of their own; their bodies,
ATen graphs, are made into tapes here, with the same namer (bodies.py).
"""

from __future__ import annotations

import operator

import torch
import torch.fx

from .checkpoint import Checkpointed
from .control_flow import Cond, Map, While, WhileBackward
from .custom_function import CustomFunction
from .dynamo_graph import LoweringError, module_of, module_root, source_of, where
from .hooks import TensorHook
from .ir import Namer, Tape, TapeEntry
from .record import normalize
from .rules import lookup
from .subclasses import Boundary
from .subgraphs import FlexAttention, InvokeSubgraph
from .torch_private import OpOverload

# Entries whose op runs a tape of its own, recorded from a body of a higher-order op, and whose
# rule records another body (the user's backward, the recompute, the hook) onto the backward
BODIES = (
    CustomFunction,
    Checkpointed,
    TensorHook,
    Cond,
    Map,
    While,
    WhileBackward,
    InvokeSubgraph,
    FlexAttention,
)

_SYMBOLIC = (torch.SymInt, torch.SymFloat, torch.SymBool, int, float, bool)


def to_tape(
    gm: torch.fx.GraphModule,
    strict: bool,
    name: str = "forward",
    no_grad: set | frozenset | bool = frozenset(),
    namer: Namer | None = None,
) -> tuple[Tape, Namer]:
    """The tape of an ATen graph. `no_grad`: names of the Dynamo nodes whose entries are
    constants to the backward, or True for all of them (a custom Function's forward body)."""
    namer = namer or Namer()
    root = module_root()  # what the module paths call the module compiled
    tape = Tape(name)
    env: dict[torch.fx.Node, object] = {}

    def value(a):
        return torch.fx.node.map_arg(a, lambda n: env[n])

    for node in gm.graph.nodes:
        meta = node.meta.get("val")
        if node.op == "placeholder":
            env[node] = namer(meta)
            tape.inputs.append(env[node])
        elif node.op == "get_attr":
            env[node] = getattr(gm, node.target)  # a constant tensor
        elif node.op == "output":
            tape.outputs = list(value(node.args[0]))
        elif node.target is operator.getitem and isinstance(env[node.args[0]], list):
            env[node] = env[node.args[0]][node.args[1]]
        elif isinstance(node.target, Boundary):
            env[node] = _entry(tape, namer, node, value, meta, strict, no_grad is True, root)
        elif isinstance(node.target, BODIES):
            _lower_bodies(node.target, strict, namer)
            differentiable = no_grad is not True and _origin(node) not in no_grad
            env[node] = _entry(tape, namer, node, value, meta, strict, not differentiable, root)
        elif isinstance(node.target, OpOverload) and (
            not _is_scalar(meta) or _reads_data(node.target)
        ):
            constant = no_grad is True or _origin(node) in no_grad
            env[node] = _entry(tape, namer, node, value, meta, strict, constant, root)
        elif _is_scalar(meta):
            # size arithmetic (sym_size, s0 * 2...): its value is a SymInt expression, which
            # the code generator writes out in terms of the input sizes
            env[node] = meta
        else:
            raise LoweringError(f"unsupported node {node.format_node()}{where(source_of(node))}")
    return tape, namer


def _lower_bodies(op, strict: bool, namer: Namer) -> None:
    """The tapes of a body-running op's bodies, handed to it (bodies.py)."""
    tapes = [
        to_tape(b.graph, strict and b.strict, b.name, b.no_grad or frozenset(), namer)[0]
        for b in op.bodies_to_lower()
    ]
    if tapes:
        op.take_bodies(tapes)


def _origin(node: torch.fx.Node) -> str | None:
    """The name of the Dynamo node an ATen node comes from: the recorder's own note, or the
    provenance make_fx and aot_export_module keep."""
    if "origin" in node.meta:
        return node.meta["origin"]
    sources = node.meta.get("from_node") or ()
    return getattr(sources[0], "name", None) if sources else None


def _is_scalar(meta) -> bool:
    return isinstance(meta, _SYMBOLIC)


def _reads_data(op) -> bool:
    # `x.item()`: a number known only at run time (an unbacked u0), computed by an entry
    return isinstance(op, OpOverload) and torch.Tag.data_dependent_output in op.tags


def _entry(tape, namer, node, value, meta, strict, no_grad=False, root="self"):
    args, kwargs = normalize(node.target, value(node.args), value(node.kwargs))
    several = isinstance(meta, tuple | list)
    outputs = [
        namer(m) if isinstance(m, torch.Tensor) or _reads_data(node.target) else None
        for m in (meta if several else [meta])
    ]
    entry = TapeEntry(
        node.target, args, kwargs, outputs, source=source_of(node), module=module_of(node, root)
    )
    if no_grad:  # computed under torch.no_grad(): a constant to the backward, as in eager
        entry.propagate, entry.kind = None, "nondiff"
    elif isinstance(node.target, (*BODIES, Boundary)):  # rules of their own
        entry.propagate, entry.kind = node.target.propagate, "rule"
    else:
        entry.propagate, entry.kind = lookup(entry, strict=strict)
    tape.entries.append(entry)
    return outputs if several else outputs[0]
