"""Higher-order ops on the tape against eager: `while_loop`, `invoke_subgraph`, `flex_attention`
(`torch.cond` and `map` are in test_eager_programs.py)."""

import pytest
import torch

import dynamo_tape


def _compiled(fn):
    return torch.compile(fn, backend="tape", options={"fallback": "error"})


def _forward_tape(text: str) -> str:
    return text.split("\n\n")[0]


# ---- while_loop ----------------------------------------------------------------------------


def _while_loop(*args):
    from torch._higher_order_ops.while_loop import while_loop

    return while_loop(*args)


def _steps(n, x, y, w):
    return _while_loop(
        lambda i, x, y: i < n,
        lambda i, x, y: (i + 1, (x * w).sin() + y, y * x.cos()),
        (torch.zeros((), dtype=torch.int64), x, y),
    )


def _python_steps(n, x, y, w):  # the same loop in Python: the reference for the gradients
    i = 0
    while i < n:
        i, x, y = i + 1, (x * w).sin() + y, y * x.cos()
    return torch.tensor(i), x, y


@pytest.mark.parametrize("n", [3, 0], ids=["three_iterations", "no_iteration"])
def test_while_loop_runs_its_body_until_cond_fails_forward_and_backward(n):
    x, y, w = (torch.randn(5, dtype=torch.float64, requires_grad=True) for _ in range(3))
    compiled = _compiled(lambda x, y, w: _steps(n, x, y, w))
    ours, eager, python = compiled(x, y, w), _steps(n, x, y, w), _python_steps(n, x, y, w)
    for a, b, c in zip(ours, eager, python):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c, rtol=0, atol=0)
        assert a.requires_grad == b.requires_grad
    cotangents = [torch.randn(5, dtype=torch.float64) for _ in range(2)]
    expected = torch.autograd.grad(python[1:], (x, y, w), cotangents, allow_unused=True)
    # eager's gradient of a loop that runs no iteration is not the identity's (torch 2.11 to
    # 2.15 give one iteration's): there, the Python loop alone is the reference
    for outs in (eager, ours) if n else (ours,):
        got = torch.autograd.grad(outs[1:], (x, y, w), cotangents, allow_unused=True)
        for a, b in zip(got, expected):
            if b is None:  # no iteration: w is not read (ours gives zeros)
                assert not a.any()
            else:
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


class _Recurrent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = torch.nn.Linear(4, 4, dtype=torch.float64)

    def step(self, i, h):
        return i + 1, self.cell(h).tanh()

    def forward(self, x):
        start = (torch.zeros((), dtype=torch.int64), x)
        return _while_loop(lambda i, h: i < 4, self.step, start)[1]

    def unrolled(self, x):  # the same loop in Python: the reference
        for _ in range(4):
            x = self.cell(x).tanh()
        return x


@pytest.mark.parametrize("x_requires_grad", [True, False])
def test_while_loop_over_a_modules_parameters_gives_the_python_loops_gradients(x_requires_grad):
    # the parameters reach the body as its additional inputs. Where the carried start value
    # does not require grad, eager's while_loop loses the gradient the carries pass between
    # iterations (its parameter gradients differ from the Python loop's, torch 2.11 to 2.15):
    # the Python loop is the reference
    model = _Recurrent()
    x = torch.randn(2, 4, dtype=torch.float64, requires_grad=x_requires_grad)
    ours, expected = _compiled(model)(x), model.unrolled(x)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    cotangent = torch.randn(2, 4, dtype=torch.float64)
    wrt = (x, *model.parameters()) if x_requires_grad else tuple(model.parameters())
    got, want = (torch.autograd.grad(out, wrt, cotangent) for out in (ours, expected))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _noisy_steps(x):
    return _while_loop(
        lambda i, x: i < 3,
        lambda i, x: (i + 1, x * torch.rand_like(x)),
        (torch.zeros((), dtype=torch.int64), x),
    )[1]


def test_while_loop_drawing_random_numbers_is_refused_a_backward_not_run():
    # the backward runs the loop again: it would draw other numbers, and a wrong gradient
    x = torch.randn(8, dtype=torch.float64)
    torch.manual_seed(0)
    expected = _noisy_steps(x)
    torch.manual_seed(0)
    torch.testing.assert_close(_compiled(_noisy_steps)(x), expected, rtol=0, atol=0)
    torch._dynamo.reset()
    with pytest.raises(Exception, match="draws random numbers in its body") as refused:
        _compiled(_noisy_steps)(x.requires_grad_())
    assert f"while_loop (from {__file__}:" in str(refused.value)


def test_while_loop_prints_cond_and_body_as_tapes_of_their_own():
    x, y, w = (torch.randn(5, dtype=torch.float64, requires_grad=True) for _ in range(3))
    torch.autograd.grad(_compiled(lambda x, y, w: _steps(3, x, y, w)[1].sum())(x, y, w), x)
    text = dynamo_tape.last_tapes()
    forward = _forward_tape(text)
    assert " = while_loop " in forward and "sin" not in forward  # the body is not inlined
    for tape in ("while_loop.cond(", "while_loop.body(", "while_loop.body.joint("):
        assert tape in text
    assert " = while_loop.backward " in text


def test_while_loop_double_backward_raises_where_eager_would_be_wrong():
    # eager's second derivatives through while_loop differ from the Python loop's (torch 2.11
    # to 2.15): the tape gives the first-order gradient with create_graph=True, and refuses
    # the second order rather than give a number
    x, y, w = (torch.randn(5, dtype=torch.float64, requires_grad=True) for _ in range(3))
    out = _compiled(lambda x, y, w: _steps(2, x, y, w)[1].sum())(x, y, w)
    (gx,) = torch.autograd.grad(out, x, create_graph=True)
    (expected,) = torch.autograd.grad(_python_steps(2, x, y, w)[1].sum(), x)
    torch.testing.assert_close(gx, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="double backward through torch while_loop"):
        torch.autograd.grad(gx.sum(), (x, w))


# ---- invoke_subgraph -------------------------------------------------------------------------


def _mark_compile_region(fn):
    invoke_subgraph = pytest.importorskip("torch._higher_order_ops.invoke_subgraph")
    if not hasattr(invoke_subgraph, "mark_compile_region"):
        pytest.skip(f"torch {torch.__version__} has no mark_compile_region")
    return invoke_subgraph.mark_compile_region(fn)


def _block(x, w):
    return (x @ w).tanh() * x


def test_invoke_subgraph_forward_backward_and_double_backward_as_eager():
    block = _mark_compile_region(_block)

    def two_blocks(x, w1, w2):
        return block(block(x, w1), w2)

    x, w1, w2 = (torch.randn(4, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    ours, expected = _compiled(two_blocks)(x, w1, w2), two_blocks(x, w1, w2)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    assert ours.requires_grad == expected.requires_grad
    cotangent = torch.randn(4, 4, dtype=torch.float64)
    first = [
        torch.autograd.grad(out, (x, w1, w2), cotangent, create_graph=True)
        for out in (ours, expected)
    ]
    for a, b in zip(*first):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        assert a.requires_grad == b.requires_grad
    second_cotangents = [torch.randn(4, 4, dtype=torch.float64) for _ in range(3)]
    second = [torch.autograd.grad(gs, (x, w1, w2), second_cotangents) for gs in first]
    for a, b in zip(*second):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_invoke_subgraph_prints_the_shared_region_once():
    block = _mark_compile_region(_block)
    x, w1, w2 = (torch.randn(4, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    out = _compiled(lambda x, w1, w2: block(block(x, w1), w2).sum())(x, w1, w2)
    torch.autograd.grad(out, x)
    text = dynamo_tape.last_tapes()
    forward = _forward_tape(text)
    assert forward.count(" = invoke_subgraph.subgraph_0 ") == 2 and "tanh" not in forward
    assert text.count("\ninvoke_subgraph.subgraph_0(") == 1  # one tape, for both calls
    assert text.count(" = invoke_subgraph.subgraph_0.backward ") == 2
    assert text.count("\ninvoke_subgraph.subgraph_0.joint(") == 1


# ---- flex_attention (CPU) ------------------------------------------------------------------


def _relative_bias(score, b, h, q, k):
    return score + (q - k).to(score.dtype) * 0.1


def _causal(b, h, q, k):
    return q >= k


def _flex(q, k, v, block_mask, score_mod=_relative_bias):
    from torch.nn.attention.flex_attention import flex_attention

    return flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask)


def _qkv(requires_grad=False):
    return [torch.randn(2, 2, 128, 16, requires_grad=requires_grad) for _ in range(3)]


def _causal_block_mask():
    from torch.nn.attention.flex_attention import create_block_mask

    return create_block_mask(_causal, 1, 1, 128, 128, device="cpu")


def test_flex_attention_forward_equals_eager_and_aot_eager():
    temperature, bias = torch.tensor(0.7), torch.randn(2, 128)

    def with_a_captured_tensor(score, b, h, q, k):  # the tensor is one of the op's operands
        return score * temperature

    def indexing_a_captured_tensor(score, b, h, q, k):  # by the score's own indices
        return score + bias[h, k]

    q, k, v = _qkv()
    block_mask = _causal_block_mask()
    for score_mod in (_relative_bias, with_a_captured_tensor, indexing_a_captured_tensor):
        expected = _flex(q, k, v, block_mask, score_mod)
        torch._dynamo.reset()
        aot_eager = torch.compile(_flex, backend="aot_eager")(q, k, v, block_mask, score_mod)
        torch._dynamo.reset()
        ours = _compiled(_flex)(q, k, v, block_mask, score_mod)
        torch.testing.assert_close(aot_eager, expected, rtol=0, atol=0)
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)
        assert ours.requires_grad == expected.requires_grad


def test_flex_attention_prints_score_mod_and_mask_mod_as_tapes_of_their_own():
    q, k, v = _qkv()
    _compiled(_flex)(q, k, v, _causal_block_mask())
    text = dynamo_tape.last_tapes()
    forward = _forward_tape(text)
    assert " = flex_attention " in forward and "ge.Tensor" not in forward
    score_mod = text[text.index("\nflex_attention.score_mod(") :]
    mask_mod = text[text.index("\nflex_attention.mask_mod(") :]
    assert "sub.Tensor" in score_mod.split("return")[0]  # q - k
    assert "ge.Tensor" in mask_mod.split("return")[0]  # q >= k


def test_flex_attention_on_cpu_refuses_inputs_that_require_grad_as_eager():
    q, k, v = _qkv(requires_grad=True)
    block_mask = _causal_block_mask()
    with pytest.raises(NotImplementedError, match="does not support backward on CPU") as eager:
        _flex(q, k, v, block_mask)
    with pytest.raises(NotImplementedError, match="does not support backward on CPU") as ours:
        _compiled(_flex)(q, k, v, block_mask)
    assert str(ours.value) == str(eager.value)


def test_flex_attention_without_a_block_mask_gives_eagers_values():
    # without one, torch's wrapper builds a block mask inside the graph (an index_put_ into a
    # detach of a fresh tensor), which the recorder takes as one write to both
    q, k, v = _qkv()
    assert torch.equal(_compiled(_flex)(q, k, v, None), _flex(q, k, v, None))
