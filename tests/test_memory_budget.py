"""`options={"memory_budget": x}` (memory.py): the backward makes cheap saved values again
instead of the forward keeping them. Bytes are measured as the benchmark measures them
(tools/bench_measure.py `saved_bytes`: the storages `saved_tensors_hooks` sees, parameters and
batch left out); the training it gives must be the default's and eager's."""

import copy

import pytest
import torch
from helpers import HuggingFaceGPT2

import dynamo_tape
from dynamo_tape.ir import is_random
from dynamo_tape.tools.bench_measure import Runner, saved_bytes
from dynamo_tape.tools.examples.models import GPT, ResNet, gpt_batch, resnet_batch

BackendCompilerFailed = torch._dynamo.exc.BackendCompilerFailed
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])


def small_gpt(**overrides):
    return GPT(n_layer=2, n_embd=32, n_head=4, block=16, vocab=61, **overrides)


def resnet_images(model, generator, dtype):
    return resnet_batch(model, generator, dtype, batch=8, size=16)


def gpt2_tokens(model, generator, dtype):
    return (torch.randint(0, model.vocab, (4, 32), generator=generator),)


def measured_bytes(make_model, make_batch, options, eager=False):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = make_model()
    batch = make_batch(model, torch.Generator().manual_seed(0), torch.float32)
    fn = model if eager else torch.compile(model, backend="tape", options=options)
    runner = Runner("tape", model, fn)
    runner.fn(*batch).backward()  # compiles outside the hooks
    return saved_bytes(runner, batch)


def train(make_model, make_batch, dtype, options, steps=3, eager=False, lr=0.05):
    """(losses, gradients per step, final state) of SGD from seed 0's weights; the global RNG
    is reseeded before each step, so dropout draws the same masks in every run."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = make_model().to(dtype)
    forward = model if eager else torch.compile(model, backend="tape", options=options)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    losses, grads = [], []
    for step in range(steps):
        batch = make_batch(model, generator, dtype)
        torch.manual_seed(1000 + step)
        optimizer.zero_grad()
        loss = forward(*batch)
        loss.backward()
        losses.append(loss.item())
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
        optimizer.step()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return losses, grads, state


def assert_same_training(a, b, dtype):
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(
        torch.tensor(a[0], dtype=torch.float64), torch.tensor(b[0], dtype=torch.float64),
        rtol=tol, atol=0,
    )  # fmt: skip
    for step, (ga, gb) in enumerate(zip(a[1], b[1], strict=True)):
        for name in ga:
            torch.testing.assert_close(ga[name], gb[name], rtol=tol, atol=tol, msg=f"{step} {name}")
    for name in a[2]:
        torch.testing.assert_close(a[2][name], b[2][name], rtol=tol, atol=tol, msg=name)


# --- the option ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1.5, -0.1, "0.5", True, float("nan"), [0.5]])
def test_a_budget_outside_0_to_1_or_not_a_number_is_refused_naming_the_option(value):
    model = small_gpt()
    batch = gpt_batch(model, torch.Generator().manual_seed(0), torch.float32)
    compiled = torch.compile(model, backend="tape", options={"memory_budget": value})
    with pytest.raises(BackendCompilerFailed, match="'memory_budget' must be one of"):
        compiled(*batch)


def test_the_option_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "| `memory_budget` |" in readme


# --- bytes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_model, make_batch, at_most",
    [
        (ResNet, resnet_images, 0.6),
        (HuggingFaceGPT2, gpt2_tokens, 0.6),
        # the project's GPT cannot go below 0.64 on cheap entries: what it still saves
        # (the attention's q, k, v and softmax, the residual stream, the MLP's first Linear)
        # is made by matmuls and softmax, never made again
        (small_gpt, gpt_batch, 0.7),
    ],
    ids=["resnet", "gpt2", "gpt"],
)
def test_half_the_budget_saves_at_most_a_fraction_of_what_eager_saves(
    make_model, make_batch, at_most
):
    # the budget is a fraction of all the backward reads, which eager saves
    if make_model is HuggingFaceGPT2:
        pytest.importorskip("transformers")
    eager = measured_bytes(make_model, make_batch, None, eager=True)
    default = measured_bytes(make_model, make_batch, None)
    half = measured_bytes(make_model, make_batch, {"memory_budget": 0.5})
    assert half <= at_most * eager, (half, eager)
    assert half <= default <= eager, (half, default, eager)
    assert measured_bytes(make_model, make_batch, {"memory_budget": 1.0}) == default
    assert measured_bytes(make_model, make_batch, {"memory_budget": 0.0}) <= half


def saved_under(backend, make_model, make_batch):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = make_model()
    batch = make_batch(model, torch.Generator().manual_seed(0), torch.float32)
    runner = Runner(backend, model, torch.compile(model, backend=backend))
    runner.fn(*batch).backward()  # compiles outside the hooks
    return saved_bytes(runner, batch)


class TanhGELU(torch.nn.Module):
    """A Linear, then GELU written out (transformers' `gelu_new`), then a Linear."""

    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(16, 64), torch.nn.Linear(64, 16)

    def forward(self, x):
        h = self.up(x)
        h = 0.5 * h * (1.0 + torch.tanh(0.7978845608 * (h + 0.044715 * torch.pow(h, 3.0))))
        return self.down(h).square().mean()


def features(model, generator, dtype):
    return (torch.randn(8, 16, generator=generator, dtype=dtype),)


@pytest.mark.parametrize(
    "make_model, make_batch",
    [(TanhGELU, features), (HuggingFaceGPT2, gpt2_tokens), (ResNet, resnet_images)],
    ids=["gelu", "gpt2", "resnet"],
)
def test_by_default_the_tape_saves_no_more_than_aot_eager(make_model, make_batch):
    # aot_eager's min-cut partitioner makes pointwise values again; so does the default
    if make_model is HuggingFaceGPT2:
        pytest.importorskip("transformers")
    tape = saved_under("tape", make_model, make_batch)
    assert tape <= saved_under("aot_eager", make_model, make_batch)
    assert tape < measured_bytes(make_model, make_batch, None, eager=True) or make_model is ResNet


def test_the_default_makes_again_pointwise_values_from_what_is_saved_already():
    model = TanhGELU()
    (x,) = features(model, torch.Generator().manual_seed(0), torch.float32)
    torch.compile(model, backend="tape")(x).backward()
    traces = dynamo_tape.last_traces()
    before = next(t.tape for t in traces if t.step == "grad")
    after = next(t.tape for t in traces if t.step == "recomputed")
    made = {v for e in before.entries for v in e.outputs}
    again = [e for e in after.entries if not made.intersection(e.outputs)]
    assert again and all(torch.Tag.pointwise in e.op.tags for e in again)
    assert all(e.source and "test_memory_budget.py" in e.source for e in again)
    saved = lambda tape: set(tape.inputs[: len(tape.inputs) - 1])  # the last is the cotangent
    assert saved(after) < saved(before)  # fewer, and none new
    # the GELU's output is kept: the second Linear's weight gradient (a matmul) reads it
    forward = next(t.tape for t in traces if t.function == "forward_train")
    gelu_out = [e for e in forward.entries if e.op.__name__ == "mul.Tensor"][-1].outputs[0]
    assert gelu_out in saved(after)


def test_the_budget_is_a_trace_step_and_entries_made_again_say_where_they_come_from():
    model = small_gpt()
    batch = gpt_batch(model, torch.Generator().manual_seed(0), torch.float32)
    torch.compile(model, backend="tape", options={"memory_budget": 0.5})(*batch).backward()
    traces = dynamo_tape.last_traces()
    steps = [(t.function, t.step) for t in traces]
    assert ("backward", "memory budget") in steps
    assert steps.index(("backward", "rematerialized")) < steps.index(("backward", "memory budget"))
    before = next(t.tape for t in traces if t.step == "rematerialized")
    after = next(t.tape for t in traces if t.step == "memory budget")
    again = [e for e in after.entries if e not in before.entries]
    assert {e.op.__name__ for e in again} >= {"gelu.default", "native_layer_norm.default"}
    assert all(e.source and "models.py" in e.source for e in again)
    assert any(e.module == "blocks.0.mlp.1" for e in again)  # the GELU
    assert len(after.inputs) - len(before.inputs) < 0  # fewer saved values


def test_a_budget_of_one_changes_nothing():
    model = small_gpt()
    batch = gpt_batch(model, torch.Generator().manual_seed(0), torch.float32)
    torch.compile(model, backend="tape", options={"memory_budget": 1.0})(*batch).backward()
    assert "memory budget" not in [t.step for t in dynamo_tape.last_traces()]


# --- training --------------------------------------------------------------------------------


@DTYPES
@pytest.mark.parametrize(
    "make_model, make_batch",
    [(small_gpt, gpt_batch), (ResNet, resnet_images), (HuggingFaceGPT2, gpt2_tokens)],
    ids=["gpt", "resnet", "gpt2"],
)
def test_training_under_the_budget_is_the_default_and_eager(make_model, make_batch, dtype):
    if make_model is HuggingFaceGPT2:
        pytest.importorskip("transformers")
    budget = train(make_model, make_batch, dtype, {"memory_budget": 0.5})
    assert_same_training(budget, train(make_model, make_batch, dtype, None), dtype)
    assert_same_training(budget, train(make_model, make_batch, dtype, None, eager=True), dtype)
    assert_same_training(
        train(make_model, make_batch, dtype, {"memory_budget": 0.0}), budget, dtype
    )


def test_dropout_is_never_drawn_again_and_training_is_eager():
    def make():
        return small_gpt(dropout=0.2)

    dtype = torch.float64
    budget = train(make, gpt_batch, dtype, {"memory_budget": 0.0})
    assert_same_training(budget, train(make, gpt_batch, dtype, None, eager=True), dtype)
    after = next(t.tape for t in dynamo_tape.last_traces() if t.step == "memory budget")
    assert not any(is_random(e.op) for e in after.entries)


class ReadsItsStatistics(torch.nn.Module):
    """A BatchNorm whose new running mean the forward reads: made again in the backward, the
    BatchNorm makes no running statistics (its batch-only form)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, x):
        y = torch.sigmoid(self.bn(self.conv(x)))
        return (y * (2 * self.bn.running_mean).view(1, -1, 1, 1) + y.square()).sum()


def test_batch_norm_made_again_leaves_the_running_statistics_alone():
    def batch(model, generator, dtype):
        return (torch.randn(2, 3, 6, 6, generator=generator, dtype=dtype),)

    dtype = torch.float64
    budget = train(ReadsItsStatistics, batch, dtype, {"memory_budget": 0.0})
    assert_same_training(budget, train(ReadsItsStatistics, batch, dtype, None, eager=True), dtype)
    after = next(t.tape for t in dynamo_tape.last_traces() if t.step == "memory budget")
    assert "_native_batch_norm_legit.no_stats" in after.text()


def test_double_backward_through_entries_made_again():
    def f(x, w):
        return torch.nn.functional.gelu(torch.nn.functional.layer_norm(x @ w, (4,))).sum()

    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    compiled = torch.compile(f, backend="tape", options={"memory_budget": 0.0})
    results = []
    for fn in (f, compiled):
        (gx,) = torch.autograd.grad(fn(x, w), [x], create_graph=True)
        results.append((gx, *torch.autograd.grad(gx.square().sum(), [x, w])))
    assert "memory budget" in [t.step for t in dynamo_tape.last_traces()]
    for ours, eager in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(ours, eager, rtol=1e-10, atol=1e-10)


def test_dynamic_shapes_under_the_budget():
    model = small_gpt()
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, backend="tape", dynamic=True, options={"memory_budget": 0.5})
    generator = torch.Generator().manual_seed(0)
    for batch_size in (2, 3, 5):
        batch = gpt_batch(model, generator, torch.float32, batch=batch_size)
        ours, theirs = compiled(*batch), eager(*batch)
        ours.backward()
        theirs.backward()
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
        for (name, p), q in zip(model.named_parameters(), eager.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=name)
    assert "memory budget" in [t.step for t in dynamo_tape.last_traces()]
