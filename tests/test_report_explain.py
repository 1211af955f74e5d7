"""Reports that explain: Dynamo's explanation and hints at each break with the line's text,
resume frames named by the user's function, frames Dynamo skipped, recompile limits, graphs of
other backends and `mode=` ignored; tables that fit; `make_reports` output that is the same on
every run and holds no machine paths. What is pinned is the behaviour, not Dynamo's wording,
which differs between releases."""

import inspect
import json
import os
import warnings

import pytest
import torch
from torch._dynamo.exc import format_graph_break_message

from dynamo_tape import TapeCounter, backend, track, tracker
from dynamo_tape import torch_private as tp
from dynamo_tape.report import WIDTH, markdown, run_markdown
from dynamo_tape.tools.examples import graph_breaks, make_reports


def data_dependent(x):
    y = x * 2
    if y.sum() > 0:
        return y.sin()
    return y.cos()


def with_print(x):
    y = x.sin() * 2
    print("between the two graphs")
    return y.cos()


def prints_first(x):
    print("before any op")
    return x.sin()


def line_of(fn, text: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


def flat(text: str) -> str:
    return " ".join(text.split())


def explained_site(fn, *args):
    counter = TapeCounter()
    torch.compile(fn, backend=counter)(*args)
    (site,) = counter.breaks
    (part,) = site.as_dict()["explained"]
    return counter, site, part


def test_a_data_dependent_branch_has_dynamo_explanation_hints_and_line():
    counter, site, part = explained_site(data_dependent, torch.ones(3))
    # Dynamo's user-facing message, not the graph's internal reason (`generic_jump ...`)
    assert not part["gb_type"].startswith("generic_jump")
    assert part["explanation"] and part["hints"]
    assert (site.lineno, site.line) == (line_of(data_dependent, "if y.sum()"), "if y.sum() > 0:")
    text = flat(counter.report())
    assert f"```python {site.line} ```" in text
    for hint in part["hints"]:
        assert f"- Hint: {flat(hint)}" in text
    assert part["doc_url"] in text


def test_a_print_has_dynamo_explanation_and_hints():
    counter, site, part = explained_site(with_print, torch.randn(3))
    assert "print" in part["explanation"] and part["hints"]
    assert site.line == 'print("between the two graphs")'
    assert flat(part["explanation"].split("\n\n")[0]) in flat(counter.report())


def test_a_break_before_any_op_has_dynamo_reason_too():
    counter, site, part = explained_site(prints_first, torch.randn(3))
    assert site.lineno == line_of(prints_first, "before any op")
    assert "print" in part["explanation"] and part["hints"]


def test_resume_frames_are_named_by_the_user_function():
    counter, site, _ = explained_site(with_print, torch.randn(3))
    data = counter.as_dict()
    resumed = data["graphs"][1]
    assert resumed["frame"] == f"torch_dynamo_resume_in_with_print_at_{site.lineno}"  # raw
    assert resumed["function"] == f"with_print (resumed after line {site.lineno})"
    text = markdown(data, "t")
    assert resumed["function"] in text and "torch_dynamo_resume" not in text
    assert data["graphs"][0]["ended_at"] == f"{__file__}:{site.lineno}"


def test_dynamo_messages_parse_back_into_their_parts():
    message = format_graph_break_message(
        "Data-dependent branching", "the context", "First line.\n\nMore.", ["one", "two"]
    )
    chained = f"{message}\n\n*** While handling this graph break, another graph break occurred: ***\n\n{message}"  # noqa: E501
    for text, count in ((message, 1), (chained, 2)):
        parts = tp.graph_break_parts(text)
        assert len(parts) == count
        for part in parts:
            assert part["gb_type"] == "Data-dependent branching"
            assert part["explanation"] == "First line.\n\nMore."
            assert (part["hints"], part["context"]) == (["one", "two"], "the context")
            assert part["doc_url"].startswith("https://")
    assert tp.graph_break_parts("step_unsupported")[0]["gb_type"] == "step_unsupported"


def test_mode_is_ignored_with_one_warning_and_reported(monkeypatch):
    monkeypatch.setattr(tracker, "_warned_modes", set())
    with track() as tracked:
        with pytest.warns(UserWarning, match="max-autotune"):
            tracker.mode_ignored("max-autotune")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tracker.mode_ignored("max-autotune")  # warned once already
            tracker.mode_ignored(None)  # no mode given
    (option,) = tracked.options_ignored
    assert (option.option, option.value, option.count) == ("mode", "max-autotune", 2)
    assert tracked.summary()["options_ignored"] == 1
    assert "\n## Options ignored\n" in tracked.report()


@pytest.mark.skipif(
    "mode_ignored" not in inspect.getsource(backend.tape),
    reason="backend.py does not pass mode= to tracker.mode_ignored yet",
)
def test_compile_with_mode_reports_it(monkeypatch):
    monkeypatch.setattr(tracker, "_warned_modes", set())
    with track() as tracked, pytest.warns(UserWarning, match="max-autotune"):
        torch.compile(lambda x: x.sin() + 1, backend="tape", mode="max-autotune")(torch.randn(3))
    (option,) = tracked.options_ignored
    assert (option.option, option.value) == ("mode", "max-autotune")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """make_reports run twice on the example script, as the committed reports are made."""
    folders = [tmp_path_factory.mktemp(f"reports{i}") for i in range(2)]
    workloads = [("graph_breaks", "`examples/graph_breaks.py`", graph_breaks.main)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(make_reports, "workloads", lambda: iter(workloads))
        for folder in folders:
            assert make_reports.main(["--out", str(folder)]) == 0
    return folders


def test_make_reports_writes_the_same_files_each_run(reports):
    first, second = reports
    names = sorted(os.listdir(first))
    assert (
        names
        == sorted(os.listdir(second))
        == ["graph_breaks.html", "graph_breaks.json", "graph_breaks.md", "index.md"]
    )
    for name in names:
        assert (first / name).read_text() == (second / name).read_text(), name
    assert "compile_seconds" not in (first / "graph_breaks.json").read_text()


def test_make_reports_holds_no_machine_paths(reports):
    machine = [make_reports.REPOSITORY, os.getcwd(), tp.TORCH_DIR, "site-packages"]
    # Dynamo's guard comments shorten a file of this checkout by its common prefix with torch's
    # folder: `main/dynamo_tape/...` where torch is installed beside the checkout, which names
    # this machine's folders; the file's own relative path where torch is inside it
    shortened = tp.shorten_filename(os.path.join(make_reports.REPOSITORY, "dynamo_tape", "x"))
    if shortened != os.path.join("dynamo_tape", "x"):
        machine.append(shortened[:-1])
    for name in os.listdir(reports[0]):
        text = (reports[0] / name).read_text()
        for path in machine:
            assert path not in text, (name, path)


def test_the_example_report_names_each_break_skip_limit_and_other_backend(reports):
    data = json.loads((reports[0] / "graph_breaks.json").read_text())
    text = (reports[0] / "graph_breaks.md").read_text()
    script = "dynamo_tape/tools/examples/graph_breaks.py"
    lines = {fn.__name__: line_of(fn, text) for fn, text in [
        (graph_breaks.logs_in_the_middle, "print("),
        (graph_breaks.branches_on_data, "if h.mean()"),
        (graph_breaks.logs_every_step, "print("),
    ]}  # fmt: skip
    sites = {(b["function"], b["filename"], b["lineno"]) for b in data["breaks"]}
    assert sites == {(fn, script, lines[fn]) for fn in ("logs_in_the_middle", "branches_on_data")}
    (skipped,) = [s for s in data["splits"] if s["kind"] == "frame run as Python"]
    assert (skipped["function"], skipped["where"]) == (
        "logs_every_step",
        f"{script}:{lines['logs_every_step']}",
    )
    assert "print(" in skipped["line"] and any(p["hints"] for p in skipped["explained"])
    for item in [*data["breaks"], skipped]:
        assert item["line"] in text and all(p["explanation"] for p in item["explained"])
        for hint in (h for p in item["explained"] for h in p["hints"]):
            assert f"- Hint: {flat(hint)}" in flat(text)
    assert [r["function"] for r in data["recompiles"]] == ["power_norm", "power_norm"]
    (limit,) = data["recompile_limits"]
    assert limit["function"] == "scaled_by_name" and limit["last_guard"]
    (other,) = data["other_backends"]
    assert other["function"] == "shifted" and other["dynamo_ops"] > 0
    headings = [
        "Frames Dynamo skipped",
        "Recompile limits hit",
        "Graphs compiled by other backends",
    ]
    for heading in headings:
        assert f"\n## {heading}\n" in text
    assert "\n## Splits\n\n(none)\n" in text  # the breaks are not repeated as splits


def test_tables_fit_the_width(reports):
    data = json.loads((reports[0] / "graph_breaks.json").read_text())
    long = "a_function_with_a_name_much_longer_than_any_table_column_should_be_" * 3
    for section in ("graphs", "breaks", "splits", "recompiles", "recompile_limits"):
        for item in data[section]:
            item["function"] = long
    tests = [{"test": f"tests/{long}.py::test_{long}", "outcome": "passed", **data["summary"]}]
    for text in (markdown(data, "t"), run_markdown(tests, {**data, "summary": data["summary"]})):
        widths = [len(line) for line in text.splitlines() if line.startswith("|")]
        assert widths and max(widths) <= WIDTH
    for name in ("graph_breaks.md", "index.md"):
        lines = (reports[0] / name).read_text().splitlines()
        assert max(len(line) for line in lines if line.startswith("|")) <= WIDTH
