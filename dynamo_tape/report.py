"""Compile reports as markdown: rendered from the plain data of `Tracked.as_dict()` (the JSON),
so a report can always be regenerated from its JSON and both say the same thing.

Each section says one thing once: the graphs compiled, the graph-break sites (with Dynamo's
explanation and hints, the line's text and the inlined calls that led there), frames Dynamo ran
as Python, the other splits, recompiles, and where there are any, recompile limits hit, graphs
other backends compiled and options the backend ignored. Tables fit `WIDTH` columns (longer
cells are cut, with `…`); the JSON keeps the full text."""

from __future__ import annotations

import json
import os
import textwrap

from tabulate import tabulate

from .html_report import write_html
from .profile import part_label

WIDTH = 120  # the widest line of a table
PROSE = 100  # explanations and hints are wrapped at this width
SKIPPED = "frame run as Python"  # records.SKIPPED: this module reads JSON and imports no torch

_SUMMARY_NAMES = {
    "tests": "tests",
    "graphs": "graphs compiled",
    "dynamo_ops": "Dynamo ops",
    "graph_break_sites": "graph-break sites",
    "splits": "splits",
    "frames_skipped": "frames Dynamo skipped (ran as Python)",
    "recompiles": "recompiles",
    "recompile_limits": "recompile limits hit",
    "other_backend_graphs": "graphs compiled by other backends",
    "options_ignored": "options ignored",
    "fallback_ops": "fallback ops (VJP through torch.autograd)",
    "graphs_not_on_tape": "graphs the tape could not compile",
    "compile_seconds": "compile time (s)",
}


def markdown(data: dict, title: str) -> str:
    parts = [f"# {title}", "## Summary", _summary(data["summary"]), *_sections(data)]
    parts += ["## Tapes", _tapes(data["graphs"])]
    return "\n\n".join(parts) + "\n"


def _sections(data: dict) -> list[str]:
    """Graphs, break sites, splits and recompiles always; the others where there are any."""
    splits = data.get("splits", [])
    skipped = [s for s in splits if s["kind"] == SKIPPED]
    parts = ["## Graphs", _graphs(data["graphs"]), "## Graph-break sites", _breaks(data["breaks"])]
    if skipped:
        parts += ["## Frames Dynamo skipped", _skipped(skipped)]
    parts += ["## Splits", _splits([s for s in splits if s["kind"] != SKIPPED])]
    parts += ["## Recompiles", _recompiles(data["recompiles"])]
    optional = [
        ("## Recompile limits hit", "recompile_limits", _limits),
        ("## Graphs compiled by other backends", "other_backends", _other_backends),
        ("## Options ignored", "options_ignored", _options),
        ("## Numerics", "numerics", _numerics),
        ("## Profile", "profiles", _profiles),
        ("## Steps", "steps", _steps),
    ]
    for heading, key, render in optional:
        if data.get(key):
            parts += [heading, render(data[key])]
    return parts


def write(data: dict, out_dir: str, name: str, title: str) -> tuple[str, str]:
    """Write `out_dir/name.md` and `out_dir/name.json`; returns their paths."""
    return _write(markdown(data, title), data, out_dir, name)


def write_run(tests: list[dict], data: dict, out_dir: str, name: str) -> tuple[str, str]:
    """The report of a test-suite run: a row per test, then the whole run's sections."""
    return _write(run_markdown(tests, data), {"tests": tests, **data}, out_dir, name)


def run_markdown(tests: list[dict], data: dict) -> str:
    """A row per test, numbered; the sections' rows name their test by that number."""
    columns = [("test", "test"), ("outcome", "outcome"), ("graphs", "graphs"),
               ("breaks", "graph_break_sites"), ("skipped", "frames_skipped"),
               ("recompiles", "recompiles"), ("fallbacks", "fallback_ops"),
               ("compile s", "compile_seconds")]  # fmt: skip
    columns = [(h, k) for h, k in columns if any(k in t for t in tests)]
    rows = [
        (i, *(f"{t[k]:.3f}" if k == "compile_seconds" else t.get(k, "") for _, k in columns))
        for i, t in enumerate(tests, 1)
    ]
    numbers = {t["test"]: f"#{i}" for i, t in enumerate(tests, 1)}
    numbered = {k: [{**item, "test_number": numbers.get(item.get("test"), "?")} for item in v]
                if isinstance(v, list) else v for k, v in data.items()}  # fmt: skip
    legend = (
        "breaks: graph-break sites; skipped: frames Dynamo skipped; fallbacks: ops whose VJP is "
        "torch.autograd's. The sections below name each test by its number here."
    )
    tests_table = table(rows, ["#", *(h for h, _ in columns)], cut_start=("test",))
    parts = ["# dynamo-tape report: test run", "## Summary", _summary(data["summary"])]
    parts += ["## Tests", tests_table + "\n\n" + _wrap(legend), *_sections(numbered)]
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
    title = text.partition("\n")[0][2:]
    write_html(data, os.path.join(out_dir, f"{name}.html"), title, _SUMMARY_NAMES)
    return md_path, json_path


def table(rows, headers, width: int = WIDTH, cut=(), keep=(), cut_start=()) -> str:
    """A github-markdown table no wider than `width`: text cells are cut to fit, those of the
    columns named in `cut` first (in that order), then those of the widest column not named in
    `keep` (links, say); cells of the columns named in `cut_start` lose their start instead of
    their end (test ids, say)."""
    if not rows:
        return "(none)"
    rows = [list(row) for row in rows]
    while True:
        text = tabulate(rows, headers=headers, tablefmt="github")
        excess = max(len(line) for line in text.splitlines()) - width
        if excess <= 0:
            return text
        column = _column_to_cut(rows, headers, cut, keep)
        if column is None:
            return text
        cap = max(_least_width(headers[column]), _text_width(rows, column) - excess)
        for row in rows:
            row[column] = _cut(row[column], cap, headers[column] in cut_start)


def _text_width(rows, column: int) -> int:
    return max((len(r[column]) for r in rows if isinstance(r[column], str)), default=0)


def _least_width(header) -> int:  # a cut column keeps its header's width, and at least 12
    return max(len(str(header)), 12)


def _column_to_cut(rows, headers, cut, keep) -> int | None:
    """The first column named in `cut`, else the widest column of text, that can be cut."""
    named = [headers.index(name) for name in cut if name in headers]
    widest = sorted(range(len(headers)), key=lambda i: -_text_width(rows, i))
    widest = [i for i in widest if headers[i] not in keep]
    for i in named + widest:
        if _text_width(rows, i) > _least_width(headers[i]):
            return i
    return None


def _cut(cell, cap: int, at_start: bool = False):
    if not isinstance(cell, str) or len(cell) <= cap:
        return cell
    if at_start:
        return "…" + cell[len(cell) - cap + 1 :]
    cut = cell[: cap - 2].rstrip().rstrip("\\")
    return cut + ("…`" if cut.count("`") % 2 else "…")


def _table(items: list[dict], rows, headers, cut: tuple[str, ...] = ()) -> str:
    """A test run's items carry the test they came from: it becomes the first column (its
    number in the Tests table where `run_markdown` gave one)."""
    if items and "test" in items[0]:
        tests = [item.get("test_number", item["test"]) for item in items]
        rows = [(test, *row) for test, row in zip(tests, rows, strict=True)]
        headers = ["test", *headers]
    return table(rows, headers, cut=cut)


def _summary(summary: dict) -> str:
    text = table([(_SUMMARY_NAMES.get(k, k), v) for k, v in summary.items()], ["", "value"])
    if summary.get("graphs", 1) or summary.get("tests"):
        return text
    why = [
        (summary.get("frames_skipped"), "frames Dynamo skipped"),
        (summary.get("recompile_limits"), "recompile limits hit"),
        (summary.get("other_backend_graphs"), "graphs compiled by other backends"),
    ]
    found = "; ".join(f"{what}: {n}" for n, what in why if n)
    note = f" ({found}: sections below)." if found else (
        ', and Dynamo compiled nothing else: does the code call `torch.compile(...,'
        ' backend="tape")`? (`dynamo-tape report --backend-default` makes calls that name no'
        " backend use it.)"
    )  # fmt: skip
    return text + "\n\n" + _wrap("No graph reached the tape backend" + note)


def _graphs(graphs: list[dict]) -> str:
    timed = any("compile_seconds" in g for g in graphs)
    rows = [
        (g["compile_id"], _function(g), g["dynamo_ops"], g["forward_entries"],
         g["backward_entries"], f"{g['saved_bytes']:,}",
         *([f"{g['compile_seconds']:.3f}"] if timed else []), _cell(_ended_by(g)))
        for g in graphs
    ]  # fmt: skip
    headers = ["id", "function", "ops", "forward", "backward", "saved bytes"]
    headers += [*(["compile s"] if timed else []), "ended by"]
    legend = (
        "id: Dynamo's compile id, frame/compile (\"4/1\": frame 4's second compile); ops: call "
        "nodes of Dynamo's graph; forward, backward: entries of the tapes; saved "
        "bytes: what the forward saves for the backward; ended by: a graph break (under "
        "Graph-break sites), or the function's return."
    )
    return _table(graphs, rows, headers, cut=("ended by",)) + (
        "\n\n" + _wrap(legend) if rows else ""
    )


def _ended_by(g: dict) -> str:
    if g["not_on_tape"]:
        return f"not on tape: {g['not_on_tape']}"
    ended_at = g.get("ended_at")
    if ended_at:
        filename, _, line = ended_at.rpartition(":")
        same = filename == g.get("frame_file")
        return f"break, {'line ' + line if same else _short_path(ended_at)}"
    return "return" if g["ended_by"] == "return_value" else g["ended_by"]


def _breaks(breaks: list[dict]) -> str:
    if not breaks:
        return "(none)"
    rows = [
        (_short_path(f"{b['filename']}:{b['lineno']}"), b["function"], b["count"], _what(b))
        for b in breaks
    ]
    headers = ["site", "function", "graphs", "what Dynamo says"]
    note = "graphs: graphs compiled that ended at the site (once per compile, not per call)."
    details = [_break_detail(i, b) for i, b in enumerate(breaks, 1)]
    table_ = _table(breaks, rows, headers, cut=("what Dynamo says", "function"))
    return "\n\n".join([table_, note, *details])


def _explained(item: dict) -> list[dict]:  # JSON from before has only the reason
    return item.get("explained") or [{"gb_type": item.get("kind") or _one_line(item["reason"])}]


def _what(item: dict) -> str:  # each graph break of Dynamo's message
    return _cell(" / ".join(p["gb_type"] for p in _explained(item)))


def _break_detail(number: int, b: dict) -> str:
    site = _short_path(f"{b['filename']}:{b['lineno']}")
    parts = [f"```python\n{b['line']}\n```"] if b.get("line") else []
    stack = b.get("stack") or []
    if len(stack) > 1:
        calls = " → ".join(f"`{f['function']}` (line {f['lineno']})" for f in stack)
        parts.append(_wrap(f"Reached through the calls Dynamo inlined: {calls}."))
    return _detail(f"{number}. {site} in `{b['function']}`: {_what(b)}", b, parts)


def _detail(heading: str, item: dict, parts: list[str]) -> str:
    """A heading, the test it came from in a test run, `parts`, then Dynamo's explanations."""
    test = [f"In `{item['test']}`."] if "test" in item else []
    return "\n\n".join([f"### {heading}", *test, *parts, *_explanations(_explained(item))])


def _explanations(explained: list[dict]) -> list[str]:
    """Dynamo's explanation, hints and documentation link of each graph break in a message;
    when it chains several (one raised while handling another), each under its gb_type."""
    parts = []
    for part in explained:
        explanation = _first_paragraph(part.get("explanation", ""))
        if len(explained) > 1:
            explanation = f"**{part['gb_type']}**" + (f": {explanation}" if explanation else "")
        if explanation:
            parts.append(_wrap(explanation))
        hints = [_wrap(f"- Hint: {h}", indent="  ") for h in part.get("hints", [])]
        if hints:
            parts.append("\n".join(hints))
        if part.get("doc_url"):
            parts.append(f"Documentation: {part['doc_url']}")
    return parts


def _skipped(skipped: list[dict]) -> str:
    rows = [(_function(s), _short_path(s["where"]), _cell(_why(s))) for s in skipped]
    headers = ["function", "site", "why"]
    note = (
        "Dynamo compiled no graph for these frames and ran each as Python (the frames they call "
        "are compiled on their own)."
    )
    details = []
    for i, s in enumerate(skipped, 1):
        where = _short_path(s["where"])
        if where.startswith("torch/"):  # a wrapper of torch's: its line says nothing
            parts = [f"A frame of torch's own, at {where}."]
        else:
            parts = [f"At {where}:\n\n```python\n{s['line']}\n```"] if s.get("line") else []
        details.append(_detail(f"{i}. `{_function(s)}` ran as Python: {_cell(_why(s))}", s, parts))
    table_ = _table(skipped, rows, headers, cut=("why", "function"))
    return "\n\n".join([table_, _wrap(note), *details])


def _why(item: dict) -> str:  # the last graph break of the message: it gave the frame up
    return _explained(item)[-1]["gb_type"]


def _splits(splits: list[dict]) -> str:
    rows = [
        (s["kind"], _function(s), _cell(_short_path(s["where"])), s["count"], _cell(s["reason"]))
        for s in splits
    ]
    headers = ["kind", "function", "where", "count", "reason"]
    return _table(splits, rows, headers, cut=("reason", "where"))


def _recompiles(recompiles: list[dict]) -> str:
    rows = [
        (r["compile_id"], _function(r), _cell(_guard(r)),
         f"{os.path.basename(r['filename'])}:{r['lineno']}" if r.get("lineno") else "")
        for r in recompiles
    ]  # fmt: skip
    headers = ["id", "function", "guard that failed (of compile)", "line"]
    note = "line: where the guarded value comes from in the function, when Dynamo says."
    table_ = _table(recompiles, rows, headers, cut=("line", "guard that failed (of compile)"))
    return table_ + ("\n\n" + note if any(row[-1] for row in rows) else "")


def _guard(r: dict) -> str:
    if not r.get("failed_compile"):
        return r.get("guard") or _one_line(r["reason"])
    return f"{r['failed_compile']}: {r['guard']}"


def _limits(limits: list[dict]) -> str:
    rows = [
        (r["compile_id"], _function(r), _short_path(f"{r['filename']}:{r['lineno']}"),
         _cell(r.get("last_guard", "")))
        for r in limits
    ]  # fmt: skip
    headers = ["id", "function", "defined at", "last guard that failed"]
    note = (
        "Dynamo compiled these functions as often as its recompile limit allows; from then on "
        "each runs as Python for inputs that none of its compiled graphs accepts."
    )
    parts = [_table(limits, rows, headers, cut=("last guard that failed",)), _wrap(note)]
    explained = [_explained(r) for r in limits]  # the same for each hit, but the limit
    unique = [e for i, e in enumerate(explained) if e not in explained[:i]]
    return "\n\n".join(parts + [p for e in unique for p in _explanations(e)])


def _other_backends(graphs: list[dict]) -> str:
    rows = [
        (g["compile_id"], _function(g),
         _short_path(f"{g['filename']}:{g['lineno']}"), g["dynamo_ops"])
        for g in graphs
    ]  # fmt: skip
    note = (
        "Dynamo compiled these graphs during the session, but not with the tape backend: a "
        "`torch.compile()` call that names another backend, or none (then inductor; "
        "`dynamo-tape report --backend-default` makes such calls use the tape)."
    )
    headers = ["id", "function", "defined at", "Dynamo ops"]
    return _table(graphs, rows, headers) + "\n\n" + _wrap(note)


def _options(options: list[dict]) -> str:
    rows = [(f"{o['option']}=", repr(o["value"]), o["count"], o["why"]) for o in options]
    return _table(options, rows, ["option", "value", "graphs", "why"])


def _numerics(graphs: list[dict]) -> str:
    """The entries that lost most precision against the float64 shadow, per graph."""
    parts = []
    for g in graphs:
        rows = [
            (e["phase"], f"`{e['op']}`", e["module"], _short_path(e["line"]),
             f"{e['introduced']:.3g}", f"{e['error']:.3g}")
            for e in g["entries"][:TOP]
        ]  # fmt: skip
        headers = ["phase", "op", "module", "line", "introduced", "error"]
        parts += [f"### {g['compile_id']} `{_function(g)}` ({g['graph']})", table(rows, headers)]
    legend = (
        "Relative errors of each entry's outputs against a float64 run of the same ops in "
        "lockstep (options={'numerics': 'float64'}): error, max |out - float64| / max |float64|; "
        "introduced, that error less its inputs' largest: the precision this entry lost."
    )
    return "\n\n".join([*parts, _wrap(legend)])


def _profiles(profiles: list[dict]) -> str:
    """Where each graph's time went: totals per phase, then by op, module and line."""
    parts = []
    for g in profiles:
        parts.append(f"### {g['compile_id']} `{_function(g)}` ({g['graph']})")
        rows = []
        for phase, t in g["totals"].items():
            if not t["calls"]:
                continue
            graph = t.get("graph_seconds")
            rows.append((phase, t["calls"], _ms(graph) if graph is not None else "",
                         _ms(t["runtime_seconds"]) if graph is not None else "",
                         _ms(t["overhead_seconds"]), _ms(t["entries_seconds"])))  # fmt: skip
        headers = ["phase", "calls", "graph ms", "runtime ms", "tape overhead ms", "entries ms"]
        parts.append(table(rows, headers))
        for name in ("op", "module", "line"):
            entries = {p: g["totals"][p]["entries_seconds"] for p in g["totals"]}
            rows = [
                (r["phase"], _cell(_short_path(r[name])), r["calls"], _ms(r["seconds"]),
                 f"{100 * r['seconds'] / entries[r['phase']]:.1f}" if entries[r["phase"]] else "")
                for r in g[f"by_{name}"][:TOP]
            ]  # fmt: skip
            parts += [f"By {name}:", table(rows, ["phase", name, "calls", "ms", "% of phase"])]
    legend = (
        "options={'profile': True}: graph ms, the graph's calls (Dynamo's call of the forward, "
        "autograd's of the backward); runtime ms, what dynamo_tape's Python and autograd's "
        "Function add around the generated code; tape overhead ms, the generated functions' "
        "time outside their entries; entries ms, the entries' own. The probes' time is left out."
    )
    return "\n\n".join([*parts, _wrap(legend)])


def _steps(steps: list[dict]) -> str:
    """Each `profile_step()` block: its parts in order, inside and outside the graph calls."""
    parts = []
    for k, step in enumerate(steps):
        parts.append(
            f"### Step {k + 1}: {_ms(step['seconds'])} ms, graph calls "
            f"{_ms(step['graph_seconds'])} ms, outside them {_ms(step['outside_seconds'])} ms"
        )
        rows = [
            (_ms(p["seconds"]), f"{100 * p['seconds'] / step['seconds']:.1f}"
             if step["seconds"] else "", _cell(part_label(p)))
            for p in step["parts"]
        ]  # fmt: skip
        parts.append(table(rows, ["ms", "%", "part"]))
    legend = (
        "dynamo_tape.profile_step(): a block's time less the probes', in order: each call of a "
        "graph compiled with options={'profile': True} (its entries, the tape's overhead between "
        "them, the runtime around the generated code) and the time outside graph calls."
    )
    return "\n\n".join([*parts, _wrap(legend)])


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


TOP = 10  # rows of the numerics' and the profile's tables


def _tapes(graphs: list[dict]) -> str:
    parts = []
    for g in graphs:
        parts.append(f"### {g['compile_id']} `{_function(g)}`")
        if g["not_on_tape"]:
            parts.append(f"Not compiled on the tape: {_cell(g['not_on_tape'])}")
        for text in g["tapes"]:
            parts.append(f"```\n{text}\n```")
    return "\n\n".join(parts) if parts else "(none)"


def _function(item: dict) -> str:  # `forward (resumed after line 17)`; else Dynamo's frame
    return item.get("function", item["frame"])


def _first_paragraph(text: str) -> str:
    return " ".join(str(text).strip().split("\n\n")[0].split())


def _wrap(text: str, indent: str = "") -> str:
    return textwrap.fill(text, PROSE, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)  # fmt: skip


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " ".join(lines[0].split()) if lines else ""


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _short_path(path: str) -> str:
    """Paths inside the working directory are shown relative to it, installed packages' from
    their site-packages folder (`torch/nn/modules/module.py`)."""
    head, sep, rest = path.partition(":")
    if os.path.isabs(head):
        relative = os.path.relpath(head)
        if not relative.startswith(".."):
            head = relative
        elif f"{os.sep}site-packages{os.sep}" in head:
            head = head.split(f"{os.sep}site-packages{os.sep}", 1)[1]
    return head + sep + rest
