"""Real models train on the tape exactly like eager.

Each model family trains for several SGD steps twice from the same weights, once eagerly and
once through `torch.compile(backend="tape", options={"fallback": "error"})`, so every op must
run on one of this project's rules: the per-step losses and the final parameters and buffers
(BatchNorm's running statistics included) must agree within 1e-5 in float32 and 1e-10 in
float64. The generic fallback and the options check are tested at the end.
"""

import copy

import pytest
import torch
from helpers import HuggingFaceGPT2

from dynamo_tape.rules import RULES
from dynamo_tape.tools.examples.models import (
    GPT,
    MLP,
    LSTMClassifier,
    ResNet,
    gpt_batch,
    lstm_batch,
    mlp_batch,
    resnet_batch,
    train_side_by_side,
)

STRICT = {"fallback": "error"}
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])


def assert_trains_like_eager(make_model, make_batch, dtype, steps=5, train=True):
    run = train_side_by_side(make_model, make_batch, steps, dtype, STRICT, train=train)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(
        torch.tensor(run.tape_losses, dtype=torch.float64),
        torch.tensor(run.eager_losses, dtype=torch.float64),
        rtol=tol,
        atol=0,
    )
    assert run.tape_state.keys() == run.eager_state.keys()
    for name, eager in run.eager_state.items():
        torch.testing.assert_close(run.tape_state[name], eager, rtol=tol, atol=tol, msg=name)
    # training moved the weights: equal states are not both the untouched initialisation
    first = next(iter(run.eager_state))
    assert not torch.equal(run.eager_state[first], make_model_state(make_model, dtype)[first])
    return run


def make_model_state(make_model, dtype):
    torch.manual_seed(0)  # the seed train_side_by_side draws the weights with
    return make_model().to(dtype).state_dict()


@DTYPES
@pytest.mark.parametrize(
    "activation, loss",
    [
        ("relu", "cross_entropy"),
        ("gelu", "cross_entropy"),
        ("gelu_tanh", "mse"),
        ("tanh", "cross_entropy"),
        ("silu", "mse"),
    ],
)
def test_mlp(activation, loss, dtype):
    assert_trains_like_eager(lambda: MLP(activation, loss), mlp_batch, dtype)


@DTYPES
def test_resnet_train_mode_running_stats_match(dtype):
    run = assert_trains_like_eager(ResNet, resnet_batch, dtype)
    stats = [k for k in run.eager_state if "running_" in k or "num_batches" in k]
    assert len(stats) == 3 * 6  # six BatchNorms: running mean, var and batch count each
    assert int(run.tape_state["stem.1.num_batches_tracked"]) == 5


@DTYPES
def test_resnet_eval_mode(dtype):
    assert_trains_like_eager(ResNet, resnet_batch, dtype, train=False)


@pytest.mark.parametrize(
    "attention, dropout, train, dtype",
    [
        ("manual", 0.2, True, torch.float32),  # dropout masks drawn as eager draws them
        ("manual", 0.0, True, torch.float64),
        ("manual", 0.2, False, torch.float64),  # eval mode: dropout is the identity
        ("sdpa", 0.0, True, torch.float32),
        ("sdpa", 0.2, True, torch.float64),
    ],
    ids=lambda v: str(v).removeprefix("torch."),
)
def test_gpt(attention, dropout, train, dtype):
    make = lambda: GPT(attention=attention, dropout=dropout)
    assert_trains_like_eager(make, gpt_batch, dtype, train=train)


def test_gpt_with_a_new_batch_size_each_step_runs_on_dynamic_shapes():
    from dynamo_tape.tracker import last_compiled

    sizes = iter([4, 6, 3, 5, 7])
    varying = lambda model, generator, dtype: gpt_batch(model, generator, dtype, next(sizes))
    make = lambda: GPT(attention="sdpa", dropout=0.2, n_layer=1)
    assert_trains_like_eager(make, varying, torch.float64)
    tokens = last_compiled().tape.inputs[-1]
    assert isinstance(tokens.shape[0], torch.SymInt)  # recompiled once with a symbolic batch


def test_resnet_gradient_penalty_double_backward_matches_eager():
    torch.manual_seed(0)
    eager = ResNet().double()
    taped = copy.deepcopy(eager)
    batch = resnet_batch(eager, torch.Generator().manual_seed(0), torch.float64)
    results = []
    for model, forward in [(eager, eager), (taped, torch.compile(taped, backend="tape"))]:
        params = list(model.parameters())
        grads = torch.autograd.grad(forward(*batch), params, create_graph=True)
        penalty = sum((g * g).sum() for g in grads)  # ||d loss / d params||^2
        results.append(torch.autograd.grad(penalty, params))
    for ours, theirs in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


@DTYPES
def test_lstm(dtype):
    assert_trains_like_eager(LSTMClassifier, lstm_batch, dtype)


def hf_batch(model, generator, dtype):
    return (torch.randint(0, model.vocab, (2, 16), generator=generator),)


@DTYPES
def test_transformers_gpt2(dtype):
    pytest.importorskip("transformers")
    assert_trains_like_eager(HuggingFaceGPT2, hf_batch, dtype)


# --- ops without a rule: the generic fallback, and fallback="error" ----------------------------


# An op that can have no rule of ours: a custom op whose gradient only torch.autograd knows
# (its registered formula), which Dynamo and the lowering keep whole.
@torch.library.custom_op("test_models::cube", mutates_args=())
def cube(x: torch.Tensor) -> torch.Tensor:
    return x * x * x


@cube.register_fake
def _(x):
    return torch.empty_like(x)


def _cube_backward(ctx, g):
    (x,) = ctx.saved_tensors
    return g * 3 * x * x


def _cube_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


cube.register_autograd(_cube_backward, setup_context=_cube_setup)
NO_RULE = torch.ops.test_models.cube.default


def uses_cube(x, y):
    return cube(x.sin()) * y


def test_fallback_gives_torch_autograd_gradients():
    assert NO_RULE not in RULES
    generator = torch.Generator().manual_seed(0)
    x, y = (torch.randn(4, 5, dtype=torch.float64, generator=generator) for _ in range(2))
    cotangent = torch.randn(4, 5, dtype=torch.float64, generator=generator)
    ours = [t.clone().requires_grad_() for t in (x, y)]
    theirs = [t.clone().requires_grad_() for t in (x, y)]
    out = torch.compile(uses_cube, backend="tape")(*ours)
    expected = uses_cube(*theirs)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    out.backward(cotangent)
    expected.backward(cotangent)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)

    from dynamo_tape.tracker import last_compiled

    kinds = {e.kind for e in last_compiled().tape.entries if e.op is NO_RULE}
    assert kinds == {"fallback"}  # counted as a fallback, not passed off as a rule


def test_fallback_error_names_the_op_and_line():
    x = torch.randn(3, requires_grad=True)
    compiled = torch.compile(uses_cube, backend="tape", options=STRICT)
    with pytest.raises(Exception, match=r"\.cube\b") as info:
        compiled(x, x)
    assert "test_models.py" in str(info.value)  # the user's source line


def test_unknown_option_lists_the_valid_ones():
    compiled = torch.compile(lambda x: x.sin(), backend="tape", options={"fallbak": "error"})
    with pytest.raises(Exception, match="fallbak") as info:
        compiled(torch.randn(3))
    assert "'fallback'" in str(info.value)
