"""What prints is what runs: the last trace of each function is the code that executes.

The generated code of a training step is run again under a dispatch mode that logs every ATen
call, and so is an interpreter of the last trace, entry by entry: the two logs must be equal,
and so must the values. The lowered forward, interpreted the same way, is not what runs (linear
fusion, BatchNorm updating its statistics in place): so the comparison can fail.
"""

import pytest
import torch

import dynamo_tape
from dynamo_tape import runtime
from dynamo_tape.fastcall import DispatchedOps
from dynamo_tape.ir import Namer, Tape, TapeEntry, TapeError
from dynamo_tape.ops import aten
from dynamo_tape.torch_private import FakeTensorMode, OpOverload, schema
from dynamo_tape.tracker import last_compiled


def _interpret(tape: Tape, args):
    """The tape run entry by entry in Python: each entry's op on its arguments' values."""
    env = dict(zip(tape.inputs, args))  # (a backward's trailing `syms` has no Variable)

    def value(a):
        if isinstance(a, list | tuple):
            return type(a)(value(x) for x in a)
        return env[a] if a in env else a

    for e in tape.entries:
        out = e.op(*value(e.args), **{k: value(a) for k, a in e.kwargs.items()})
        one = isinstance(e.op, OpOverload) and len(schema(e.op).returns) == 1
        several = isinstance(out, tuple | list) and not (one and len(e.outputs) == 1)
        for v, o in zip(e.outputs, out if several else [out]):
            if v is not None:
                env[v] = o
    return [value(o) for o in tape.outputs]


def _logged(fn, *args):
    with torch.no_grad(), DispatchedOps() as log:
        out = fn(*args)
    return log.ops, out


def _call(code, args):  # a backward takes its arguments boxed, in one list (codegen.py)
    return code.fn(args) if code.boxed else code.fn(*args)


def _fresh(args):
    return [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]


def _calls_of_a_step(monkeypatch, model, x):
    """(the program, function name, the code, its arguments) of each generated function that a
    training step and an inference step run."""
    calls = []
    run = runtime.run

    def spy(code, args, probe=None):
        calls.append((code, list(args)))
        return run(code, args, probe)

    monkeypatch.setattr(runtime, "run", spy)
    compiled = torch.compile(model, backend="tape")
    with dynamo_tape.track() as tracked:
        compiled(x).square().sum().backward()
        with torch.no_grad():  # Dynamo compiles the graph again for grad mode off
            compiled(x)
    programs = [g.compiled.program for g in tracked.graphs]
    names = {id(c): (p, f) for p in programs for f, c in p.code.items()}
    return [(*names[id(c)], c, args) for c, args in calls]


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(), torch.nn.Linear(5, 3)
    )


def test_the_last_trace_of_each_function_is_the_code_that_runs(monkeypatch):
    x = torch.randn(4, 6)
    calls = _calls_of_a_step(monkeypatch, _model(), x)
    assert [f for _, f, _, _ in calls] == ["forward_train", "backward", "forward"]
    for program, function, code, args in calls:
        ran, out = _logged(_call, code, _fresh(args))
        printed, interpreted = _logged(_interpret, program.final(function), _fresh(args))
        assert ran == printed, function
        flat = [o for o in torch.utils._pytree.tree_leaves(out) if isinstance(o, torch.Tensor)]
        assert len(flat) == len([o for o in interpreted if isinstance(o, torch.Tensor)])
        for a, b in zip(flat, [o for o in interpreted if isinstance(o, torch.Tensor)]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_lowered_forward_is_not_what_runs_so_the_comparison_can_fail(monkeypatch):
    x = torch.randn(4, 6)
    calls = _calls_of_a_step(monkeypatch, _model(), x)
    (program, function, code, args), *_ = calls
    lowered = program.traces[0]
    assert lowered.step == "lowered"
    ran, _ = _logged(_call, code, _fresh(args))
    printed, _ = _logged(_interpret, lowered.tape, _fresh(args))
    assert ran != printed


def test_last_traces_show_each_pass_and_the_last_is_what_the_batchnorm_model_runs():
    model = _model()
    torch.compile(model, backend="tape")(torch.randn(4, 6)).sum().backward()
    traces = dynamo_tape.last_traces()
    steps = [(t.function, t.step) for t in traces]
    assert steps[:2] == [("forward", "lowered"), ("backward", "grad")]
    for step in ("re-inplaced", "returns what the backward reads", "linear fused"):
        assert ("forward_train", step) in steps
    lowered = {e.op for e in traces[0].tape.entries}
    final = {e.op for e in last_compiled().program.final("forward_train").entries}
    assert {aten.addmm.default, aten._native_batch_norm_legit_functional.default} <= lowered
    assert {aten.linear.default, aten._native_batch_norm_legit.default} <= final
    assert not final & {aten.addmm.default, aten._native_batch_norm_legit_functional.default}
    # last_tapes prints the last trace of each function generated, last_code their source
    text = dynamo_tape.last_tapes()
    assert text.startswith("forward_train(") and "= linear " in text
    assert "_native_batch_norm_legit_functional" not in text
    assert dynamo_tape.last_code().keys() == {"forward_train", "backward"}
    source = dynamo_tape.last_code()["forward_train"]
    assert "_native_batch_norm_legit" in source and "functional" not in source


def _tape_with(entries_of):
    fake = FakeTensorMode()
    namer = Namer()
    x = namer(fake.from_tensor(torch.empty(3)))
    y, z = namer(x.meta), namer(x.meta)
    entries = [TapeEntry(op, args, {}, outs) for op, args, outs in entries_of(x, y, z)]
    return Tape("t", [x], entries, [entries[-1].outputs[0]])


@pytest.mark.parametrize(
    "entries_of, says",
    [
        (lambda x, y, z: [(aten.neg.default, [z], [y])], "reads v2 unbound"),
        (lambda x, y, z: [(aten.neg.default, [x], [x])], "v0 bound twice"),
        (lambda x, y, z: [(aten.neg.default, [x, x], [y])], "2 positional arguments"),
        (lambda x, y, z: [(aten.neg.default, [x], [y, z])], "2 outputs"),
    ],
)
def test_tape_check_names_what_is_wrong(entries_of, says):
    with pytest.raises(TapeError, match=says):
        _tape_with(entries_of).check()


def test_tape_check_accepts_a_well_formed_tape():
    tape = _tape_with(
        lambda x, y, z: [(aten.neg.default, [x], [y]), (aten.mul.Tensor, [x, y], [z])]
    )
    tape.check()
