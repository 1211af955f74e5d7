"""Lowering: Dynamo's torch-level FX graph -> a functional ATen graph -> a forward Tape.

`lower` reads Dynamo's graph once (dynamo_graph.py), records its ATen graph (aten_graph.py)
and builds the tape from that (tape_builder.py). The ATen graph is functional and lists the
inputs the graph mutates (BatchNorm's running statistics, `x.add_(1)`): their new values are
extra leading outputs, listed in `Lowered.mutations`, for the runtime to write back. Entries
computed under `torch.no_grad()` inside the graph are non-differentiable, and so are the
updates eager's autograd does not record; reads after such an update of a leaf are reads of
the leaf (`_WrittenLeaf`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.fx

from .aten_graph import to_aten
from .dynamo_graph import LoweringError, read, where, without_grad_mode_changes
from .ir import Namer, Tape, TapeEntry
from .tape_builder import to_tape


@dataclass
class Lowered:
    tape: Tape  # outputs: mutated inputs' new values first, then the user outputs
    namer: Namer
    fake_mode: object
    mutations: list[int] = field(default_factory=list)  # input index per leading output
    # user output position -> input index, for outputs that ARE an input (`self.n += 1` makes
    # Dynamo return the buffer itself): the caller gets that very tensor back, as in eager
    returns_input: dict[int, int] = field(default_factory=dict)
    aten_graph: torch.fx.GraphModule | None = None
    # per mutation: does eager autograd record it? Yes for `x.add_(w)`, no for BatchNorm's
    # running statistics (updated inside the kernel); read off Dynamo's traced fake inputs
    recorded_mutations: list[bool] = field(default_factory=list)
    # user output positions eager returns as tensors of their own, not views (read off
    # Dynamo's output values): where the tape's is a view of an intermediate (its `stack` is
    # `unsqueeze` then `cat`... then a view), it is handed back detached from that base
    fresh_outputs: list[int] = field(default_factory=list)

    @property
    def recorded(self) -> list[bool]:
        """`recorded_mutations`, or when unknown (tapes built by hand) every mutation."""
        return self.recorded_mutations or [True] * len(self.mutations)

    @property
    def user_outputs(self) -> list:
        return self.tape.outputs[len(self.mutations) :]


def lower(gm: torch.fx.GraphModule, example_inputs, fake_mode, strict: bool) -> Lowered:
    dynamo = read(gm)
    if dynamo.subclass is not None:
        raise LoweringError(
            f"tensor subclass {dynamo.subclass.name}{where(dynamo.subclass.source)}: the tape "
            "runs plain tensors and DTensor only, and refuses other subclasses rather than "
            "differentiate ops whose meaning they change"
        )
    try:
        aten_gm, mutations, fake_mode = to_aten(
            without_grad_mode_changes(gm), dynamo, example_inputs, fake_mode
        )
    except Exception as e:  # noqa: BLE001 - reported to the user with the cause attached
        raise LoweringError(f"could not lower the graph to ATen: {type(e).__name__}: {e}") from e
    tape, namer = to_tape(aten_gm, strict, no_grad=dynamo.no_grad)
    if len(tape.inputs) == len(dynamo.input_names):  # the ATen graph's inputs are Dynamo's
        for v, label in zip(tape.inputs, dynamo.input_names):
            v.label = label
    traced = dynamo.inputs
    quiet = dynamo.written_under_no_grad
    recorded = [_recorded(traced[i]) and i not in quiet for i in mutations]
    leaves = [k for k, i in enumerate(mutations) if _is_leaf_requiring_grad(traced[i])]
    _differentiate_later_reads_as_the_leaf(tape, namer, mutations, leaves)
    return Lowered(
        tape,
        namer,
        fake_mode,
        mutations,
        dynamo.returns_input,
        aten_gm,
        recorded_mutations=recorded,
        fresh_outputs=dynamo.fresh_outputs,
    )


def _recorded(value) -> bool:
    """Whether eager's autograd records an in-place update of this graph input. Not for one
    that needs no gradient, and not for a leaf that requires one: eager refuses to write such a
    leaf under grad mode, so a program that does (`w.data.mul_(2)`, `nn.Embedding(max_norm=1)`
    renormalizing its weight under no_grad) writes it unrecorded."""
    return getattr(value, "requires_grad", True) and not getattr(value, "is_leaf", False)


def _is_leaf_requiring_grad(value) -> bool:
    return bool(getattr(value, "requires_grad", False) and getattr(value, "is_leaf", False))


class _WrittenLeaf:
    """`new = written_leaf(leaf, new)`: the value of a leaf that requires grad after an update
    autograd does not record (`w.data.mul_(2)`). Later reads of it are reads of the leaf, as in
    eager, where the leaf itself holds the new value: their gradient goes to the leaf, and
    none through the update."""

    name = __name__ = "written_leaf"

    def __call__(self, leaf, new):
        return [new]

    @staticmethod
    def propagate(g, y, leaf, new):
        return (g[0], None)


_WRITTEN_LEAF = _WrittenLeaf()


def _differentiate_later_reads_as_the_leaf(tape: Tape, namer, mutations, leaves: list[int]):
    for k in leaves:
        new, leaf = tape.outputs[k], tape.inputs[mutations[k]]
        at = next((i + 1 for i, e in enumerate(tape.entries) if new in e.outputs), None)
        user = len(mutations)
        read_later = at is not None and (
            any(new in e.inputs for e in tape.entries[at:]) or new in tape.outputs[user:]
        )
        if not read_later:  # an optimizer's update: nothing in the graph reads the new value
            continue
        read = namer(new.meta)
        update = tape.entries[at - 1]
        entry = TapeEntry(
            _WRITTEN_LEAF, [leaf, new], {}, [read], source=update.source, module=update.module
        )
        entry.propagate, entry.kind = _WrittenLeaf.propagate, "rule"
        later = [
            dataclasses.replace(
                e,
                args=_replaced(e.args, new, read),
                kwargs={name: _replaced(a, new, read) for name, a in e.kwargs.items()},
            )
            for e in tape.entries[at:]
        ]
        tape.entries[at:] = [entry, *later]
        tape.outputs[user:] = [read if o is new else o for o in tape.outputs[user:]]


def _replaced(a, old, new):
    if a is old:
        return new
    if isinstance(a, list | tuple):
        return type(a)(_replaced(x, old, new) for x in a)
    return a
