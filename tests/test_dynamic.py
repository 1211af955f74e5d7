"""Dynamic shapes: symbolic sizes compile once and stay exact for every size.

Each test counts Dynamo frames with CompileCounterWithBackend("tape") (the tape backend behind
Dynamo's own counter) and compares outputs and gradients with eager in float64 under random
cotangents, for several sizes run through one compiled graph.
"""

import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounterWithBackend

from dynamo_tape import tracker

F64 = torch.float64


def _randn(*shape, seed):
    return torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _check_against_eager(fn, compiled, args, seed=0, dynamic=None):
    """Outputs equal, and gradients of every float input under a random cotangent.
    `dynamic` maps an argument's position to the dimensions to `mark_dynamic` on it."""
    ours_in = [a.detach().clone().requires_grad_() if _is_float(a) else a for a in args]
    for position, dims in (dynamic or {}).items():
        torch._dynamo.mark_dynamic(ours_in[position], dims)
    theirs_in = [a.detach().clone().requires_grad_() if _is_float(a) else a for a in args]
    ours, theirs = compiled(*ours_in), fn(*theirs_in)
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    for o, t in zip(ours, theirs, strict=True):
        torch.testing.assert_close(o, t)
    cotangents = [_randn(*t.shape, seed=seed + i) for i, t in enumerate(theirs)]
    wrt_ours = [a for a in ours_in if _is_float(a)]
    wrt_theirs = [a for a in theirs_in if _is_float(a)]
    g_ours = torch.autograd.grad(ours, wrt_ours, cotangents)
    g_theirs = torch.autograd.grad(theirs, wrt_theirs, cotangents)
    for a, b in zip(g_ours, g_theirs, strict=True):
        torch.testing.assert_close(a, b)


def _is_float(a):
    return isinstance(a, torch.Tensor) and a.is_floating_point()


def mlp_with_size_arithmetic(x, w1, w2):
    h = torch.tanh(x @ w1)
    centered = h - h.mean(0)  # the mean divides by the (symbolic) batch size
    flat = centered.reshape(-1, 2 * w1.shape[1])[:, : w1.shape[1]]  # sizes computed from s0
    return (flat @ w2).sum(1) / x.shape[0], h.exp().mean()


def _frames(backend, fn, calls):
    """Frames compiled after each call of `fn` on each argument list in `calls`."""
    torch._dynamo.reset()
    counter = CompileCounterWithBackend(backend)
    compiled = torch.compile(fn, backend=counter)
    counts = []
    for args in calls:
        if backend == "tape":
            _check_against_eager(fn, compiled, args)
        else:
            compiled(*args)
        counts.append(counter.frame_count)
    return counts


def test_automatic_dynamic_stops_recompiling_once_the_batch_is_dynamic():
    w1, w2 = _randn(3, 5, seed=1), _randn(5, 2, seed=2)
    calls = [[_randn(batch, 3, seed=batch), w1, w2] for batch in (4, 6, 8, 10, 12)]
    ours = _frames("tape", mlp_with_size_arithmetic, calls)
    assert ours == _frames("eager", mlp_with_size_arithmetic, calls)  # no guards of our own
    assert ours[1] > ours[0] and ours[1:] == [ours[1]] * 4  # new batch sizes: no recompile


def test_the_dynamic_graph_carries_symbols_not_sizes():
    compiled = torch.compile(mlp_with_size_arithmetic, backend="tape", dynamic=True)
    x = _randn(6, 3, seed=0).requires_grad_()
    compiled(x, _randn(3, 5, seed=1), _randn(5, 2, seed=2))
    graph = tracker.last_compiled()
    assert graph.symbols, "dynamic=True gave no size symbols"
    (plan,) = graph.plans.values()
    # the batch size 6 must not appear in the backward as a constant: it is read from `syms`
    assert "6" not in [str(s) for v in plan.backward.tape.inputs if v.is_tensor for s in v.shape]


def test_mark_dynamic_compiles_once():
    counter = CompileCounterWithBackend("tape")
    compiled = torch.compile(mlp_with_size_arithmetic, backend=counter)
    w1, w2 = _randn(3, 5, seed=1), _randn(5, 2, seed=2)
    for batch in (4, 8, 14):
        x = _randn(batch, 3, seed=batch)
        _check_against_eager(mlp_with_size_arithmetic, compiled, [x, w1, w2], dynamic={0: 0})
    assert counter.frame_count == 1


def scale_and_tile(x, n):
    return (x * n).repeat(1, 2)[: n + 1].sin() + n


def test_int_arguments_become_symint_inputs():
    counter = CompileCounterWithBackend("tape")
    compiled = torch.compile(scale_and_tile, backend=counter, dynamic=True)
    for n in (2, 3, 5):
        _check_against_eager(scale_and_tile, compiled, [_randn(8, 3, seed=n), n])
    assert counter.frame_count == 1
    graph = tracker.last_compiled()
    assert any(not v.is_tensor for v in graph.tape.inputs), "n did not arrive as a SymInt"


def per_row_softmax_loss(x, w):
    logits = x @ w
    return torch.log_softmax(logits, dim=-1).mean() + logits.amax(0).sum()


@pytest.mark.parametrize("dim", [0, 1])
def test_saved_values_follow_the_new_size(dim):
    # the backward of mean/amax/log_softmax reads saved values whose shape is symbolic
    counter = CompileCounterWithBackend("tape")
    compiled = torch.compile(per_row_softmax_loss, backend=counter)
    for size in (3, 5, 9):
        x = _randn(size, 4, seed=size) if dim == 0 else _randn(4, size, seed=size)
        w = _randn(4, 6, seed=1) if dim == 0 else _randn(size, 6, seed=1)
        dynamic = {0: dim} if dim == 0 else {0: dim, 1: 0}
        _check_against_eager(per_row_softmax_loss, compiled, [x, w], dynamic=dynamic)
    assert counter.frame_count == 1


def test_double_backward_with_a_dynamic_batch():
    # the joint tape of the recompute reads its sizes from its own inputs: no specialisation
    counter = CompileCounterWithBackend("tape")
    compiled = torch.compile(mlp_with_size_arithmetic, backend=counter)

    def penalty_grads(fn, x, w1, w2):
        leaves = [a.detach().clone().requires_grad_() for a in (x, w1, w2)]
        if fn is compiled:
            torch._dynamo.mark_dynamic(leaves[0], 0)
        out, mean = fn(*leaves)
        loss = (out * _randn(*out.shape, seed=5)).sum() + mean
        grads = torch.autograd.grad(loss, leaves, create_graph=True)
        penalty = sum((g * _randn(*g.shape, seed=6 + i)).sum() for i, g in enumerate(grads))
        return [*grads, *torch.autograd.grad(penalty, leaves)]

    w1, w2 = _randn(3, 5, seed=1), _randn(5, 2, seed=2)
    for batch in (4, 8, 14):
        x = _randn(batch, 3, seed=batch)
        ours = penalty_grads(compiled, x, w1, w2)
        theirs = penalty_grads(mlp_with_size_arithmetic, x, w1, w2)
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b)
    assert counter.frame_count == 1


def test_batchnorm_running_statistics_with_a_dynamic_batch():
    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).double()

    ours, theirs = model(), model()
    counter = CompileCounterWithBackend("tape")
    step = torch.compile(ours, backend=counter)
    for batch in (4, 6, 9):
        x = _randn(batch, 3, seed=batch)
        torch._dynamo.mark_dynamic(x, 0)
        cotangent = _randn(batch, 4, seed=10 + batch)
        torch.autograd.backward(step(x), cotangent)
        torch.autograd.backward(theirs(x), cotangent)
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    assert counter.frame_count == 1
