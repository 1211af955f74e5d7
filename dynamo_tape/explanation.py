"""`dynamo_tape.explain(fn)(*args)`: compile `fn` on the tape, run it forward and backward once,
and return what happened: the graphs, breaks, recompiles and tapes, printed as markdown.

Like `torch._dynamo.explain`, it starts from a clean Dynamo (`torch.compiler.reset()`), so that
what it shows is this call's own compiles, not a cache hit of an earlier one. The backward is
the one a training step runs (`sum of outputs requiring grad`.backward()): gradients accumulate
into `.grad` as they would.
"""

from __future__ import annotations

import functools

import torch

from .torch_private import tree_leaves
from .tracker import Tracked, track


class Explanation:
    """What compiling and running one call on the tape did (see the module docstring)."""

    def __init__(self, tracked: Tracked, outputs, backward: bool):
        self.tracked = tracked
        self.outputs = outputs  # what fn returned
        self.backward = backward  # whether a backward ran (some output required grad)

    @property
    def graphs(self):
        return self.tracked.graphs

    @property
    def breaks(self):
        return self.tracked.breaks

    @property
    def recompiles(self):
        return self.tracked.recompiles

    @property
    def tapes(self) -> list[str]:
        """The tapes that ran, graph by graph, forward then backward."""
        return [tape for graph in self.graphs for tape in graph.tapes()]

    def as_dict(self) -> dict:
        return self.tracked.as_dict()

    def __str__(self) -> str:
        return self.tracked.report("dynamo-tape explain")

    _repr_markdown_ = __str__  # notebooks render it

    def __repr__(self) -> str:
        t = self.tracked
        return (
            f"<Explanation: {t.graph_count} graphs, {t.graph_break_count} graph-break sites, "
            f"{t.recompile_count} recompiles, {t.fallback_op_count} fallback ops>"
        )


def explain(fn, **compile_options):
    """`explain(fn)(*args, **kwargs)` -> an `Explanation`. `compile_options` go to
    `torch.compile` (`dynamic=`, `fullgraph=`, `options=`); the backend is the tape."""

    @functools.wraps(fn)
    def run(*args, **kwargs) -> Explanation:
        torch.compiler.reset()
        compiled = torch.compile(fn, backend="tape", **compile_options)
        with track() as tracked:
            outputs = compiled(*args, **kwargs)
            loss = _loss(outputs)
            if loss is not None:
                loss.backward()
        return Explanation(tracked, outputs, loss is not None)

    return run


def _loss(outputs):
    """A scalar every output that requires grad flows into (the real part of complex ones),
    or None where none does."""
    leaves = tree_leaves(outputs)
    grads = [t for t in leaves if isinstance(t, torch.Tensor) and t.requires_grad]
    if not grads:
        return None
    return sum((t.real if t.is_complex() else t).sum() for t in grads)
