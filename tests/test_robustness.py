"""What users hit on the first day: mutation and aliasing, double backward, grad modes, dtypes,
randomness, leaks and error messages. Eager PyTorch is the oracle throughout: each case runs
the same code eagerly and under backend="tape" and compares values and gradients (float64,
random cotangents, unless the dtype is the point of the test)."""

import gc
import linecache
import weakref

import pytest
import torch
import torch._dynamo
import torch.nn.functional as F

from dynamo_tape import tracker

F64 = torch.float64


def randn(*shape, seed=0, dtype=F64):
    return torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def compiled(fn, **options):
    return torch.compile(fn, backend="tape", options=options or None)


def assert_all_close(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        if b is None:
            assert a is None
        else:
            assert a.dtype == b.dtype
            torch.testing.assert_close(a, b)


def random_cotangents(outputs, seed):
    return [randn(*o.shape, seed=seed + i, dtype=o.dtype) for i, o in enumerate(outputs)]


# --- mutation and aliasing ----------------------------------------------------------------


def add_one_in_place(x):
    x.add_(1)
    return x * 2


def test_in_place_on_a_plain_input_leaves_it_as_eager_does():
    ours, theirs = randn(3, 4), randn(3, 4)
    out = compiled(add_one_in_place)(ours)
    torch.testing.assert_close(out, add_one_in_place(theirs))
    torch.testing.assert_close(ours, theirs)


def double_then_sin(x):
    x.mul_(2)
    return x.sin()


def test_in_place_on_an_input_inside_the_autograd_graph():
    # x is a non-leaf that requires grad: autograd must see the mutation, or the gradient
    # through x's new value (used after the call) is lost
    def step(fn):
        w = randn(5, seed=1).requires_grad_()
        x = w * 1.5
        out = fn(x)
        loss = (out * randn(5, seed=2)).sum() + (x * randn(5, seed=3)).sum()
        return [out, x, *torch.autograd.grad(loss, w)]

    assert_all_close(step(compiled(double_then_sin)), step(double_then_sin))


def test_in_place_on_a_view_input_reaches_its_base():
    def step(fn):
        w = randn(4, 3, seed=1).requires_grad_()
        base = w * 1
        out = fn(base[1])
        loss = (base * randn(4, 3, seed=2)).sum() + (out * randn(3, seed=3)).sum()
        return [out, base, *torch.autograd.grad(loss, w)]

    assert_all_close(step(compiled(double_then_sin)), step(double_then_sin))


def accumulate_into(x, w):
    x.add_(w * 2)
    return x.sum()


def test_in_place_of_a_value_that_requires_grad_into_a_plain_input():
    def step(fn):
        x, w = randn(3, seed=1), randn(3, seed=2).requires_grad_()
        out = fn(x, w)
        assert x.requires_grad  # as in eager: x now depends on w
        return [out, x, *torch.autograd.grad(out + (x * randn(3, seed=3)).sum(), w)]

    assert_all_close(step(compiled(accumulate_into)), step(accumulate_into))


def scale_in_place(x, y):
    x.mul_(y)  # the gradient of y reads x's value from before the call
    return x.sum()


def test_mutated_input_read_by_the_backward_keeps_its_old_value():
    def step(fn):
        x, y = randn(4, seed=1), randn(4, seed=2).requires_grad_()
        out = fn(x, y)
        return [out, x, *torch.autograd.grad(out, y)]

    assert_all_close(step(compiled(scale_in_place)), step(scale_in_place))


def views_of_the_input(x):
    return x.t(), x[0], x.view(-1)[2:]


def test_outputs_that_are_views_of_inputs_behave_as_eager():
    def step(fn):
        w = randn(2, 3, seed=1).requires_grad_()
        x = w * 1
        t, row, tail = fn(x)
        assert t._base is x and row._base is x and tail._base is x
        t.mul_(2)  # writes through to x, as eager's view does
        loss = (row * randn(3, seed=2)).sum() + (x * randn(2, 3, seed=3)).sum() + tail.sum()
        return [t, row, tail, x, *torch.autograd.grad(loss, w)]

    assert_all_close(step(compiled(views_of_the_input)), step(views_of_the_input))


def a_result_and_its_view(x):
    h = x * 2
    return h, h.view(-1)[1:]


def test_an_output_that_is_a_view_of_another_output_behaves_as_eager():
    def step(fn):
        w = randn(2, 3, seed=1).requires_grad_()
        h, tail = fn(w)
        tail.mul_(3)  # writes through to h, as eager's view does
        loss = (h * randn(2, 3, seed=2)).sum() + (tail * randn(5, seed=3)).sum()
        return [h, tail, *torch.autograd.grad(loss, w)]

    assert_all_close(step(compiled(a_result_and_its_view)), step(a_result_and_its_view))


def increment(x):
    x.add_(1)
    return x


def test_an_output_that_is_an_input_is_that_tensor():
    for requires_grad in (False, True):
        w = randn(3, seed=1).requires_grad_(requires_grad)
        x = w * 1
        out = compiled(increment)(x)
        assert out is x
        torch._dynamo.reset()


def test_batchnorm_buffers_and_parameters_train_as_eager():
    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Tanh(), torch.nn.Linear(6, 2)
        ).double()

    ours, theirs = model(), model()
    step_ours = compiled(ours)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1)
    for i in range(4):
        x, target = randn(8, 4, seed=i), randn(8, 2, seed=100 + i)
        for opt, run in ((opt_ours, step_ours), (opt_theirs, theirs)):
            opt.zero_grad()
            F.mse_loss(run(x), target).backward()
            opt.step()
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    ours.eval(), theirs.eval()
    torch.testing.assert_close(step_ours(randn(5, 4, seed=9)), theirs(randn(5, 4, seed=9)))


class CountsCalls(torch.nn.Module):
    """A BatchNorm (statistics updated in place, as eager does) and a counter read after its
    update (computed aside, then copied back)."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(3, dtype=F64)
        self.register_buffer("calls", torch.zeros((), dtype=F64))

    def forward(self, x):
        self.calls += 1
        return self.norm(x) * self.calls


def test_buffer_updates_run_in_place_where_nothing_else_reads_them():
    ours, theirs = CountsCalls(), CountsCalls()
    step = compiled(ours)
    with tracker.track() as seen:
        step(randn(6, 3, seed=0).requires_grad_())  # compiles the graph for training
    ours.load_state_dict(theirs.state_dict())
    graph = seen.graphs[0].compiled
    for i in range(3):
        x = randn(6, 3, seed=i).requires_grad_()
        y = x.detach().clone().requires_grad_()
        assert_all_close(step(x), theirs(y))
        step(x).sum().backward()
        theirs(y).sum().backward()
        assert_all_close(x.grad, y.grad)
        with torch.no_grad():
            assert_all_close(step(x), theirs(y))
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    (plan,) = graph.plans.values()
    names = [graph.tape.inputs[graph.lowered.mutations[k]] for k in plan.copy_back]
    assert len(graph.lowered.mutations) == 4 and len(names) == 1  # only `calls` copied back
    assert "_native_batch_norm_legit_" in plan.forward_code.source  # the in-place kernel
    assert "add__" in plan.forward_code.source  # num_batches_tracked
    assert graph.inference[1] == plan.copy_back


# --- double backward ----------------------------------------------------------------------
# Saved intermediates (tanh's and exp's outputs, the matmul operands) must carry their history
# into the second derivative: a backward that treats them as constants is wrong on all of these.


def tanh_exp_chain(x, w1, w2):
    h = torch.tanh(x @ w1).exp()
    return (torch.sigmoid(h @ w2) * h.sum(1, keepdim=True)).sum()


def softmax_relu_mix(x, w1, w2):
    h = torch.relu(x @ w1) + (x @ w1).sin() * 0.5
    return (torch.log_softmax(h @ w2, dim=-1) * (h @ w2).cos()).mean() * x.shape[0]


def rational_and_reductions(x, w1, w2):
    h = (x @ w1) / (1 + (x @ w1) ** 2)
    return (h.amax(1) * h.mean(0).sum()).sum() + ((h @ w2).sqrt() ** 3).sum()


def _leaves():
    x = randn(4, 3, seed=1).abs().requires_grad_()
    w1 = randn(3, 5, seed=2).abs().requires_grad_()
    w2 = randn(5, 2, seed=3).abs().requires_grad_()
    return [x, w1, w2]


def gradient_penalty(fn, leaves, seed=10):
    loss = fn(*leaves)
    grads = torch.autograd.grad(loss, leaves, create_graph=True)
    penalty = sum((g * c).sum() for g, c in zip(grads, random_cotangents(grads, seed), strict=True))
    return [g.detach() for g in grads], list(torch.autograd.grad(penalty, leaves))


@pytest.mark.parametrize("fn", [tanh_exp_chain, softmax_relu_mix, rational_and_reductions])
def test_gradient_penalty_matches_eager(fn):
    ours, theirs = gradient_penalty(compiled(fn), _leaves()), gradient_penalty(fn, _leaves())
    assert_all_close(ours[0], theirs[0])
    assert_all_close(ours[1], theirs[1])
    assert tracker.last_compiled().calls["double_backward"] > 0


SECOND_ORDER_CASES = {
    "silu": F.silu,
    "mish": F.mish,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "elu": F.elu,
    # x * 2 reaches past their kinks at -3 and 3
    "hardswish": lambda x: F.hardswish(x * 2),
    "hardswish_inplace": lambda x: F.hardswish(x * 2, inplace=True),
    "softplus": F.softplus,
    "logsigmoid": F.logsigmoid,
    "log_softmax": lambda x: F.log_softmax(x, -1) * x,
    "softmax": lambda x: F.softmax(x, 0) * x,
    "cumprod": lambda x: torch.cumprod(x, 1),
    "max_dim": lambda x: x.max(1).values ** 2,
    "cross_entropy": lambda x: F.cross_entropy(x.reshape(4, 6), torch.tensor([0, 1, 5, 2])),
    "conv1d": lambda x: F.conv1d(x.reshape(2, 4, 3), x.reshape(2, 4, 3)[:, :, :2]) ** 2,
    "max_pool2d": lambda x: F.max_pool2d(x.reshape(1, 2, 4, 3), 2) ** 2,
    "upsample": lambda x: (
        F.interpolate(x.reshape(1, 2, 4, 3), scale_factor=2, mode="bilinear") ** 2
    ),
    "var": lambda x: x.var(1) * x.sum(),
    "norm": lambda x: x.norm() * x,
    "prod": lambda x: x.prod(1),
}


@pytest.mark.parametrize("name", sorted(SECOND_ORDER_CASES))
def test_second_order_through_common_ops(name):
    def run(fn):
        x = randn(4, 6, seed=0).requires_grad_()
        out = fn(x)
        (g,) = torch.autograd.grad(out, x, random_cotangents([out], 1)[0], create_graph=True)
        return [g, *torch.autograd.grad((g * randn(4, 6, seed=2)).sum(), x)]

    fn = SECOND_ORDER_CASES[name]
    assert_all_close(run(compiled(fn)), run(fn))


def test_second_order_through_hardsigmoid():
    # eager has no derivative for hardsigmoid_backward ("not implemented"); the tape's rule
    # (linear in go, flat in x) gives what eager gives for hardsigmoid written out
    def run(fn):
        x = (randn(4, 6, seed=0) * 2).requires_grad_()  # past the kinks at -3 and 3
        out = fn(x) * x
        (g,) = torch.autograd.grad(out, x, random_cotangents([out], 1)[0], create_graph=True)
        return [g, *torch.autograd.grad((g * randn(4, 6, seed=2)).sum(), x)]

    def written_out(x):
        return torch.clamp(x + 3, 0, 6) / 6

    assert_all_close(run(compiled(F.hardsigmoid)), run(written_out))


@pytest.mark.parametrize("norm", [torch.nn.LayerNorm, torch.nn.BatchNorm1d])
def test_gradient_penalty_through_normalization_layers(norm):
    # their backward kernels are differentiated through input, weight and cotangent only: the
    # saved statistics are functions of the input (PyTorch's double-backward formulas)
    def run(model):
        x = randn(8, 4, seed=3).requires_grad_()
        out = model(x)
        (gx,) = torch.autograd.grad(out, x, random_cotangents([out], 4)[0], create_graph=True)
        ((gx * randn(8, 4, seed=5)).sum() + out.sum()).backward()
        return [gx.detach(), *(p.grad for p in model.parameters()), *model.buffers()]

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 6), norm(6), torch.nn.Tanh()).double()

    ours, theirs = model(), model()
    assert_all_close(run(compiled(ours)), run(theirs))


def split_by_graph_breaks(x, w1, w2):
    h = torch.tanh(x @ w1).exp()
    torch._dynamo.graph_break()
    h = h * h.sum(0)  # an activation crosses from one compiled graph into the next
    torch._dynamo.graph_break()
    return torch.sigmoid(h @ w2).sum()


def test_gradient_penalty_across_graph_breaks():
    ours = gradient_penalty(compiled(split_by_graph_breaks), _leaves())
    theirs = gradient_penalty(split_by_graph_breaks, _leaves())
    assert_all_close(ours[0] + ours[1], theirs[0] + theirs[1])


def test_second_derivative_through_the_cotangent_and_third_order():
    def derivatives(fn):
        x = randn(6, seed=1).requires_grad_()
        v = randn(6, seed=2).requires_grad_()
        y = fn(x)
        (jvp,) = torch.autograd.grad(y, x, v, create_graph=True)  # J^T v, as a function of v
        (hv,) = torch.autograd.grad((jvp * randn(6, seed=3)).sum(), [x], create_graph=True)
        third = torch.autograd.grad((hv * randn(6, seed=4)).sum(), [x, v])
        return [jvp, hv, *third]

    def fn(x):
        return torch.tanh(x * x.exp()) * x.sum()

    assert_all_close(derivatives(compiled(fn)), derivatives(fn))


def gram_tanh(x):
    return (torch.tanh(x @ x.T) * x.sum()).sum()


def test_hessian_matches_eager():
    x = randn(3, 2, seed=1)
    hessian = torch.autograd.functional.hessian
    torch.testing.assert_close(hessian(compiled(gram_tanh), x), hessian(gram_tanh, x))


@torch.library.custom_op("tape_robustness::cube", mutates_args=())
def cube(x: torch.Tensor) -> torch.Tensor:
    return x**3


cube.register_fake(lambda x: torch.empty_like(x))
cube.register_autograd(
    lambda ctx, g: g * 3 * ctx.saved_tensors[0] ** 2,
    setup_context=lambda ctx, inputs, output: ctx.save_for_backward(inputs[0]),
)


def through_a_rule_less_op(x, w1, w2):
    return (cube(torch.tanh(x @ w1)) @ w2).sum()


def test_double_backward_through_the_generic_fallback():
    # an op no rule covers (a custom op) goes through torch.autograd, to any order
    ours = gradient_penalty(compiled(through_a_rule_less_op), _leaves())
    theirs = gradient_penalty(through_a_rule_less_op, _leaves())
    assert any(e.kind == "fallback" for e in tracker.last_compiled().tape.entries)
    assert_all_close(ours[0] + ours[1], theirs[0] + theirs[1])


def dropout_then_square(x, w):
    return (F.dropout(torch.tanh(x @ w), p=0.5, training=True) ** 2).sum()


def test_double_backward_sees_the_forward_dropout_mask():
    def run(fn):
        torch.manual_seed(7)
        x, w = randn(8, 4, seed=1).requires_grad_(), randn(4, 16, seed=2).requires_grad_()
        out = gradient_penalty(fn, [x, w])
        torch.randn(3)  # the RNG moves on from where the forward left it, as in eager
        return out, torch.randn(3)

    (ours, ours_next), (theirs, theirs_next) = (
        run(compiled(dropout_then_square)),
        run(dropout_then_square),
    )
    assert_all_close(ours[0] + ours[1], theirs[0] + theirs[1])
    torch.testing.assert_close(ours_next, theirs_next)


def test_double_backward_refuses_an_input_changed_after_the_forward():
    x, w1, w2 = _leaves()
    x2 = x * 1
    loss = compiled(tanh_exp_chain)(x2, w1, w2)
    with torch.no_grad():
        x2.add_(1)
    with pytest.raises(RuntimeError, match="modified in place after the forward"):
        torch.autograd.grad(loss, [w1], create_graph=True)


# --- grad modes ---------------------------------------------------------------------------


def two_layer(x, w1, w2):
    h = torch.tanh(x @ w1)
    return h @ w2, h.sum(1), (h > 0).sum()  # the last one is an integer tensor


def _layer_inputs(requires_grad=(True, True, True)):
    shapes = [(4, 3), (3, 5), (5, 2)]
    return [
        randn(*s, seed=i).requires_grad_(r)
        for i, (s, r) in enumerate(zip(shapes, requires_grad, strict=True))
    ]


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_no_grad_and_inference_mode_save_nothing(mode):
    with mode():
        ours = compiled(two_layer)(*_layer_inputs())
        theirs = two_layer(*_layer_inputs())
    assert_all_close(ours, theirs)
    for o, t in zip(ours, theirs, strict=True):
        assert not o.requires_grad and o.grad_fn is None
        assert o.is_inference() == t.is_inference()
    assert tracker.last_compiled().calls["forward"] == 0


def test_compiling_under_saved_tensors_hooks_shows_them_only_real_tensors():
    # offloading hooks read each saved tensor's storage; a fake tensor has none
    seen = []

    def pack(t):
        seen.append(t.untyped_storage().data_ptr())
        return t

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GELU(), torch.nn.Linear(4, 2))
    model = model.to(F64)
    x = randn(5, 3, seed=0)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = compiled(model)(x).square().sum()
    loss.backward()
    assert seen, "the hooks saw nothing the backward keeps"
    expected = [p.grad for p in model.parameters()]
    model.zero_grad()
    model(x).square().sum().backward()
    assert_all_close(expected, [p.grad for p in model.parameters()])


def detached(x, w):
    return (x * (x.detach() * w).tanh()).sum()


def no_grad_region(x, w):
    with torch.no_grad():
        scale = (x * w).exp()  # a constant to the backward, as in eager
    return (x * scale).sum(), scale


def no_grad_region_and_view_update(x, w):
    buffer = w.detach().clone()
    buffer[1:].mul_(2)  # in place on a view: lowered by aot_export_module
    with torch.no_grad():
        scale = (x * buffer).exp()
    return (x * scale * w).sum()


@pytest.mark.parametrize("dynamic", [False, True])  # recorded; make_fx (symbolic sizes)
@pytest.mark.parametrize("fn", [detached, no_grad_region, no_grad_region_and_view_update])
def test_detach_and_no_grad_regions_stop_gradients_as_in_eager(fn, dynamic):
    x, w = randn(5, seed=0), randn(5, seed=1)
    ours = [t.clone().requires_grad_() for t in (x, w)]
    theirs = [t.clone().requires_grad_() for t in (x, w)]
    got = torch.compile(fn, backend="tape", dynamic=dynamic)(*ours)
    expected = fn(*theirs)
    got, expected = (torch.utils._pytree.tree_leaves(o) for o in (got, expected))
    assert_all_close(got, expected)
    assert [o.requires_grad for o in got] == [o.requires_grad for o in expected]
    got[0].backward()
    expected[0].backward()
    assert_all_close([t.grad for t in ours], [t.grad for t in theirs])


def new_leaf_from_detach(x, w):
    y = x.detach().requires_grad_()  # Dynamo breaks the graph here; y is a new leaf
    return x * y * w, y


def output_and_its_detached_view(x, w):
    h = x * w
    return h, h.detach()  # shares h's storage, carries no history


@pytest.mark.parametrize("fn", [new_leaf_from_detach, output_and_its_detached_view])
def test_detached_outputs_carry_no_history(fn):
    x, w = randn(5, seed=0), randn(5, seed=1)
    ours = [t.clone().requires_grad_() for t in (x, w)]
    theirs = [t.clone().requires_grad_() for t in (x, w)]
    (out, extra), (expected_out, expected_extra) = compiled(fn)(*ours), fn(*theirs)
    assert_all_close([out, extra], [expected_out, expected_extra])
    assert (extra.requires_grad, extra.is_leaf) == (
        expected_extra.requires_grad,
        expected_extra.is_leaf,
    )
    out.sum().backward()
    expected_out.sum().backward()
    assert_all_close([t.grad for t in ours], [t.grad for t in theirs])


def overwrites_what_relu_saved(x):
    y = torch.relu(x * 3)
    y.mul_(2).add_(x)  # eager's backward refuses: relu's saved output was overwritten
    return (y**2).sum()


def test_in_place_over_a_saved_value_differentiates_the_functional_program():
    x = randn(4, 4, seed=0)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    compiled(overwrites_what_relu_saved)(ours).backward()
    y = torch.relu(theirs * 3) * 2 + theirs  # the same program without the in-place ops
    (y**2).sum().backward()
    assert_all_close([ours.grad], [theirs.grad])


def sgd_step_inside(x, w):
    loss = (x + w).sum()  # w is not saved: eager lets the update below happen
    with torch.no_grad():
        w -= 0.5 * x
        w.mul_(0.9)
    return loss


def test_in_place_updates_under_no_grad_are_not_recorded():
    x = randn(5, seed=0)
    ours, theirs = randn(5, seed=1).requires_grad_(), randn(5, seed=1).requires_grad_()
    compiled(sgd_step_inside)(x, ours).backward()
    sgd_step_inside(x, theirs).backward()
    assert_all_close([ours, ours.grad], [theirs, theirs.grad])
    assert ours.grad_fn is None and ours.is_leaf


def sin_times(a, w):
    return (a.sin() * w).sum()


def test_functorch_wrapped_inputs_and_transforms_match_eager(monkeypatch):
    """Graphs whose inputs are plain tensors call autograd's C++ `apply` directly; a tensor
    that escaped a finished `torch.func` transform (a dead wrapper) and calls under a live
    transform keep `Function.apply`, which handles them."""
    import dynamo_tape.backend as backend

    graphs = []

    def keep(*args):
        graphs.append(compile_graph(*args))
        return graphs[-1]

    compile_graph = backend.compile_graph
    monkeypatch.setattr(backend, "compile_graph", keep)
    escaped = []
    torch.func.grad(lambda x: escaped.append(x) or x.sum())(randn(3, seed=0))
    assert torch._C._functorch.is_functorch_wrapped_tensor(escaped[0])
    fn = compiled(sin_times)
    for a in (randn(3, seed=1), escaped[0]):
        ours, theirs = randn(3, seed=2).requires_grad_(), randn(3, seed=2).requires_grad_()
        fn(a, ours).backward()
        sin_times(a, theirs).backward()
        assert_all_close([ours.grad], [theirs.grad])
    assert [g.plain_inputs for g in graphs] == [True, False]

    x, w = randn(3, seed=3), randn(3, seed=4)
    assert_all_close([torch.func.grad(fn)(x, w)], [torch.func.grad(sin_times)(x, w)])


@pytest.mark.parametrize("requires_grad", [(False, True, False), (True, False, True)])
def test_only_some_inputs_require_grad(requires_grad):
    def grads(fn):
        inputs = _layer_inputs(requires_grad)
        out, rows, _ = fn(*inputs)
        cts = random_cotangents([out, rows], seed=5)
        ((out * cts[0]).sum() + (rows * cts[1]).sum()).backward()
        return [x.grad for x in inputs]

    assert_all_close(grads(compiled(two_layer)), grads(two_layer))


def test_unused_outputs_and_integer_outputs():
    def grads(fn):
        inputs = _layer_inputs()
        out, rows, positive = fn(*inputs)
        assert not positive.requires_grad and positive.dtype == torch.int64
        # only `rows` gets a cotangent: `out`'s is None inside the backward
        return [positive, *torch.autograd.grad(rows, inputs[:2], random_cotangents([rows], 3)[0])]

    assert_all_close(grads(compiled(two_layer)), grads(two_layer))


def sizes_out(x):
    return x.sin() * x.shape[0], x.shape[0] * 2, x.shape


def test_non_tensor_outputs():
    fn = torch.compile(sizes_out, backend="tape", dynamic=True)
    for n in (3, 5):
        ours, theirs = fn(randn(n, 2, seed=n)), sizes_out(randn(n, 2, seed=n))
        torch.testing.assert_close(ours[0], theirs[0])
        assert ours[1:] == theirs[1:]


# --- dtypes -------------------------------------------------------------------------------


def mixed_network(x, w, b):
    h = torch.softmax(torch.tanh(x @ w + b), dim=-1)
    return (h * x.sum(1, keepdim=True)).mean(0), h.amax()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_dtypes_match_eager(dtype):
    def run(fn):
        inputs = [randn(6, 4, seed=1), randn(4, 4, seed=2), randn(4, seed=3)]
        inputs = [x.to(dtype).requires_grad_() for x in inputs]
        outs = fn(*inputs)
        cts = [c.to(dtype) for c in random_cotangents(outs, 7)]
        return [*outs, *torch.autograd.grad(outs, inputs, cts)]

    # assert_close's default tolerances are the dtype's own
    assert_all_close(run(compiled(mixed_network)), run(mixed_network))


def test_mixed_precision_inputs_give_gradients_in_each_inputs_dtype():
    def run(fn):
        x = randn(3, 4, seed=1).float().requires_grad_()
        w = randn(4, 2, seed=2).requires_grad_()  # float64: the product promotes
        out = torch.tanh(fn(x, w))
        return [out, *torch.autograd.grad(out, [x, w], random_cotangents([out], 4)[0])]

    def promote(x, w):
        return (x.double() @ w) * x.sum()

    assert_all_close(run(compiled(promote)), run(promote))


def test_autocast_bfloat16_region():
    def run(fn):
        inputs = [randn(6, 4, seed=1).float().requires_grad_()]
        inputs += [randn(4, 4, seed=2).float().requires_grad_(), randn(4, seed=3).float()]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outs = fn(*inputs)
        cts = [c.to(o.dtype) for c, o in zip(random_cotangents(outs, 7), outs, strict=True)]
        return [*outs, *torch.autograd.grad(outs, inputs[:2], cts)]

    ours, theirs = run(compiled(mixed_network)), run(mixed_network)
    assert [o.dtype for o in ours] == [t.dtype for t in theirs]
    # autocast's dtype policy per op: compare with bfloat16's tolerance
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1.6e-2)


# --- randomness ---------------------------------------------------------------------------


def dropout_layer(x, w):
    return F.dropout(x @ w, p=0.3, training=True).relu()


def test_dropout_uses_the_forward_mask_and_is_reproducible():
    def run(fn, seed):
        torch.manual_seed(seed)
        x, w = randn(16, 8, seed=1).requires_grad_(), randn(8, 32, seed=2).requires_grad_()
        out = fn(x, w)
        cotangent = random_cotangents([out], 3)[0]
        return [out, *torch.autograd.grad(out, [x, w], cotangent)]

    ours = run(compiled(dropout_layer), seed=0)
    assert_all_close(ours, run(compiled(dropout_layer), seed=0))  # reproducible under a seed
    assert_all_close(ours, run(dropout_layer, seed=0))  # the same mask, forward and backward
    assert not torch.equal(ours[0], run(compiled(dropout_layer), seed=1)[0])


@pytest.mark.parametrize("order", [(1, 0, 2), (2, 0, 1)], ids=["transposed", "permuted"])
def test_dropout_of_a_permuted_tensor_draws_eagers_mask_in_eagers_layout(order):
    """Eager fills `empty_like(x)` in x's memory order (nn.MultiheadAttention's batch-first
    output is such an x); the mask, the output's strides and the gradient are eager's."""

    def fn(x, w):
        return F.dropout((x @ w).permute(order), p=0.3, training=True) * 2

    def run(f):
        torch.manual_seed(0)
        x, w = randn(4, 6, 5, seed=1).requires_grad_(), randn(5, 5, seed=2).requires_grad_()
        out = f(x, w)
        return out, torch.autograd.grad(out, [x, w], random_cotangents([out], 3)[0])

    (ours, grads), (theirs, eager_grads) = run(compiled(fn)), run(fn)
    assert ours.stride() == theirs.stride() and not theirs.is_contiguous()
    assert torch.equal(ours, theirs)
    assert all(map(torch.equal, grads, eager_grads))


# --- no leaks -----------------------------------------------------------------------------


def _live(kind):
    return sum(issubclass(type(o), kind) for o in gc.get_objects())


def test_training_steps_leave_nothing_alive():
    from dynamo_tape.runtime import CompiledGraph

    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    step_model = compiled(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    per_step = []

    def step(i, create_graph):
        x = torch.randn(4, 8)
        out = step_model(x.requires_grad_(create_graph))
        loss = out.square().mean()
        if create_graph:  # a gradient penalty step: the recompute path
            (gx,) = torch.autograd.grad(loss, x, create_graph=True)
            loss = loss + gx.square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        per_step.extend([weakref.ref(x), weakref.ref(out), weakref.ref(loss)])

    for i in range(4):  # compiles both graphs (with and without create_graph)
        step(i, create_graph=i % 2 == 1)
    gc.collect()
    before = _live(torch.Tensor), len(linecache.cache), _live(CompiledGraph)
    gc.disable()  # eager frees each step by reference counting alone; so must we
    try:
        for i in range(200):
            step(i, create_graph=i % 2 == 1)
        assert sum(r() is not None for r in per_step) == 0
    finally:
        gc.enable()
    gc.collect()
    after = _live(torch.Tensor), len(linecache.cache), _live(CompiledGraph)
    assert all(a <= b for a, b in zip(after, before, strict=True))  # earlier tests' garbage may go


def residual_tanh(x):
    return torch.tanh(x) * 2


@pytest.mark.parametrize("pattern", ["mutation recorded by autograd", "x += f(x)"])
def test_in_place_patterns_leave_no_reference_cycle(pattern):
    # both give the input a history through the compiled graph's node, which holds its inputs
    fn = compiled(accumulate_into if pattern.startswith("mutation") else residual_tanh)
    w = randn(3, seed=1).requires_grad_()
    alive = []
    gc.disable()
    try:
        for _ in range(3):
            x = w * 1
            if pattern.startswith("mutation"):
                loss = fn(x, w) + x.sum()
            else:
                x += fn(x)
                loss = x.sum()
            loss.backward()
            alive.append(weakref.ref(x))
            del x, loss
        assert [r() for r in alive] == [None] * 3
    finally:
        gc.enable()


def _growth_over_compiles(backend, count=6):
    def f(x, w):
        return torch.tanh(x @ w).exp().sum()

    from dynamo_tape.runtime import CompiledGraph

    def measure():
        gc.collect()
        return _live(torch.Tensor), len(linecache.cache), _live(CompiledGraph)

    for k in range(count):
        if k == 2:
            start = measure()
        x = torch.randn(k + 2, 3, requires_grad=True)
        torch.compile(f, backend=backend, dynamic=False)(x, torch.randn(3, 4)).backward()
        torch._dynamo.reset()
    end = measure()
    return [b - a for a, b in zip(start, end, strict=True)]


def test_compiling_many_graphs_grows_no_more_than_dynamo_alone():
    ours, dynamo_alone = _growth_over_compiles("tape"), _growth_over_compiles("eager")
    assert ours[0] <= dynamo_alone[0] and ours[1] <= dynamo_alone[1]
    assert ours[2] <= 0  # no CompiledGraph outlives torch._dynamo.reset()


# --- errors -------------------------------------------------------------------------------

BackendCompilerFailed = torch._dynamo.exc.BackendCompilerFailed


def _line_of(fn, offset=1):
    return f"{__file__}:{fn.__code__.co_firstlineno + offset}"


def test_unknown_and_invalid_options_list_the_valid_ones():
    with pytest.raises(
        BackendCompilerFailed, match=r"unknown tape option\(s\) 'bogus'; valid: 'fallback'"
    ):
        compiled(two_layer, bogus=1)(*_layer_inputs())
    torch._dynamo.reset()
    with pytest.raises(
        BackendCompilerFailed, match="'fallback' must be one of .'autograd', 'error'."
    ):
        compiled(two_layer, fallback="never")(*_layer_inputs())


def test_fallback_error_names_the_op_the_entry_and_the_line():
    with pytest.raises(BackendCompilerFailed) as failure:
        compiled(through_a_rule_less_op, fallback="error")(*_leaves())
    message = str(failure.value)
    assert "no tape rule for tape_robustness.cube in tape entry `v" in message
    assert "= cube v" in message and _line_of(through_a_rule_less_op) in message


def scanned(x):  # a higher-order op the tape does not run (cond, map, while_loop it does)
    from torch._higher_order_ops.scan import scan

    return scan(lambda c, x: (c + x, (c * x).sin()), torch.zeros_like(x[0]), x)[1]


def test_lowering_failure_names_the_op_and_the_line():
    with pytest.raises(BackendCompilerFailed) as failure:
        compiled(scanned)(randn(4, 3))
    message = str(failure.value)
    assert "higher_order.scan" in message and _line_of(scanned, offset=3) in message


def gather_rows(x, index):
    return x[index].tanh()


def test_run_time_errors_are_eagers_exception_with_a_note_naming_the_entry():
    x, bad = randn(3, 2), torch.tensor([0, 5])
    with pytest.raises(Exception) as theirs:
        gather_rows(x, bad)
    with pytest.raises(type(theirs.value)) as ours:
        compiled(gather_rows)(x, bad)
    notes = "\n".join(getattr(ours.value, "__notes__", []))
    assert "while running tape entry `" in notes and "= index.Tensor v" in notes
    assert _line_of(gather_rows) in notes


def test_shape_errors_when_the_graph_is_called_directly():
    from dynamo_tape.backend import tape

    def matmul_tanh(x, w):
        return (torch.tanh(x @ w),)  # Dynamo's graphs return tuples

    fn = tape(torch.fx.symbolic_trace(matmul_tanh), [randn(2, 3), randn(3, 4)])
    with pytest.raises(Exception) as theirs:
        matmul_tanh(randn(2, 5), randn(3, 4))
    with pytest.raises(type(theirs.value)) as ours:
        fn(randn(2, 5), randn(3, 4))
    assert any("while running tape entry" in n for n in getattr(ours.value, "__notes__", []))


def two_dropouts(x):
    return F.dropout(x, 0.3, training=True), F.dropout(x * 2, 0.5, training=True)


def test_several_random_ops_draw_in_eagers_order():
    def run(fn):
        torch.manual_seed(2)
        x = randn(64, seed=1).requires_grad_()
        outs = fn(x)
        return [*outs, *torch.autograd.grad(outs, x, random_cotangents(outs, 3))]

    assert_all_close(run(compiled(two_dropouts)), run(two_dropouts))
