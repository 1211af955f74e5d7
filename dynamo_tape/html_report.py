"""Compile reports as one self-contained HTML page, beside the markdown and the JSON.

Rendered from the same plain data (`Tracked.as_dict()`, plus "tests" for a test run), so it
can be regenerated from the JSON. The page loads nothing: its stylesheet and its small script
are inline, its chart is SVG drawn here, and a Content-Security-Policy forbids any fetch.

What it shows: the summary; a test run's tests; the graphs, with a chart of the bytes each
saves for the backward and of its compile time; the break sites, each with the lines of source
around it (read from the file the data names, when it exists where the page is rendered); the
frames Dynamo ran as Python; splits; recompiles; each graph's tapes (folded), a tape line
that ends with `# path:line [in fn]` or `(from path:line)` linked to that source line.

Rendering is defensive: a top-level key no section knows gets a section of its own, an item's
key a table does not know gets a column of its own (`_records`), and a section that fails to
render shows its raw data instead. A new section is one `_SECTIONS` row.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["page", "write_html"]

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONTEXT_LINES = 3  # source lines shown before and after a site
_MAX_SOURCE_BYTES = 4 << 20


def write_html(data: dict, path: str, title: str, summary_names: dict | None = None) -> str:
    """Write the page of `data` to `path`; returns the path. `summary_names`: the summary's
    labels by key (the markdown's, so both say the same); a key without one shows as itself."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(page(data, title, summary_names))
    return path


def page(data: dict, title: str, summary_names: dict | None = None) -> str:
    """The page of `data` as one self-contained HTML document (see `write_html`)."""
    p = _Page(summary_names=dict(summary_names or {}))
    sections = []
    for section in _SECTIONS:
        body = p.section(section, data)
        if body is not None:
            sections.append((section, body))
    known = {s.key for s in _SECTIONS if s.key}
    for key in data:
        if key not in known:
            heading = str(key).replace("_", " ")
            extra = _Section(key, f"extra-{_slug(key)}", heading, _make_generic(key))
            sections.append((extra, p.section(extra, data)))
    sources = _Section(None, "sources", "Source lines the tapes name", _sources)
    body = p.section(sources, data)
    if body is not None:
        sections.append((sources, body))
    nav = " ".join(f'<a href="#{s.id}">{_e(s.heading)}{_count(data, s)}</a>' for s, _ in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
        f"<title>{_e(title)}</title>",
        f"<script>{_ERROR_SCRIPT}</script>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        f"<header><h1>{_e(title)}</h1><nav>{nav}</nav></header>",
        "<main>",
        *(
            f'<section id="{s.id}"><h2>{_e(s.heading)}{_count(data, s)}</h2>{b}</section>'
            for s, b in sections
        ),
        "</main>",
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


# ---- sections -------------------------------------------------------------------------------


@dataclass
class _Section:
    key: str | None  # the data key it shows (None: derived from other keys)
    id: str
    heading: str
    render: Callable  # (data, page) -> html, or None to leave the section out


@dataclass
class _Page:
    """What renders one page: the summary's labels, the source lines the tapes link to, and the
    files read."""

    summary_names: dict[str, str] = field(default_factory=dict)
    refs: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)  # -> (id, fn)
    files: dict[str, list[str] | None] = field(default_factory=dict)

    def section(self, section: _Section, data: dict) -> str | None:
        try:
            return section.render(data, self)
        except Exception as e:  # noqa: BLE001 - the raw data is shown instead of nothing
            note = f"(this section could not be rendered: {type(e).__name__}: {e}; its data:)"
            raw = data.get(section.key) if section.key else None
            return f'<p class="note">{_e(note)}</p>{_value(raw)}'

    def ref(self, path: str, line: int, function: str = "") -> str:
        key = (path, line)
        if key not in self.refs:
            self.refs[key] = (f"src-{len(self.refs) + 1}", function)
        return self.refs[key][0]

    def lines(self, path: str) -> list[str] | None:
        """The lines of the file `path` names (relative: to the working directory, else to this
        checkout), or None where there is none."""
        if path not in self.files:
            self.files[path] = None
            candidates = [path] if os.path.isabs(path) else [path, os.path.join(_REPOSITORY, path)]
            for candidate in candidates:
                try:
                    if os.path.isfile(candidate) and os.path.getsize(candidate) < _MAX_SOURCE_BYTES:
                        with open(candidate, encoding="utf-8", errors="replace") as f:
                            self.files[path] = f.read().splitlines()
                        break
                except OSError:
                    continue
        return self.files[path]

    def snippet(self, path: str, line) -> str:
        """The lines around `path:line`, that line marked; a note where the file is not here."""
        lines = self.lines(str(path)) if path else None
        if not isinstance(line, int) or not lines or not 1 <= line <= len(lines):
            return '<p class="note">(source not available where this page was rendered)</p>'
        first, last = max(1, line - _CONTEXT_LINES), min(len(lines), line + _CONTEXT_LINES)
        width = len(str(last))
        rows = []
        for n in range(first, last + 1):
            mark = ' class="hit"' if n == line else ""
            number = f'<span class="ln">{n:>{width}}</span>'
            rows.append(f"<span{mark}>{number} {_e(lines[n - 1])}</span>")
        return f'<pre class="snippet">{"".join(rows)}</pre>'

    def source_line(self, path: str, line: int) -> str:
        lines = self.lines(path)
        return lines[line - 1].strip() if lines and 1 <= line <= len(lines) else ""


def _summary(data: dict, p: _Page) -> str:
    summary = data.get("summary")
    if not isinstance(summary, dict):
        return _value(summary)
    names = p.summary_names
    tiles = []
    for key, value in summary.items():
        warn = key in _WORTH_A_LOOK and isinstance(value, int | float) and value > 0
        shown = f"{value:.3f}" if isinstance(value, float) else _plain(value)
        tiles.append(
            f'<div class="tile{" warn" if warn else ""}"><div class="value">{shown}</div>'
            f'<div class="label">{_e(names.get(key, key.replace("_", " ")))}</div></div>'
        )
    return f'<div class="tiles">{"".join(tiles)}</div>'


_WORTH_A_LOOK = {"graph_break_sites", "recompiles", "fallback_ops", "graphs_not_on_tape"}


def _tests(data: dict, p: _Page) -> str | None:
    tests = data.get("tests")
    if tests is None:
        return None
    columns = [
        _Col("test", "test", lambda v: f"<code>{_e(v)}</code>"),
        _Col("outcome", "outcome", lambda v: f'<span class="outcome-{_slug(v)}">{_e(v)}</span>'),
        _Col("graphs", "graphs"),
        _Col("graph_break_sites", "break sites"),
        _Col("recompiles", "recompiles"),
        _Col("fallback_ops", "fallback ops"),
        _Col("compile_seconds", "compile s", _seconds),
    ]
    return _records(tests, columns)


def _graphs(data: dict, p: _Page) -> str:
    graphs = _list(data, "graphs")

    def compile_id(v, g, i):
        return f'<a href="#tapes-{i}">{_e(v)}</a>'

    def frame(v, g, i):
        where = g.get("frame_file") or ""
        return f'<code title="{_e(_short_path(where))}">{_e(v)}</code>'

    def ended(v, g, i):
        if g.get("not_on_tape"):
            return f'<span class="bad">not on the tape: {_e(g["not_on_tape"])}</span>'
        return _e(v)

    columns = [
        _Col("compile_id", "compile id", compile_id, row=True),
        _Col("frame", "frame", frame, row=True),
        _Col("dynamo_ops", "Dynamo ops"),
        _Col("forward_entries", "forward entries"),
        _Col("backward_entries", "backward entries"),
        _Col("saved_bytes", "bytes saved for backward", _bytes),
        _Col("fallback_ops", "fallback ops", _fallbacks),
        _Col("compile_seconds", "compile s", _seconds),
        _Col("ended_by", "graph ended by", ended, row=True, cls="text"),
        _Col("ddp_bucket", "DDP bucket", optional=True),
    ]
    return _records(graphs, columns, hidden={"tapes", "frame_file", "not_on_tape"})


def _chart(data: dict, p: _Page) -> str | None:
    """Two bar charts side by side, a row per graph: bytes saved for the backward, compile s."""
    graphs = [g for g in _list(data, "graphs") if isinstance(g, dict)]
    if not graphs:
        return None
    label_w, bar_w, value_w, row_h, top = 340, 300, 90, 20, 26
    panels = [("saved_bytes", "bytes saved for backward", _bytes), ("compile_seconds",
              "compile time", lambda v: f"{v:.3f} s")]  # fmt: skip
    width = label_w + len(panels) * (bar_w + value_w)
    height = top + row_h * len(graphs) + 6
    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="bytes saved and compile time per graph">'
    ]
    for k, (key, heading, fmt) in enumerate(panels):
        x0 = label_w + k * (bar_w + value_w)
        out.append(f'<text class="head" x="{x0}" y="16">{_e(heading)}</text>')
        values = [_number(g.get(key)) for g in graphs]
        scale = max(values) or 1
        for i, (g, v) in enumerate(zip(graphs, values)):
            y = top + i * row_h
            w = max(1.0, bar_w * v / scale) if v else 0
            tip = f"{g.get('compile_id', '?')} {g.get('frame', '')}: {fmt(v)}"
            out.append(
                f'<rect class="bar{k}" x="{x0}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}">'
                f"<title>{_e(tip)}</title></rect>"
                f'<text x="{x0 + w + 4:.1f}" y="{y + row_h - 6}">{_e(fmt(v))}</text>'
            )
    for i, g in enumerate(graphs):
        label = f"{g.get('compile_id', '?')}  {g.get('frame', '')}"
        short = label if len(label) <= 42 else label[:41] + "…"
        out.append(
            f'<text class="label" x="{label_w - 8}" y="{top + i * row_h + row_h - 6}">'
            f"<title>{_e(label)}</title>{_e(short)}</text>"
        )
    out.append("</svg>")
    chart = f'<div class="scroll">{"".join(out)}</div>'
    if len(graphs) > _CHART_OPEN:  # a test run's hundreds of graphs: folded
        return f"<details><summary>{len(graphs)} graphs</summary>{chart}</details>"
    return chart


_CHART_OPEN = 40


def _breaks(data: dict, p: _Page) -> str:
    breaks = _list(data, "breaks")
    if not breaks:
        return _NONE
    known = {"filename", "lineno", "function", "reason", "count", "kind", "short_reason", "test"}
    cards = []
    for i, b in enumerate(breaks):
        if not isinstance(b, dict):
            cards.append(f'<div class="card">{_value(b)}</div>')
            continue
        where = f"{_short_path(str(b.get('filename', '?')))}:{b.get('lineno', '?')}"
        head = [f"<code>{_e(where)}</code>"]
        if b.get("function"):
            head.append(f"in <code>{_e(b['function'])}</code>")
        count = b.get("count")
        if count is not None:
            plural = "" if count == 1 else "s"
            head.append(f'<span class="count">{_e(count)} graph{plural} ended here</span>')
        if b.get("test"):
            head.append(f'<span class="test">{_e(b["test"])}</span>')
        reason = b.get("short_reason") or b.get("kind") or _first_line(b.get("reason", ""))
        full = b.get("reason")
        details = ""
        if full and str(full).strip() != str(reason).strip():
            details = (
                f"<details><summary>Dynamo's full reason</summary>"
                f'<pre class="text">{_e(full)}</pre></details>'
            )
        cards.append(
            f'<div class="card" id="break-{i}"><div class="card-head">{" ".join(head)}</div>'
            f'<p class="reason">{_e(reason)}</p>'
            f"{p.snippet(b.get('filename'), b.get('lineno'))}{details}"
            f"{_extras(b, known)}</div>"
        )
    return "".join(cards)


_SKIPPED = "frame run as Python"


def _skipped_frames(data: dict, p: _Page) -> str | None:
    """The frames Dynamo ran as Python: a "skipped_frames" list where the data has one, else
    the splits of that kind."""
    if "skipped_frames" in data:
        frames = data["skipped_frames"]
        if not isinstance(frames, list):
            return _value(frames)
    else:
        frames = [s for s in _list(data, "splits") if isinstance(s, dict)]
        frames = [s for s in frames if s.get("kind") == _SKIPPED]
        if not frames:
            return None
    if not frames:
        return _NONE
    cards = []
    for f in frames:
        if not isinstance(f, dict):
            cards.append(f'<div class="card">{_value(f)}</div>')
            continue
        path, line = _location(f)
        function = f.get("frame") or f.get("function") or ""
        head = [f"<code>{_e(function)}</code>"] if function else []
        if path:
            head.append(f"at <code>{_e(_short_path(path))}:{_e(line)}</code>")
        if f.get("count", 1) != 1:
            head.append(f'<span class="count">{_e(f["count"])} times</span>')
        if f.get("test"):
            head.append(f'<span class="test">{_e(f["test"])}</span>')
        known = {"kind", "frame", "function", "where", "filename", "lineno", "reason", "count"}
        cards.append(
            f'<div class="card"><div class="card-head">{" ".join(head)}</div>'
            f'<p class="reason">{_e(f.get("reason", ""))}</p>'
            f"{p.snippet(path, line) if path else ''}{_extras(f, known | {'test'})}</div>"
        )
    return "".join(cards)


def _splits(data: dict, p: _Page) -> str:
    columns = [
        _Col("kind", "kind"),
        _Col("frame", "frame", lambda v: f"<code>{_e(v)}</code>"),
        _Col("where", "where", lambda v: f"<code>{_e(_short_path(str(v)))}</code>"),
        _Col("count", "count"),
        _Col("reason", "reason", cls="text"),
    ]
    return _records(_list(data, "splits"), columns)


def _recompiles(data: dict, p: _Page) -> str:
    columns = [
        _Col("compile_id", "compile id"),
        _Col("frame", "frame", lambda v: f"<code>{_e(v)}</code>"),
        _Col("reason", "guard that failed", lambda v: f'<pre class="text">{_e(v)}</pre>'),
    ]
    return _records(_list(data, "recompiles"), columns)


def _tapes(data: dict, p: _Page) -> str:
    graphs = _list(data, "graphs")
    if not graphs:
        return _NONE
    buttons = (
        '<p class="tools" hidden><button type="button" data-tapes="open">unfold all</button> '
        '<button type="button" data-tapes="close">fold all</button></p>'
    )
    parts = [buttons]
    for i, g in enumerate(graphs):
        if not isinstance(g, dict):
            parts.append(_value(g))
            continue
        tapes = g.get("tapes") or []
        counts = f"{g.get('forward_entries', '?')} forward, {g.get('backward_entries', '?')} "
        counts += "backward entries"
        summary = (
            f"<code>{_e(g.get('compile_id', '?'))}</code> <code>{_e(g.get('frame', ''))}</code>"
            f' <span class="muted">{_e(counts)}</span>'
        )
        body = []
        if g.get("not_on_tape"):
            body.append(f'<p class="bad">Not compiled on the tape: {_e(g["not_on_tape"])}</p>')
        for text in tapes:
            body.append(_tape(str(text), p))
        if not tapes and not g.get("not_on_tape"):
            body.append(_NONE)
        parts.append(
            f'<details class="tapes" id="tapes-{i}"><summary>{summary}</summary>'
            f"{''.join(body)}</details>"
        )
    return "".join(parts)


# a tape line's source: `... # path:line in fn` at its end, or `(from path:line[ in fn])`
_SOURCE_COMMENT = re.compile(
    r"(?P<ref>#\s*(?P<path>[^\s#][^#]*?):(?P<line>\d+)(?:\s+in\s+(?P<fn>\S+))?)\s*$"
)
_SOURCE_FROM = re.compile(
    r"(?P<ref>\(from\s+(?P<path>[^()\s][^()]*?):(?P<line>\d+)(?:\s+in\s+(?P<fn>[^()\s]+))?\))"
)


def _tape(text: str, p: _Page) -> str:
    lines = []
    for n, line in enumerate(text.splitlines()):
        match = _SOURCE_COMMENT.search(line) or _SOURCE_FROM.search(line)
        if match is None:
            code = _e(line)
        else:
            path, number, fn = match["path"].strip(), int(match["line"]), match["fn"] or ""
            anchor = p.ref(path, number, fn)
            tip = p.source_line(path, number) or f"{path}:{number}"
            code = (
                f'{_e(line[: match.start("ref")])}<a class="src" href="#{anchor}" '
                f'title="{_e(tip)}">{_e(match["ref"])}</a>{_e(line[match.end("ref") :])}'
            )
        lines.append(f'<span class="head">{code}</span>' if n == 0 else code)
    return f'<pre class="tape">{chr(10).join(lines)}</pre>'


def _sources(data: dict, p: _Page) -> str | None:
    if not p.refs:
        return None
    cards = []
    for (path, line), (anchor, fn) in p.refs.items():
        where = f"{_short_path(path)}:{line}" + (f" in {fn}" if fn else "")
        cards.append(
            f'<div class="card" id="{anchor}"><div class="card-head"><code>{_e(where)}</code>'
            f"</div>{p.snippet(path, line)}</div>"
        )
    return "".join(cards)


_SECTIONS = [
    _Section("summary", "summary", "Summary", _summary),
    _Section("tests", "tests", "Tests", _tests),
    _Section("graphs", "graphs", "Graphs", _graphs),
    _Section(None, "chart", "Bytes saved and compile time per graph", _chart),
    _Section("breaks", "breaks", "Graph-break sites", _breaks),
    _Section("skipped_frames", "skipped", "Frames run as Python", _skipped_frames),
    _Section("splits", "splits", "Splits", _splits),
    _Section("recompiles", "recompiles", "Recompiles", _recompiles),
    _Section(None, "tapes", "Tapes", _tapes),
]


def _count(data: dict, section: _Section) -> str:
    value = data.get(section.key) if section.key else None
    return f' <span class="n">{len(value)}</span>' if isinstance(value, list) else ""


# ---- tables and generic values --------------------------------------------------------------


@dataclass
class _Col:
    key: str
    header: str
    fmt: Callable | None = None  # value -> html; with row=True, (value, item, index) -> html
    row: bool = False
    cls: str = ""
    optional: bool = False  # left out when no item has a true value


def _records(items, columns: list[_Col], hidden: set[str] = frozenset()) -> str:
    """A table of dicts: the known columns, a test run's "test" first, then a column for each
    key no column knows (so nothing the data has is dropped)."""
    if not isinstance(items, list):
        return _value(items)
    if not items:
        return _NONE
    dicts = [x for x in items if isinstance(x, dict)]
    columns = [c for c in columns if not c.optional or any(d.get(c.key) for d in dicts)]
    keys = {c.key for c in columns}
    if "test" not in keys and any("test" in d for d in dicts):
        columns.insert(0, _Col("test", "test", lambda v: f"<code>{_e(v)}</code>"))
        keys.add("test")
    for d in dicts:
        for k in d:
            if k not in keys and k not in hidden:
                columns.append(_Col(k, k.replace("_", " ")))
                keys.add(k)
    head = "".join(f"<th>{_e(c.header)}</th>" for c in columns)
    rows = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            rows.append(f'<tr><td colspan="{len(columns)}">{_value(item)}</td></tr>')
            continue
        cells = []
        for c in columns:
            if c.key not in item:
                cells.append("<td></td>")
                continue
            v = item[c.key]
            try:
                shown = (c.fmt(v, item, i) if c.row else c.fmt(v)) if c.fmt else _value(v)
            except Exception:  # noqa: BLE001 - a value of an unexpected type: shown as it is
                shown = _value(v)
            cells.append(f'<td class="{c.cls}">{shown}</td>' if c.cls else f"<td>{shown}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def _extras(item: dict, known: set[str]) -> str:
    """The keys of an item its card does not show, as a small table."""
    rest = {k: v for k, v in item.items() if k not in known}
    return f'<div class="extras">{_value(rest)}</div>' if rest else ""


def _value(v) -> str:
    """Any JSON value as html: a list of dicts a table, a dict a key/value table, a list an
    itemized list, multi-line text preformatted."""
    if v is None:
        return '<span class="muted">—</span>'
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return _plain(v)
    if isinstance(v, str):
        return f'<pre class="text">{_e(v)}</pre>' if "\n" in v.strip() else _e(v)
    if isinstance(v, dict):
        if not v:
            return _NONE
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_value(x)}</td></tr>" for k, x in v.items())
        return f'<div class="scroll"><table class="kv">{rows}</table></div>'
    if isinstance(v, list | tuple):
        if not v:
            return _NONE
        if all(isinstance(x, dict) for x in v):
            return _records(list(v), [])
        return "<ul>" + "".join(f"<li>{_value(x)}</li>" for x in v) + "</ul>"
    return _e(json.dumps(v, default=str))


def _make_generic(key: str) -> Callable:
    def render(data: dict, p: _Page) -> str:
        return _value(data.get(key))

    return render


def _plain(v) -> str:
    if isinstance(v, float):
        return _e(f"{v:.6g}")
    return _e(v)


def _number(v) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def _bytes(v) -> str:
    if not isinstance(v, int | float):
        return _value(v)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(v) < 1024 or unit == "GiB":
            return f"{v:,.0f} {unit}" if unit == "B" else f"{v:,.1f} {unit}"
        v /= 1024
    return _e(v)


def _seconds(v) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) else _value(v)


def _fallbacks(v) -> str:
    if not isinstance(v, list):
        return _value(v)
    if not v:
        return "0"
    ops = sorted({str(op.get("op", op)) if isinstance(op, dict) else str(op) for op in v})
    return f'{len(v)} <span class="muted">({_e(", ".join(ops))})</span>'


def _location(item: dict) -> tuple[str, int | None]:
    """(path, line) of an item naming `filename` and `lineno`, or `where` as "path:line"."""
    if item.get("filename"):
        line = item.get("lineno")
        return str(item["filename"]), line if isinstance(line, int) else None
    path, _, line = str(item.get("where") or "").rpartition(":")
    return (path, int(line)) if path and line.isdigit() else ("", None)


def _list(data: dict, key: str) -> list:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _first_line(text) -> str:
    lines = [x.strip() for x in str(text).strip().splitlines()]
    return lines[0] if lines else ""


def _short_path(path: str) -> str:
    """Paths inside the working directory are shown relative to it (as the markdown does)."""
    if not os.path.isabs(path):
        return path
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if relative.startswith("..") else relative


def _slug(text) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def _e(value) -> str:
    return html.escape(str(value), quote=True)


_NONE = '<p class="muted">(none)</p>'

# nothing is fetched: no network, fonts, frames or images other than inline ones
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

# first in <head>: an uncaught error anywhere is written on the page (tests read it there)
_ERROR_SCRIPT = (
    'window.addEventListener("error",function(e){document.documentElement'
    '.setAttribute("data-report-error",String(e.message||e));});'
)

_SCRIPT = """
(function () {
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id && document.getElementById(id);
    if (!el) return;
    for (var p = el; p; p = p.parentElement) if (p.tagName === "DETAILS") p.open = true;
    el.scrollIntoView();
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
  document.querySelectorAll(".tools").forEach(function (t) { t.hidden = false; });
  document.querySelectorAll("button[data-tapes]").forEach(function (b) {
    b.addEventListener("click", function () {
      var open = b.getAttribute("data-tapes") === "open";
      document.querySelectorAll("details.tapes").forEach(function (d) { d.open = open; });
    });
  });
  document.documentElement.setAttribute("data-report-ready", "1");
})();
"""

_CSS = """
:root { --fg: #1f2328; --muted: #656d76; --bg: #fff; --panel: #f6f8fa; --line: #d0d7de;
  --accent: #0969da; --warn: #9a6700; --warn-bg: #fff8c5; --bad: #cf222e; --hit: #fff8c5;
  --bar0: #54aeff; --bar1: #f0883e; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #8d96a0; --bg: #0d1117; --panel: #161b22; --line: #30363d;
    --accent: #4493f8; --warn: #d29922; --warn-bg: #2e2a1a; --bad: #f85149; --hit: #3a3220; }
}
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header, main { max-width: 1200px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 16px; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
nav { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 13px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code, pre, .tape { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo,
  Consolas, monospace; font-size: 12.5px; }
.n { color: var(--muted); font-weight: normal; font-size: 13px; }
.muted, .note { color: var(--muted); }
.bad { color: var(--bad); }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(128px, 1fr)); gap: 8px; }
.tile { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
  padding: 8px 10px; }
.tile .value { font-size: 20px; font-weight: 600; }
.tile .label { color: var(--muted); font-size: 12px; }
.tile.warn { background: var(--warn-bg); border-color: var(--warn); }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left;
  vertical-align: top; white-space: nowrap; }
th { background: var(--panel); font-weight: 600; }
td.text { white-space: normal; min-width: 32em; max-width: 64em; }
td pre.text { margin: 0; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
  padding: 8px 10px; overflow-x: auto; margin: 6px 0; }
pre.text { white-space: pre-wrap; word-break: break-word; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.card-head { display: flex; flex-wrap: wrap; gap: 4px 10px; align-items: baseline; }
.count, .test { color: var(--muted); font-size: 12px; }
.reason { margin: 6px 0; }
.snippet > span { display: block; }
.snippet .hit { background: var(--hit); font-weight: 600; }
.snippet .ln { color: var(--muted); user-select: none; padding-right: 6px; }
details { margin: 6px 0; }
summary { cursor: pointer; }
details.tapes { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
.tape .head { font-weight: 600; }
.tape a.src { color: var(--muted); }
.extras { margin-top: 6px; font-size: 12px; }
.chart text { font: 12px system-ui, sans-serif; fill: var(--fg); }
.chart text.head { font-weight: 600; }
.chart text.label { text-anchor: end; font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.chart .bar0 { fill: var(--bar0); }
.chart .bar1 { fill: var(--bar1); }
.outcome-passed { color: #1a7f37; }
.outcome-failed { color: var(--bad); font-weight: 600; }
button { font: inherit; font-size: 12px; }
"""
