"""The seed: a pure-Python tape autograd that Dynamo traces, run on the `tape` backend.

PyTorch's `test/dynamo/test_python_autograd.py` stresses Dynamo with a tiny reverse-mode
autograd written in plain Python: named `Variable`s, a global list of `TapeEntry`s whose
`propagate` closures apply the chain rule, and `grad`, which walks that list backwards. The
same five cases run here twice, once under Dynamo's `CompileCounter` (eager graphs) and once
under `CompileCounterWithBackend("tape")`: the results, the frame counts and the op counts of
the two runs must agree. Dynamo's op count itself drifts between torch releases, so it is only
ever compared run against run.
"""

from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounter, CompileCounterWithBackend, same

from dynamo_tape.tracker import last_compiled

# ---- the pure-Python autograd (the seed's vocabulary, written afresh) ----

_next_id = 0


def fresh_name() -> str:
    global _next_id
    name = f"v{_next_id}"
    _next_id += 1
    return name


class Variable:
    """A tensor with a name; the tape refers to values by name."""

    def __init__(self, value: torch.Tensor, name: str | None = None):
        self.value = value
        self.name = name or fresh_name()

    @staticmethod
    def constant(value: torch.Tensor, name: str | None = None) -> "Variable":
        # a leaf: its value was not computed on the tape
        return Variable(value, name)

    def __mul__(self, other):
        return multiply(self, other)

    def __add__(self, other):
        return add(self, other)

    def sum(self, name: str | None = None):
        return total(self, name)

    def expand(self, *sizes):
        return broadcast(self, sizes)


class TapeEntry(NamedTuple):
    inputs: list[str]  # names of the values the operation read
    outputs: list[str]  # names of the values it produced
    propagate: Callable  # cotangents of the outputs -> cotangents of the inputs


gradient_tape: list[TapeEntry] = []


def reset_tape():
    global _next_id
    gradient_tape.clear()
    _next_id = 0


def record(inputs, output, propagate):
    gradient_tape.append(TapeEntry([v.name for v in inputs], [output.name], propagate))
    return output


def multiply(x: Variable, y):
    if isinstance(y, float) and y == 1.0:
        return x  # x * 1 needs no entry

    def propagate(cotangents):
        (g,) = cotangents
        return [g * y, g * x]  # d(xy) = y dx + x dy

    return record([x, y], Variable(x.value * y.value), propagate)


def add(x: Variable, y: Variable):
    def propagate(cotangents):
        (g,) = cotangents
        return [g * 1.0, g * 1.0]

    return record([x, y], Variable(x.value + y.value), propagate)


def total(x: Variable, name):
    def propagate(cotangents):
        (g,) = cotangents
        return [g.expand(*x.value.size())]  # every element contributed once

    return record([x], Variable(torch.sum(x.value), name), propagate)


def broadcast(x: Variable, sizes):
    assert x.value.dim() == 0, "the seed's expand broadcasts scalars only"

    def propagate(cotangents):
        (g,) = cotangents
        return [g.sum()]

    return record([x], Variable(x.value.expand(sizes)), propagate)


def grad(loss: Variable, wanted: list[Variable]) -> list[Variable]:
    cotangent: dict[str, Variable] = {loss.name: Variable(torch.ones(()))}  # dL/dL = 1

    def gather_grad(names):
        # a name never reached from the loss has no cotangent: None, not zeros
        return [cotangent.get(name) for name in names]

    for entry in reversed(gradient_tape):
        outputs = gather_grad(entry.outputs)
        if all(g is None for g in outputs):
            continue  # this entry does not influence the loss
        for name, g in zip(entry.inputs, entry.propagate(outputs), strict=True):
            if name in cotangent:
                cotangent[name].value += g.value  # each use of a value adds its share
            else:
                cotangent[name] = g
    return gather_grad(v.name for v in wanted)


def simple(a, b):
    t = a + b
    return t * b


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
