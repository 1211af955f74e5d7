"""Probes (dynamo_tape/probes.py): a callable shown every tape entry's input and output values in
the forward and the backward, run through a probed variant of the generated code that exists
only once a probe is active; and the anomaly check built on it, which names the entry where a
NaN or an infinity was born, not where it shows."""

import pytest
import torch
from helpers import Recorder
from torch._dynamo.exc import BackendCompilerFailed

import dynamo_tape
from dynamo_tape import NonFiniteError
from dynamo_tape.tracker import last_compiled

# anomaly mode warns with the forward traceback of the node whose backward raised: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Error detected in:UserWarning")


def _mlp(x, w):
    h = (x @ w).relu()
    return torch.sqrt(h + 1).sum()


def _codes(compiled):
    return compiled.program.code


def test_a_probe_sees_each_entry_of_the_forward_and_backward_with_the_values_it_ran_on():
    probe = Recorder()
    x, w = torch.randn(3, 4), torch.randn(4, 5, requires_grad=True)
    compiled = torch.compile(_mlp, backend="tape", options={"probe": probe})
    loss = compiled(x, w)
    loss.backward()
    w_ref = w.detach().clone().requires_grad_()
    _mlp(x, w_ref).backward()
    torch.testing.assert_close(loss, _mlp(x, w_ref))
    torch.testing.assert_close(w.grad, w_ref.grad)

    graph = last_compiled()
    forward, backward = (graph.program.final(f) for f in ("forward_train", "backward"))
    assert [c[0] for c in probe.calls] == [*forward.entries, *backward.entries]
    assert probe.phases() == ["forward"] * len(forward.entries) + ["backward"] * len(
        backward.entries
    )
    for entry, inputs, outputs, _ in probe.calls:
        assert len(inputs) == len(entry.inputs) and len(outputs) == len(entry.outputs)
        if entry.op is torch.ops.aten.sqrt.default:  # the values are the ones it ran on
            torch.testing.assert_close(outputs[0], inputs[0].sqrt())
    assert probe.calls[-1][2][0].shape == w.shape  # the backward's last entry: w's gradient


def test_without_a_probe_the_plain_code_runs_and_has_no_probe_call():
    x, w = torch.randn(3, 4), torch.randn(4, 5, requires_grad=True)
    torch.compile(_mlp, backend="tape")(x, w).backward()
    codes = _codes(last_compiled())
    for code in codes.values():
        assert "probe(" not in code.source and ", probe)" not in code.source
        assert "probed" not in code.__dict__  # never generated: nothing but the plain code ran


def test_the_probed_code_is_the_plain_code_with_probe_calls_between_its_lines():
    probe = Recorder()
    x, w = torch.randn(3, 4), torch.randn(4, 5, requires_grad=True)
    torch.compile(_mlp, backend="tape", options={"probe": probe})(x, w).backward()
    graph = last_compiled()
    for function, code in _codes(graph).items():
        assert "probe(" not in dynamo_tape.last_code()[function]  # what last_code shows: plain
        probed = code.probed.source.splitlines()
        calls = [line for line in probed if line.strip().startswith("probe(")]
        assert len(calls) == len(graph.program.final(function).entries)
        rest = [line for line in probed if line not in calls]
        plain = code.source.splitlines()
        assert rest[0].replace(", probe):", "):") == plain[0]
        assert rest[1:] == plain[1:]  # the same lines, calling the same globals
        assert dynamo_tape.last_code(probed=True)[function] == code.probed.source


def test_probes_see_dynamic_shapes():
    probe = Recorder()
    compiled = torch.compile(_mlp, backend="tape", dynamic=True, options={"probe": probe})
    for n in (3, 6):
        probe.calls.clear()
        x, w = torch.randn(n, 4), torch.randn(4, 5, requires_grad=True)
        compiled(x, w).backward()
        mm = next(c for c in probe.calls if c[0].op is torch.ops.aten.mm.default)
        assert mm[2][0].shape == (n, 5)
        assert "backward" in probe.phases()
    assert last_compiled().symbols  # one graph, compiled for symbolic sizes


def test_probes_see_the_double_backward_graph():
    probe = Recorder()

    def f(x):
        return (x.sin() * x).sum()

    x = torch.randn(5, requires_grad=True)
    compiled = torch.compile(f, backend="tape", options={"probe": probe})
    (g,) = torch.autograd.grad(compiled(x), x, create_graph=True)
    probe.calls.clear()
    g.sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    (g_ref,) = torch.autograd.grad(f(x_ref), x_ref, create_graph=True)
    g_ref.sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    assert probe.calls and set(probe.phases()) == {"backward"}
    joint = last_compiled().plans[(0,)].recompute.graph
    assert joint is not None and joint.probes.probe is probe


def test_probes_see_a_compiled_optimizer_step():
    probe = Recorder()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    reference = torch.nn.Linear(4, 3)
    reference.load_state_dict(model.state_dict())
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, reference)]
    step = torch.compile(optimizers[0].step, backend="tape", options={"probe": probe})
    x = torch.randn(5, 4)
    for m in (model, reference):
        m(x).pow(2).sum().backward()
    step()
    optimizers[1].step()
    assert probe.calls and set(probe.phases()) == {"forward"}
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("phase", ["forward", "backward"])
def test_an_error_a_probe_raises_is_noted_as_the_probes_not_the_ops(phase):
    def probe(entry, inputs, outputs, seen):
        if seen == phase:
            raise ValueError("the user's probe")

    x, w = torch.randn(3, 4), torch.randn(4, 5, requires_grad=True)
    compiled = torch.compile(_mlp, backend="tape", options={"probe": probe})
    with pytest.raises(ValueError, match="the user's probe") as caught:
        compiled(x, w).backward()
    function = "forward_train" if phase == "forward" else "backward"
    first = last_compiled().program.final(function).entries[0]  # the first entry it saw
    assert caught.value.__notes__ == [
        f"dynamo_tape: while probing tape entry `{first.text()}` ({phase}), from {first.source}"
    ]


def test_a_probe_option_must_be_callable():
    with pytest.raises(BackendCompilerFailed, match="'probe' must be one of"):
        torch.compile(_mlp, backend="tape", options={"probe": "yes"})(
            torch.randn(3, 4), torch.randn(4, 5)
        )


# anomaly: the example, a NaN or infinity named where it is born


def _two_sqrts(x):
    y = torch.sqrt(x - 2)
    y = torch.sqrt(y)
    return y.sum()


@pytest.fixture(params=["set_detect_anomaly", "option"])
def anomaly(request):
    """(options, context) turning the check on either way."""
    if request.param == "option":
        return {"detect_anomaly": True}, torch.autograd.set_detect_anomaly(False)
    return {}, torch.autograd.set_detect_anomaly(True)


def test_a_forward_nan_is_named_at_the_entry_that_made_it(anomaly):
    options, mode = anomaly
    compiled = torch.compile(_two_sqrts, backend="tape", options=options)
    with mode, pytest.raises(NonFiniteError) as caught:
        compiled(torch.ones(3, requires_grad=True))
    error = caught.value
    assert isinstance(error, RuntimeError) and error.phase == "forward"
    assert error.entry.op is torch.ops.aten.sqrt.default
    message = str(error)
    assert "forward of graph" in message and "NaN from inputs holding none" in message
    assert f"`{error.entry.text()}`" in message and "aten.sqrt.default" in message
    assert "y = torch.sqrt(x - 2)" in message and "in _two_sqrts" in message
    assert "min -1 max -1" in message and "nan 3/3" in message


def test_a_backward_infinity_is_named_at_its_entry_and_the_forward_line_it_differentiates(
    anomaly,
):
    # forward: sqrt(0) = 0, finite; backward: the outer sqrt's derivative 1 / (2 sqrt(0)) = inf
    options, mode = anomaly
    compiled = torch.compile(_two_sqrts, backend="tape", options=options)
    x = torch.full((3,), 2.0, requires_grad=True)
    with mode:
        loss = compiled(x)
        assert torch.isfinite(loss)
        with pytest.raises(NonFiniteError) as caught:
            loss.backward()
    error = caught.value
    assert error.phase == "backward" and error.entry.derivative_of is error.forward_entry
    forward = error.forward_entry
    assert forward.op is torch.ops.aten.sqrt.default
    assert forward.code == "y = torch.sqrt(y)"  # the second sqrt: the root, not the symptom
    message = str(error)
    assert "inf from finite inputs" in message and "the derivative of forward entry" in message
    assert f"`{forward.text()}`" in message and "y = torch.sqrt(y)" in message


def _nan_in_backward(x):
    return (torch.sqrt(x) * 0).sum()  # backward: 0 / (2 sqrt(0)) = nan


def test_under_eager_anomaly_mode_our_error_comes_before_autograds_nan_check():
    compiled = torch.compile(_nan_in_backward, backend="tape")
    x = torch.zeros(3, requires_grad=True)
    with torch.autograd.set_detect_anomaly(True):
        loss = compiled(x)
        with pytest.raises(RuntimeError) as caught:
            loss.backward()
    assert type(caught.value) is NonFiniteError, caught.value
    assert "returned nan values" not in str(caught.value)
    assert caught.value.forward_entry.op is torch.ops.aten.sqrt.default
    assert "NaN from inputs holding none" in str(caught.value)


def test_a_nan_from_outside_the_graph_is_named_as_an_input(anomaly):
    options, mode = anomaly

    def f(x):
        return (x * 2 + 1).sum()

    compiled = torch.compile(f, backend="tape", options=options)
    x = torch.tensor([1.0, float("nan")])
    with mode, pytest.raises(NonFiniteError) as caught:
        compiled(x)
    error = caught.value
    assert error.input is not None and error.input in last_compiled().tape.inputs
    assert f"input {error.input.name} (x) of the forward of graph" in str(error)
    assert "is already nan" in str(error)
    assert error.entry.op is torch.ops.aten.mul.Tensor  # where it first reaches


def test_an_intended_infinity_is_not_an_anomaly(anomaly):
    options, mode = anomaly

    def attention(scores, mask):
        return scores.masked_fill(mask, float("-inf")).softmax(-1).sum()

    compiled = torch.compile(attention, backend="tape", options=options)
    scores = torch.randn(3, 3, requires_grad=True)
    mask = torch.ones(3, 3, dtype=torch.bool).triu(1)
    with mode:
        compiled(scores, mask).backward()
    assert torch.isfinite(scores.grad).all()


def test_without_anomaly_mode_nothing_is_checked():
    compiled = torch.compile(_two_sqrts, backend="tape")
    x = torch.ones(3, requires_grad=True)
    loss = compiled(x)
    assert torch.isnan(loss) and torch.isnan(_two_sqrts(x))  # as eager's
    loss.backward()
    for code in _codes(last_compiled()).values():
        assert "probed" not in code.__dict__


# numerics: a float64 shadow in lockstep, through the probe


def test_numerics_ranks_the_cancelling_subtraction_first():
    def f(x):
        y = x + 1e4
        z = y - 1e4
        return (z * 2).sum()

    compiled = torch.compile(f, backend="tape", options={"numerics": "float64"})
    x = torch.randn(16, dtype=torch.float16, requires_grad=True)
    compiled(x).backward()
    ranked = dynamo_tape.last_numerics().ranked()
    first = ranked[0]
    assert first.entry.op is torch.ops.aten.sub.Tensor and first.entry.code == "z = y - 1e4"
    assert first.introduced > 0.1 and first.phase == "forward"
    add = next(e for e in ranked if e.entry.op is torch.ops.aten.add.Tensor)
    assert 0 < add.error < 1e-2  # the rounding the subtraction makes large
    assert "backward" in {e.phase for e in ranked}
    assert "sub.Tensor" in dynamo_tape.last_numerics().text().splitlines()[2]


def test_numerics_in_float64_find_no_error_and_change_nothing_that_runs():
    def f(x):
        return torch.nn.functional.dropout(x.sin(), 0.5).sum()

    x = torch.randn(32, dtype=torch.float64)
    compiled = torch.compile(f, backend="tape", options={"numerics": "float64"})
    torch.manual_seed(0)
    ours = compiled(x)
    torch.manual_seed(0)
    assert torch.equal(ours, f(x))  # random ops are not run again: the same numbers drawn
    assert all(e.error == 0 for e in dynamo_tape.last_numerics().ranked())


def test_without_numerics_there_is_no_shadow():
    torch.compile(_mlp, backend="tape")(torch.randn(3, 4), torch.randn(4, 5))
    assert dynamo_tape.last_numerics() is None
