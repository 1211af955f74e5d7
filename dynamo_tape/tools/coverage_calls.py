"""Op coverage per rule: while the tape runs an OpInfo sample, the ATen graph it was lowered
from is interpreted on the real inputs, recording every ATen call (`recording_tape_backend`);
each distinct call is then checked by `check.check_rule` in float64 or complex128 (float32 and
complex64 tensors promoted) with a random cotangent (`check_calls`). The sweep (`coverage.py`)
hands the calls recorded on an op's samples from the one to the other."""

from __future__ import annotations

import re

import torch
import torch.fx

from ..backend import tape
from ..ir import is_differentiable, op_name
from ..ops import aten
from ..rules import COMPLEX_SAFE, NONDIFFERENTIABLE, RULES
from ..torch_private import OpOverload, schema, tree_flatten, tree_map
from .check import check_rule
from .coverage_results import CALLS_PER_OVERLOAD, CallResult, short

# ---------------------------------------------------------------------------- recording ATen


class _CallRecorder(torch.fx.Interpreter):
    def __init__(self, gm, calls):
        super().__init__(gm)
        self.calls = calls

    def call_function(self, target, args, kwargs):
        out = super().call_function(target, args, kwargs)
        if isinstance(target, OpOverload):
            # (op, args, kwargs, whether a complex value flows in or out)
            args_, kwargs_ = tree_map(_float64, (list(args), dict(kwargs)))
            self.calls.append((target, args_, kwargs_, _has_complex((args, kwargs, out))))
        return out


_PROMOTED = {torch.float32: torch.float64, torch.complex64: torch.complex128}


def _float64(x):
    if isinstance(x, torch.Tensor):
        return x.detach().to(_PROMOTED.get(x.dtype, x.dtype), copy=True)
    if isinstance(x, torch.dtype):  # `vector_norm(x, dtype=torch.float32)` promotes too
        return _PROMOTED.get(x, x)
    return x


def recording_tape_backend(calls: list):
    """The tape backend, plus: every run also records the ATen calls of its graph."""

    def backend(gm, example_inputs):
        # compiled here, never loaded from the compile cache: a loaded graph has no ATen graph
        compiled = tape(gm, example_inputs, options={"cache": False})

        def run(*args):
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                _CallRecorder(compiled.lowered.aten_graph, calls).run(*args)
            return compiled(*args)

        return run

    return backend


# --------------------------------------------------------------------------------- per rule


def _signature(call) -> str:
    def describe(x):
        if isinstance(x, torch.Tensor):
            return f"T{tuple(x.shape)}{x.dtype}"
        return repr(x)

    op, args, kwargs, _ = call
    return repr(tree_map(describe, (str(op), args, kwargs)))


def _has_complex(tree) -> bool:
    return any(isinstance(x, torch.Tensor) and x.is_complex() for x in tree_flatten(tree)[0])


def _kind(op, complex_values=False) -> str:
    """Where lookup sends an entry of `op`: complex entries of rules not in COMPLEX_SAFE go to
    the fallback."""
    if op in NONDIFFERENTIABLE:
        return "nondiff"
    if op in RULES and (op in COMPLEX_SAFE or not complex_values):
        return "rule"
    return "fallback"


_REFUSED = re.compile(r"not differentiable with respect to argument '(\w+)'")
_UNCHECKABLE = (
    # torch.autograd itself rejects a random cotangent for gauge-dependent outputs
    "specified up to multiplication by",
    # the checker's fake tensors have no shape environment for data-dependent shapes
    "DynamicOutputShapeException",
    # an op that insists on float32 inputs cannot be promoted to float64
    "acc_dtype",
    # torch.autograd has no formula to compare with (the functional aten.copy)
    "RuntimeError: derivative for aten::",
    # torch.autograd refuses complex values of the op (slice_scatter, lift_fresh_copy), or its
    # formula gives a real input a complex gradient (where.self of real and complex values);
    # tests/test_rules.py checks those rules against the function computed another way
    "does not support automatic differentiation for outputs with complex dtype",
    "input_is_complex == grad_is_complex",
)


# Calls whose torch.autograd formula is not eager's, so it cannot be the oracle: the end-to-end
# run (against eager) checks them instead.
_ORACLE_DIFFERS = {
    # derivatives.yaml reads the functional variant's noise *input*, never filled in; eager's
    # rrelu reads the slopes it drew, as our rule does
    aten.rrelu_with_noise_functional.default: "torch's formula reads the noise input",
}


def _refused_arguments(op, args, kwargs, error) -> list:
    names = set(_REFUSED.findall(str(error)))
    argument_names = [a.name for a in schema(op).arguments]
    values = list(args) + [kwargs.get(n) for n in argument_names[len(args) :]]
    named = zip(argument_names, values, strict=False)  # values may stop before the schema's end
    return [v for n, v in named if n in names and isinstance(v, torch.Tensor)]


def _nondifferentiable_is_right(op, args, kwargs) -> tuple[float, str]:
    """An op we call non-differentiable must be one in eager: its outputs do not require grad
    although its inputs do (a zero-gradient op's do: ceil is differentiable, with zeros)."""
    leaves = tree_map(
        lambda x: x.detach().requires_grad_() if is_differentiable(x) else x, (args, kwargs)
    )
    wrt = [x for x in tree_flatten(leaves)[0] if isinstance(x, torch.Tensor) and x.requires_grad]
    out = op(*leaves[0], **leaves[1])
    outs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor) and o.requires_grad]
    if not wrt or not outs:
        return 0.0, ""
    return float("nan"), "torch.autograd's output requires grad: the op is differentiable"


def check_call(op, args, kwargs) -> tuple[str, str, float, str]:
    """(kind, status, max error, message); status is "ok", "FAIL" or "unchecked"."""
    out = op(*args, **kwargs)
    if not any(isinstance(o, torch.Tensor) for o in tree_flatten(out)[0]):
        return "nondiff", "ok", 0.0, "no tensor output"
    kind = _kind(op, _has_complex((args, kwargs, out)))
    if op in _ORACLE_DIFFERS:
        return kind, "unchecked", float("nan"), _ORACLE_DIFFERS[op]
    if op in NONDIFFERENTIABLE:
        worst, message = _nondifferentiable_is_right(op, args, kwargs)
        return "nondiff", "FAIL" if message else "ok", worst, message
    constants = []
    for _ in range(3):
        try:
            r = check_rule(op, args, kwargs, constants=constants)
        except Exception as e:  # noqa: BLE001 - an error is a failed check, unless explained
            refused = _refused_arguments(op, args, kwargs, e)
            if refused and not all(any(t is c for c in constants) for t in refused):
                constants += refused
                continue
            status = "unchecked" if any(u in short(e) for u in _UNCHECKABLE) else "FAIL"
            return kind, status, float("nan"), short(e)
        return r.kind, "ok" if r.ok else "FAIL", r.max_error, r.message[:300]
    return kind, "FAIL", float("nan"), "arguments refused"


def check_calls(calls, checked: dict, opname: str, dtype="float32") -> list[CallResult]:
    results = []
    for call in calls:
        op, args, kwargs, complex_values = call
        name = op_name(op)
        key = _signature(call)
        seen = checked.setdefault(name, set())
        if key in seen or len(seen) >= CALLS_PER_OVERLOAD:
            continue
        seen.add(key)
        try:
            kind, status, worst, message = check_call(op, args, kwargs)
        except Exception as e:  # noqa: BLE001 - the op itself failed on the recorded inputs
            status = "unchecked" if any(u in short(e) for u in _UNCHECKABLE) else "FAIL"
            kind, worst, message = _kind(op, complex_values), float("nan"), short(e)
        results.append(
            CallResult(name, kind, status, worst, message, opname, complex_values, dtype)
        )
    return results
