"""Lowering's awkward inputs and outputs, each compiled with backend="tape" and compared with
eager: values, and gradients for a random cotangent."""

import operator

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from dynamo_tape.ops import aten
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


# ---- the recorder that lowers static pure graphs, against make_fx ----------------------------


def _dynamo_graph(fn, *args, dynamic=False):
    """Dynamo's graph of fn, its inputs as fake tensors, and their fake mode."""
    graphs = []

    def capture(gm, example_inputs):
        fake_mode = torch._guards.detect_fake_mode(example_inputs)
        fakes = [
            fake_mode.from_tensor(x) if isinstance(x, torch.Tensor) else x for x in example_inputs
        ]
        graphs.append((gm, fakes, fake_mode))
        return gm.forward

    torch._dynamo.reset()
    torch.compile(fn, backend=capture, dynamic=dynamic)(*args)
    (graph,) = graphs
    return graph


def _signature(gm):
    def shape(v):
        return tuple(v.shape) if isinstance(v, torch.Tensor) else v

    # Each ATen call with its values' shapes and the user's line. Left out: the getitems of
    # unread outputs, which the recorder drops, and one `aten.detach` it keeps where make_fx
    # does not (`torch.arange(n, device=d)` on the device it is already on): a free view.
    leaves = torch.utils._pytree.tree_leaves
    return [
        (str(n.target), [shape(v) for v in leaves(n.meta["val"])], n.meta.get("stack_trace") or "")
        for n in gm.graph.nodes
        if n.op == "call_function" and n.target not in (aten.detach.default, operator.getitem)
    ]


def _constant_and_split(x):
    a, b = (x.softmax(-1) * torch.tensor(2.0)).split([1, 3], dim=1)
    return a.sum() + b.amax()


def test_recorded_aten_graph_is_make_fxs():
    from dynamo_tape.aten_graph import _record, _trace_pure
    from dynamo_tape.dynamo_graph import read
    from dynamo_tape.tools.examples.models import GPT, gpt_batch

    generator = torch.Generator().manual_seed(0)
    gpt = GPT(n_layer=1, n_embd=32, n_head=2, block=8, vocab=11)
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten()
    )
    cases = [
        (gpt, gpt_batch(gpt, generator, torch.float32, batch=2)),
        (cnn, (torch.randn(2, 3, 8, 8),)),
        (_constant_and_split, (torch.randn(3, 4),)),  # a constant tensor, several outputs
    ]
    for fn, args in cases:
        gm, fakes, fake_mode = _dynamo_graph(fn, *args)
        recorded = _record(gm, read(gm))
        assert recorded is not None, "the recorder gave up on a static, pure graph"
        aten_gm, mutated, _ = recorded
        assert mutated == []
        assert _signature(aten_gm) == _signature(_trace_pure(gm, fakes, fake_mode))


def _residual(x, w):
    y = x @ w
    y += x  # in place on an intermediate nothing else views
    return torch.relu_(y).sum()


def test_recorded_mutations_are_aot_export_modules():
    from torch._functorch.aot_autograd import aot_export_module

    from dynamo_tape.aten_graph import _record, decompositions
    from dynamo_tape.dynamo_graph import read
    from dynamo_tape.tools.examples.models import ResNet, resnet_batch

    resnet = ResNet()  # training: BatchNorm updates its running statistics in place
    generator = torch.Generator().manual_seed(0)
    cases = [
        (resnet, resnet_batch(resnet, generator, torch.float32, batch=2, size=8)),
        (_residual, (torch.randn(3, 3), torch.randn(3, 3))),
    ]
    for fn, args in cases:
        gm, fakes, fake_mode = _dynamo_graph(fn, *args)
        recorded, mutated, _ = _record(gm, read(gm))
        with fake_mode:
            aot_gm, signature = aot_export_module(
                gm, fakes, trace_joint=False, decompositions=decompositions()
            )
        names = [n.name for n in aot_gm.graph.find_nodes(op="placeholder")]
        assert mutated == sorted(names.index(n) for n in signature.user_inputs_to_mutate.values())
        assert _signature(recorded) == _signature(aot_gm)


def test_recorder_leaves_symbolic_graphs_and_mutated_views_to_the_tracers():
    from dynamo_tape.aten_graph import _record
    from dynamo_tape.dynamo_graph import read

    x = torch.randn(4, 3)
    gm, _, _ = _dynamo_graph(lambda x: x.sin() * x.shape[0], x, dynamic=True)
    assert _record(gm, read(gm)) is None  # symbolic sizes: make_fx's
    gm, _, _ = _dynamo_graph(lambda x: x.t().add_(1), x)
    assert _record(gm, read(gm)) is None  # a view of an input: aot_export_module's


def test_checks_that_return_nothing_are_kept():
    # linalg.cholesky checks its result with `_linalg_check_errors`, an op with no output
    def factor(a):
        return torch.linalg.cholesky(a)

    with pytest.raises(torch.linalg.LinAlgError, match="not positive-definite"):
        torch.compile(factor, backend="tape")(-torch.eye(3))
