"""Reverse mode over a tape, run once at compile time.

`grad` is the seed's algorithm: walk the forward tape backwards, gather the cotangents of each
entry's outputs, skip entries whose cotangents are all None, apply the entry's `propagate`,
and sum the contributions to each input. The rules record Variable operations, so the result
is itself a tape: the backward tape. The forward Variables it reads are what the forward must
save.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import record
from .ir import Namer, Tape, Variable, is_differentiable
from .rules import NONDIFFERENTIABLE_OUTPUTS, run_rule


@dataclass
class Backward:
    tape: Tape  # inputs: saved forward values, then one cotangent per entry of `cotangent_of`
    saved: list[Variable]  # forward Variables the backward reads
    cotangent_of: list[int]  # forward output positions that receive a cotangent


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
        rec.source = entry.source
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
