"""Compile reports as markdown: rendered from the plain data of `Tracked.as_dict()` (the JSON),
so a report can always be regenerated from its JSON and both say the same thing."""

from __future__ import annotations

import json
import os

from tabulate import tabulate

from .html_report import write_html

_SUMMARY_NAMES = {
    "tests": "tests",
    "graphs": "graphs compiled",
    "dynamo_ops": "Dynamo ops",
    "graph_break_sites": "graph-break sites",
    "splits": "splits",
    "recompiles": "recompiles",
    "fallback_ops": "fallback ops (VJP through torch.autograd)",
    "graphs_not_on_tape": "graphs the tape could not compile",
    "compile_seconds": "compile time (s)",
}


def markdown(data: dict, title: str) -> str:
    parts = [f"# {title}", "## Summary", _summary(data["summary"]), *_sections(data)]
    parts += ["## Tapes", _tapes(data["graphs"])]
    return "\n\n".join(parts) + "\n"


def _sections(data: dict) -> list[str]:
    return [
        "## Graphs",
        _graphs(data["graphs"]),
        "## Graph-break sites",
        _breaks(data["breaks"]),
        "## Splits",
        _splits(data["splits"]),
        "## Recompiles",
        _recompiles(data["recompiles"]),
    ]


def write(data: dict, out_dir: str, name: str, title: str) -> tuple[str, str]:
    """Write `out_dir/name.md` and `out_dir/name.json`; returns their paths."""
    return _write(markdown(data, title), data, out_dir, name)


def write_run(tests: list[dict], data: dict, out_dir: str, name: str) -> tuple[str, str]:
    """The report of a test-suite run: a row per test, then the whole run's sections."""
    return _write(run_markdown(tests, data), {"tests": tests, **data}, out_dir, name)


def run_markdown(tests: list[dict], data: dict) -> str:
    headers = [
        "test",
        "outcome",
        "graphs",
        "break sites",
        "recompiles",
        "fallback ops",
        "compile s",
    ]
    rows = [
        (
            t["test"],
            t["outcome"],
            t["graphs"],
            t["graph_break_sites"],
            t["recompiles"],
            t["fallback_ops"],
            f"{t['compile_seconds']:.3f}",
        )
        for t in tests
    ]
    parts = ["# dynamo-tape report: test run", "## Summary", _summary(data["summary"])]
    parts += ["## Tests", table(rows, headers), *_sections(data)]
    return "\n\n".join(parts) + "\n"


def _write(text: str, data: dict, out_dir: str, name: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, f"{name}.md")
    json_path = os.path.join(out_dir, f"{name}.json")
    with open(md_path, "w") as f:
        f.write(text)
    with open(json_path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    # and name.html beside them, titled as the markdown is (its first line)
    write_html(data, os.path.join(out_dir, f"{name}.html"), text.partition("\n")[0][2:])
    return md_path, json_path


def table(rows, headers) -> str:
    return tabulate(rows, headers=headers, tablefmt="github") if rows else "(none)"


def _table(items: list[dict], rows, headers) -> str:
    """A test run's items carry the test they came from: it becomes the first column."""
    if items and "test" in items[0]:
        rows = [(item["test"], *row) for item, row in zip(items, rows, strict=True)]
        headers = ["test", *headers]
    return table(rows, headers)


def _summary(summary: dict) -> str:
    return table([(_SUMMARY_NAMES.get(k, k), v) for k, v in summary.items()], ["", "value"])


def _graphs(graphs: list[dict]) -> str:
    rows = [
        (
            g["compile_id"],
            f"`{g['frame']}`",
            g["dynamo_ops"],
            g["forward_entries"],
            g["backward_entries"],
            f"{g['saved_bytes']:,}",
            len(g["fallback_ops"]),
            f"{g['compile_seconds']:.3f}",
            _cell(g["not_on_tape"] or g["ended_by"]),
        )
        for g in graphs
    ]
    headers = [
        "compile id",
        "frame",
        "Dynamo ops",
        "forward entries",
        "backward entries",
        "bytes saved for backward",
        "fallback ops",
        "compile s",
        "graph ended by",
    ]
    return _table(graphs, rows, headers)


def _breaks(breaks: list[dict]) -> str:
    rows = [
        (
            f"{_short_path(b['filename'])}:{b['lineno']}",
            f"`{b['function']}`",
            b["count"],
            _cell(b["short_reason"]),
        )
        for b in breaks
    ]
    note = "\n\nCount: graphs compiled that ended at the site. Full reasons are in the JSON."
    return _table(breaks, rows, ["site", "function", "count", "reason"]) + (note if rows else "")


def _splits(splits: list[dict]) -> str:
    rows = [
        (
            s["kind"],
            f"`{s['frame']}`",
            _cell(_short_path(s["where"])),
            s["count"],
            _cell(s["reason"]),
        )
        for s in splits
    ]
    return _table(splits, rows, ["kind", "frame", "where", "count", "reason"])


def _recompiles(recompiles: list[dict]) -> str:
    rows = [(r["compile_id"], f"`{r['frame']}`", _cell(_one_line(r["reason"]))) for r in recompiles]
    return _table(recompiles, rows, ["compile id", "frame", "guard that failed"])


def _tapes(graphs: list[dict]) -> str:
    parts = []
    for g in graphs:
        parts.append(f"### {g['compile_id']} `{g['frame']}`")
        if g["not_on_tape"]:
            parts.append(f"Not compiled on the tape: {_cell(g['not_on_tape'])}")
        for text in g["tapes"]:
            parts.append(f"```\n{text}\n```")
    return "\n\n".join(parts) if parts else "(none)"


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " ".join(lines[0].split()) if lines else ""


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _short_path(path: str) -> str:
    """Paths inside the working directory are shown relative to it."""
    head, sep, rest = path.partition(":")
    if os.path.isabs(head):
        relative = os.path.relpath(head)
        if not relative.startswith(".."):
            head = relative
    return head + sep + rest
