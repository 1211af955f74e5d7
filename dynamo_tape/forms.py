"""Functional and in-place forms of ATen ops, both directions, and BatchNorm's forms.

Lowering records an in-place op as its functional form (`add_.Tensor` -> `add.Tensor`; BatchNorm's
kernel that updates the running statistics -> the one that returns their new values); the
re-inplacing pass turns a functional entry back into the in-place form where nothing else reads
the old value. Both read the pairing from here.
"""

from __future__ import annotations

import torch

from .ops import aten, present
from .torch_private import OpOverload, overload_name, schema

# BatchNorm's kernel that updates the running statistics in place, and its functional form,
# which returns their new values as outputs 3 and 4 (the in-place one returns outputs 0-2)
BATCH_NORM_IN_PLACE = aten._native_batch_norm_legit.default
BATCH_NORM_FUNCTIONAL = aten._native_batch_norm_legit_functional.default
# training BatchNorm on the batch's statistics alone: reads and writes no running statistics
BATCH_NORM_BATCH_ONLY = aten._native_batch_norm_legit.no_stats

# BatchNorm kernels update the running statistics in place; these do not (the others either
# say so in their schemas or, like native_batch_norm, do it without saying)
_PURE_BATCH_NORM = {
    BATCH_NORM_FUNCTIONAL,
    aten._native_batch_norm_legit_no_training.default,
    BATCH_NORM_BATCH_ONLY,
}

# CPU dropout inside a checkpointed region is `empty_like(x).bernoulli_(1 - p)`
_FUNCTIONAL_OVERLOADS = present({aten.bernoulli_.float: aten.bernoulli.p})


def mutates_unsaid(op: OpOverload) -> bool:
    """A BatchNorm kernel that writes the running statistics without its schema saying so."""
    return "batch_norm" in schema(op).name and op not in _PURE_BATCH_NORM


def may_mutate(op: OpOverload) -> bool:
    """Whether an op may write one of its arguments (said in its schema, or BatchNorm's)."""
    return schema(op).is_mutable or "batch_norm" in schema(op).name


def writes_first_argument_only(op) -> bool:
    """`add_.Tensor`, `relu_`: an op that writes its first argument and nothing else, and keeps
    its metadata (not `t_`, whose view changes)."""
    arguments = schema(op).arguments
    written = [a for a in arguments if a.alias_info is not None and a.alias_info.is_write]
    return written == arguments[:1] and torch.Tag.inplace_view not in op.tags


def in_place_variant(op):
    """`lerp_.Scalar` for `lerp.Scalar` (a MissingOp where there is none)."""
    return getattr(getattr(aten, _packet(op) + "_"), overload_name(op))


def functional_form(func) -> tuple[OpOverload, int] | None:
    """(functional op, how many of its outputs the in-place op returns); its other outputs are
    the new values of the arguments the in-place op writes, in order. None: not known."""
    if func is BATCH_NORM_IN_PLACE:
        return BATCH_NORM_FUNCTIONAL, 3
    if func in _FUNCTIONAL_OVERLOADS:  # named differently from the in-place overload
        return _FUNCTIONAL_OVERLOADS[func], 0
    name = _packet(func)
    if not name.endswith("_") or name.endswith("__") or not writes_first_argument_only(func):
        return None
    functional = getattr(getattr(aten, name[:-1]), overload_name(func))
    return (functional, 0) if isinstance(functional, OpOverload) else None


def in_place_form(op):
    """(the in-place form of a functional op, the arguments that form writes, the functional
    op's outputs that are their new values), or None: `functional_form` the other way round."""
    if op is BATCH_NORM_FUNCTIONAL:  # running_mean and running_var
        return BATCH_NORM_IN_PLACE, (3, 4), (3, 4)
    if not isinstance(op, OpOverload):
        return None
    # `add.Tensor` -> `add_.Tensor`: writes its first argument, returns it
    in_place = getattr(getattr(aten, _packet(op) + "_", None), overload_name(op), None)
    if isinstance(in_place, OpOverload) and writes_first_argument_only(in_place):
        return in_place, (0,), (0,)
    return None


def batch_only(entry) -> tuple[OpOverload, list] | None:
    """A training BatchNorm entry as the form that reads and writes no running statistics
    (op, arguments; it returns the functional form's first three outputs), or None."""
    if entry.op is not BATCH_NORM_FUNCTIONAL or entry.args[5] is not True:
        return None
    x, w, b, _, _, training, momentum, eps = entry.args
    return BATCH_NORM_BATCH_ONLY, [x, w, b, training, momentum, eps]


def _packet(op) -> str:
    return schema(op).name.split("::")[-1]
