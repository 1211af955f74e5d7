"""Lowering's awkward inputs and outputs, each compiled with backend="tape" and compared with
eager: values, and gradients for a random cotangent."""

import torch
from torch._dynamo.testing import CompileCounterWithBackend

from dynamo_tape.tracker import last_compiled


def twins(*shapes):
    """Two identical sets of float64 leaves: one for the tape, one for eager."""
    ours = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    return ours, [x.detach().clone().requires_grad_() for x in ours]


def backward_with_random_cotangents(outputs):
    tensors = [o for o in outputs if isinstance(o, torch.Tensor) and o.requires_grad]
    generator = torch.Generator().manual_seed(0)
    cotangents = [torch.randn(o.shape, dtype=o.dtype, generator=generator) for o in tensors]
    torch.autograd.backward(tensors, cotangents)


def assert_same_run(fn, ours, theirs, **compile_options):
    """fn on the tape and in eager: same outputs, same input gradients."""
    got = torch.compile(fn, backend="tape", **compile_options)(*ours)
    expected = fn(*theirs)
    torch.testing.assert_close(got, expected)
    backward_with_random_cotangents(got)
    backward_with_random_cotangents(expected)
    for mine, eager in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine.grad, eager.grad)
    return got


class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 4, dtype=torch.float64)
        self.register_buffer("scale", torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64))
        self.register_buffer("calls", torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        self.calls += 1  # Dynamo returns this buffer from the graph: an output that is an input
        return (self.linear(x) * self.scale).tanh()


def test_parameters_and_buffers_are_inputs():
    ours, theirs = Scaled(), Scaled()
    theirs.load_state_dict(ours.state_dict())
    calls = ours.calls
    (x,), (x_eager,) = twins((5, 3))
    compiled = torch.compile(ours, backend="tape")
    for _ in range(2):
        got, expected = compiled(x), theirs(x_eager)
        torch.testing.assert_close(got, expected)
        backward_with_random_cotangents([got])
        backward_with_random_cotangents([expected])
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    torch.testing.assert_close(x.grad, x_eager.grad)
    # the buffer was updated in place, as in eager, and carries no autograd history
    assert ours.calls is calls and ours.calls.grad_fn is None
    torch.testing.assert_close(ours.calls, theirs.calls)
    # x, both parameters and both buffers arrive as tape inputs
    assert len(last_compiled().tape.inputs) == 5


def test_symint_inputs_one_graph_for_all_sizes():
    def fn(x, y):
        return (x * y.sum(0)).reshape(x.size(0) * 2, -1).cos()

    counter = CompileCounterWithBackend("tape")
    for n in (4, 6, 7):
        ours, theirs = twins((n, 6), (3, 6))
        got = torch.compile(fn, backend=counter, dynamic=True)(*ours)
        expected = fn(*theirs)
        torch.testing.assert_close(got, expected)
        backward_with_random_cotangents([got])
        backward_with_random_cotangents([expected])
        for mine, eager in zip(ours, theirs, strict=True):
            torch.testing.assert_close(mine.grad, eager.grad)
    assert counter.frame_count == 1
    assert any(isinstance(v.meta, torch.SymInt) for v in last_compiled().tape.inputs)


def test_multiple_outputs():
    ours, theirs = twins((5, 3), (3,))
    assert_same_run(lambda x, b: (x * b, (x - b).sum(), b.exp()), ours, theirs)


def test_outputs_that_are_inputs_or_views_of_them():
    ours, theirs = twins((5, 3), (5, 3))
    got = assert_same_run(lambda x, y: (x, x * y, y.t(), y), ours, theirs)
    assert got[0] is ours[0] and got[3] is ours[1]


def test_int_and_float_outputs():
    def fn(x):
        return x.sin(), x.size(0) * 3, x.size(1) / 2

    ours, theirs = twins((5, 4))
    got = assert_same_run(fn, ours, theirs, dynamic=True)
    assert type(got[1]) is int and type(got[2]) is float
