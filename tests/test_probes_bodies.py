"""Probes (dynamo_tape/probes.py) inside the bodies of higher-order ops: a checkpointed region,
torch.cond's branches, a custom autograd.Function's forward, map, while_loop and
invoke_subgraph run their bodies' probed code with the probe of the code calling them, so a
probe sees each body entry that runs, in the phase it runs in, with the entry's own line; the
anomaly check names the line inside the body, the numerics shadow ranks its entries, and the
profile times them, each body's function apart."""

import pytest
import torch
from helpers import Recorder
from torch.utils.checkpoint import checkpoint

import dynamo_tape
from dynamo_tape import NonFiniteError
from dynamo_tape.checkpoint import Checkpointed
from dynamo_tape.profile import range_name
from dynamo_tape.tracker import last_compiled

# anomaly mode warns with the forward traceback of the node whose backward raised: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Error detected in:UserWarning")


def _compiled(fn, **options):
    return torch.compile(fn, backend="tape", options={"fallback": "error", **options})


def _assert_grads_equal(fn, compiled, args):
    """`compiled`'s output and gradients against `fn`'s, eager."""
    ours, eager = compiled(*args), fn(*args)
    torch.testing.assert_close(ours, eager)
    wanted = [a for a in args if a.requires_grad]
    for a, b in zip(torch.autograd.grad(ours, wanted), torch.autograd.grad(eager, wanted)):
        torch.testing.assert_close(a, b)


def _args(*shapes):
    torch.manual_seed(0)
    return [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]


# ---- a probe sees each body's entries ------------------------------------------------------


def _block(x, w):
    h = torch.tanh(x @ w)
    return torch.sin(h) * 2


def _checkpointed(x, w):
    return checkpoint(_block, x, w, use_reentrant=False).sum()


def test_a_probe_sees_a_checkpointed_regions_entries_forward_and_backward():
    probe = Recorder()
    compiled = _compiled(_checkpointed, probe=probe)
    _assert_grads_equal(_checkpointed, compiled, _args((3, 4), (4, 4)))
    forward, ops = probe.lines("forward"), probe.ops("forward")
    for line in ("h = torch.tanh(x @ w)", "return torch.sin(h) * 2"):
        assert line in forward and line in probe.lines("backward")  # the backward recomputes
    region = next(i for i, op in enumerate(ops) if isinstance(op, Checkpointed))
    assert ops.index(torch.ops.aten.tanh.default) < region  # shown as they run: inside it
    for entry, inputs, outputs, _ in probe.calls:
        if entry.op is torch.ops.aten.tanh.default:  # the values it ran on
            torch.testing.assert_close(outputs[0], inputs[0].tanh())


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4, dtype=torch.float64)

    def forward(self, x):
        return torch.tanh(self.fc(x))


class _CheckpointedBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.block = _Block()

    def forward(self, x):
        return checkpoint(self.block, x, use_reentrant=False).sum()


def test_a_probe_is_shown_the_module_of_each_entry_in_a_checkpointed_module():
    probe = Recorder()
    model = _CheckpointedBlock()
    compiled = _compiled(model, probe=probe)
    x = _args((2, 4))[0]
    params = list(model.parameters())
    ours, eager = (torch.autograd.grad(f(x), [x, *params]) for f in (compiled, model))
    for a, b in zip(ours, eager):
        torch.testing.assert_close(a, b)
    modules = {(c[3], c[0].module) for c in probe.calls}
    assert {("forward", "block.fc"), ("forward", "block")} <= modules


def test_without_a_probe_the_bodies_run_their_plain_code():
    _compiled(_checkpointed)(*_args((3, 4), (4, 4))).backward()
    (region,) = [e.op for e in last_compiled().tape.entries if isinstance(e.op, Checkpointed)]
    assert region._code is not None and not region._code._variants  # no probed code made


def test_the_probed_code_calls_a_body_op_under_the_plain_codes_name():
    _compiled(_checkpointed, probe=Recorder())(*_args((3, 4), (4, 4)))
    plain, probed = dynamo_tape.last_code()["forward_train"], dynamo_tape.last_code(True)
    (line,) = [line for line in plain.splitlines() if "= checkpoint" in line]
    assert line in probed["forward_train"].splitlines()


def _true(x, w):
    return torch.sin(x * w)


def _false(x, w):
    return torch.cos(x - w) * 2


def _with_cond(x, w):
    return torch.cond(x.sum() > 0, _true, _false, (x, w)).sum()


@pytest.mark.parametrize("sign", [1, -1], ids=["true_branch", "false_branch"])
def test_a_probe_sees_the_branch_cond_takes_forward_and_backward(sign):
    probe = Recorder()
    x, w = _args(3, 3)
    x = (x.detach().abs() * sign).requires_grad_()
    compiled = _compiled(_with_cond, probe=probe)
    _assert_grads_equal(_with_cond, compiled, [x, w])
    taken, other = ("return torch.sin(x * w)", "return torch.cos(x - w) * 2")[::sign]
    for phase in ("forward", "backward"):  # the backward runs the branch's joint tape
        assert taken in probe.lines(phase) and other not in probe.lines(phase)


def _with_if(x, w):  # the same program, branching in Python: eager's torch.cond has no
    # double backward
    return (_true(x, w) if x.sum() > 0 else _false(x, w)).sum()


def test_a_double_backward_shows_the_branch_in_the_backward():
    probe = Recorder()
    x, w = _args(3, 3)
    compiled = _compiled(_with_cond, probe=probe)
    firsts = [torch.autograd.grad(f(x, w), (x, w), create_graph=True) for f in (compiled, _with_if)]
    probe.calls.clear()
    second = [torch.autograd.grad(sum(g.sum() for g in gs), (x, w)) for gs in firsts]
    for a, b in zip(*second):
        torch.testing.assert_close(a, b)
    # the recompute runs the forward's cond, in the backward: its branch is shown there
    assert set(probe.phases()) == {"backward"}
    taken = "return torch.sin(x * w)" if x.sum() > 0 else "return torch.cos(x - w) * 2"
    assert probe.lines("backward").count(taken) >= 2  # the branch, and its joint tape


class _Scaled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x) * 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.cos(x) * 3


def _with_function(x):
    return _Scaled.apply(x * 2).sum()


def test_a_probe_sees_a_custom_functions_forward_and_its_backward():
    probe = Recorder()
    compiled = _compiled(_with_function, probe=probe)
    _assert_grads_equal(_with_function, compiled, _args(5))
    assert "return torch.sin(x) * 3" in probe.lines("forward")
    assert "return g * torch.cos(x) * 3" in probe.lines("backward")


def _mapped_body(x, w):
    return torch.tanh(x * w) * x


def _with_map(xs, w):
    from torch._higher_order_ops.map import map as map_

    return map_(_mapped_body, xs, w).sum()


def test_a_probe_sees_maps_body_on_each_slice():
    probe = Recorder()
    compiled = _compiled(_with_map, probe=probe)
    _assert_grads_equal(_with_map, compiled, _args((4, 3), 3))
    tanh = torch.ops.aten.tanh.default
    assert probe.ops("forward").count(tanh) == 4
    assert probe.ops("backward").count(tanh) == 4  # the joint tape recomputes it per slice


def _while_loop(*args):
    from torch._higher_order_ops.while_loop import while_loop

    return while_loop(*args)


def _steps(x, w):
    def body(i, x):
        return i + 1, torch.sin(x * w)

    return _while_loop(lambda i, x: i < 3, body, (torch.zeros((), dtype=torch.int64), x))[1]


def _python_steps(x, w):  # the same loop in Python: the reference
    for _ in range(3):
        x = torch.sin(x * w)
    return x


def test_a_probe_sees_while_loops_cond_and_body_on_each_iteration():
    probe = Recorder()
    x, w = _args(5, 5)
    compiled = _compiled(lambda x, w: _steps(x, w).sum(), probe=probe)
    _assert_grads_equal(lambda x, w: _python_steps(x, w).sum(), compiled, [x, w])
    aten = torch.ops.aten
    sin, cos, lt = aten.sin.default, aten.cos.default, aten.lt.Scalar
    forward, backward = probe.ops("forward"), probe.ops("backward")
    assert forward.count(sin) == 3 and forward.count(lt) == 4 and cos not in forward
    # the backward runs the loop again, then the body's joint tape (d sin = cos) on each
    # iteration
    assert backward.count(lt) == 4 and backward.count(sin) == 3 and backward.count(cos) == 3
    assert "return i + 1, torch.sin(x * w)" in probe.lines("backward")


def test_a_probe_sees_each_call_of_an_invoke_subgraph_region():
    invoke_subgraph = pytest.importorskip("torch._higher_order_ops.invoke_subgraph")
    if not hasattr(invoke_subgraph, "mark_compile_region"):
        pytest.skip(f"torch {torch.__version__} has no mark_compile_region")
    block = invoke_subgraph.mark_compile_region(lambda x, w: torch.tanh(x @ w) * x)

    def two_blocks(x, w1, w2):
        return block(block(x, w1), w2).sum()

    probe = Recorder()
    compiled = _compiled(two_blocks, probe=probe)
    _assert_grads_equal(two_blocks, compiled, _args((4, 4), (4, 4), (4, 4)))
    tanh = torch.ops.aten.tanh.default
    assert probe.ops("forward").count(tanh) == 2
    assert probe.ops("backward").count(tanh) == 2  # each call's joint tape


# ---- the anomaly check names the line inside the body ----------------------------------------


def _nan_block(x):
    y = torch.sqrt(x - 2)
    return y * 2


def _checkpointed_nan(x):
    return checkpoint(_nan_block, x, use_reentrant=False).sum()


def _nan_branch(x):
    return torch.sqrt(x - 2) * 2


def _cond_nan(x):
    return torch.cond(x.sum() > 0, _nan_branch, lambda x: x.cos(), (x,)).sum()


_SQRT = {_checkpointed_nan: "y = torch.sqrt(x - 2)", _cond_nan: "return torch.sqrt(x - 2) * 2"}
_BODY = {_checkpointed_nan: "in _nan_block", _cond_nan: "in _nan_branch"}


@pytest.mark.parametrize("fn", [_checkpointed_nan, _cond_nan], ids=["checkpoint", "cond"])
def test_a_forward_nan_inside_a_body_is_named_at_its_line(fn):
    compiled = _compiled(fn, detect_anomaly=True)
    with pytest.raises(NonFiniteError) as caught:
        compiled(torch.ones(3, requires_grad=True))
    error = caught.value
    assert error.phase == "forward" and error.entry.op is torch.ops.aten.sqrt.default
    assert error.entry.code == _SQRT[fn]
    assert _SQRT[fn] in str(error) and _BODY[fn] in str(error)
    assert not any("while probing" in note for note in getattr(error, "__notes__", []))


@pytest.mark.parametrize("fn", [_checkpointed_nan, _cond_nan], ids=["checkpoint", "cond"])
def test_a_backward_infinity_inside_a_body_names_the_forward_line_it_differentiates(fn):
    # forward: sqrt(0) = 0, finite; backward: its derivative 1 / (2 sqrt(0)) = inf
    compiled = _compiled(fn)
    x = torch.full((3,), 2.0, requires_grad=True)
    with torch.autograd.set_detect_anomaly(True):
        loss = compiled(x)
        assert torch.isfinite(loss)
        with pytest.raises(NonFiniteError) as caught:
            loss.backward()
    error = caught.value
    assert error.phase == "backward" and error.forward_entry is not None
    assert error.forward_entry.op is torch.ops.aten.sqrt.default
    assert error.forward_entry.code == _SQRT[fn]
    assert "the derivative of forward entry" in str(error) and _SQRT[fn] in str(error)


# ---- numerics and the profile -----------------------------------------------------------------


def _cancelling(x):
    y = x + 1e4
    z = y - 1e4
    return z * z  # the backward reads z: the recompute runs the subtraction again


def test_numerics_ranks_a_cancellation_inside_a_checkpointed_region():
    def f(x):
        return checkpoint(_cancelling, x, use_reentrant=False).sum()

    compiled = _compiled(f, numerics="float64")
    x = torch.randn(16, dtype=torch.float16, requires_grad=True)
    compiled(x).backward()
    ranked = dynamo_tape.last_numerics().ranked()
    first = ranked[0]
    assert first.entry.op is torch.ops.aten.sub.Tensor and first.entry.code == "z = y - 1e4"
    assert first.introduced > 0.1
    subs = [e.phase for e in ranked if e.entry.code == "z = y - 1e4"]
    assert sorted(subs) == ["backward", "forward"]  # the region, then its recompute


def test_the_profile_times_a_bodys_entries_and_its_function_apart():
    compiled = _compiled(_checkpointed, profile=True)
    args = _args((256, 256), (256, 256))  # the region's matmul takes most of the time
    for _ in range(2):
        compiled(*args).backward()
    data = dynamo_tape.last_profile().as_dict()
    functions = {f["function"]: f for f in data["functions"]}
    assert {name: (f["phase"], f["calls"]) for name, f in functions.items()} == {
        "checkpoint": ("forward", 2),
        "forward_train": ("forward", 2),
        "backward": ("backward", 2),
    }
    # the region's time is its function's, not the calling function's as well
    assert functions["forward_train"]["seconds"] < functions["checkpoint"]["seconds"]
    lines = {(r["phase"], r["line"].split(" in ")[-1]) for r in data["by_line"]}
    assert ("forward", "_block") in lines and ("backward", "_block") in lines
    for totals in data["totals"].values():
        assert 0 < totals["entries_seconds"] <= totals["seconds"] <= totals["graph_seconds"]


def test_under_torch_profiler_a_bodys_entries_are_ranges_too():
    compiled = _compiled(_checkpointed)
    args = _args((3, 4), (4, 4))
    compiled(*args).backward()
    with torch.profiler.profile() as prof:
        compiled(*args).backward()
    names = {e.name for e in prof.events()}
    (region,) = [e.op for e in last_compiled().tape.entries if isinstance(e.op, Checkpointed)]
    assert all(range_name(entry) in names for entry in region.body.entries)


# ---- an error a probe raises is noted as the probe's ------------------------------------------


def test_an_error_a_probe_raises_inside_a_body_is_noted_as_the_probes():
    def probe(entry, inputs, outputs, phase):
        if entry.op is torch.ops.aten.tanh.default:
            raise ValueError("the user's probe")

    compiled = _compiled(_checkpointed, probe=probe)
    with pytest.raises(ValueError, match="the user's probe") as caught:
        compiled(*_args((3, 4), (4, 4)))
    graph = last_compiled()
    (region,) = [e for e in graph.tape.entries if isinstance(e.op, Checkpointed)]
    (tanh,) = [e for e in region.op.body.entries if e.op is torch.ops.aten.tanh.default]
    assert caught.value.__notes__ == [
        f"dynamo_tape: while probing tape entry `{tanh.text()}` (forward), from {tanh.source}",
        f"dynamo_tape: while running tape entry `{region.text()}`, from {region.source}",
    ]
