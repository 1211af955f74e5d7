"""The seed: a pure-Python tape autograd that Dynamo traces, run on the `tape` backend.

PyTorch's `test/dynamo/test_python_autograd.py` stresses Dynamo with a tiny reverse-mode
autograd written in plain Python: named `Variable`s, a global list of `TapeEntry`s whose
`propagate` closures apply the chain rule, and `grad`, which walks that list backwards. The
same five cases run here twice, once under Dynamo's `CompileCounter` (eager graphs) and once
under `CompileCounterWithBackend("tape")`: the results, the frame counts and the op counts of
the two runs must agree. Dynamo's op count itself drifts between torch releases, so it is only
ever compared run against run. The autograd itself is in tests/helpers.py (test_tracker.py
counts its frames too).
"""

import pytest
import torch
import torch._dynamo
from helpers import Variable, grad, reset_tape, simple
from torch._dynamo.testing import CompileCounter, CompileCounterWithBackend, same

from dynamo_tape.tracker import last_compiled

# ---- the five cases ----


def forwards_plain(a, b):
    a = Variable.constant(a, name="a")
    b = Variable.constant(b, name="b")
    return simple(a, b).sum()


def forwards_resetting(a, b):
    reset_tape()
    a = Variable.constant(a, name="a")
    b = Variable.constant(b, name="b")
    loss = simple(a, b).sum()
    reset_tape()
    return loss


def backwards_plain(a, b):
    a = Variable.constant(a, name="a")
    b = Variable.constant(b, name="b")
    return grad(simple(a, b).sum(), [a, b])


def backwards_resetting(a, b):
    reset_tape()
    a = Variable.constant(a, name="a")
    b = Variable.constant(b, name="b")
    result = grad(simple(a, b).sum(), [a, b])
    reset_tape()
    return result


def values(result):
    if isinstance(result, list | tuple):
        return [values(r) for r in result]
    return result.value


def tape_runs(graph):
    """How often the graph ran forward alone, forward for training, and its backward tape."""
    return {k: graph.calls[k] for k in ("inference", "forward", "backward")}


def counters():
    return {"eager": CompileCounter(), "tape": CompileCounterWithBackend("tape")}


def run_twice(fn, counter):
    """fn compiled with `counter` on two sets of inputs; (compiled results, eager results)."""
    torch._dynamo.reset()
    compiled = torch.compile(fn, backend=counter, fullgraph=True)
    inputs = [[torch.randn(10), torch.randn(10)] for _ in range(2)]
    got, expected = [], []
    for args in inputs:
        reset_tape()
        got.append(values(compiled(*args)))
        reset_tape()
        expected.append(values(fn(*args)))
    reset_tape()
    return got, expected


@pytest.mark.parametrize(
    "fn", [forwards_plain, forwards_resetting, backwards_plain, backwards_resetting]
)
def test_seed_case(fn):
    runs = {}
    for name, counter in counters().items():
        got, expected = run_twice(fn, counter)
        assert same(got, expected), name
        assert counter.frame_count == 1, name  # both calls share one graph
        runs[name] = (counter.op_count, got)
        if name == "tape":
            graph = last_compiled()
            # no input needs a gradient: the tape ran its forward alone, once per call
            assert tape_runs(graph) == {"inference": 2, "forward": 0, "backward": 0}
    assert runs["eager"][0] == runs["tape"][0] > 0


def test_seed_split():
    """The forward and `grad` compiled as two separate frames."""

    def forward(a, b):
        return simple(a, b).sum()

    a = Variable.constant(torch.randn(10), name="a")
    b = Variable.constant(torch.randn(10), name="b")
    reset_tape()
    loss = forward(a, b)
    expected = (loss.value, values(grad(loss, [a, b])))

    op_counts = {}
    for name, counter in counters().items():
        torch._dynamo.reset()
        reset_tape()
        compiled_forward = torch.compile(forward, backend=counter, fullgraph=True)
        compiled_grad = torch.compile(grad, backend=counter, fullgraph=True)
        loss = compiled_forward(a, b)
        got = (loss.value, values(compiled_grad(loss, [a, b])))
        reset_tape()
        assert same(got, expected), name
        assert counter.frame_count == 2, name
        op_counts[name] = counter.op_count
    assert op_counts["eager"] == op_counts["tape"] > 0


def test_seed_backwards_through_the_tape():
    """The seed's own `grad`, traced by Dynamo, differentiated again by the tape: gradients of
    its output with respect to the inputs equal eager's (a second-order derivative)."""

    def seed_gradient_norm(a, b):
        reset_tape()
        ga, gb = backwards_plain(a, b)
        reset_tape()
        return (ga.value * gb.value).sum()

    compiled = torch.compile(seed_gradient_norm, backend="tape", fullgraph=True)
    a, b = torch.randn(10, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    leaves = [x.clone().requires_grad_() for x in (a, b, a, b)]
    ours = compiled(*leaves[:2])
    theirs = seed_gradient_norm(*leaves[2:])
    cotangent = torch.randn(())
    ours.backward(cotangent.double())
    theirs.backward(cotangent.double())
    torch.testing.assert_close(ours, theirs)
    for mine, eager in zip(leaves[:2], leaves[2:], strict=True):
        torch.testing.assert_close(mine.grad, eager.grad)
    assert last_compiled().calls["backward"] == 1
