"""Activation checkpointing: `torch.utils.checkpoint` regions recomputed in the backward.

Dynamo hands a checkpointed region over as `tag_activation_checkpoint(body, *operands, ...)`.
Lowering records the body as an ATen graph of its own and the region becomes one entry whose
op is a `Checkpointed`: run, it runs the body's tape; differentiated, its rule records the body
again onto the backward tape (the recompute), then the rules of those recomputed entries, last
first. So the forward saves only the region's inputs, as eager's checkpoint does, and double
backward differentiates the recompute like any other entries.

Random entries (dropout) are not drawn again: their outputs are extra outputs of the region,
saved, and the recompute reads them, as eager's checkpoint replays the RNG state.
"""

from __future__ import annotations

from . import record
from .autodiff import backpropagate, depends_on
from .bodies import Body, RunsOneBody
from .custom_function import replay_into
from .ir import Tape, Variable


class Checkpointed(RunsOneBody):
    """The op of a checkpointed region's entry; see the module docstring."""

    name = "checkpoint"
    __name__ = "checkpoint"

    def __init__(self, body_graph, n_outputs: int, n_kept: int):
        # the region's ATen graph, made a tape by the lowering: its outputs, then its random
        # draws
        self.body_graph = body_graph
        self.body: Tape | None = None
        self.n_outputs = n_outputs
        self.kept: list[Variable] = []  # body Variables saved rather than recomputed
        # the saved random draws are read by the recompute, not differentiated through
        self.nondifferentiable_outputs = tuple(range(n_outputs, n_outputs + n_kept))

    def bodies_to_lower(self) -> list[Body]:
        return [] if self.body is not None else [Body(self.body_graph, "checkpoint")]

    def take_bodies(self, tapes: list[Tape]) -> None:
        (self.body,) = tapes
        self.kept = list(self.body.outputs[self.n_outputs :])

    def text(self) -> str:
        return f"# a torch.utils.checkpoint region, recomputed in the backward\n{self.body.text()}"

    def propagate(self, g, y, *operands):
        rec = record.current()
        kept = dict(zip(self.kept, y[self.n_outputs :]))
        values, recomputed = replay_into(self.body, list(operands), kept)
        outer = rec.active
        wanted = [o for o in operands if isinstance(o, Variable) and (outer is None or o in outer)]
        active = depends_on(recomputed, wanted)
        grads = {}
        for out, ct in zip(self.body.outputs[: self.n_outputs], g):
            v = values.get(out)
            if ct is not None and isinstance(v, Variable) and v in active:
                grads[v] = ct if v not in grads else grads[v] + ct
        rec.active = active if outer is None else outer | active
        try:
            backpropagate(recomputed, grads, active)
        finally:
            rec.active = outer
        return tuple(grads.get(o) if isinstance(o, Variable) else None for o in operands)
