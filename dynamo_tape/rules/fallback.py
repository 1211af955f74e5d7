"""The generic fallback: the vector-Jacobian product of one op, computed by torch.autograd.

It makes any differentiable op correct on day one. The backward tape gets one entry whose op
is an `AutogradVJP`; since that entry has no rule either, differentiating it (double backward)
falls back again, which works because the VJP builds a graph whenever grad mode is on.
"""

from __future__ import annotations

import re

import torch

from .. import record
from ..ir import Variable, is_differentiable, is_random, op_name
from ..ops import aten
from ..torch_private import FakeTensor, schema, tree_flatten, tree_unflatten

# Backward kernels PyTorch differentiates through some arguments only: the norms' saved
# statistics are functions of `input`, which the double-backward formulas already account for
# (derivatives.yaml: not_implemented for them), so no cotangent goes to them.
NOT_THROUGH = {
    aten.native_layer_norm_backward.default: {"mean", "rstd"},
    aten.native_batch_norm_backward.default: {"save_mean", "save_invstd"},
    # running statistics: updated in place of a gradient, torch refuses to differentiate them
    aten._batch_norm_with_update_functional.default: {"running_mean", "running_var"},
    aten._batch_norm_no_update.default: {"running_mean", "running_var"},
}


class AutogradVJP:
    def __init__(self, op, n_outputs: int, skip=frozenset()):
        self.op = op
        self.n_outputs = n_outputs
        self.skip = skip  # flat argument positions that get no cotangent (NOT_THROUGH)
        self.name = f"vjp[{op_name(op)}]"
        # an identifier even for a VJP of a VJP (`vjp[cube]`): generated code calls it by name
        self.__name__ = "vjp_" + re.sub(r"\W", "_", op_name(op))

    def __call__(self, args, cotangents, **kwargs):
        flat, spec = tree_flatten(args)
        positions = [i for i, a in enumerate(flat) if is_differentiable(a) and i not in self.skip]
        outer_grad = torch.is_grad_enabled()  # on when this VJP is itself being differentiated
        if any(isinstance(flat[i], FakeTensor) for i in positions):
            # recording: a gradient is shaped like its input, and running torch's backward on
            # fake tensors can stop at data-dependent guards (scatter_reduce's prod)
            return [torch.empty_like(flat[i]) for i in positions]
        with torch.enable_grad():
            # Outside double backward, always cut the input loose: a saved tensor unpacked in
            # a backward may already require grad through the forward's graph, and the VJP
            # of it came out zero (linalg.vander, bilinear).
            inputs = [
                flat[i]
                if outer_grad and flat[i].requires_grad
                else flat[i].detach().requires_grad_()
                for i in positions
            ]
            for i, x in zip(positions, inputs):
                flat[i] = x
            out = self.op(*tree_unflatten(flat, spec), **kwargs)
            outs = list(out) if isinstance(out, tuple | list) else [out]
            # outputs that do not depend on the inputs (lu_unpack's permutation) get no cotangent
            pairs = [
                (o, g)
                for o, g in zip(outs, cotangents)
                if g is not None and is_differentiable(o) and o.requires_grad
            ]
            if not pairs:
                return [torch.zeros_like(x) for x in inputs]
            grads = torch.autograd.grad(
                [o for o, _ in pairs],
                inputs,
                [g for _, g in pairs],
                allow_unused=True,
                materialize_grads=True,
                create_graph=outer_grad,
            )
        return list(grads)


def autograd_vjp(op, g, y, *args, **kwargs):
    """Rule used for ops without one of their own: records one AutogradVJP entry."""
    if is_random(op):
        # the VJP runs the op again: a random op would draw new numbers, a wrong gradient
        raise NotImplementedError(
            f"dynamo_tape: no rule for the random op aten.{op_name(op)}, and the generic "
            "fallback would differentiate a fresh draw instead of the one the forward made"
        )
    gs = list(g) if isinstance(g, tuple) else [g]
    flat, spec = tree_flatten(list(args))
    skip = frozenset(_flat_positions(op, args, NOT_THROUGH.get(op, ())))
    diff = [
        i
        for i, a in enumerate(flat)
        if isinstance(a, Variable) and is_differentiable(a.meta) and i not in skip
    ]
    vjp = AutogradVJP(op, len(gs), skip)
    grads = record.call(vjp, list(args), gs, **kwargs)
    # Put each cotangent back where its input was; everything else gets None.
    per_flat = [None] * len(flat)
    for i, gi in zip(diff, grads):
        per_flat[i] = gi
    return tuple(tree_unflatten(per_flat, spec))


def _flat_positions(op, args, names):
    """Positions in the flattened `args` of the schema arguments called `names`."""
    if not names:
        return []
    positions, start = [], 0
    for schema_arg, a in zip(schema(op).arguments, args):
        size = len(tree_flatten(a)[0])
        if schema_arg.name in names:
            positions += range(start, start + size)
        start += size
    return positions
