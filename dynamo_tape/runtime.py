"""Running tapes: the callable the backend hands back to Dynamo.

With grad mode on and some input requiring a gradient, a `torch.autograd.Function` runs the
forward tape, saves only what the backward tape reads, and runs the backward tape in
`backward`. Otherwise the forward runs alone and nothing is saved. Backward tapes are built
once per set of inputs that require gradients (the one seen at compile time is built then).
Every tape on the way, from the lowered forward to the tapes the code is generated from, is a
trace of the graph's `Program` (program.py); the passes between them are in passes.py.

Inputs the graph mutates get their new values copied back after the Function, or, where eager
updates them in place and nothing else reads them (BatchNorm's running statistics), are updated
in place by the forward itself (passes.reinplace). Where eager's autograd records the mutation
(`x.add_(w)`, not BatchNorm's running statistics) the copy runs with grad enabled, so autograd
records it too. Outputs that are views of inputs, or of other
outputs, are taken again outside the Function, so that they can be modified in place as in
eager.

Double backward (`create_graph=True`): the saved intermediates were computed inside the
Function without history, so differentiating the backward tape alone would treat them as
constants and give wrong second derivatives. Instead the backward recomputes: a "joint" tape
(forward entries, then backward entries) maps the forward inputs and the cotangents to the
gradients, and runs as a CompiledGraph of its own, whose backward is the tape's `grad` of the
joint tape. The forward keeps references to its inputs for this (checked for in-place
changes before use) and, when the tape draws random numbers, the RNG state it started from.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch

from . import aliases
from . import torch_private as tp
from .autodiff import Backward, eliminate_dead_entries, grad, rematerialize
from .codegen import CompiledTape, compile_tape, compile_whole, symbols_of
from .execution import run
from .ir import Tape, Variable, is_differentiable, is_random
from .lower import Lowered
from .memory import budget_memory
from .passes import (
    drop_unbound_asserts,
    drop_unchanging_views,
    fuse_linear,
    reinplace,
    without_unread_statistics,
)
from .probes import Probes
from .program import Program
from .torch_private import version


@dataclass
class Plan:
    """Forward and backward code for one set of inputs that require gradients."""

    wrt: tuple[int, ...]  # input positions that get gradients
    backward: Backward
    forward_code: CompiledTape  # returns (outputs, saved tensors, symbol values)
    backward_code: CompiledTape
    n_saved: int
    copied: tuple[int, ...]  # saved positions holding inputs the graph mutates: saved as copies
    recompute: Recompute
    saves_only_tensors: bool = True  # no SymInt among the saved: they go to autograd as they are
    copy_back: tuple[int, ...] = ()  # mutations whose new values the caller copies back
    flowing: frozenset = frozenset()  # user output positions a gradient flows back from


@dataclass
class Recompute:
    """The differentiable backward (see the module docstring)."""

    lowered: Lowered  # the joint tape: forward inputs, then cotangents -> gradients of `wrt`
    checked: tuple[int, ...]  # inputs the joint tape reads: must be unchanged when it runs
    copied: tuple[int, ...]  # inputs it reads that the graph mutates: kept as copies
    # inputs whose mutation autograd records: held detached (only their sizes are read), as
    # the input itself would close a reference cycle through its new history
    detached: tuple[int, ...]
    random: bool  # it draws random numbers: replay the RNG state the forward started from
    graph: CompiledGraph | None = None  # compiled on the first double backward

    def compiled(self, of: CompiledGraph) -> CompiledGraph:
        if self.graph is None:  # with the probes of the graph it differentiates
            name = f"double backward of {of.name}"
            self.graph = CompiledGraph(
                self.lowered, name, probes=of.probes.of(name), phase="backward"
            )
        return self.graph


def _recompute(lowered: Lowered, bw: Backward) -> Recompute:
    forward = lowered.tape
    cotangents = bw.tape.inputs[len(bw.saved) :]
    joint = Tape(
        "joint",
        [*forward.inputs, *cotangents],
        [*forward.entries, *bw.tape.entries],
        list(bw.tape.outputs),
    )
    # dead entries go, except random ones: the replayed RNG must be drawn in the same order
    eliminate_dead_entries(joint, keep=_is_random)
    joint = without_unread_statistics(joint)
    live = {v for e in joint.entries for v in e.inputs}
    live.update(v for v in joint.outputs if isinstance(v, Variable))
    read = [i for i, v in enumerate(forward.inputs) if v in live and v.is_tensor]
    copied = tuple(i for i in read if i in lowered.mutations)
    checked = tuple(i for i in read if i not in copied)
    pairs = zip(lowered.mutations, lowered.recorded, strict=True)
    detached = tuple(i for i, r in pairs if r and i not in copied)
    random = any(_is_random(e) for e in joint.entries)
    joint_lowered = Lowered(joint, lowered.namer, lowered.fake_mode)
    return Recompute(joint_lowered, checked, copied, detached, random)


def _is_random(entry) -> bool:
    return is_random(entry.op)


class CompiledGraph:
    """What `tape(gm, example_inputs)` returns: callable with the graph's own signature."""

    def __init__(
        self,
        lowered: Lowered,
        name: str,
        plain_inputs=False,
        probes=None,
        phase="forward",
        memory_budget=None,
    ):
        self.name = name
        self.memory_budget = memory_budget  # the option: memory.py
        # probes.py; `phase`: what the forward functions' probes are told (a double backward's
        # graph runs in the backward)
        self.probes, self.phase = probes or Probes(name), phase
        self.lowered = lowered
        self.tape: Tape = lowered.tape
        self.program = Program()
        self.program.add("forward", "lowered", lowered.tape)
        self.symbols = symbols_of(self.tape)
        self.differentiable_inputs = [
            i for i, v in enumerate(self.tape.inputs) if is_differentiable(v.meta)
        ]
        self.plans: dict[tuple[int, ...], Plan] = {}
        self.calls = {"inference": 0, "forward": 0, "backward": 0, "double_backward": 0}
        self.views_of_inputs = aliases.views_of_inputs(lowered)
        self.views_of_outputs = aliases.views_of_outputs(lowered, self.views_of_inputs)
        # outputs (positions among all the tape's outputs) that are views of an intermediate
        # where eager's are not: handed back detached, as tensors of their own
        taken_again = {*self.views_of_inputs, *self.views_of_outputs, *lowered.returns_input}
        made_by_a_view = aliases.made_by_a_view(self.tape)
        self.detached_outputs = tuple(
            self.n_mutations + p
            for p in lowered.fresh_outputs
            if p not in taken_again
            and p < len(lowered.user_outputs)
            and lowered.user_outputs[p] in made_by_a_view
        )
        # no input is a functorch wrapper (the backend checks the example inputs; Dynamo's
        # guards on dispatch keys recompile for one that is): see `_apply`
        self.plain_inputs = plain_inputs

    @functools.cached_property
    def inference(self) -> tuple[CompiledTape, tuple[int, ...]]:
        """The forward alone and the mutations to copy back after it: generated at compile time
        where no input requires grad, else at the first call that needs no gradient."""
        lowered = self.lowered
        tape, copy_back = reinplace(self.tape, lowered.mutations, lowered.recorded, set())
        tape = self._codegen_passes(
            "forward", self.program.then("forward", "re-inplaced", tape, self.tape)
        )
        code = compile_whole(tape, "forward", phase=self.phase)
        self.program.code["forward"] = code
        return code, copy_back

    @property
    def n_mutations(self) -> int:
        return len(self.lowered.mutations)

    def plan(self, wrt: tuple[int, ...]) -> Plan:
        if wrt not in self.plans:
            self.plans[wrt] = self._build_plan(wrt)
        return self.plans[wrt]

    def _build_plan(self, wrt) -> Plan:
        tape, lowered, program = self.tape, self.lowered, self.program
        # a second set of inputs requiring grad (`x` as well as the weights) gets functions of
        # its own: forward_train_1, backward_1, ...
        suffix = f"_{len(self.plans)}" if self.plans else ""
        forward_name, backward_name = f"forward_train{suffix}", f"backward{suffix}"
        bw = grad(tape, [tape.inputs[i] for i in wrt], lowered.namer, lowered.fake_mode)
        program.add(backward_name, "grad", bw.tape)
        remade = rematerialize(tape, bw, lowered.namer)
        program.then(backward_name, "rematerialized", remade.tape, bw.tape)
        bw = remade
        mutated = {tape.inputs[i] for i in lowered.mutations}
        budget = self.memory_budget
        budgeted = budget_memory(tape, bw, lowered.namer, budget, mutated)
        step = "memory budget" if budget is not None and budget < 1 else "recomputed"
        program.then(backward_name, step, budgeted.tape, bw.tape)
        bw = budgeted
        recompute = _recompute(lowered, bw)
        read_later = {*bw.saved, *(tape.inputs[i] for i in recompute.checked + recompute.copied)}
        forward, copy_back = reinplace(
            tape, lowered.mutations, lowered.recorded, read_later, bw.cotangent_of
        )
        forward = program.then(forward_name, "re-inplaced", forward, tape)
        n = len(forward.outputs)
        forward = program.add(
            forward_name,
            "returns what the backward reads",
            Tape(forward_name, forward.inputs, forward.entries, [*forward.outputs, *bw.saved]),
        )
        forward = self._codegen_passes(forward_name, forward)
        returns = (tuple(forward.outputs[:n]), tuple(forward.outputs[n:]), tuple(self.symbols))
        forward_code = compile_tape(forward, forward_name, tape.inputs, returns, phase=self.phase)
        backward = self._codegen_passes(backward_name, bw.tape, self.symbols)
        backward_code = compile_tape(
            backward,
            backward_name,
            backward.inputs,
            tuple(backward.outputs),
            symbols=self.symbols,
            phase="backward",
            boxed=True,  # frees each saved tensor after its last use (codegen.py)
        )
        program.code.update({forward_name: forward_code, backward_name: backward_code})
        mutated = {tape.inputs[i] for i in lowered.mutations}
        copied = tuple(k for k, v in enumerate(bw.saved) if v in mutated)
        only_tensors = all(v.is_tensor for v in bw.saved)
        return Plan(
            wrt,
            bw,
            forward_code,
            backward_code,
            len(bw.saved),
            copied,
            recompute,
            only_tensors,
            copy_back,
            frozenset(i - self.n_mutations for i in bw.cotangent_of),
        )

    def _codegen_passes(self, function: str, tape: Tape, symbols=None) -> Tape:
        """The passes every generated function's tape goes through last."""
        then = self.program.then
        tape = then(function, "linear fused", fuse_linear(tape), tape)
        tape = then(function, "unchanging views dropped", drop_unchanging_views(tape), tape)
        return then(
            function, "unbound size asserts dropped", drop_unbound_asserts(tape, symbols), tape
        )

    @property
    def forward_tape(self) -> Tape:
        """The forward that runs: the training forward where there is one, else the forward
        alone."""
        functions = self.program.functions()
        return self.program.final("forward_train" if "forward_train" in functions else "forward")

    def requires_grad_inputs(self, args) -> tuple[int, ...]:
        if not torch.is_grad_enabled():
            return ()
        return tuple([i for i in self.differentiable_inputs if args[i].requires_grad])

    def __call__(self, *args):
        wrt = self.requires_grad_inputs(args)
        if wrt:
            plan = self.plan(wrt)
            outs = _apply(self, plan, *args)
            copy_back = plan.copy_back
        else:
            self.calls["inference"] += 1
            code, copy_back = self.inference
            outs = aliases.detached(run(code, args, self.probes.now()), self.detached_outputs)
        if copy_back:
            aliases.copy_back(args, self.lowered, outs, copy_back)
        outs = list(outs[self.n_mutations :])
        if wrt:
            # the Function's own output is a view autograd will not let the user modify in
            # place; the same view taken outside it behaves as eager's. One no gradient flows
            # to (`x.detach()`) is taken from the detached base: storage shared, no history.
            flowing = plan.flowing
            for position, index in self.views_of_inputs.items():
                base = args[index] if position in flowing else args[index].detach()
                outs[position] = aliases.view_again(base, outs[position])
            for position, of in self.views_of_outputs.items():
                base = outs[of] if position in flowing else outs[of].detach()
                outs[position] = aliases.view_again(base, outs[position])
        for position, index in self.lowered.returns_input.items():
            outs[position] = args[index]
        return tuple(outs)


def _apply(graph: CompiledGraph, plan: Plan, *args):
    """`_TapeFunction.apply`. Where no input can be a functorch wrapper and no functorch
    transform is active, autograd's C++ `apply` is called directly: `Function.apply`'s Python
    wrapper looks at every argument for a dead functorch wrapper (a tensor that escaped a
    finished `torch.func` transform), which costs about 25 us a call with the deep MLP's 68
    inputs (its training step takes 1.7 ms)."""
    if graph.plain_inputs and not tp.functorch_transforms_active():
        return _c_apply(graph, plan, *args)
    return _TapeFunction.apply(graph, plan, *args)


class _TapeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, graph: CompiledGraph, plan: Plan, *args):
        graph.calls["forward"] += 1
        recompute = plan.recompute
        ctx.rng = _rng_states(args) if recompute.random else None
        outs, saved, syms = run(plan.forward_code, args, graph.probes.now())
        outs = aliases.detached(outs, graph.detached_outputs)
        if plan.copied:  # the copy-back after this Function would change them under us
            saved = list(saved)
            for k in plan.copied:
                saved[k] = saved[k].clone()
        ctx.graph, ctx.plan, ctx.syms = graph, plan, syms
        ctx.inputs = args
        if recompute.copied or recompute.detached:
            ctx.inputs = list(args)
            with torch.enable_grad():  # a copy keeps the history of the value it copies
                for i in recompute.copied:
                    ctx.inputs[i] = args[i].clone()
            for i in recompute.detached:
                ctx.inputs[i] = args[i].detach()
        ctx.versions = tp.versions([args[i] for i in recompute.checked])
        if plan.saves_only_tensors:
            ctx.others = None
            ctx.save_for_backward(*saved)
        else:
            ctx.others = [None if isinstance(s, torch.Tensor) else s for s in saved]
            ctx.save_for_backward(*(s for s in saved if isinstance(s, torch.Tensor)))
        # outputs no gradient flows back from (a buffer's `+= 1`) must not require one, and
        # get no zeros made for them at each backward: a gradient is made only where needed
        flowing = plan.backward.cotangent_of
        ctx.mark_non_differentiable(
            *(o for i, o in enumerate(outs) if isinstance(o, torch.Tensor) and i not in flowing)
        )
        ctx.set_materialize_grads(False)
        ctx.cotangent_specs = [(outs[i].shape, outs[i].dtype, outs[i].device) for i in flowing]
        return tuple(outs)

    @staticmethod
    def backward(ctx, *cotangents):
        profile = ctx.graph.probes.profile
        if profile is None:
            return _backward(ctx, cotangents)
        return profile.timed_call("backward", _backward, ctx, cotangents)


def _backward(ctx, cotangents):
    graph, plan = ctx.graph, ctx.plan
    cts = [cotangents[i] for i in plan.backward.cotangent_of]
    for k, ct in enumerate(cts):
        if ct is None:  # an output the loss does not read
            shape, dtype, device = ctx.cotangent_specs[k]
            cts[k] = torch.zeros(shape, dtype=dtype, device=device)
    if torch.is_grad_enabled():
        grads = _differentiable_backward(ctx, cts)
    else:
        graph.calls["backward"] += 1
        saved = ctx.saved_tensors
        if ctx.others is not None:
            tensors = iter(saved)
            saved = [next(tensors) if o is None else o for o in ctx.others]
        args = [*saved, *cts, ctx.syms]  # the boxed backward empties it
        del saved, cts
        # autograd's own references go now, not after the backward (unless retain_graph)
        tp.clear_saved_tensors(ctx)
        grads = run(plan.backward_code, args, graph.probes.now())
        # as autograd frees saved tensors after a backward, so that a later in-place
        # change of an input (`x += f(x)`) leaves no reference cycle through this node
        ctx.inputs = None
    result = [None] * len(graph.tape.inputs)
    for i, g in zip(plan.wrt, grads, strict=True):
        result[i] = g
    return (None, None, *result)


_c_apply = tp.c_apply(_TapeFunction)


def _differentiable_backward(ctx, cotangents):
    graph, recompute = ctx.graph, ctx.plan.recompute
    if ctx.inputs is None:
        raise RuntimeError(
            f"dynamo_tape: double backward (create_graph=True) through graph {graph.name} after "
            "a backward without create_graph=True already ran through it (retain_graph=True): "
            "run the create_graph=True pass first"
        )
    for i, seen in zip(recompute.checked, ctx.versions, strict=True):
        if version(ctx.inputs[i]) != seen:
            raise RuntimeError(
                f"dynamo_tape: input {i} of graph {graph.name} was modified in place after the "
                "forward; double backward (create_graph=True) recomputes the forward from it"
            )
    graph.calls["double_backward"] += 1
    with _replaying(ctx.rng):
        return recompute.compiled(graph)(*ctx.inputs, *cotangents)


def _rng_states(args):
    cuda = {a.device for a in args if isinstance(a, torch.Tensor) and a.is_cuda}
    return torch.get_rng_state(), {d: torch.cuda.get_rng_state(d) for d in cuda}


@contextlib.contextmanager
def _replaying(rng):
    if rng is None:
        yield
        return
    cpu, cuda = rng
    with torch.random.fork_rng(devices=list(cuda)):
        torch.set_rng_state(cpu)
        for device, state in cuda.items():
            torch.cuda.set_rng_state(state, device)
        yield
