"""Running tapes: the callable the backend hands back to Dynamo.

With grad mode on and some input requiring a gradient, a `torch.autograd.Function` runs the
forward tape, saves only what the backward tape reads, and runs the backward tape in
`backward`. Otherwise the forward runs alone and nothing is saved. Backward tapes are built
once per set of inputs that require gradients (the one seen at compile time is built then).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .autodiff import Backward, grad
from .codegen import CompiledTape, compile_tape, symbols_of
from .ir import Tape
from .lower import Lowered
from .rules import is_differentiable


@dataclass
class Plan:
    """Forward and backward code for one set of inputs that require gradients."""

    wrt: tuple[int, ...]  # input positions that get gradients
    backward: Backward
    forward_code: CompiledTape  # returns (outputs, saved tensors, symbol values)
    backward_code: CompiledTape
    n_saved: int


class CompiledGraph:
    """What `tape(gm, example_inputs)` returns: callable with the graph's own signature."""

    def __init__(self, lowered: Lowered, name: str):
        self.name = name
        self.lowered = lowered
        self.tape: Tape = lowered.tape
        self.symbols = symbols_of(self.tape)
        self.inference_code = compile_tape(
            self.tape, "forward", self.tape.inputs, tuple(self.tape.outputs)
        )
        self.differentiable_inputs = [
            i for i, v in enumerate(self.tape.inputs) if is_differentiable(v.meta)
        ]
        self.plans: dict[tuple[int, ...], Plan] = {}
        self.calls = {"inference": 0, "forward": 0, "backward": 0}

    @property
    def n_mutations(self) -> int:
        return len(self.lowered.mutations)

    def plan(self, wrt: tuple[int, ...]) -> Plan:
        if wrt not in self.plans:
            self.plans[wrt] = self._build_plan(wrt)
        return self.plans[wrt]

    def _build_plan(self, wrt) -> Plan:
        tape = self.tape
        bw = grad(tape, [tape.inputs[i] for i in wrt], self.lowered.namer, self.lowered.fake_mode)
        returns = (tuple(tape.outputs), tuple(bw.saved), tuple(self.symbols))
        forward_code = compile_tape(tape, "forward_train", tape.inputs, returns)
        backward_code = compile_tape(
            bw.tape, "backward", bw.tape.inputs, tuple(bw.tape.outputs), symbols=self.symbols
        )
        return Plan(wrt, bw, forward_code, backward_code, len(bw.saved))

    def requires_grad_inputs(self, args) -> tuple[int, ...]:
        if not torch.is_grad_enabled():
            return ()
        return tuple(i for i in self.differentiable_inputs if args[i].requires_grad)

    def __call__(self, *args):
        wrt = self.requires_grad_inputs(args)
        if wrt:
            outs = _TapeFunction.apply(self, self.plan(wrt), *args)
        else:
            self.calls["inference"] += 1
            outs = run(self.inference_code, args)
        n = self.n_mutations
        if n:
            with torch.no_grad():
                for index, new in zip(self.lowered.mutations, outs[:n]):
                    args[index].copy_(new)
        outs = list(outs[n:])
        for position, index in self.lowered.returns_input.items():
            outs[position] = args[index]
        return tuple(outs)


def run(code: CompiledTape, args):
    """Run generated code; an error carries a note naming the tape entry and user line."""
    try:
        return code.fn(*args)
    except Exception as e:
        entry = code.entry_at(e.__traceback__)
        if entry is not None:
            where = f", from {entry.source}" if entry.source else ""
            e.add_note(f"dynamo_tape: while running tape entry `{entry.text()}`{where}")
        raise


class _TapeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, graph: CompiledGraph, plan: Plan, *args):
        graph.calls["forward"] += 1
        outs, saved, syms = run(plan.forward_code, args)
        ctx.graph, ctx.plan, ctx.syms = graph, plan, syms
        tensors = [s for s in saved if isinstance(s, torch.Tensor)]
        ctx.others = [None if isinstance(s, torch.Tensor) else s for s in saved]
        ctx.save_for_backward(*tensors)
        # outputs no gradient flows back from (a buffer's `+= 1`) must not require one
        flowing = set(plan.backward.cotangent_of)
        ctx.mark_non_differentiable(
            *(o for i, o in enumerate(outs) if isinstance(o, torch.Tensor) and i not in flowing)
        )
        return tuple(outs)

    @staticmethod
    def backward(ctx, *cotangents):
        graph, plan = ctx.graph, ctx.plan
        if torch.is_grad_enabled():
            raise NotImplementedError(
                "dynamo_tape: double backward (create_graph=True) through a compiled graph is "
                "not supported yet"
            )
        graph.calls["backward"] += 1
        tensors = iter(ctx.saved_tensors)
        saved = [next(tensors) if o is None else o for o in ctx.others]
        cts = [cotangents[i] for i in plan.backward.cotangent_of]
        grads = run(plan.backward_code, (*saved, *cts, ctx.syms))
        result = [None] * len(graph.tape.inputs)
        for i, g in zip(plan.wrt, grads):
            result[i] = g
        return (None, None, *result)
