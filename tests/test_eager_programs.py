"""Programs eager runs and the tape once refused or got wrong: compiled optimizer steps,
in-place updates of leaves, inference tensors. Each is compared with eager (and, where Dynamo
itself changes the program, with Dynamo alone: `torch.compile(..., backend="eager")`)."""

import copy

import pytest
import torch
from helpers import HuggingFaceGPT2

OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd_momentum_foreach": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, foreach=True),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, foreach=False),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01, foreach=False),
    "adam_foreach": lambda p: torch.optim.Adam(p, lr=0.01, foreach=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, foreach=False),
    "adamw_foreach": lambda p: torch.optim.AdamW(p, lr=0.01, foreach=True),
}


def _state(model, optimizer):
    tensors = [p.detach() for p in model.parameters()]
    for p in model.parameters():
        tensors += [t for t in optimizer.state[p].values() if isinstance(t, torch.Tensor)]
    return tensors


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_compiled_optimizer_step_updates_parameters_and_state_as_eager(name):
    # Dynamo compiles the step's attribute tensors (parameters, state) as get_attr nodes, and
    # torch's optimizers take other code paths under torch.compile (Adam's bias corrections as
    # tensors): the tape must equal Dynamo alone bit for bit, and eager to rounding
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))]
    models += [copy.deepcopy(models[0]) for _ in range(2)]
    optimizers = [OPTIMIZERS[name](m.parameters()) for m in models]
    steps = [
        optimizers[0].step,
        torch.compile(optimizers[1].step, backend="eager"),
        torch.compile(optimizers[2].step, backend="tape"),
    ]
    for _ in range(4):
        x = torch.randn(5, 4)
        for model, optimizer, step in zip(models, optimizers, steps):
            optimizer.zero_grad()
            model(x).pow(2).sum().backward()
            step()
    eager, dynamo, tape = (_state(m, o) for m, o in zip(models, optimizers))
    assert len(tape) == len(eager) >= 4  # four parameters, and their state
    for a, b in zip(tape, dynamo):
        assert torch.equal(a, b)
    for a, b in zip(tape, eager):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


class _ScalesItsWeight(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x):
        self.lin.weight.data.mul_(0.5)  # not recorded by autograd: later reads are the leaf's
        return self.lin(x)


@pytest.mark.parametrize(
    "make, batch",
    [
        (_ScalesItsWeight, lambda: torch.randn(4, 3)),
        # renormalizes its weight rows in place under no_grad before the lookup
        (lambda: torch.nn.Embedding(10, 4, max_norm=1.0), lambda: torch.tensor([1, 2, 2, 7])),
    ],
    ids=["weight_data_mul_", "embedding_max_norm"],
)
def test_unrecorded_in_place_updates_of_leaves_train_as_eager(make, batch):
    torch.manual_seed(0)
    eager = make()
    ours = copy.deepcopy(eager)
    compiled = torch.compile(ours, backend="tape", options={"fallback": "error"})
    for _ in range(3):
        x = batch()
        for model in (eager, compiled):
            model(x).pow(2).sum().backward()
    for a, b in zip(eager.parameters(), ours.parameters()):
        assert torch.equal(a, b)
        assert torch.equal(a.grad, b.grad)


def test_inputs_made_under_inference_mode_work_as_in_eager():
    with torch.inference_mode():
        x = torch.randn(3, 4)
    w = torch.randn(3, 4, requires_grad=True)

    def f(x, w):
        return (x + w).relu().sum()  # relu saves its output, not x: eager can differentiate

    f(x, w).backward()
    expected, w.grad = w.grad, None
    torch.compile(f, backend="tape")(x, w).backward()
    assert torch.equal(w.grad, expected)
    # double backward recomputes from the inputs: an inference tensor has no version counter
    (g,) = torch.autograd.grad(torch.compile(f, backend="tape")(x, w), w, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), w, allow_unused=True, materialize_grads=True)
    (eg,) = torch.autograd.grad(f(x, w), w, create_graph=True)
    (egg,) = torch.autograd.grad(eg.sum(), w, allow_unused=True, materialize_grads=True)
    assert torch.equal(g, eg) and torch.equal(gg, egg)
    with torch.inference_mode():
        out = torch.compile(lambda x: x * 2, backend="tape")(x)
    assert out.is_inference() and torch.equal(out, x * 2)


# ---- activation checkpointing -----------------------------------------------------------


def _saved_bytes(fn, *args, exclude=()):
    """Bytes of the distinct storages autograd saves for backward, without those of `exclude`."""
    skip = {t.untyped_storage().data_ptr() for t in (*args, *exclude)}
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args)
    return out, sum(seen.values())


def _saved_and_grads(fn, args):
    """Per backend (eager, aot_eager, tape): bytes saved for backward, the output, gradients of
    `args`; each run from the same seed."""
    results = {}
    for backend in ("eager", "aot_eager", "tape"):
        torch._dynamo.reset()
        torch.manual_seed(0)
        compiled = fn if backend == "eager" else torch.compile(fn, backend=backend)
        out, saved = _saved_bytes(compiled, *args)
        results[backend] = saved, out.detach(), torch.autograd.grad(out, args)
    return results


def _block(x, w):
    return torch.tanh(x @ w).sin() * 2


def _two_checkpointed_blocks(x, w1, w2):
    from torch.utils.checkpoint import checkpoint

    h = checkpoint(_block, x, w1, use_reentrant=False)
    return checkpoint(_block, h, w2, use_reentrant=False).sum()


def test_checkpointed_regions_are_recomputed_in_the_backward():
    import dynamo_tape

    torch.manual_seed(0)
    args = [torch.randn(4, 8, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    args[1:] = [torch.randn(8, 8, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    results = _saved_and_grads(_two_checkpointed_blocks, args)
    assert results["tape"][0] <= results["aot_eager"][0]
    assert results["tape"][0] == results["eager"][0]  # the regions' inputs, nothing inside
    for a, b in zip(results["tape"][2], results["eager"][2]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    text = dynamo_tape.last_tapes()
    assert text.count("= checkpoint v") == 2
    assert "# a torch.utils.checkpoint region, recomputed in the backward" in text
    backward = text.split("\nbackward(")[1]
    assert backward.count(" = tanh ") == 2  # each region's forward again, in the backward


def test_double_backward_through_a_checkpointed_region():
    x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    w1, w2 = (torch.randn(8, 8, dtype=torch.float64, requires_grad=True) for _ in range(2))
    grads = []
    for fn in (_two_checkpointed_blocks, torch.compile(_two_checkpointed_blocks, backend="tape")):
        (g,) = torch.autograd.grad(fn(x, w1, w2), w1, create_graph=True)
        grads.append((g, torch.autograd.grad((g * g).sum(), (x, w1, w2))))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b)


def _sin_between_matmuls(x, w):
    return torch.sin(x @ w) @ w


def _selectively_checkpointed(policy):
    import functools

    from torch.utils.checkpoint import checkpoint, create_selective_checkpoint_contexts

    context_fn = functools.partial(create_selective_checkpoint_contexts, policy)

    def fn(x, w):
        return checkpoint(_sin_between_matmuls, x, w, use_reentrant=False, context_fn=context_fn)

    return lambda x, w: fn(x, w).sum()


def _save_matmuls(ctx, op, *args, **kwargs):
    from torch.utils.checkpoint import CheckpointPolicy

    if op is torch.ops.aten.mm.default:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def _recompute_all(ctx, op, *args, **kwargs):
    from torch.utils.checkpoint import CheckpointPolicy

    return CheckpointPolicy.PREFER_RECOMPUTE


@pytest.mark.parametrize(
    "policy", [_save_matmuls, [torch.ops.aten.mm.default], _recompute_all], ids=repr
)
def test_selective_checkpointing_policies_are_honoured(policy):
    import dynamo_tape

    x = torch.randn(8, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 8, dtype=torch.float64, requires_grad=True)
    results = _saved_and_grads(_selectively_checkpointed(policy), (x, w))
    saved = {k: v[0] for k, v in results.items()}
    # what the policy saves (x @ w, the one matmul whose output the backward reads), or nothing
    # beyond the inputs: aot_eager's partitioner honours the policy too
    assert saved["tape"] == saved["aot_eager"], saved
    assert saved["tape"] == (0 if policy is _recompute_all else 8 * 8 * 8), saved
    assert torch.equal(results["tape"][1], results["eager"][1])
    for a, b in zip(results["tape"][2], results["eager"][2]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    backward = dynamo_tape.last_tapes().split("\nbackward(")[1]
    assert backward.count(" = sin ") == 1  # recomputed either way: the policy names only mm


def _dropout_block(x, w):
    return torch.nn.functional.dropout(torch.tanh(x @ w), 0.5, True) @ w


def _checkpointed_dropout(x, w):
    from torch.utils.checkpoint import checkpoint

    return checkpoint(_dropout_block, x, w, use_reentrant=False).sum()


def test_checkpointed_region_with_dropout_is_recomputed_with_the_same_mask():
    import dynamo_tape

    x = torch.randn(16, 16, requires_grad=True)
    w = torch.randn(16, 16, requires_grad=True)
    torch._dynamo.reset()
    _, unchecked = _saved_bytes(
        torch.compile(lambda x, w: _dropout_block(x, w).sum(), backend="tape"), x, w
    )
    results = _saved_and_grads(_checkpointed_dropout, (x, w))
    saved = {k: v[0] for k, v in results.items()}
    # the mask (as eager's CPU dropout draws it, a float tensor) is kept; the rest recomputed
    assert saved["tape"] == 16 * 16 * 4 < unchecked, (saved, unchecked)
    assert saved["tape"] <= saved["aot_eager"], saved
    assert torch.equal(results["tape"][1], results["eager"][1])
    for a, b in zip(results["tape"][2], results["eager"][2]):
        torch.testing.assert_close(a, b)
    assert (
        "# a torch.utils.checkpoint region, recomputed in the backward" in dynamo_tape.last_tapes()
    )


def test_gpt2_with_gradient_checkpointing_saves_at_most_what_aot_eager_saves():
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = HuggingFaceGPT2()
    tokens = torch.randint(0, model.vocab, (2, 16))
    torch._dynamo.reset()
    _, unchecked = _saved_bytes(torch.compile(copy.deepcopy(model), backend="tape"), tokens)
    model.gpt2.gradient_checkpointing_enable()
    results = {}
    for backend in ("eager", "aot_eager", "tape"):
        torch._dynamo.reset()
        copy_ = copy.deepcopy(model)
        fn = copy_ if backend == "eager" else torch.compile(copy_, backend=backend)
        loss, saved = _saved_bytes(fn, tokens, exclude=tuple(copy_.parameters()))
        loss.backward()
        results[backend] = saved, loss.detach(), [p.grad for p in copy_.parameters()]
    saved = {k: v[0] for k, v in results.items()}
    assert saved["tape"] < unchecked / 2, (saved, unchecked)  # the layers are recomputed
    assert torch.equal(results["tape"][1], results["eager"][1])
    for a, b in zip(results["tape"][2], results["eager"][2]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert saved["tape"] <= saved["aot_eager"], saved


# ---- module backward hooks --------------------------------------------------------------


def _hooked_mlp(log: list) -> torch.nn.Module:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))

    def full(module, grad_in, grad_out):
        log.append(grad_out[0].clone())
        return (grad_in[0] * 2,)

    def pre(module, grad_out):
        log.append(grad_out[0].clone())
        return (grad_out[0] * 3,)

    mlp[0].register_full_backward_hook(full)
    mlp[2].register_full_backward_pre_hook(pre)
    return mlp


def test_module_backward_hooks_run_as_in_eager_and_the_tracker_says_dynamo_ran_it_uncompiled():
    from dynamo_tape.tracker import track

    x = torch.randn(5, 3, dtype=torch.float64)
    runs = []
    for backend in ("eager", "tape"):
        torch._dynamo.reset()
        log = []
        mlp = _hooked_mlp(log).double()
        fn = mlp if backend == "eager" else torch.compile(mlp, backend=backend)
        given = x.clone().requires_grad_()
        with track() as tracked:
            out = fn(given)
            out.sum().backward()
        runs.append((out, given.grad, [p.grad for p in mlp.parameters()], log, tracked))
    (out, grad, grads, log, _), (out_, grad_, grads_, log_, tracked) = runs
    assert torch.equal(out_, out) and torch.equal(grad_, grad) and len(log_) == len(log) == 2
    for a, b in zip([*grads_, *log_], [*grads, *log]):
        assert torch.equal(a, b)
    # Dynamo declines the frame (module backward hooks need compiled autograd): no graph, and
    # the tracker says so with Dynamo's reason
    assert tracked.graph_count == 0
    (split,) = tracked.splits
    assert split.kind == "frame run as Python"
    assert "backward" in split.reason and "hook" in split.reason


# ---- tensor hooks registered inside the compiled region ----------------------------------


def _scaled_by_a_hook(x):
    y = x * 2
    y.register_hook(lambda g: g * 10)
    return (y * y).sum()


def _two_hooks_in_order(x):
    y = x.sin()
    y.register_hook(lambda g: g + 1)
    y.register_hook(lambda g: g * 3)  # runs second: (g + 1) * 3
    return (y * x).sum()


def _hook_on_a_tensor_read_twice(x):
    y = x * x
    y.register_hook(lambda g: g * g)  # on the summed gradient, once: not on each use
    return (y.exp() + y * 3).sum()


def _hook_that_returns_none(x):
    y = x.cos()
    y.register_hook(lambda g: None)  # keeps the gradient
    return (y * 2).sum()


@pytest.mark.parametrize(
    "fn", [_scaled_by_a_hook, _two_hooks_in_order, _hook_on_a_tensor_read_twice,
           _hook_that_returns_none], ids=lambda f: f.__name__.strip("_"),
)  # fmt: skip
def test_tensor_hooks_inside_the_compiled_region_run_as_in_eager(fn):
    if fn is _two_hooks_in_order and torch.__version__ < "2.13":
        # seen on 2.11.0 and 2.12.1: Dynamo chains the hooks as custom Functions in reverse, and
        # Dynamo alone and aot_eager give 3g + 1 as the tape does
        pytest.skip(f"torch {torch.__version__}: Dynamo runs two hooks of a tensor in reverse")
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(fn(x), x)
    compiled = torch.compile(fn, backend="tape", options={"fallback": "error"})
    (ours,) = torch.autograd.grad(compiled(x), x)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)


# ---- torch.cond --------------------------------------------------------------------------


def _branch_true(x, w):
    return (x * w).sin()


def _branch_false(x, w):
    return (x - w).cos() * 2


def _with_cond(x, w):
    return torch.cond(x.sum() > 0, _branch_true, _branch_false, (x, w)).sum()


def _with_if(x, w):  # the same program, branching in Python: eager's reference
    return (_branch_true(x, w) if x.sum() > 0 else _branch_false(x, w)).sum()


@pytest.mark.parametrize("sign", [1, -1], ids=["true_branch", "false_branch"])
def test_cond_runs_the_branch_pred_picks_forward_backward_and_double_backward(sign):
    import dynamo_tape

    x = (torch.rand(3, dtype=torch.float64) * sign).requires_grad_()
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    compiled = torch.compile(_with_cond, backend="tape", options={"fallback": "error"})
    for fn in (_with_if, _with_cond):
        torch.testing.assert_close(compiled(x, w), fn(x, w))
    expected = torch.autograd.grad(_with_if(x, w), (x, w), create_graph=True)
    ours = torch.autograd.grad(compiled(x, w), (x, w), create_graph=True)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b)
        assert a.requires_grad == b.requires_grad
    second = [torch.autograd.grad(sum(g.sum() for g in gs), (x, w)) for gs in (ours, expected)]
    for a, b in zip(*second):
        torch.testing.assert_close(a, b)
    text = dynamo_tape.last_tapes()
    assert "cond.true(" in text and "cond.false(" in text  # each branch as its own tape
    assert "cond.true.joint(" in text  # and each branch's backward


def _retains_an_intermediate_grad(x):
    y = x * 2
    y.retain_grad()
    return (y * y).sum(), y


def test_retain_grad_inside_the_compiled_region_as_in_eager():
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    results = []
    for fn in (_retains_an_intermediate_grad, torch.compile(_retains_an_intermediate_grad,
                                                              backend="tape")):  # fmt: skip
        loss, y = fn(x)
        loss.backward()
        results.append(y.grad)
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)


# ---- torch._higher_order_ops.map -----------------------------------------------------------


def _mapped_body(x, w):
    return (x * w).tanh() * x


def _with_map(xs, w):
    from torch._higher_order_ops.map import map as map_

    return map_(_mapped_body, xs, w).sum()


def _with_a_loop(xs, w):  # the same program as a Python loop: eager's reference
    return torch.stack([_mapped_body(x, w) for x in xs]).sum()


def test_map_runs_its_body_on_each_slice_forward_backward_and_double_backward():
    import dynamo_tape

    xs = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    compiled = torch.compile(_with_map, backend="tape", options={"fallback": "error"})
    torch.testing.assert_close(compiled(xs, w), _with_a_loop(xs, w))
    ours = torch.autograd.grad(compiled(xs, w), (xs, w), create_graph=True)
    expected = torch.autograd.grad(_with_a_loop(xs, w), (xs, w), create_graph=True)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b)
    second = [torch.autograd.grad(sum(g.sum() for g in gs), (xs, w)) for gs in (ours, expected)]
    for a, b in zip(*second):
        torch.testing.assert_close(a, b)
    assert "map.body(" in dynamo_tape.last_tapes()


# ---- torch.autograd.grad inside the compiled region --------------------------------------


def _gradient_penalty(x, activation):
    (g,) = torch.autograd.grad(activation(x * 3).sum(), x, create_graph=True)
    return (g * x).sum()


@pytest.mark.parametrize(
    "activation", [torch.nn.functional.hardtanh, torch.relu, torch.tanh], ids=lambda f: f.__name__
)
def test_autograd_grad_inside_the_compiled_region_as_in_eager(activation):
    # Dynamo puts the first backward's kernels (hardtanh_backward...) into the graph: the tape
    # differentiates them by their own rules
    x = torch.randn(6, dtype=torch.float64, requires_grad=True)
    out = _gradient_penalty(x, activation)
    ours = torch.compile(_gradient_penalty, backend="tape")(x, activation)
    assert torch.equal(ours, out) and ours.requires_grad
    torch.testing.assert_close(
        torch.autograd.grad(ours, x)[0], torch.autograd.grad(out, x)[0], rtol=1e-12, atol=1e-12
    )
