"""The rule table: one vector-Jacobian rule per ATen overload.

Convention for every rule: `rule(g, y, *args, **kwargs)` gets `g`, the cotangent of the
entry's output (a tuple, possibly holding None, for ops with several outputs), `y`, the output
Variable(s), and the op's arguments exactly as the schema lists them (Variables for tensors,
constants otherwise). It returns one cotangent per positional argument, None for none; a
shorter tuple leaves the rest None. Rules never reduce broadcast dimensions or cast dtypes:
the engine does that once, when it accumulates cotangents (see autodiff.py).

An op that no rule covers still gives the right gradient: `lookup` hands out the generic
`torch.autograd` fallback (counted and reported), or raises `UnsupportedOpError` when the
user asked for `options={"fallback": "error"}`. The engine runs each rule through `run_rule`,
which names the op, the tape entry and the user's line when a rule fails.

Complex numbers follow torch's convention (rules/conjugate.py). Only the rules in COMPLEX_SAFE
are known right for them (each is checked in complex128 by tests/test_rules.py); an entry
with a complex input or output whose op has another rule goes to the fallback in the same way.
"""

from __future__ import annotations

import functools

from .. import record
from ..ir import Variable, is_differentiable, op_name
from ..ops import aten, present
from ..torch_private import OpOverload, schema
from . import (
    attention,
    backward_kernels,
    factorizations,
    fft,
    indexing,
    libraries,
    linalg,
    losses,
    nn,
    pointwise,
    reductions,
    shapes,
    special,
)
from .conjugate import is_complex
from .fallback import autograd_vjp

# One table per concept; each op has its rule in exactly one of them.
FAMILIES = (pointwise, special, reductions, shapes, indexing, linalg, factorizations, fft, nn,
            losses, attention, backward_kernels)  # fmt: skip


def merged(families) -> tuple[dict, set]:
    """(RULES, COMPLEX_SAFE) of the families, which must be disjoint; ops the running torch
    lacks are dropped here (`dynamo_tape.ops.missing_ops()` lists them)."""
    rules, complex_safe = {}, set()
    for family in families:
        overlap = rules.keys() & present(family.RULES).keys()
        if overlap:
            names = ", ".join(sorted(map(op_name, overlap)))
            raise ValueError(f"{family.__name__} has rules for ops another family covers: {names}")
        if not family.COMPLEX_SAFE <= family.RULES.keys():
            raise ValueError(f"{family.__name__}.COMPLEX_SAFE names ops it has no rule for")
        rules.update(present(family.RULES))
        complex_safe.update(present(family.COMPLEX_SAFE))
    return rules, complex_safe


RULES, COMPLEX_SAFE = merged(FAMILIES)  # COMPLEX_SAFE: the rules right for complex values too

# Ops whose outputs do not require grad in eager although their inputs do (factories, detach):
# they need no rule. Ops whose gradient is zero (floor, sign, fill, a random draw's parameters)
# are not here: eager's outputs require grad, and their rules give zeros. Ops whose inputs or
# outputs are all integer or boolean are recognised by dtype and need no entry here.
NONDIFFERENTIABLE = present(
    {
        aten.zeros_like.default,
        aten.ones_like.default,
        aten.empty_like.default,
        aten.full_like.default,
        aten.rand_like.default,
        aten.randn_like.default,
        aten.detach.default,
        aten.new_zeros.default,
        aten.new_ones.default,
        aten.new_empty.default,
        aten.new_full.default,
        aten.new_empty_strided.default,
        aten.scalar_tensor.default,
        aten.empty_strided.default,
    }
)


# Outputs that carry no gradient although the op's inputs do (their positions), as eager's
# autograd decides from derivatives.yaml: those `output_differentiability` marks False (LU's
# permutation matrix, the LU factors a solve or determinant keeps for its backward), and, for
# an op without that list whose backward formula reads `grad` (not `grads[i]`), every output
# but the first (the saved mean and rstd of the norms, nll_loss's total weight). BatchNorm's
# updated running statistics are state, updated outside autograd in eager too. Integer outputs
# (indices, pivots, info) are recognised by dtype; they are listed where yaml lists them all
# the same. tests/test_rules.py checks this table against the derivatives.yaml in the wheel.
NONDIFFERENTIABLE_OUTPUTS = present(
    {
        aten._native_batch_norm_legit_functional.default: (1, 2, 3, 4),
        aten._native_batch_norm_legit_no_training.default: (1, 2),
        aten._native_batch_norm_legit.no_stats: (1, 2),
        aten._batch_norm_with_update_functional.default: (1, 2, 3, 4, 5),
        aten.native_layer_norm.default: (1, 2),
        aten._weight_norm_interface.default: (1,),
        aten.native_dropout.default: (1,),
        aten.nll_loss_forward.default: (1,),
        aten.multilabel_margin_loss_forward.default: (1,),
        aten.nll_loss2d_forward.default: (1,),
        aten.rrelu_with_noise_functional.default: (1,),
        aten.frexp.Tensor: (1,),
        aten.max.dim: (1,),
        aten.min.dim: (1,),
        aten.median.dim: (1,),
        aten.nanmedian.dim: (1,),
        aten.mode.default: (1,),
        aten.kthvalue.default: (1,),
        aten.cummax.default: (1,),
        aten.cummin.default: (1,),
        aten.linalg_cholesky_ex.default: (1,),
        aten.linalg_lu.default: (0,),
        aten.lu_unpack.default: (0,),
        aten.linalg_lu_factor_ex.default: (1, 2),
        aten._linalg_det.default: (1, 2),
        aten._linalg_slogdet.default: (2, 3),
        aten._linalg_solve_ex.default: (1, 2, 3),
        aten.linalg_inv_ex.default: (1,),
        aten.sort.default: (1,),
        aten.sort.stable: (1,),
        aten.topk.default: (1,),
        aten.max_pool2d_with_indices.default: (1,),
        aten.max_pool3d_with_indices.default: (1,),
        aten.adaptive_max_pool2d.default: (1,),
        aten.adaptive_max_pool3d.default: (1,),
        aten.fractional_max_pool2d.default: (1,),
        aten.fractional_max_pool3d.default: (1,),
        aten._scaled_dot_product_flash_attention_for_cpu.default: (1,),
        aten._scaled_dot_product_flash_attention.default: (1, 2, 3, 4, 5, 6, 7, 8),
        aten._scaled_dot_product_efficient_attention.default: (1, 2, 3),
        aten._scaled_dot_product_cudnn_attention.default: (1, 2, 3, 4, 5, 6, 7, 8),
    }
)


class UnsupportedOpError(RuntimeError):
    """An op has no rule of this project's and the generic fallback was switched off."""


def has_complex(entry) -> bool:
    """Whether a complex value flows into or out of the entry."""
    return any(map(is_complex, entry.inputs)) or any(map(is_complex, entry.outputs))


def lookup(entry, strict: bool):
    """(propagate, kind) for a new entry; see the module docstring."""
    op = entry.op
    if op in NONDIFFERENTIABLE or not (
        any(is_differentiable(v.meta) for v in entry.inputs)
        and any(v is not None and is_differentiable(v.meta) for v in entry.outputs)
    ):
        return None, "nondiff"
    rule = RULES.get(op)
    if rule is None:  # another library's custom op, by name (rules/libraries.py)
        rule = libraries.rule_for(op)
    complex_values = has_complex(entry)
    if rule is not None and (op in COMPLEX_SAFE or not complex_values):
        return (_real_where_real(rule) if complex_values else rule), "rule"
    if strict:
        what = f"no tape rule for {_name(op)}"
        if rule is not None:  # ours is for real values only
            what = f"no tape rule for complex values of {_name(op)} (ours is real)"
        raise UnsupportedOpError(
            f"{what} in {_entry(entry)}, "
            "and options={'fallback': 'error'} forbids the generic torch.autograd fallback"
        )
    return functools.partial(autograd_vjp, op), "fallback"


class RuleError(RuntimeError):
    """A rule failed, or broke the convention, while the backward tape was being built."""


def run_rule(entry, g, y):
    """The entry's rule on its outputs' cotangents: at most one cotangent per positional
    argument. A rule that raises, or returns more, is reported naming the op, the entry and
    the user's line that produced it."""
    try:
        results = entry.propagate(g, y, *entry.args, **entry.kwargs)
    except (RuleError, UnsupportedOpError):
        raise  # they name their entry already
    except Exception as e:
        raise RuleError(f"the rule for {_name(entry.op)} failed on {_entry(entry)}: {e!r}") from e
    if isinstance(results, Variable):
        results = (results,)
    arity = _positional_arity(entry)
    if len(results) > arity:
        raise RuleError(
            f"the rule for {_name(entry.op)} returned {len(results)} cotangents for "
            f"{arity} positional arguments on {_entry(entry)}"
        )
    return results


def _positional_arity(entry) -> int:
    if isinstance(entry.op, OpOverload):
        return sum(not a.kwarg_only for a in schema(entry.op).arguments)
    return len(entry.args)  # a higher-order op or a VJP: the arguments it was given


def _name(op) -> str:
    return f"{getattr(op, 'namespace', 'aten')}.{op_name(op)}"


def _entry(entry) -> str:
    where = f" (from {entry.source})" if entry.source else ""
    return f"tape entry `{entry.text()}`{where}"


def _real_where_real(rule):
    """The rule, with the real part of each cotangent that goes to a real input: torch's
    convention (derivatives.yaml's handle_r_to_c) for real values meeting complex ones."""

    @functools.wraps(rule)
    def propagate(g, y, *args, **kwargs):
        results = rule(g, y, *args, **kwargs)
        if isinstance(results, Variable):
            results = (results,)
        return tuple(_real_part(a, r) for a, r in zip(args, results))

    return propagate


def _real_part(arg, g):
    if isinstance(arg, list | tuple) and isinstance(g, list | tuple):
        return [_real_part(a, gi) for a, gi in zip(arg, g)]
    if is_complex(g) and isinstance(arg, Variable) and arg.is_tensor and not is_complex(arg):
        return g.real
    return g


record.use_rules(lookup)  # recorded entries get their rules from this table
