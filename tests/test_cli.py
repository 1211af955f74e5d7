"""`dynamo-tape report SCRIPT [ARGS...] --out DIR` on scripts written to a temporary folder."""

import importlib.metadata
import inspect
import json
import subprocess
import sys
import textwrap

from dynamo_tape import cli
from dynamo_tape.tools.examples import graph_breaks, make_reports

SCRIPT = """\
import sys
import torch

def with_print(x):
    y = x.sin() * 2
    print("in the middle")
    return y.cos()

def no_backend_named(x):
    return x.exp() + 1

with open("argv.json", "w") as f:
    import json
    json.dump(sys.argv[1:], f)
torch.compile(with_print, backend="tape")(torch.randn(3))
torch.compile(no_backend_named)(torch.randn(3))  # "tape" only with --backend-default
sys.exit(3)
"""


def test_report_of_a_script_run_like_cprofile(tmp_path):
    (tmp_path / "job.py").write_text(SCRIPT)
    command = [sys.executable, "-m", "dynamo_tape.cli", "report", "job.py", "--lr", "0.1"]
    command += ["--out", "out", "--backend-default"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr  # the script's own exit code
    assert "in the middle" in done.stdout
    assert json.loads((tmp_path / "argv.json").read_text()) == ["--lr", "0.1"]
    data = json.loads((tmp_path / "out" / "job.json").read_text())
    frames = [g["frame"] for g in data["graphs"]]
    assert frames == ["with_print", "torch_dynamo_resume_in_with_print_at_6", "no_backend_named"]
    (site,) = data["breaks"]
    assert (site["filename"], site["lineno"]) == (str(tmp_path / "job.py"), 6)
    text = (tmp_path / "out" / "job.md").read_text()
    for heading in ("Summary", "Graphs", "Graph-break sites", "Splits", "Recompiles", "Tapes"):
        assert f"\n## {heading}\n" in text
    assert text.count("forward(") == 3  # each graph's forward tape


def test_options_may_also_come_before_the_script(tmp_path, monkeypatch):
    script = tmp_path / "tiny.py"
    script.write_text(
        textwrap.dedent("""\
        import torch
        torch.compile(lambda x: x * 2, backend="tape")(torch.randn(2))
        """)
    )
    monkeypatch.chdir(tmp_path)
    assert cli.main(["report", "--out", str(tmp_path / "r"), str(script)]) == 0
    assert json.loads((tmp_path / "r" / "tiny.json").read_text())["summary"]["graphs"] == 1


def test_console_script_is_declared():
    (entry,) = [e for e in importlib.metadata.entry_points(group="console_scripts")
                if e.name == "dynamo-tape"]  # fmt: skip
    assert entry.load() is cli.main


def test_make_reports_writes_each_workload_and_an_index(tmp_path, monkeypatch):
    def fails():
        raise RuntimeError("boom")

    workloads = [("graph_breaks", "the example", graph_breaks.main), ("broken", "fails", fails)]
    monkeypatch.setattr(make_reports, "workloads", lambda: iter(workloads))
    assert make_reports.main(["--out", str(tmp_path)]) == 1  # a workload failed
    data = json.loads((tmp_path / "graph_breaks.json").read_text())
    sites = {(b["function"], b["lineno"]) for b in data["breaks"]}
    assert sites == {
        ("logs_in_the_middle", line_of(graph_breaks.logs_in_the_middle, "print(")),
        ("branches_on_data", line_of(graph_breaks.branches_on_data, "if h.mean()")),
    }
    assert [r["frame"] for r in data["recompiles"]] == ["power_norm", "power_norm"]
    assert {b["filename"] for b in data["breaks"]} == {"dynamo_tape/tools/examples/graph_breaks.py"}
    index = (tmp_path / "index.md").read_text()
    assert "[graph_breaks](graph_breaks.md)" in index
    assert "failed: RuntimeError: boom" in index
    assert (tmp_path / "broken.md").exists()


def line_of(fn, text: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


def _run_cli(tmp_path, *arguments):
    command = [sys.executable, "-m", "dynamo_tape.cli", "report", *arguments]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)


TINY = """\
import sys
import torch
torch.compile(lambda x: x * 2, backend="tape")(torch.randn(2))
print("argv", sys.argv[1:])
"""


def test_a_module_runs_as_python_dash_m_runs_it(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "job.py").write_text(TINY)
    done = _run_cli(tmp_path, "-m", "pkg.job", "--lr", "0.1", "--out", "r")
    assert done.returncode == 0, done.stderr
    assert "argv ['--lr', '0.1']" in done.stdout
    assert json.loads((tmp_path / "r" / "pkg.job.json").read_text())["summary"]["graphs"] == 1


def test_a_missing_script_is_one_line_naming_it(tmp_path):
    done = _run_cli(tmp_path, "nowhere.py")
    assert done.returncode == 2
    assert done.stderr.strip() == "dynamo-tape: error: no such script: nowhere.py"


def test_out_is_ours_wherever_it_stands_and_after_a_double_dash_the_scripts(tmp_path):
    (tmp_path / "job.py").write_text(TINY)
    done = _run_cli(tmp_path, "job.py", "--out", "mine", "--epochs", "1", "--", "--out", "x")
    assert done.returncode == 0, done.stderr
    assert "argv ['--epochs', '1', '--out', 'x']" in done.stdout
    assert (tmp_path / "mine" / "job.json").exists()


def test_a_script_that_compiles_nothing_on_the_tape_gets_a_hint(tmp_path):
    (tmp_path / "other.py").write_text(
        'import torch\ntorch.compile(lambda x: x + 1, backend="eager")(torch.randn(2))\n'
    )
    done = _run_cli(tmp_path, "other.py", "--out", "r")
    assert done.returncode == 0, done.stderr
    assert 'no graph was compiled with backend="tape"' in done.stderr
    assert "--backend-default" in done.stderr
