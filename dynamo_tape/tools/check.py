"""The oracle: check one op's tape rule against torch.autograd.

`check_rule(op, args, kwargs)` builds a one-entry tape for `op` on the given real tensors,
differentiates it with the tape's own `grad` and runtime, and compares each output's
requires_grad and the gradients for a random cotangent (an all-ones cotangent hides
transposition bugs; complex outputs get a complex one) with torch.autograd's.
Passing `rule=` checks a rule other than the table's, which is how the tests show that a
wrong rule is caught. Passing `oracle=` differentiates that function with torch.autograd
instead of `op` itself: the same function computed another way, for ops torch.autograd
refuses (slice_scatter of complex values, computed from the real and imaginary parts).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import record
from ..ir import Namer, Tape, is_differentiable
from ..lower import Lowered
from ..runtime import CompiledGraph
from ..torch_private import FakeTensorMode, tree_flatten, tree_map


@dataclass
class CheckResult:
    op: object
    kind: str  # "rule" | "fallback" | "nondiff": where the checked rule came from
    max_error: float  # largest |ours - torch.autograd| over all input gradients
    ok: bool
    message: str = ""


def check_rule(
    op, args, kwargs=None, *, rule=None, seed=0, rtol=1e-7, atol=1e-7, constants=(), oracle=None
) -> CheckResult:
    # constants: input tensors that get no gradient (those torch.autograd refuses, e.g. the
    # running statistics of batch norm)
    kwargs = kwargs or {}
    fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    namer, tape = Namer(), Tape("forward")
    inputs = []

    def variable(x):
        if not isinstance(x, torch.Tensor):
            return x
        v = namer(fake_mode.from_tensor(x))
        tape.inputs.append(v)
        inputs.append(x)
        return v

    vargs, vkwargs = tree_map(variable, (list(args), dict(kwargs)))
    with record.recording(tape, namer, fake_mode):
        out = record.call(op, *vargs, **vkwargs)
    entry = tape.entries[0]
    if rule is not None:
        entry.propagate, entry.kind = rule, "rule"
    outs = out if isinstance(out, list) else [out]
    tape.outputs = [o for o in outs if o is not None]
    graph = CompiledGraph(Lowered(tape, namer, fake_mode), name=f"check {op}")

    def leaves():
        return [
            x.detach()
            .clone()
            .requires_grad_(is_differentiable(x) and not any(x is c for c in constants))
            for x in inputs
        ]

    ours_in, theirs_in = leaves(), leaves()
    torch.manual_seed(seed)  # random ops draw the same numbers in both runs
    ours = list(graph(*ours_in))
    torch.manual_seed(seed)
    theirs = _call_eager(oracle or op, args, kwargs, inputs, theirs_in)
    flags = [
        f"output {k}: requires_grad {o.requires_grad}, torch.autograd's {t.requires_grad}"
        for k, (o, t) in enumerate(zip(ours, theirs))
        if isinstance(o, torch.Tensor)
        and isinstance(t, torch.Tensor)
        and o.requires_grad != t.requires_grad
    ]
    if flags:
        return CheckResult(op, entry.kind, float("nan"), False, "; ".join(flags))
    generator = torch.Generator().manual_seed(seed)
    pairs = [
        (o, t, torch.randn(t.shape, dtype=t.dtype, generator=generator))
        for o, t in zip(ours, theirs)
        if isinstance(t, torch.Tensor) and t.requires_grad
    ]
    for o, t, _ in pairs:
        torch.testing.assert_close(o, t, rtol=0, atol=0, equal_nan=True)
    wrt_ours = [x for x in ours_in if x.requires_grad]
    wrt_theirs = [x for x in theirs_in if x.requires_grad]
    if not pairs or not wrt_theirs:
        return CheckResult(op, entry.kind, 0.0, True, "no differentiable output")
    g_ours = _grad([o for o, _, _ in pairs], wrt_ours, [c for *_, c in pairs])
    g_theirs = _grad([t for _, t, _ in pairs], wrt_theirs, [c for *_, c in pairs])
    worst, message = 0.0, ""
    for i, (a, b) in enumerate(zip(g_ours, g_theirs)):
        try:
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, equal_nan=True)
        except AssertionError as e:
            message += f"input {i}: {e}\n"
        diff = (a - b).detach().abs().nan_to_num(0)  # a wrong rule may return an input
        worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
    return CheckResult(op, entry.kind, worst, not message, message)


def _call_eager(op, args, kwargs, inputs, leaves):
    replacement = {id(x): leaf for x, leaf in zip(inputs, leaves)}
    swap = lambda x: replacement.get(id(x), x) if isinstance(x, torch.Tensor) else x
    out = op(*tree_map(swap, list(args)), **tree_map(swap, dict(kwargs)))
    flat, _ = tree_flatten(out)
    return [o for o in flat if o is not None]


def _grad(outputs, inputs, cotangents):
    return torch.autograd.grad(
        outputs, inputs, cotangents, allow_unused=True, materialize_grads=True
    )
