"""CUDA: tapes take their devices from the inputs, and fused attention trains on its kernels.

Tests marked by the `device` fixture run on the CPU and, when a GPU is present, on CUDA. The
CPU-only checks below still cover CUDA by construction: lowering and differentiating on *fake*
CUDA tensors (FakeTensorMode needs no GPU) shows which ops and devices the tapes would use.
Never set requires_grad on a fake CUDA tensor in a CPU-only build: autograd aborts the
process there ("PyTorch is not linked with support for cuda devices").
"""

import operator

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn.attention import SDPBackend, sdpa_kernel

from dynamo_tape import tracker
from dynamo_tape.ir import Variable
from dynamo_tape.lower import lower
from dynamo_tape.ops import aten
from dynamo_tape.rules.attention import flash_attention_cpu
from dynamo_tape.runtime import CompiledGraph
from dynamo_tape.tools.check import check_rule
from dynamo_tape.tools.examples.models import (
    GPT,
    MLP,
    ResNet,
    gpt_batch,
    mlp_batch,
    resnet_batch,
    train_side_by_side,
)

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


# ---- on every available device ---------------------------------------------------------------


def test_small_model_trains_like_eager(device):
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.LayerNorm(8), torch.nn.GELU(), torch.nn.Linear(8, 3)
    ).to(device, torch.float64)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, dtype=torch.float64, generator=generator).to(device)
    cotangent = torch.randn(5, 3, dtype=torch.float64, generator=generator).to(device)
    eager = [g.detach() for g in torch.autograd.grad(model(x), list(model.parameters()), cotangent)]
    out = torch.compile(model, backend="tape", options={"fallback": "error"})(x)
    taped = torch.autograd.grad(out, list(model.parameters()), cotangent)
    assert out.device.type == device
    for t, e in zip(taped, eager):
        torch.testing.assert_close(t, e, rtol=1e-10, atol=1e-10)


# ---- CPU-runnable checks of what the CUDA tapes hold -----------------------------------------


def fake_cuda(fake_mode, *shapes, dtype=torch.float32):
    with fake_mode:
        return [torch.randn(s, device="cuda", dtype=dtype) for s in shapes]


def tensor_variables(tape):
    entries = [v for e in tape.entries for v in e.outputs]
    return [v for v in [*tape.inputs, *entries] if isinstance(v, Variable) and v.is_tensor]


class FunctionalNet(torch.nn.Module):
    """Ops whose rules create tensors (zeros, scalars, masks) and a mutated input."""

    def forward(self, x, w, b, ln_w, ln_b, conv_w, bn_w, bn_b, mean, var, tokens, table):
        h = F.gelu(F.layer_norm(F.linear(x, w, b), (w.shape[0],), ln_w, ln_b))
        h = torch.where(h > 0, h, 0.1 * h).softmax(-1)
        image = F.conv2d(h.view(2, 1, 4, 4), conv_w, padding=1)
        image = F.batch_norm(image, mean, var, bn_w, bn_b, training=True)
        picked = F.embedding(tokens, table).sum(1)
        loss = F.cross_entropy(image.mean((2, 3)) + picked, tokens.sum(1) % 3)
        return (loss,)


def test_tapes_on_cuda_inputs_stay_on_cuda():
    fake_mode = FakeTensorMode()
    inputs = fake_cuda(
        fake_mode, (2, 5), (16, 5), (16,), (16,), (16,), (3, 1, 3, 3), (3,), (3,), (3,), (3,)
    )
    with fake_mode:
        inputs += [torch.randint(0, 6, (2, 3), device="cuda"), torch.randn(6, 3, device="cuda")]
    lowered = lower(torch.fx.symbolic_trace(FunctionalNet()), inputs, fake_mode, strict=True)
    graph = CompiledGraph(lowered, "functional net")
    differentiable = tuple(i for i, x in enumerate(inputs) if x.is_floating_point())
    plan = graph.plan(tuple(i for i in differentiable if i not in (8, 9)))  # running stats
    assert lowered.mutations == [8, 9]
    off_cuda = [
        f"{tape.name}: {v.name}:{v.type_text()} on {v.meta.device}"
        for tape in (graph.tape, plan.backward.tape)
        for v in tensor_variables(tape)
        if v.meta.device.type != "cuda"
    ]
    assert not off_cuda


def fused_attention_graph(op, n_inputs, args) -> torch.fx.GraphModule:
    """`(op(query, key, value, [bias], *args)[0],)` as an FX graph."""
    graph = torch.fx.Graph()
    inputs = [graph.placeholder(f"x{i}") for i in range(n_inputs)]
    outputs = graph.call_function(op, (*inputs, *args))
    graph.output((graph.call_function(operator.getitem, (outputs, 0)),))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


FUSED = {
    "flash": (aten._scaled_dot_product_flash_attention.default, (0.0, True), torch.float16, 0),
    "efficient": (
        aten._scaled_dot_product_efficient_attention.default,
        (None, False, 0.0, True),
        torch.float32,
        0,
    ),
    "efficient_bias": (
        aten._scaled_dot_product_efficient_attention.default,
        (False, 0.1),
        torch.float32,
        1,
    ),
    "cudnn": (
        aten._scaled_dot_product_cudnn_attention.default,
        (None, False, 0.0, True),
        torch.bfloat16,
        0,
    ),
}


@pytest.mark.parametrize("kind", FUSED)
def test_fused_attention_rules_record_their_backward_kernels(kind):
    op, args, dtype, n_bias = FUSED[kind]
    fake_mode = FakeTensorMode()
    shapes = [(2, 3, 8, 16), (2, 3, 10, 16), (2, 3, 10, 16)] + [(2, 3, 8, 10)] * n_bias
    inputs = fake_cuda(fake_mode, *shapes, dtype=dtype)
    lowered = lower(fused_attention_graph(op, len(inputs), args), inputs, fake_mode, strict=True)
    (forward,) = lowered.tape.entries
    assert forward.op is op and forward.kind == "rule"
    if op._schema.arguments[4].name == "compute_log_sumexp":
        # lowering traces under no_grad, yet the backward kernel needs the logsumexp
        assert forward.args[4] is True
    plan = CompiledGraph(lowered, kind).plan(tuple(range(len(inputs))))
    backward_ops = [e.op.name() for e in plan.backward.tape.entries]
    assert backward_ops == [op.name() + "_backward"]
    for x, g in zip(inputs, plan.backward.tape.outputs):
        assert (g.shape, g.dtype, g.meta.device) == (x.shape, x.dtype, x.device)


@pytest.mark.parametrize("is_causal, scale", [(False, None), (True, None), (True, 0.3)])
def test_cpu_flash_attention_rule_matches_autograd(is_causal, scale):
    generator = torch.Generator().manual_seed(0)
    query, key, value = (
        torch.randn(2, 3, n, 4, dtype=torch.float64, generator=generator) for n in (5, 7, 7)
    )
    op = aten._scaled_dot_product_flash_attention_for_cpu.default
    result = check_rule(op, [query, key, value, 0.0, is_causal], {"scale": scale})
    assert result.kind == "rule"
    assert result.ok, result.message


def test_cpu_flash_attention_check_catches_swapped_gradients():
    def swapped(g, y, *args, **kwargs):
        gq, gk, gv = flash_attention_cpu(g, y, *args, **kwargs)
        return gq, gv, gk

    query, key, value = (torch.randn(2, 3, 5, 4, dtype=torch.float64) for _ in range(3))
    op = aten._scaled_dot_product_flash_attention_for_cpu.default
    assert not check_rule(op, [query, key, value], rule=swapped).ok


def _cpu_sdpa_step(fn, *args):
    ours_in = [a.detach().clone().requires_grad_(a.requires_grad) for a in args]
    theirs_in = [a.detach().clone().requires_grad_(a.requires_grad) for a in args]
    ours, theirs = torch.compile(fn, backend="tape")(*ours_in), fn(*theirs_in)
    cotangent = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1))
    wrt = [i for i, a in enumerate(args) if a.requires_grad]
    ours_grads = torch.autograd.grad(ours, [ours_in[i] for i in wrt], cotangent)
    theirs_grads = torch.autograd.grad(theirs, [theirs_in[i] for i in wrt], cotangent)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours_grads, theirs_grads, rtol=1e-6, atol=1e-6)
    compiled = tracker.last_compiled()
    (plan,) = compiled.plans.values()
    return [e.op for e in compiled.tape.entries], [e.op for e in plan.backward.tape.entries]


@pytest.mark.parametrize("is_causal", [False, True])
def test_cpu_sdpa_without_a_mask_runs_eagers_fused_kernel_each_way(is_causal):
    # as eager's SDPA on CPU, instead of a dozen entries of its math decomposition
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=generator, requires_grad=True) for _ in "qkv")
    forward, backward = _cpu_sdpa_step(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=is_causal), q, k, v
    )
    assert forward == [aten._scaled_dot_product_flash_attention_for_cpu.default]
    assert backward == [aten._scaled_dot_product_flash_attention_for_cpu_backward.default]


def test_cpu_sdpa_with_a_learned_mask_takes_the_math_and_its_gradient():
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=generator, requires_grad=True) for _ in "qkv")
    bias = torch.randn(5, 5, generator=generator, requires_grad=True)  # a learned additive mask

    def attend(q, k, v, bias):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias * 2)

    forward, _ = _cpu_sdpa_step(attend, q, k, v, bias)
    assert aten._scaled_dot_product_flash_attention_for_cpu.default not in forward


# ---- on a GPU only ------------------------------------------------------------------------------


SDPA_CASES = {
    # backend, dtype, with a learnable additive bias
    "flash": (SDPBackend.FLASH_ATTENTION, torch.float16, False),
    "efficient": (SDPBackend.EFFICIENT_ATTENTION, torch.float32, False),
    "efficient_bias": (SDPBackend.EFFICIENT_ATTENTION, torch.float32, True),
    "cudnn": (SDPBackend.CUDNN_ATTENTION, torch.bfloat16, False),
}


@needs_gpu
@pytest.mark.parametrize("kind", SDPA_CASES)
def test_fused_attention_trains_like_eager_on_cuda(kind):
    backend, dtype, with_bias = SDPA_CASES[kind]
    generator = torch.Generator(device="cuda").manual_seed(0)

    def randn(*shape):
        return torch.randn(shape, device="cuda", dtype=dtype, generator=generator)

    # a learnable bias instead of a causal mask, and then keys longer than queries
    causal, keys = (False, 80) if with_bias else (True, 64)
    inputs = [randn(2, 4, 64, 64), randn(2, 4, keys, 64), randn(2, 4, keys, 64)]
    inputs += [randn(2, 4, 64, keys)] if with_bias else []
    inputs = [x.requires_grad_() for x in inputs]

    def attention(query, key, value, *bias):
        mask = bias[0] if bias else None
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=causal)

    with sdpa_kernel([backend]):
        try:
            expected = attention(*inputs)
        except RuntimeError as e:  # e.g. cuDNN attention on an older GPU
            pytest.skip(f"{backend.name} does not run here: {e}")
        cotangent = randn(*expected.shape)
        expected_grads = torch.autograd.grad(expected, inputs, cotangent)
        out = torch.compile(attention, backend="tape")(*inputs)
        grads = torch.autograd.grad(out, inputs, cotangent)
    fused = kind.split("_")[0]
    entries = tracker.last_compiled().tape.entries
    ops = [e.op.name() for e in entries if isinstance(e.op, torch._ops.OpOverload)]
    assert f"aten::_scaled_dot_product_{fused}_attention" in ops
    torch.testing.assert_close(out, expected)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)


MODELS = {
    "mlp": (MLP, mlp_batch),
    "resnet": (ResNet, resnet_batch),
    "gpt_manual": (lambda: GPT(attention="manual"), gpt_batch),
    "gpt_sdpa": (lambda: GPT(attention="sdpa"), gpt_batch),
}
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", MODELS)
def test_models_train_like_eager_on_cuda(name, dtype, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    make_model, make_batch = MODELS[name]
    run = train_side_by_side(
        lambda: make_model().cuda(),
        lambda model, generator, dtype: [t.cuda() for t in make_batch(model, generator, dtype)],
        steps=3,
        dtype=dtype,
        options={"fallback": "error"},
    )
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(run.tape_losses, run.eager_losses, rtol=tol, atol=0)
    for key, eager in run.eager_state.items():
        assert run.tape_state[key].is_cuda
        torch.testing.assert_close(run.tape_state[key], eager, rtol=tol, atol=tol, msg=key)
