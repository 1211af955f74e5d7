"""The rules of rules/libraries.py (other libraries' custom ops, by name) through the backend:
float64, a random cotangent, against eager's autograd, which runs the backward the library
registered; and no generic fallback entry (it ran the op again under torch.autograd)."""

import pytest
import torch

from dynamo_tape.rules import libraries


def test_every_library_rule_is_tested_here():
    assert set(libraries.RULES_BY_NAME) == {"transformers::grouped_mm_fallback"}


def test_transformers_grouped_mm_fallback_runs_its_registered_backward():
    pytest.importorskip("transformers.integrations.moe")
    from dynamo_tape.tracker import last_compiled

    grouped_mm = torch.ops.transformers.grouped_mm_fallback
    backward = torch.ops.transformers.grouped_mm_fallback_backward.default

    def f(x, w, offs):
        return grouped_mm(x * 1, w, offs)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(7, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    w = torch.randn(3, 4, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    offs = torch.tensor([2, 2, 7])  # an expert without tokens too
    cotangent = torch.randn(7, 5, dtype=torch.float64, generator=generator)
    compiled = torch.compile(f, backend="tape", options={"fallback": "error"})
    ours, theirs = compiled(x, w, offs), f(x, w, offs)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    grads = [torch.autograd.grad(y, [x, w], cotangent) for y in (ours, theirs)]
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)  # the same kernels
    (plan,) = last_compiled().plans.values()
    ops = [e.op for e in plan.backward.tape.entries]
    assert backward in ops
    assert all(e.kind != "fallback" for e in last_compiled().tape.entries)
