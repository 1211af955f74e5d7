"""The pytest plugin, on small suites run in a subprocess: `--tape-report=DIR`, the `tape`
marker's budgets, `--tape-baseline=FILE` written then checked, Dynamo reset before each recorded
test; the `tape_counter` fixture, and no torch import when no option or marker is used."""

import json
import subprocess
import sys

import pytest
import torch

SUITE = """\
import torch


def with_print(x):
    y = x * 2
    print("break here")
    return y + 1


def test_breaks_once():
    f = torch.compile(with_print, backend="tape")
    f(torch.randn(3))
    f(torch.randn(3))


def test_compiles_nothing():
    assert True


def test_uses_the_fixture(tape_counter):
    torch.compile(lambda x: x.sin() + 1, backend=tape_counter)(torch.randn(3))
    assert tape_counter.graph_count == 1 and tape_counter.graph_break_count == 0
"""


def run_pytest(folder, *options):
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300)


def test_tape_report_has_a_row_per_test(tmp_path):
    (tmp_path / "test_suite.py").write_text(SUITE)
    done = run_pytest(tmp_path, "--tape-report=out", "test_suite.py")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((tmp_path / "out" / "pytest.json").read_text())
    rows = {row["test"].split("::")[-1]: row for row in data["tests"]}
    assert rows.keys() == {"test_breaks_once", "test_compiles_nothing", "test_uses_the_fixture"}
    assert all(row["outcome"] == "passed" for row in rows.values())
    counts = {name: (r["graphs"], r["graph_break_sites"]) for name, r in rows.items()}
    assert counts == {
        "test_breaks_once": (2, 1),
        "test_compiles_nothing": (0, 0),
        "test_uses_the_fixture": (1, 0),
    }
    (site,) = data["breaks"]
    assert (site["filename"], site["lineno"]) == (str(tmp_path / "test_suite.py"), 6)
    text = (tmp_path / "out" / "pytest.md").read_text()
    assert "\n## Tests\n" in text and "test_suite.py::test_breaks_once" in text


def test_without_the_option_nothing_is_written_or_imported(tmp_path):
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\ndef test_plain():\n    assert 'torch' not in sys.modules\n"
    )
    done = run_pytest(tmp_path, "test_plain.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".md", ".json")]


@pytest.mark.parametrize("run", ["first", "second"])
def test_tape_counter_fixture_is_fresh_per_test(tape_counter, run):
    assert tape_counter.frame_count == tape_counter.graph_count == 0
    torch.compile(lambda x: x * 3, backend=tape_counter)(torch.randn(2))
    assert tape_counter.frame_count == 1


MARKED = """\
import pytest
import torch


def with_print(x):
    y = x * 2
    print("break here")
    return y + 1


def plus_one(x):
    return x + 1


@torch.library.custom_op("plugin_suite::opaque_sin", mutates_args=())
def opaque_sin(x: torch.Tensor) -> torch.Tensor:
    return x.sin()


opaque_sin.register_fake(torch.empty_like)
opaque_sin.register_autograd(
    lambda ctx, g: g * ctx.x.cos(),
    setup_context=lambda ctx, inputs, output: setattr(ctx, "x", inputs[0]),
)


@pytest.mark.tape(max_graph_breaks=0, max_recompiles=0, fallback_ops=0)
def test_clean():
    torch.compile(plus_one, backend="tape")(torch.randn(3))


@pytest.mark.tape(max_graph_breaks=0)
def test_breaks():
    torch.compile(with_print, backend="tape")(torch.randn(3))


@pytest.mark.tape(max_graph_breaks=1)
def test_breaks_within_budget():
    torch.compile(with_print, backend="tape")(torch.randn(3))


@pytest.mark.tape(max_recompiles=0)
def test_recompiles():
    f = torch.compile(plus_one, backend="tape", dynamic=False)
    f(torch.randn(3))
    f(torch.randn(4))


@pytest.mark.tape(fallback_ops=0)
def test_fallback():
    torch.compile(lambda x: opaque_sin(x) * 2, backend="tape")(torch.randn(3, requires_grad=True))


def test_unmarked_is_not_recorded():
    torch.compile(with_print, backend="tape")(torch.randn(3))
"""


def test_marker_passes_tests_within_budget_and_fails_the_others_with_the_excerpt(tmp_path):
    (tmp_path / "test_marked.py").write_text(MARKED)
    done = run_pytest(tmp_path, "--strict-markers", "-p", "no:logging", "test_marked.py")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "3 failed, 3 passed" in out
    failed = {line.split()[1].split("::")[1] for line in out.splitlines() if line[:7] == "FAILED "}
    assert failed == {"test_breaks", "test_recompiles", "test_fallback"}
    assert "dynamo-tape: graph-break sites 1 > max_graph_breaks=0\ngraph-break sites:\n" in out
    assert "  test_marked.py:7 in `with_print` (1 graph ended there): " in out
    assert "print" in out.split("test_marked.py:7 in `with_print`")[1].splitlines()[0]
    assert "dynamo-tape: recompiles 1 > max_recompiles=0\nrecompiles:\n  0/1 `plus_one`: " in out
    assert "dynamo-tape: fallback ops 1 > fallback_ops=0\nfallback ops:\n  opaque_sin in " in out
    # the marked tests only, each compiled from scratch: with_print's two graphs in both tests
    summary = "dynamo-tape: 8 graphs, 2 graph-break sites, 1 recompile, 1 fallback op in 5 tests"
    assert summary in out


TYPO = "import pytest\n\n\n@pytest.mark.tape(max_breaks=0)\ndef test_typo():\n    pass\n"
USAGE_ERRORS = {
    "unknown marker key": (
        [],
        "test_typo.py::test_typo: @pytest.mark.tape got unknown key(s) max_breaks; "
        "the valid keys are max_graph_breaks, max_recompiles, fallback_ops",
    ),
    "not a baseline": (
        ["--tape-baseline=typo.py"],
        "--tape-baseline typo.py: not a dynamo-tape baseline (JSONDecodeError: ",
    ),
    "update without a baseline": (
        ["--tape-baseline-update"],
        "--tape-baseline-update needs --tape-baseline=FILE",
    ),
}


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_usage_errors_say_what_is_wrong(tmp_path, case):
    options, message = USAGE_ERRORS[case]
    (tmp_path / "test_typo.py").write_text(TYPO)
    (tmp_path / "typo.py").write_text(TYPO)
    done = run_pytest(tmp_path, *options, "test_typo.py")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert f"ERROR: {message}" in done.stderr


SHARED = """\
import torch


def double(x):
    return x * 2


shared = torch.compile(double, backend="tape", dynamic=False)


def test_first():
    shared(torch.randn(3))


def test_other_shape():
    shared(torch.randn(4))  # without a reset: a recompile of test_first's frame


def test_same_shape():
    shared(torch.randn(4))  # without a reset: found in the cache, nothing compiled
"""


def test_each_recorded_test_compiles_from_scratch(tmp_path):
    (tmp_path / "test_shared.py").write_text(SHARED)
    done = run_pytest(tmp_path, "--tape-report=out", "test_shared.py")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads((tmp_path / "out" / "pytest.json").read_text())["tests"]
    counts = {row["test"].split("::")[-1]: (row["graphs"], row["recompiles"]) for row in rows}
    assert counts == {"test_first": (1, 0), "test_other_shape": (1, 0), "test_same_shape": (1, 0)}
    assert (
        "dynamo-tape: 3 graphs, 0 graph-break sites, 0 recompiles, 0 fallback ops in 3 tests"
        in (done.stdout)
    )


BASELINED = """\
import torch


def with_print(x):
    y = x * 2
    print("break here")
    return y + 1


def clean(x):
    return x.sin() + 1


def plus_one(x):
    return x + 1


def test_breaks():
    torch.compile(with_print, backend="tape")(torch.randn(3))


def test_recompiles():
    f = torch.compile(plus_one, backend="tape", dynamic=False)
    f(torch.randn(3))
    f(torch.randn(4))


def test_clean():
    torch.compile(clean, backend="tape")(torch.randn(3))
"""


def test_baseline_is_written_then_a_run_that_compiles_more_fails(tmp_path):
    suite, baseline = tmp_path / "test_base.py", tmp_path / "tape" / "baseline.json"
    suite.write_text(BASELINED)
    options = ("--tape-baseline=tape/baseline.json", "test_base.py")

    done = run_pytest(tmp_path, *options)  # no baseline yet: written
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dynamo-tape: baseline tape/baseline.json written (3 tests)" in done.stdout
    written = baseline.read_text()
    data = json.loads(written)
    assert written == json.dumps(data, indent=1, sort_keys=True) + "\n"
    assert data == {
        "tests": {
            "test_base.py::test_breaks": {
                "break_sites": ["test_base.py:6 with_print"],
                "fallback_ops": [],
                "graphs": 2,
                "recompiles": 0,
            },
            "test_base.py::test_recompiles": {
                "break_sites": [],
                "fallback_ops": [],
                "graphs": 2,
                "recompiles": 1,
            },
            "test_base.py::test_clean": {
                "break_sites": [],
                "fallback_ops": [],
                "graphs": 1,
                "recompiles": 0,
            },
        }
    }

    done = run_pytest(tmp_path, *options)  # the same suite: passes, the file is untouched
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dynamo-tape: baseline tape/baseline.json: no test compiled more" in done.stdout
    assert baseline.read_text() == written

    # test_clean gains a break, test_breaks loses its own, a new test appears
    suite.write_text(
        BASELINED.replace('    print("break here")\n', "")
        .replace("    return x.sin() + 1", '    print("new break")\n    return x.sin() + 1')
        .replace("def test_clean", "def test_new():\n    pass\n\n\ndef test_clean")
    )
    done = run_pytest(tmp_path, *options)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "4 passed" in out
    assert (
        "dynamo-tape: baseline tape/baseline.json: 1 test compiled more than it says"
        " (accept with --tape-baseline-update):\n"
        "  test_base.py::test_clean: graph-break sites 0 -> 1 (new: test_base.py:10 clean)\n"
    ) in out
    assert (
        "dynamo-tape: 1 test improved on tape/baseline.json:\n"
        "  test_base.py::test_breaks: graph-break sites 1 -> 0\n"
    ) in out
    assert (
        "dynamo-tape: 1 test not in tape/baseline.json, not added (add with "
        "--tape-baseline-update):\n  test_base.py::test_new\n"
    ) in out
    assert baseline.read_text() == written

    done = run_pytest(tmp_path, *options, "--tape-baseline-update")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dynamo-tape: baseline tape/baseline.json updated" in done.stdout
    tests = json.loads(baseline.read_text())["tests"]
    assert tests["test_base.py::test_clean"]["break_sites"] == ["test_base.py:10 clean"]
    assert tests["test_base.py::test_breaks"]["break_sites"] == []
    assert tests["test_base.py::test_new"]["graphs"] == 0
