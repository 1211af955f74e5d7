"""Tape -> tape passes after differentiation, each a step of the program (program.py).

Each pass returns a new tape, or the same tape where it changes nothing; none changes a tape it
is given. They run on the tapes the generated code is printed from, so what they make is what
runs:

- `reinplace`: mutations of graph inputs done in place, as eager does them (BatchNorm's running
  statistics), rather than computed aside and copied back;
- `fuse_linear`: `permute(w, [1, 0])` read only by `addmm(b, x, ·)` becomes `linear(x, w, b)`;
- `drop_unchanging_views`: a view to the shape, strides and offset it has is its input;
- `drop_unbound_asserts`: size checks on symbols the code cannot bind;
- `without_unread_statistics`: BatchNorm's batch-only form where nobody reads the new running
  statistics (the double backward's joint tape).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from .forms import batch_only, in_place_form
from .ir import SYM, Tape, TapeEntry, Variable, size_symbols
from .ops import aten
from .rules import lookup
from .torch_private import symbolic_expr, tree_map


def reinplace(tape: Tape, mutations, recorded, read_later: set, flowing=()):
    """(the tape with mutations of graph inputs done in place, the mutations still to copy
    back). `mutations[k]` is the input whose new value is output k; `recorded[k]` whether
    autograd records that update. Only where that changes nothing anyone reads: autograd does
    not record the mutation, the entry is the old value's only reader, the new value's only use
    is the copy back (no gradient flows from it: `flowing` lists the outputs that get one), and
    neither the backward nor the double backward's recompute (`read_later`) reads the old
    value. A mutation done in place returns None: the input itself holds the new value."""
    readers = Counter(v for e in tape.entries for v in e.inputs)
    used = Counter(v for v in tape.outputs if isinstance(v, Variable))
    producer = {v: i for i, e in enumerate(tape.entries) for v in e.outputs if v is not None}
    by_entry: dict[int, tuple[tuple, list[int]]] = {}  # entry -> (its in-place form, mutations)
    for k, (index, seen) in enumerate(zip(mutations, recorded, strict=True)):
        old, new = tape.inputs[index], tape.outputs[k]
        i = producer.get(new)
        form = in_place_form(tape.entries[i].op) if not seen and i is not None else None
        if form is None or k in flowing:
            continue
        entry, (_, written, results) = tape.entries[i], form
        position = entry.outputs.index(new)
        if position not in results or entry.args[written[results.index(position)]] is not old:
            continue
        if readers[old] == 1 and not used[old] and old not in read_later:
            if not readers[new] and used[new] == 1 and new not in read_later:
                by_entry.setdefault(i, (form, []))[1].append(k)
    entries, outputs, done = list(tape.entries), list(tape.outputs), set()
    for i, ((op, written, results), ks) in by_entry.items():
        entry = entries[i]
        if len(ks) != len(written):  # BatchNorm: both statistics, or neither
            continue
        kept = entry.outputs if results == (0,) else entry.outputs[: min(results)]
        entries[i] = _made_by_a_pass(op, entry.args, entry.kwargs, list(kept), entry)
        for k in ks:
            outputs[k] = None
        done.update(ks)
    copy_back = tuple(k for k in range(len(mutations)) if k not in done)
    if not done:
        return tape, copy_back
    return Tape(tape.name, tape.inputs, entries, outputs), copy_back


def fuse_linear(tape: Tape) -> Tape:
    """Each `t = permute(w, [1, 0])` whose only reader is `addmm(b, x, t)` (a 1-D bias, beta
    and alpha 1) and that the tape does not return, with that addmm, as one `linear(x, w, b)`:
    ATen's linear of a matrix with a bias is exactly that addmm, in one call instead of two."""
    readers = Counter(v for e in tape.entries for v in e.inputs)
    returned = _returned(tape)
    producer = {v: e for e in tape.entries for v in e.outputs if v is not None}
    fused, replaced = set(), {}
    for e in tape.entries:
        scaled = (e.kwargs.get("beta", 1), e.kwargs.get("alpha", 1)) != (1, 1)
        if e.op is not aten.addmm.default or scaled:
            continue
        bias, x, t = e.args[:3]
        if not all(isinstance(v, Variable) and v.is_tensor for v in (bias, x, t)):
            continue
        p = producer.get(t)
        if bias.dim() != 1 or readers[t] != 1 or t in returned or p is None:
            continue
        if p.op is aten.permute.default and list(p.args[1]) == [1, 0]:
            fused.add(p)
            replaced[e] = _made_by_a_pass(
                aten.linear.default, [x, p.args[0], bias], {}, e.outputs, e
            )
    if not fused:
        return tape
    entries = [replaced.get(e, e) for e in tape.entries if e not in fused]
    return dataclasses.replace(tape, entries=entries)


# views that may change nothing (matmul's expand to the shape it has)
_VIEWS = (
    aten.expand.default,
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.alias.default,
)


def drop_unchanging_views(tape: Tape) -> Tape:
    """Views whose output has its input's shape, strides, offset and dtype, gone: later entries
    read the input itself. Not a value the tape returns, whose identity the caller may see."""
    returned = _returned(tape)
    same: dict[Variable, Variable] = {}
    for e in tape.entries:
        if e.op not in _VIEWS or len(e.outputs) != 1 or e.outputs[0] in returned:
            continue
        x = same.get(e.args[0], e.args[0])
        if (
            isinstance(x, Variable)
            and x.is_tensor
            and _layout(x.meta) == _layout(e.outputs[0].meta)
        ):
            same[e.outputs[0]] = x
    if not same:
        return tape
    entries = [_reading(e, same) for e in tape.entries if not _dropped(e, same)]
    return dataclasses.replace(tape, entries=entries)


def drop_unbound_asserts(tape: Tape, symbols=None) -> Tape:
    """Size checks (`_assert_scalar`) on a symbol that only Dynamo's trace named (tensor_split's
    u5): its value is nowhere in the tape, and the ops check their own sizes as they run. The
    code binds the symbols of its inputs' sizes, `symbols` (the values it is handed), and those
    of each entry's outputs as they are made."""
    bound = set(map(str, symbols or ())) | {s for s, _, _ in size_symbols(tape.inputs)}
    entries = []
    for e in tape.entries:
        if e.op is aten._assert_scalar.default and not _only_bound(e.args[0], bound):
            continue
        entries.append(e)
        bound |= {s for s, _, _ in size_symbols(v for v in e.outputs if v is not None)}
    return tape if len(entries) == len(tape.entries) else dataclasses.replace(tape, entries=entries)


def without_unread_statistics(tape: Tape) -> Tape:
    """Training BatchNorm entries whose new running statistics nobody reads, as the batch-only
    form that reads no running statistics (the double backward's joint tape: then its recompute
    needs no copy of them, and the forward may update them in place). The joint tape is
    differentiated, so the new entries get their rules."""
    read = {v for e in tape.entries for v in e.inputs} | set(tape.outputs)
    entries = []
    for e in tape.entries:
        form = batch_only(e)
        if form is not None and not read & set(e.outputs[3:]):
            e = TapeEntry(*form, {}, e.outputs[:3], source=e.source, module=e.module)
            e.propagate, e.kind = lookup(e, strict=False)
        entries.append(e)
    changed = any(a is not b for a, b in zip(entries, tape.entries))
    return dataclasses.replace(tape, entries=entries) if changed else tape


def _only_bound(value, bound: set) -> bool:
    if not isinstance(value, SYM):
        return True
    return all(str(sym) in bound for sym in symbolic_expr(value).free_symbols)


def _returned(tape: Tape) -> set:
    return {v for v in tape.outputs if isinstance(v, Variable)}


def _layout(meta) -> tuple:
    return str(meta.shape), str(meta.stride()), str(meta.storage_offset()), meta.dtype


def _dropped(e: TapeEntry, same: dict) -> bool:
    return len(e.outputs) == 1 and e.outputs[0] in same


def _reading(e: TapeEntry, same: dict) -> TapeEntry:
    if not any(v in same for v in e.inputs):
        return e
    args, kwargs = tree_map(
        lambda a: same.get(a, a) if isinstance(a, Variable) else a, (e.args, e.kwargs)
    )
    return dataclasses.replace(e, args=list(args), kwargs=kwargs)


def _made_by_a_pass(op, args, kwargs, outputs, was: TapeEntry) -> TapeEntry:
    """An entry a pass made: it runs, and is never differentiated (the backward is built from
    the tape before the passes). It comes from where the entry it replaces came from."""
    return TapeEntry(op, args, kwargs, outputs, None, "nondiff", was.source, was.module)
