"""The rule table: one vector-Jacobian rule per ATen overload.

Convention for every rule: `rule(g, y, *args, **kwargs)` gets `g`, the cotangent of the
entry's output (a tuple, possibly holding None, for ops with several outputs), `y`, the output
Variable(s), and the op's arguments exactly as the schema lists them (Variables for tensors,
constants otherwise). It returns one cotangent per positional argument, None for none; a
shorter tuple leaves the rest None. Rules never reduce broadcast dimensions or cast dtypes:
the engine does that once, when it accumulates cotangents (see autodiff.py).

An op that no rule covers still gives the right gradient: `lookup` hands out the generic
`torch.autograd` fallback (counted and reported), or raises `UnsupportedOpError` when the
user asked for `options={"fallback": "error"}`.
"""

from __future__ import annotations

import functools

from ..ir import is_differentiable
from ..ops import aten, present
from . import (
    attention,
    factorizations_extra,
    linalg,
    linalg_extra,
    losses,
    nn,
    nn_extra,
    pointwise,
    pointwise_extra,
    reductions,
    reductions_extra,
    scatter_extra,
    views,
    views_extra,
)
from .fallback import autograd_vjp

RULES: dict = {}
# the *_extra families (ops OpInfo reaches) come first: a family's own rule wins on overlap.
# Ops the running torch lacks are dropped here (`dynamo_tape.ops.missing_ops()` lists them).
for _family in (
    *(pointwise_extra, reductions_extra, views_extra, linalg_extra, factorizations_extra),
    *(nn_extra, scatter_extra),
    *(pointwise, reductions, views, linalg, nn, attention, losses),
):
    RULES.update(present(_family.RULES))

# Ops whose gradient is zero (or undefined) everywhere: they need no rule. Ops whose inputs or
# outputs are all integer or boolean are recognised by dtype and need no entry here.
NONDIFFERENTIABLE = present({
    aten.sign.default,
    aten.floor.default,
    aten.ceil.default,
    aten.round.default,
    aten.round.decimals,
    aten.trunc.default,
    aten.frac.default,
    aten.zeros_like.default,
    aten.ones_like.default,
    aten.empty_like.default,
    aten.full_like.default,
    aten.rand_like.default,
    aten.randn_like.default,
    aten.bernoulli.default,
    aten.bernoulli.p,
    # torch defines the gradient of a normal draw with respect to its mean and std as zero
    aten.normal.Tensor_Tensor,
    aten.normal.Tensor_float,
    aten.normal.float_Tensor,
    aten.detach.default,
    aten.new_zeros.default,
    aten.new_ones.default,
    aten.new_empty.default,
    aten.new_full.default,
    aten.new_empty_strided.default,
    aten.scalar_tensor.default,
    aten.empty_strided.default,
})


# Outputs that carry no gradient although the op's inputs do: BatchNorm's updated running
# statistics are state, updated outside autograd in eager too.
NONDIFFERENTIABLE_OUTPUTS = present({
    aten._native_batch_norm_legit_functional.default: (3, 4),
})


class UnsupportedOpError(RuntimeError):
    """An op has no rule of this project's and the generic fallback was switched off."""


def lookup(entry, strict: bool):
    """(propagate, kind) for a new entry; see the module docstring."""
    op = entry.op
    if op in NONDIFFERENTIABLE or not (
        any(is_differentiable(v.meta) for v in entry.inputs)
        and any(v is not None and is_differentiable(v.meta) for v in entry.outputs)
    ):
        return None, "nondiff"
    rule = RULES.get(op)
    if rule is not None:
        return rule, "rule"
    if strict:
        from ..ir import op_name

        where = f" (from {entry.source})" if entry.source else ""
        namespace = getattr(op, "namespace", "aten")
        raise UnsupportedOpError(
            f"no tape rule for {namespace}.{op_name(op)} in tape entry `{entry.text()}`{where}, "
            "and options={'fallback': 'error'} forbids the generic torch.autograd fallback"
        )
    return functools.partial(autograd_vjp, op), "fallback"
