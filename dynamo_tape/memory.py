"""Saved values the backward makes again, from other saved values or the forward's inputs, by
chains of cheap entries, instead of the forward keeping them: by default, and further under
the memory budget (`options={"memory_budget": x}`, in the spirit of AOTAutograd's
`activation_memory_budget`).

By default (and at a budget of 1), much as AOTAutograd's min-cut partitioner does for
`aot_eager`: a saved value that views and pointwise entries make from other saved values, and
that the backward reads only in pointwise entries (through views), is made again, where that
frees bytes. Nothing new is saved in its place: an input the forward would not keep (one the
caller changes in place afterwards, or made under inference mode) stays unkept. A value a
matmul or a reduction of the backward reads is kept, as the min-cut partitioner keeps what its
backward needs materialized anyway: on the benchmark's deep MLP, making each GELU's output
again (the next Linear's weight gradient reads it) took its step from 1.07 to 1.13 of eager's,
and `aot_eager` keeps them too. On transformers' GPT-2 the default makes its tanh-GELU's
intermediates again from the MLP's first Linear.

Under a budget below 1, more: chains of every cheap kind, until the saved bytes are at most
`budget` times those of all the backward reads (what is saved with nothing made again).

Bytes are counted as the project measures them (tools/bench_measure.py `saved_bytes`): once
per storage, so a view costs what its base costs and is freed only with every other saved
view of that base; the forward's inputs cost nothing (the parameters and the batch live
anyway), except those the graph mutates, which the runtime saves as copies. Sizes are the
Variables' metas, symbolic ones by their hints; a value of unknown size is never chosen.

Cheap: views (free), pointwise ops and activations (one pass over memory), LayerNorm,
BatchNorm and max pooling (a few passes: measured at a few percent of the step on the
project's GPT and ResNet; under a budget only). Never a matmul or convolution, a random op
(it would draw new numbers), an op that writes an argument, or an op without a rule of ours
(the generic fallback). The forward tape is functional, so a value is never changed after it
is made: any saved value, or any input, is a safe start of a chain; the chains' starts join
the saved values, which re-inplacing then leaves alone.

The choice is greedy: each round takes the saved storage whose chain frees the most bytes
per byte the chain's entries read and write (entries already made again for an earlier
choice cost nothing), until the saved bytes reach the target or nothing more can be freed.
Each entry made again runs in the backward just before the first entry that reads it.
"""

from __future__ import annotations

import heapq
import math

import torch

from .autodiff import Backward, _renamed, with_entries
from .forms import BATCH_NORM_FUNCTIONAL, batch_only, mutates_unsaid
from .ir import Namer, Tape, TapeEntry, Variable, is_random
from .ops import aten, present
from .rules import lookup
from .torch_private import OpOverload, schema, size_hint

# passes over memory, per byte read and written, relative to a pointwise op
_NORMS = present({
    aten.native_layer_norm.default: 3.0,
    BATCH_NORM_FUNCTIONAL: 3.0,  # made again in its batch-only form: no running statistics
    aten._native_batch_norm_legit_no_training.default: 2.0,
})  # fmt: skip
_POOLS = present({aten.max_pool2d_with_indices.default: 2.0})
# cheap ops ATen does not tag pointwise
_ELEMENTWISE = present({
    aten._to_copy.default, aten.hardswish.default, aten.hardsigmoid.default,
    aten.fill.Scalar, aten.zeros_like.default, aten.ones_like.default,
    aten.full_like.default,
})  # fmt: skip
# views whose schemas do not say so (they share their input's storage all the same)
_UNSAID_VIEWS = present({aten._unsafe_view.default})
_MAX_CHAIN = 24  # new entries one choice may make again


def cost_factor(entry: TapeEntry) -> float | None:
    """What running the entry again costs per byte it reads and writes (0 for a view), or None
    where it may not run again in the backward."""
    op = entry.op
    if entry.kind == "fallback" or not isinstance(op, OpOverload) or op.namespace != "aten":
        return None
    if is_random(op) or schema(op).is_mutable or mutates_unsaid(op):
        return None
    if op in _NORMS:
        return None if op is BATCH_NORM_FUNCTIONAL and batch_only(entry) is None else _NORMS[op]
    if op in _POOLS:
        return _POOLS[op]
    if _is_view(op):
        return 0.0
    if torch.Tag.pointwise in op.tags or op in _ELEMENTWISE:
        return 1.0
    return None


def _is_view(op) -> bool:
    if op in _UNSAID_VIEWS:
        return True
    returns = schema(op).returns
    return bool(returns) and all(
        r.alias_info is not None and not r.alias_info.is_write for r in returns
    )


def _made_again(e: TapeEntry) -> list:
    """The outputs the entry makes when run again: BatchNorm's batch-only form makes no new
    running statistics."""
    return e.outputs[:3] if batch_only(e) is not None else e.outputs


def nbytes(v) -> int | None:
    """A tensor Variable's bytes (its shape's hints where symbolic), 0 for a scalar, None where
    a size has no hint."""
    if not isinstance(v, Variable) or not v.is_tensor:
        return 0
    numel = v.meta.numel()
    if isinstance(numel, torch.SymInt):
        numel = size_hint(numel)
        if numel is None:
            return None
    return int(numel) * v.meta.element_size()


class _Storages:
    """The storage each forward Variable lives in (a view's is its base's) and its bytes."""

    def __init__(self, forward: Tape, mutated: set):
        self.made_by = {v: e for e in forward.entries for v in e.outputs if v is not None}
        self.inputs = set(forward.inputs)
        self.mutated = mutated
        self._roots: dict[Variable, Variable] = {}

    def root(self, v: Variable) -> Variable:
        if v not in self._roots:
            e = self.made_by.get(v)
            base = e.args[0] if e is not None and isinstance(e.op, OpOverload) else None
            is_view = isinstance(base, Variable) and base.is_tensor and _is_view(e.op)
            self._roots[v] = self.root(base) if is_view else v
        return self._roots[v]

    def bytes(self, root: Variable) -> int | None:
        """What keeping the storage costs: nothing for an input the graph does not write."""
        if root in self.inputs and root not in self.mutated:
            return 0
        return nbytes(root)


def budget_memory(
    forward: Tape, bw: Backward, namer: Namer, budget: float | None, mutated: set
) -> Backward:
    """`bw` with saved values made again in the backward (see the module docstring): the
    default's, and under a `budget` below 1 more, until the saved bytes are at most `budget`
    times those of all the backward reads. `mutated`: the inputs the graph writes."""
    greedy = _Greedy(forward, bw, mutated)
    everything = greedy.total
    greedy.run(0.0, _POINTWISE, greedy.read_pointwise, new_starts=False)
    if budget is not None and budget < 1:
        greedy.run(budget * everything, math.inf, lambda group: True, new_starts=True)
    if not greedy.remade_by:
        return bw
    return _remade(bw, greedy.remade_by, greedy.kept, greedy.storages, namer)


_POINTWISE = 1.0  # the default makes again views and pointwise entries only


class _Greedy:
    """The saved storages, and the entries chosen to make values again in their place."""

    def __init__(self, forward: Tape, bw: Backward, mutated: set):
        self.storages = storages = _Storages(forward, mutated)
        self.returned = {v for v in forward.outputs if isinstance(v, Variable)}
        self.held: dict[Variable, set[Variable]] = {}  # root -> the saved values in it
        for v in bw.saved:
            if v.is_tensor:
                self.held.setdefault(storages.root(v), set()).add(v)
        self.sizes = {r: storages.bytes(r) or 0 for r in self.held}
        self.total = sum(self.sizes.values())
        self.remade_by: dict[TapeEntry, None] = {}  # entries made again, in the order chosen
        self.available = set(bw.remade)  # forward values the backward has without saving them
        self.kept = set(bw.saved)
        self.readers: dict[Variable, list[TapeEntry]] = {}
        for e in bw.tape.entries:
            for v in e.inputs:
                self.readers.setdefault(v, []).append(e)
        self.read_by_outputs = {v for v in bw.tape.outputs if isinstance(v, Variable)}

    def read_pointwise(self, group) -> bool:
        """Whether the backward reads the values only in pointwise entries (through views)."""

        def pointwise(v) -> bool:
            if v in self.read_by_outputs:
                return False
            for e in self.readers.get(v, ()):
                factor = cost_factor(e)
                if factor == 0.0:
                    if not all(pointwise(out) for out in e.outputs if out is not None):
                        return False
                elif factor != _POINTWISE:
                    return False
            return True

        return all(pointwise(v) for v in group)

    def run(self, target: float, limit: float, readers_allow, new_starts: bool) -> None:
        """Take choices, best first, until the saved bytes are at most `target` or none is
        left: chains of entries costing at most `limit` per byte, for groups of saved values
        `readers_allow` admits, from new saved values too where `new_starts`."""
        heap = []
        for k, root in enumerate(self.held):
            found = self.choice(root, limit, readers_allow, new_starts)
            if found is not None:
                heap.append((-_score(found), k, root))
        heapq.heapify(heap)
        while heap and self.total > target:
            _, k, root = heapq.heappop(heap)
            found = self.choice(root, limit, readers_allow, new_starts)  # earlier choices change it
            if found is None:
                continue
            if heap and _score(found) < -heap[0][0] - 1e-12:
                heapq.heappush(heap, (-_score(found), k, root))
                continue
            self.take(root, found)

    def take(self, root, found) -> None:
        _, _, entries, starts = found
        self.kept -= self.held.pop(root)
        self.total -= self.sizes.pop(root)
        for s in starts:
            self.kept.add(s)
            r = self.storages.root(s)
            if r not in self.held:
                self.sizes[r] = self.storages.bytes(r) or 0
                self.total += self.sizes[r]
            self.held.setdefault(r, set()).add(s)
        self.remade_by.update(dict.fromkeys(entries))
        for e in entries:
            self.available.update(v for v in _made_again(e) if v is not None)

    def choice(self, root, limit, readers_allow, new_starts):  # noqa: C901 - one walk up
        """(bytes freed, cost, entries, new saved values) of no longer saving storage `root`,
        or None where it cannot be made again or frees nothing. Without `new_starts`, only
        from what is saved already."""
        storages, kept = self.storages, self.kept
        group = self.held.get(root)
        if not group or self.sizes.get(root, 0) <= 0 or root in storages.inputs:
            return None
        if group & self.returned or root in self.returned:  # the caller holds it anyway
            return None
        if not readers_allow(group):
            return None
        entries: dict[TapeEntry, None] = {}
        starts: set[Variable] = set()

        def reach(v) -> bool:
            if (v in kept and v not in group) or v in self.available:
                return True
            if v in storages.inputs:  # saved in its place, at no cost
                return new_starts
            e = storages.made_by.get(v)
            if e is None:
                return False
            if e in entries or e in self.remade_by:
                return True
            factor = cost_factor(e)
            if factor is None or factor > limit or v not in _made_again(e):
                if v in group or not new_starts:
                    return False
                starts.add(v)  # saved in its place
                return True
            if len(entries) >= _MAX_CHAIN:
                return False
            if not all(reach(i) for i in e.inputs):
                return False
            entries[e] = None
            return True

        if not all(reach(v) for v in group):
            return None
        start_roots = {storages.root(s) for s in starts}
        if root in start_roots:  # its base saved in its place: nothing freed
            return None
        # starts sharing a storage not saved yet cost it once
        added = 0
        for r in start_roots - set(self.held):
            b = storages.bytes(r)
            if b is None:
                return None
            added += b
        freed = self.sizes[root] - added
        if freed <= 0:
            return None
        cost = 0.0
        for e in entries:
            read_written = [nbytes(v) for v in (*e.inputs, *_made_again(e)) if v is not None]
            if any(b is None for b in read_written):
                return None
            cost += cost_factor(e) * sum(read_written)
        return freed, cost, list(entries), starts


def _score(found) -> float:
    freed, cost, _, _ = found
    return freed / (cost + 1.0)


def _remade(bw: Backward, again: dict, kept: set, storages: _Storages, namer: Namer) -> Backward:
    """The backward tape with the entries `again` run just before the first entry that reads
    what they make, reading the saved values `kept`."""
    renamed = dict(bw.remade)  # forward Variable -> the backward's
    made_again = {v: e for e in again for v in _made_again(e) if v is not None}
    done: set[TapeEntry] = set()
    entries: list[TapeEntry] = []

    def need(values):
        for v in values:
            e = made_again.get(v)
            if isinstance(v, Variable) and v not in kept and v not in renamed and e is not None:
                run_again(e)

    def run_again(e: TapeEntry):
        if e in done:
            return
        done.add(e)
        need(e.inputs)
        outputs = [
            None if v is None else renamed.setdefault(v, namer(v.meta)) for v in _made_again(e)
        ]
        entries.append(_again(e, renamed, outputs))

    for e in bw.tape.entries:
        need(e.inputs)
        entries.append(_renamed(e, renamed))
    need(bw.tape.outputs)
    return with_entries(bw, entries, renamed, renamed)


def _again(e: TapeEntry, renamed: dict, outputs: list) -> TapeEntry:
    """A forward entry made again in the backward, from where the forward's came from; a
    training BatchNorm in the form that reads and writes no running statistics."""
    form = batch_only(e)
    if form is None:
        return _renamed(e, renamed, outputs)
    op, args = form
    again = TapeEntry(
        op, [renamed.get(a, a) if isinstance(a, Variable) else a for a in args], {},
        outputs, source=e.source, module=e.module,
    )  # fmt: skip
    again.propagate, again.kind = lookup(again, strict=False)  # the double backward's
    return again


def saved_bytes(forward: Tape, bw: Backward, mutated: set = frozenset()) -> int:
    """The bytes of the distinct storages `bw` saves, as the budget counts them."""
    storages = _Storages(forward, mutated)
    roots = {storages.root(v) for v in bw.saved if v.is_tensor}
    return sum(storages.bytes(r) or 0 for r in roots)
