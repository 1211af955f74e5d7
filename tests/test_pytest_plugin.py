"""The pytest plugin: `--tape-report=DIR` on a small suite run in a subprocess, the
`tape_counter` fixture, and no torch import when the option is absent."""

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
