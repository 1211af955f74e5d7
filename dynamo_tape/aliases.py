"""Outputs that alias inputs or other outputs, and mutations written back: what the callable
Dynamo gets does around the generated code so that its results behave as eager's.

Outputs that are views of inputs, or of other outputs, are taken again outside the autograd
Function (`view_again`), so that they can be modified in place as in eager; mutations of graph
inputs the forward did not do in place are copied back (`copy_back`).
"""

from __future__ import annotations

import torch

from . import torch_private as tp
from .ir import Tape, Variable
from .lower import Lowered
from .torch_private import OpOverload, schema


def made_by_a_view(tape: Tape) -> set:
    """The Variables an entry returns as a view of one of its arguments (`view`, `t`, ...)."""
    found = set()
    for e in tape.entries:
        if isinstance(e.op, OpOverload):
            returns = schema(e.op).returns
            if len(returns) == 1:  # one tensor, or a list of them (split's `Tensor(a)[]`)
                returns = returns * len(e.outputs)
            for v, r in zip(e.outputs, returns):
                if v is not None and r.alias_info is not None and not r.alias_info.is_write:
                    found.add(v)
    return found


def detached(outs, positions):
    if not positions:
        return outs
    outs = list(outs)
    for k in positions:
        outs[k] = outs[k].detach()
    return outs


def views_of_inputs(lowered: Lowered) -> dict[int, int]:
    """User output position -> input index, for outputs that are views of an input."""
    inputs = [(i, v) for i, v in enumerate(lowered.tape.inputs) if v.is_tensor]
    fresh = set(lowered.fresh_outputs)  # eager's is no view (unsafe_chunk): none is made
    found = {}
    for position, out in enumerate(lowered.user_outputs):
        if position in lowered.returns_input or position in fresh or not isinstance(out, Variable):
            continue
        for index, v in inputs:
            if out.is_tensor and tp.is_alias_of(out.meta, v.meta):
                found[position] = index
    return found


def views_of_outputs(lowered: Lowered, of_inputs) -> dict[int, int]:
    """User output position -> position of the output it is a view of (`h, h.view(-1)`)."""
    taken = set(of_inputs) | set(lowered.returns_input)
    fresh = set(lowered.fresh_outputs)  # eager's is no view: a base, never a view re-taken
    made_by = {v: e.op for e in lowered.tape.entries for v in e.outputs}
    outs = [
        (p, o, getattr(made_by.get(o), "is_view", False))
        for p, o in enumerate(lowered.user_outputs)
        if p not in taken and isinstance(o, Variable) and o.is_tensor
    ]
    found = {}
    for position, out, is_view in outs:
        for base, other, other_is_view in outs if is_view and position not in fresh else ():
            if not other_is_view and tp.is_alias_of(out.meta, other.meta):
                found[position] = base
                break
    return found


def view_again(base, view):
    """`view` taken from `base` outside the Function; as_strided keeps `base`'s dtype and
    conj/neg bits, so a view that changes them stays as it is."""
    if (view.dtype, view.is_conj(), view.is_neg()) != (base.dtype, base.is_conj(), base.is_neg()):
        return view
    return base.as_strided(view.size(), view.stride(), view.storage_offset())


def copy_back(args, lowered: Lowered, outs, mutations: tuple[int, ...]):
    recorded = [lowered.recorded[k] for k in mutations]
    targets = [args[lowered.mutations[k]] for k in mutations]
    new_values = [outs[k] for k in mutations]
    grad = torch.is_grad_enabled()
    if not any(
        seen and grad and (new.requires_grad or target.requires_grad)
        for target, new, seen in zip(targets, new_values, recorded, strict=True)
    ):  # the common case (BatchNorm's statistics): no autograd, one call for all the copies
        with torch.no_grad():
            tp.foreach_copy_(targets, list(new_values))
        return
    for target, new, seen in zip(targets, new_values, recorded, strict=True):
        if seen and grad and (new.requires_grad or target.requires_grad):
            target.copy_(new)  # recorded by autograd, like eager's in-place op
        else:
            with torch.no_grad():
                target.copy_(new)
