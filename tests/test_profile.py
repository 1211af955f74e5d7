"""The profile (dynamo_tape/profile.py, `options={"profile": True}`): every entry of the forward
and the backward timed between consecutive probe calls, the probes' own time left out, summed
by op, module and line, with the tape's and the runtime's overhead; torch.profiler ranges per
entry; and the tracker's report sections for the profile and the numerics probe."""

import statistics
import time

import pytest
import torch

import dynamo_tape
from dynamo_tape import html_report
from dynamo_tape.profile import range_name
from dynamo_tape.tools.examples.models import GPT, gpt_batch
from dynamo_tape.tracker import last_compiled, track


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def _steps(f, x, n=3):
    for _ in range(n):
        f(x).sum().backward()


def test_the_profile_times_each_entry_of_the_forward_and_backward():
    model = _mlp()
    f = torch.compile(model, backend="tape", options={"profile": True})
    _steps(f, torch.randn(4, 8))
    profile = dynamo_tape.last_profile()
    compiled = last_compiled()
    forward = compiled.program.final("forward_train").entries
    backward = compiled.program.final("backward").entries
    assert set(profile.entries) == {*forward, *backward}
    assert all(calls == 3 and seconds > 0 for _, seconds, calls in profile.entries.values())
    data = profile.as_dict()
    assert {f["function"]: (f["phase"], f["calls"]) for f in data["functions"]} == {
        "forward_train": ("forward", 3),
        "backward": ("backward", 3),
    }
    for phase, totals in data["totals"].items():
        assert totals["calls"] == 3
        # entries and the tape's overhead make up the functions' time; the graph calls add
        # the runtime's Python and autograd's Function around them
        assert 0 < totals["entries_seconds"] <= totals["seconds"] <= totals["graph_seconds"]
        assert totals["overhead_seconds"] == pytest.approx(
            totals["seconds"] - totals["entries_seconds"]
        )
        for by in ("by_op", "by_module", "by_line"):
            rows = [r for r in data[by] if r["phase"] == phase]
            assert sum(r["seconds"] for r in rows) == pytest.approx(totals["entries_seconds"])
    ops = {(r["phase"], r["op"]) for r in data["by_op"]}
    assert {("forward", "linear"), ("forward", "relu"), ("backward", "mm")} <= ops
    modules = {r["module"] for r in data["by_module"]}
    assert {"0", "1", "2"} <= modules
    text = profile.text()
    assert text.startswith("# profile of graph") and "tape overhead" in text
    profile.clear()
    assert not profile.entries and not profile.functions


def test_the_probes_time_is_left_out_of_the_entries():
    def slow(entry, inputs, outputs, phase):
        time.sleep(0.002)

    f = torch.compile(_mlp(), backend="tape", options={"profile": True, "probe": slow})
    _steps(f, torch.randn(4, 8), n=2)
    profile = dynamo_tape.last_profile()
    profile.clear()
    _steps(f, torch.randn(4, 8), n=1)
    data = profile.as_dict()
    probes = sum(f["probes_seconds"] for f in data["functions"])
    n = len(profile.entries)
    assert probes >= 0.002 * n
    timed = sum(t["graph_seconds"] for t in data["totals"].values())
    assert timed < 0.25 * probes  # each 2 ms sleep left out


def test_without_the_option_there_is_no_profile_and_the_plain_code_runs():
    f = torch.compile(_mlp(), backend="tape")
    _steps(f, torch.randn(4, 8), n=1)
    assert dynamo_tape.last_profile() is None
    assert last_compiled().probes.now() is None


def test_under_torch_profiler_each_entry_is_a_range_named_by_its_op_and_module():
    f = torch.compile(_mlp(), backend="tape")  # no option: torch.profiler alone turns them on
    x = torch.randn(4, 8)
    _steps(f, x, n=1)
    with torch.profiler.profile() as prof:
        f(x).sum().backward()
    names = {e.name for e in prof.events()}
    compiled = last_compiled()
    for function in ("forward_train", "backward"):
        for entry in compiled.program.final(function).entries:
            assert range_name(entry) in names
    assert any(n.startswith("linear ") and n.endswith(" [0]") for n in names)
    assert any(n.startswith("relu ") and n.endswith(" [1]") for n in names)
    assert compiled.probes.now() is None  # the profiler is off again: the plain code


def test_ranges_and_the_profile_together():
    f = torch.compile(_mlp(), backend="tape", options={"profile": True})
    x = torch.randn(4, 8)
    _steps(f, x, n=1)
    with torch.profiler.profile() as prof:
        f(x).sum().backward()
    assert any(e.name.startswith("relu ") for e in prof.events())
    assert dynamo_tape.last_profile().functions["forward_train"][1] == 2


def test_the_profile_option_must_be_a_bool():
    with pytest.raises(Exception, match="profile"):
        torch.compile(_mlp(), backend="tape", options={"profile": 1})(torch.randn(2, 8))


def test_a_profiled_gpt2_step_adds_up_to_the_measured_step_time():
    """A training step timed around `profile_step()` (less the probes' own time) is the step's
    time within 10%, and its parts, the graph calls (entries, tape overhead, runtime) and the
    time outside them, add up to it. The graph calls alone are the profiles' graph calls. At
    batch 4 the time outside the graphs (Dynamo's guards, autograd's engine) is a large part."""
    torch.manual_seed(0)
    model = GPT()
    f = torch.compile(model, backend="tape", options={"profile": True})
    tokens, targets = gpt_batch(model, torch.Generator().manual_seed(0), torch.float32, 4)
    for _ in range(3):
        f(tokens, targets).backward()
    profile = dynamo_tape.last_profile()
    fractions = []
    for _ in range(9):
        model.zero_grad(set_to_none=True)  # gradients accumulate in autograd, outside the tape
        profile.clear()
        start = time.perf_counter()
        with dynamo_tape.profile_step() as step:
            f(tokens, targets).backward()
        measured = time.perf_counter() - start - step.probes_seconds
        data = step.as_dict()
        parts = data["parts"]
        assert [(p["part"], p.get("phase", p.get("where"))) for p in parts] == [
            ("outside", "before"),
            ("graph", "forward"),
            ("outside", "between"),
            ("graph", "backward"),
            ("outside", "after"),
        ]
        assert all(p["seconds"] > 0 for p in parts)
        assert sum(p["seconds"] for p in parts) == pytest.approx(data["seconds"])
        for p in parts[1::2]:
            assert p["graph"] == "0/0 forward"
            assert p["entries_seconds"] + p["overhead_seconds"] + p["runtime_seconds"] == (
                pytest.approx(p["seconds"])
            )
        totals = profile.as_dict()["totals"]
        for p in parts[1::2]:
            assert p["seconds"] == pytest.approx(totals[p["phase"]]["graph_seconds"])
            assert p["entries_seconds"] == pytest.approx(totals[p["phase"]]["entries_seconds"])
        fractions.append(data["seconds"] / measured)
    assert 0.9 <= statistics.median(fractions) <= 1.0, fractions
    text = step.text()
    assert text.startswith("# step: ") and "outside: before the first graph call" in text


def test_a_step_without_a_profiled_graph_is_all_outside():
    f = torch.compile(_mlp(), backend="tape")
    x = torch.randn(4, 8)
    _steps(f, x, n=1)
    with dynamo_tape.profile_step() as step:
        f(x).sum().backward()
    [part] = step.parts()
    assert part["part"] == "outside" and part["where"] == "no graph call"
    assert part["seconds"] == pytest.approx(step.seconds)


def test_a_double_backward_s_recompute_is_part_of_the_backward_call():
    f = torch.compile(_mlp(), backend="tape", options={"profile": True})
    x = torch.randn(4, 8, requires_grad=True)
    for _ in range(2):
        with dynamo_tape.profile_step() as step:
            (g,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
            g.sum().backward()
    phases = [p.get("phase") for p in step.parts() if p["part"] == "graph"]
    assert phases == ["forward", "backward", "backward"]  # the double backward: the last
    assert sum(p["seconds"] for p in step.parts()) == pytest.approx(step.seconds)


def test_the_tracker_reports_the_profile_and_the_numerics():
    def cancel(x):
        return ((x + 1e4) - 1e4).sum()

    with track() as tracked:
        f = torch.compile(_mlp(), backend="tape", options={"profile": True})
        _steps(f, torch.randn(4, 8), n=2)
        g = torch.compile(cancel, backend="tape", options={"numerics": "float64"})
        g(torch.rand(8, dtype=torch.float16))
        with dynamo_tape.profile_step():
            _steps(f, torch.randn(4, 8), n=1)
    data = tracked.as_dict()
    [profile] = data["profiles"]
    assert profile["compile_id"] == "0/0" and profile["totals"]["backward"]["calls"] == 3
    [numerics] = data["numerics"]
    assert numerics["function"] == "cancel"
    first = numerics["entries"][0]
    assert first["op"] == "sub.Tensor" and first["introduced"] > 0.1
    assert "test_profile.py" in first["line"] and first["phase"] == "forward"
    [step] = data["steps"]
    assert [p["part"] for p in step["parts"]] == ["outside", "graph"] * 2 + ["outside"]
    untimed = tracked.as_dict(timings=False)  # timings differ run to run
    assert "profiles" not in untimed and "steps" not in untimed
    report = tracked.report()
    numerics_section = report[report.index("## Numerics") : report.index("## Profile")]
    assert "`sub.Tensor`" in numerics_section.splitlines()[6]  # the first row
    profile_section = report[report.index("## Profile") : report.index("## Steps")]
    steps_section = report[report.index("## Steps") : report.index("## Tapes")]
    assert "### Step 1:" in steps_section and "outside: after the last graph call" in steps_section
    for heading in ("By op:", "By module:", "By line:", "tape overhead ms"):
        assert heading in profile_section
    assert "| forward  | linear" in profile_section
    page = html_report.page(data, "report")  # keys it has no section for, shown as they are
    assert 'id="extra-profiles"' in page and 'id="extra-numerics"' in page
    assert 'id="extra-steps"' in page
    assert "sub.Tensor" in page


def test_without_probes_the_report_has_neither_section():
    with track() as tracked:
        f = torch.compile(_mlp(), backend="tape")
        _steps(f, torch.randn(4, 8), n=1)
    data = tracked.as_dict()
    assert "profiles" not in data and "numerics" not in data
    report = tracked.report()
    assert "## Profile" not in report and "## Numerics" not in report
