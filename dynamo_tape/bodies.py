"""The bodies of higher-order ops: the ATen graphs an entry's op holds, made into tapes.

The recorder makes each body-running op (a custom Function, a checkpointed region, torch.cond,
map, while_loop, invoke_subgraph, flex_attention, a tensor hook) with the ATen graphs of its
bodies. Lowering its graph to a tape, the lowering asks the op for them (`op.bodies_to_lower()`,
none once it has taken them: every call of one invoke_subgraph region shares its op), makes
each into a tape with the graph's namer (no name repeats), lowering the ops nested in them in
turn, and hands the tapes back, in that order (`op.take_bodies(tapes)`). An op that runs its
bodies' code also has `probed_call`, which probed code calls instead (codegen.py): the same,
running the bodies' probed code (`execution.run_body`, probes.py).
"""

from __future__ import annotations

from typing import NamedTuple

import torch.fx


class Body(NamedTuple):
    graph: torch.fx.GraphModule  # its ATen graph
    name: str  # its tape's: "checkpoint", "cond.true"...
    # its entries are constants to the backward (a custom Function's forward: the user's
    # backward is its rule)
    no_grad: bool = False
    # an op without a rule fails the compile where the options say so; not in the user's own
    # backward, which only a double backward differentiates
    strict: bool = True


class RunsOneBody:
    """For an op whose entry runs one body's tape (`self.body`, set by `take_bodies`) as
    generated code, compiled on first use (`self._code`, None until then): the plain call, and
    the call probed code makes (its `probed_call`: the body's probed code, execution.py)."""

    _code = None

    def __call__(self, *operands):
        return list((self._code or self._compile()).fn(*operands))

    def probed_call(self, *operands):
        from .execution import run_body

        return list(run_body(self._code or self._compile(), *operands))

    def _compile(self):
        from .codegen import compile_body

        self._code = compile_body(self.body)
        return self._code
