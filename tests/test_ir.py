"""The tapes as text (golden), and which tape runs when.

Goldens are inline; after an intended change of the printer or the lowering, regenerate them
with `EXPECTTEST_ACCEPT=1 python -m pytest tests/test_ir.py` and review the diff.
"""

import torch
from expecttest import assert_expected_inline

import dynamo_tape
from dynamo_tape.tracker import last_compiled


def simple(a, b):
    t = a + b
    return t * b


def leaves(*shapes, requires_grad=True):
    return [torch.randn(s, requires_grad=requires_grad) for s in shapes]


def tape_runs(graph):
    """How often the graph ran forward alone, forward for training, and its backward tape."""
    return {k: graph.calls[k] for k in ("inference", "forward", "backward")}


def test_simple_forward_and_backward_tapes():
    compiled = torch.compile(simple, backend="tape", dynamic=False)
    compiled(*leaves(10, 10))
    assert_expected_inline(
        dynamo_tape.last_tapes(),
        """\
forward_train(v0:f32[10] a, v1:f32[10] b):
  v2:f32[10] = add.Tensor v0 v1
  v3:f32[10] = mul.Tensor v2 v1
  return (v3, v1, v2)

backward(v1:f32[10] b, v2:f32[10], v4:f32[10]):
  v5:f32[10] = mul.Tensor v4 v1
  v6:f32[10] = mul.Tensor v4 v2
  v7:f32[10] = add.Tensor v6 v5
  return (v5, v7)""",
    )


def test_printer_types_names_and_bracketed_constants():
    linear = torch.nn.Linear(16, 32)
    compiled = torch.compile(lambda x: linear(x).sum(1, keepdim=True), backend="tape")
    compiled(torch.randn(8, 16))
    # parameters are graph inputs, named as the code reaches them (the global `linear`); the
    # user's x comes last
    assert_expected_inline(
        last_compiled().tape.text(),
        """\
forward(v0:f32[32,16] linear.weight, v1:f32[32] linear.bias, v2:f32[8,16] x):
  v3:f32[16,32] = permute v0 [dims=[1, 0]]
  v4:f32[8,32] = addmm v1 v2 v3
  v5:f32[8,1] = sum.dim_IntList v4 [dim=[1], keepdim=True]
  return (v5,)""",
    )


def test_the_tape_runs_its_own_backward():
    compiled = torch.compile(simple, backend="tape")
    a, b, a_eager, b_eager = leaves(10, 10, 10, 10)
    with torch.no_grad():
        a_eager.copy_(a)
        b_eager.copy_(b)
    out = compiled(a, b)
    graph = last_compiled()
    plan = graph.plans[(0, 1)]
    # what the forward saved is exactly what the backward tape reads: b and a + b
    assert [v.name for v in plan.backward.saved] == ["v1", "v2"]
    assert len(out.grad_fn.saved_tensors) == plan.n_saved == 2
    cotangent = torch.randn(10)
    out.backward(cotangent)
    simple(a_eager, b_eager).backward(cotangent)
    assert tape_runs(graph) == {"inference": 0, "forward": 1, "backward": 1}
    torch.testing.assert_close(a.grad, a_eager.grad)
    torch.testing.assert_close(b.grad, b_eager.grad)


def test_no_input_needs_a_gradient_so_only_the_forward_runs():
    compiled = torch.compile(simple, backend="tape")
    out = compiled(*leaves(10, 10, requires_grad=False))
    graph = last_compiled()
    assert out.grad_fn is None and not out.requires_grad  # nothing saved for a backward
    assert tape_runs(graph) == {"inference": 1, "forward": 0, "backward": 0}
    assert not graph.plans  # no backward tape was even built


def test_under_no_grad_only_the_forward_runs():
    compiled = torch.compile(simple, backend="tape")
    a, b = leaves(10, 10)
    with torch.no_grad():
        out = compiled(a, b)
    assert out.grad_fn is None and not out.requires_grad
    graph = last_compiled()
    assert tape_runs(graph) == {"inference": 1, "forward": 0, "backward": 0}
    assert not graph.plans  # Dynamo guards on grad mode: this graph never needs a backward
    torch.testing.assert_close(out, simple(a, b).detach())
