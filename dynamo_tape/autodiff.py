"""Reverse mode over a tape, run once at compile time.

`grad` is the seed's algorithm: walk the forward tape backwards, gather the cotangents of each
entry's outputs, skip entries whose cotangents are all None, apply the entry's `propagate`,
and sum the contributions to each input. The rules record Variable operations, so the result
is itself a tape: the backward tape. The forward Variables it reads are what the forward must
save.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from . import record
from .ir import Namer, Tape, TapeEntry, Variable, is_differentiable
from .ops import aten, present
from .rules import NONDIFFERENTIABLE_OUTPUTS, run_rule
from .torch_private import tree_map


@dataclass
class Backward:
    tape: Tape  # inputs: saved forward values, then one cotangent per entry of `cotangent_of`
    saved: list[Variable]  # forward Variables the backward reads
    cotangent_of: list[int]  # forward output positions that receive a cotangent
    # forward Variables the backward makes again (rematerialize, memory.py) -> its names for them
    remade: dict[Variable, Variable] = field(default_factory=dict)


def grad(forward: Tape, wrt: list[Variable], namer: Namer, fake_mode) -> Backward:
    """The backward tape of `forward` for the inputs `wrt`."""
    active = depends_on(forward.entries, wrt)
    tape = Tape("backward")
    grads: dict[Variable, Variable] = {}
    cotangents, cotangent_of = [], []
    with record.recording(tape, namer, fake_mode) as rec:
        # rules may look through the forward's views: the transpose of a saved `w.t()` is `w`
        rec.producers.update((v, e) for e in forward.entries for v in e.outputs if v is not None)
        rec.active = active
        for position, out in enumerate(forward.outputs):
            if isinstance(out, Variable) and out in active and is_differentiable(out.meta):
                ct = namer(out.meta)
                cotangents.append(ct)
                cotangent_of.append(position)
                _accumulate(grads, out, ct)
        backpropagate(forward.entries, grads, active)
        tape.outputs = [grads.get(w) for w in wrt]
    eliminate_dead_entries(tape)
    defined = {v for e in tape.entries for v in e.outputs} | set(cotangents)
    saved, seen = [], set()
    for v in [*(i for e in tape.entries for i in e.inputs), *tape.outputs]:
        if isinstance(v, Variable) and v not in defined and v not in seen:
            seen.add(v)
            saved.append(v)
    tape.inputs = saved + cotangents
    return Backward(tape, saved, cotangent_of)


def backpropagate(entries, grads: dict, active: set) -> None:
    """The reverse walk: from the cotangents in `grads` (Variable -> cotangent), each entry's
    rule, last entry first, recorded onto the current tape; contributions to the entries'
    inputs accumulate in `grads`. `active`: the Variables a gradient is wanted through."""
    rec = record.current()
    for entry in reversed(entries):
        if entry.kind == "nondiff" or not any(v in active for v in entry.inputs):
            continue
        gs = [grads.get(v) if v is not None else None for v in entry.outputs]
        if all(g is None for g in gs):
            continue
        rec.source, start = entry.source, len(rec.tape.entries)
        if entry.single_output:
            g, y = gs[0], entry.outputs[0]
        else:
            g, y = tuple(gs), tuple(entry.outputs)
        results = run_rule(entry, g, y)  # checked: it names the entry if it fails
        for arg, ga in zip(entry.args, results):
            if isinstance(arg, list | tuple) and isinstance(ga, list | tuple):
                for a, gi in zip(arg, ga):
                    _contribute(grads, active, a, gi)
            else:
                _contribute(grads, active, arg, ga)
        for recorded in rec.tape.entries[start:]:  # what its rule recorded: from its module,
            recorded.module = recorded.module or entry.module  # the derivative of the entry
            recorded.derivative_of = recorded.derivative_of or entry


def depends_on(entries, wrt) -> set:
    """The Variables that depend differentiably on `wrt` (which are among them)."""
    active = {w for w in wrt if is_differentiable(w.meta)}
    for e in entries:
        if e.kind != "nondiff" and any(v in active for v in e.inputs):
            # BatchNorm's statistics; a custom Function's marked outputs and saved values
            state = getattr(e.op, "nondifferentiable_outputs", None)
            state = state or NONDIFFERENTIABLE_OUTPUTS.get(e.op, ())
            active.update(
                v
                for k, v in enumerate(e.outputs)
                if v is not None and k not in state and is_differentiable(v.meta)
            )
    return active


def _contribute(grads, active, arg, g):
    if g is None or not isinstance(arg, Variable) or arg not in active:
        return
    _accumulate(grads, arg, _fit(g, arg))


def _accumulate(grads, var, g):
    grads[var] = g if var not in grads else grads[var] + g


def _fit(g, x):
    """Make a cotangent match its input: sum broadcast dimensions, restore dtype and device."""
    g = record.sum_to(g, x.shape)
    if g.dtype != x.dtype or g.meta.device != x.meta.device:
        g = record.call(record.aten._to_copy.default, g, dtype=x.dtype, device=x.meta.device)
    return g


def eliminate_dead_entries(tape: Tape, keep=lambda entry: False) -> None:
    """Drop entries none of whose outputs is read later, except those `keep` names (backward
    tapes hold no random ops; a tape holding forward entries keeps them)."""
    live = {v for v in tape.outputs if isinstance(v, Variable)}
    kept = []
    for e in reversed(tape.entries):
        if keep(e) or any(v is not None and v in live for v in e.outputs):
            kept.append(e)
            live.update(e.inputs)
    tape.entries = kept[::-1]


# Entries cheap enough to run again in the backward rather than keep their outputs alive from
# the forward: lookups, shape changes, index factories and the comparisons of masks.
_ALIASING = present({
    aten.view.default, aten._unsafe_view.default, aten.unsqueeze.default, aten.expand.default,
    aten.slice.Tensor, aten.select.int, aten.permute.default, aten.detach.default,
    aten.alias.default,
})  # fmt: skip
_LOOKUPS = present({
    aten.embedding.default, aten.index.Tensor,
    aten.arange.default, aten.arange.start, aten.arange.start_step,
})  # fmt: skip
RECOMPUTABLE = _ALIASING | _LOOKUPS | present({
    aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.where.self,
    aten.cat.default, aten.clone.default, aten._to_copy.default, aten.cumsum.default,
    aten.lt.Tensor, aten.le.Tensor, aten.gt.Tensor, aten.ge.Tensor, aten.eq.Tensor,
    aten.ne.Tensor, aten.lt.Scalar, aten.le.Scalar, aten.gt.Scalar, aten.ge.Scalar,
    aten.eq.Scalar, aten.ne.Scalar,
    aten.bitwise_and.Tensor, aten.bitwise_or.Tensor, aten.bitwise_not.default,
    aten.logical_and.default, aten.logical_or.default, aten.logical_not.default,
})  # fmt: skip


def rematerialize(forward: Tape, bw: Backward, namer: Namer) -> Backward:
    """`bw` with each saved value that RECOMPUTABLE entries, a lookup among them, make from the
    forward's inputs (an embedding of the tokens, a position index, a causal mask) made again
    at the start of the backward instead: the forward saves those inputs in its place, which
    autograd holds anyway (an input the forward writes is saved as a copy: runtime's
    Plan.copied). Not a value the forward returns, nor a view of an input: neither frees
    memory."""
    made_by = {v: e for e in forward.entries for v in e.outputs if v is not None}
    inputs = set(forward.inputs)
    returned = {v for v in forward.outputs if isinstance(v, Variable)}
    chains: dict[Variable, list[TapeEntry] | None] = {}

    def chain(v) -> list[TapeEntry] | None:
        """The entries that make `v` from the inputs, in forward order; None if not all cheap."""
        if v in inputs:
            return []
        if v not in chains:
            e = made_by.get(v)
            found = None
            if e is not None and e.kind != "fallback" and e.op in RECOMPUTABLE:
                parts = [chain(i) for i in e.inputs]
                if all(p is not None for p in parts):
                    found = [x for p in parts for x in p] + [e]
            chains[v] = found
        return chains[v]

    again: dict[TapeEntry, None] = {}
    for v in bw.saved:
        entries = chain(v) if v not in inputs and v not in returned else None
        # arithmetic of inputs alone (`a + b`) costs a pass over memory to make again: kept
        if entries and any(e.op in _LOOKUPS for e in entries):
            again.update(dict.fromkeys(entries))
    if not again:
        return bw
    order = {e: k for k, e in enumerate(forward.entries)}
    renamed: dict[Variable, Variable] = {}
    entries = []
    for e in sorted(again, key=order.__getitem__):
        outs = [None if v is None else renamed.setdefault(v, namer(v.meta)) for v in e.outputs]
        entries.append(_renamed(e, renamed, outputs=outs))
    entries += [_renamed(e, renamed) for e in bw.tape.entries]
    return with_entries(bw, entries, renamed, {**bw.remade, **renamed})


def with_entries(bw: Backward, entries: list, renamed: dict, remade: dict) -> Backward:
    """`bw` running `entries` (some of them forward entries made again), its outputs renamed
    by `renamed`: it reads, as saved values, what no entry makes and no cotangent is."""
    outputs = [renamed.get(v, v) if isinstance(v, Variable) else v for v in bw.tape.outputs]
    defined = {v for e in entries for v in e.outputs}
    cotangents = bw.tape.inputs[len(bw.saved) :]
    saved = list(dict.fromkeys(
        v for v in [*(i for e in entries for i in e.inputs), *outputs]
        if isinstance(v, Variable) and v not in defined and v not in cotangents
    ))  # fmt: skip
    tape = Tape(bw.tape.name, [*saved, *cotangents], entries, outputs)
    return Backward(tape, saved, bw.cotangent_of, remade)


def _renamed(e: TapeEntry, renamed: dict, outputs=None) -> TapeEntry:
    def value(a):
        return renamed.get(a, a) if isinstance(a, Variable) else a

    args, kwargs = tree_map(value, (e.args, e.kwargs))
    return dataclasses.replace(e, args=list(args), kwargs=kwargs, outputs=outputs or e.outputs)
