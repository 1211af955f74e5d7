"""The page's sections: each renders one part of the report's data as html, `(data, page)`
-> html, or None to leave its section out. html_report's `_SECTIONS` puts them in order.

They read the data defensively (it may come from an older or a newer JSON): a list that is
not there is empty, an item that is not a dict is shown as it is, and an item's keys a table or
a card does not know are shown beside what it does (`records`, `extras`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .chart import bar_chart
from .sources import Sources, linked_tape
from .values import (
    NONE,
    Col,
    esc,
    extras,
    first_line,
    fmt_bytes,
    fmt_fallbacks,
    fmt_seconds,
    list_at,
    location,
    plain,
    records,
    short_path,
    slug,
    value_html,
)


@dataclass
class Page:
    """What the sections of one page share: the summary's labels (by key) and its sources."""

    summary_names: dict[str, str] = field(default_factory=dict)
    sources: Sources = field(default_factory=Sources)


def summary_tiles(data: dict, p: Page) -> str:
    """The summary's numbers as tiles, labelled; those worth a look (breaks, fallbacks...) marked
    where they are not 0."""
    summary = data.get("summary")
    if not isinstance(summary, dict):
        return value_html(summary)
    names = p.summary_names
    tiles = []
    for key, value in summary.items():
        warn = key in _WORTH_A_LOOK and isinstance(value, int | float) and value > 0
        shown = f"{value:.3f}" if isinstance(value, float) else plain(value)
        tiles.append(
            f'<div class="tile{" warn" if warn else ""}"><div class="value">{shown}</div>'
            f'<div class="label">{esc(names.get(key, key.replace("_", " ")))}</div></div>'
        )
    return f'<div class="tiles">{"".join(tiles)}</div>'


_WORTH_A_LOOK = {"graph_break_sites", "recompiles", "fallback_ops", "graphs_not_on_tape"}


def tests_table(data: dict, p: Page) -> str | None:
    """A test run's tests, a row each (a compile's report has none: no section)."""
    tests = data.get("tests")
    if tests is None:
        return None
    columns = [
        Col("test", "test", lambda v: f"<code>{esc(v)}</code>"),
        Col("outcome", "outcome", lambda v: f'<span class="outcome-{slug(v)}">{esc(v)}</span>'),
        Col("graphs", "graphs"),
        Col("graph_break_sites", "break sites"),
        Col("recompiles", "recompiles"),
        Col("fallback_ops", "fallback ops"),
        Col("compile_seconds", "compile s", fmt_seconds),
    ]
    return records(tests, columns)


def graphs_table(data: dict, p: Page) -> str:
    """A row per graph, its compile id linked to its tapes."""
    graphs = list_at(data, "graphs")

    def compile_id(v, g, i):
        return f'<a href="#tapes-{i}">{esc(v)}</a>'

    def frame(v, g, i):  # the user's function (`forward (resumed after line 17)`) where known
        where = short_path(g.get("frame_file") or "")
        tip = f"{v} in {where}" if where else str(v)
        return f'<code title="{esc(tip)}">{esc(g.get("function") or v)}</code>'

    def ended(v, g, i):
        if g.get("not_on_tape"):
            return f'<span class="bad">not on the tape: {esc(g["not_on_tape"])}</span>'
        return esc(v)

    columns = [
        Col("compile_id", "compile id", compile_id, row=True),
        Col("frame", "frame", frame, row=True),
        Col("dynamo_ops", "Dynamo ops"),
        Col("forward_entries", "forward entries"),
        Col("backward_entries", "backward entries"),
        Col("saved_bytes", "bytes saved for backward", fmt_bytes),
        Col("fallback_ops", "fallback ops", fmt_fallbacks),
        Col("compile_seconds", "compile s", fmt_seconds),
        Col("ended_by", "graph ended by", ended, row=True, cls="text"),
        Col("ddp_bucket", "DDP bucket", optional=True),
    ]
    return records(graphs, columns, hidden={"tapes", "frame_file", "not_on_tape", "function"})


def graphs_chart(data: dict, p: Page) -> str | None:
    """Bytes saved for the backward and compile time per graph, as bars (chart.py)."""
    graphs = [g for g in list_at(data, "graphs") if isinstance(g, dict)]
    return bar_chart(graphs) if graphs else None


def break_cards(data: dict, p: Page) -> str:
    """A card per graph-break site: where, how many graphs it ended, Dynamo's reason (short,
    the full one folded) and the lines of source around it."""
    breaks = list_at(data, "breaks")
    if not breaks:
        return NONE
    known = {"filename", "lineno", "function", "reason", "count", "kind", "short_reason", "test"}
    known |= {"explained"}
    cards = []
    for i, b in enumerate(breaks):
        if not isinstance(b, dict):
            cards.append(f'<div class="card">{value_html(b)}</div>')
            continue
        where = f"{short_path(str(b.get('filename', '?')))}:{b.get('lineno', '?')}"
        head = [f"<code>{esc(where)}</code>"]
        if b.get("function"):
            head.append(f"in <code>{esc(b['function'])}</code>")
        count = b.get("count")
        if count is not None:
            plural = "" if count == 1 else "s"
            head.append(f'<span class="count">{esc(count)} graph{plural} ended here</span>')
        if b.get("test"):
            head.append(f'<span class="test">{esc(b["test"])}</span>')
        reason = b.get("short_reason") or b.get("kind") or first_line(b.get("reason", ""))
        full = b.get("reason")
        details = ""
        if full and str(full).strip() != str(reason).strip():
            details = (
                f"<details><summary>Dynamo's full reason</summary>"
                f'<pre class="text">{esc(full)}</pre></details>'
            )
        cards.append(
            f'<div class="card" id="break-{i}"><div class="card-head">{" ".join(head)}</div>'
            f'<p class="reason">{esc(reason)}</p>'
            f"{p.sources.snippet(b.get('filename'), b.get('lineno'))}"
            f"{explained(b.get('explained'))}{details}{extras(b, known)}</div>"
        )
    return "".join(cards)


def explained(parts) -> str:
    """What Dynamo says about a break, as it says it: for each of its graph breaks, its
    explanation, hints and the page on that break."""
    if not isinstance(parts, list):
        return "" if parts is None else value_html(parts)
    out = []
    for part in parts:
        if not isinstance(part, dict):
            out.append(value_html(part))
            continue
        head = f"<strong>{esc(part.get('gb_type', ''))}</strong>" if part.get("gb_type") else ""
        body = (
            f'<pre class="text">{esc(part["explanation"])}</pre>' if part.get("explanation") else ""
        )
        hints = "".join(f"<li>Hint: {esc(h)}</li>" for h in part.get("hints") or ())
        url = part.get("doc_url")
        # the address as text: the page links only within itself
        link = f"<p>Documentation: <code>{esc(url)}</code></p>" if url else ""
        out.append(f'<div class="explained">{head}{body}<ul>{hints}</ul>{link}</div>')
    return "".join(out)


_SKIPPED = "frame run as Python"


def frame_cards(data: dict, p: Page) -> str | None:
    """The frames Dynamo ran as Python: a "skipped_frames" list where the data has one, else
    the splits of that kind."""
    if "skipped_frames" in data:
        frames = data["skipped_frames"]
        if not isinstance(frames, list):
            return value_html(frames)
    else:
        frames = [s for s in list_at(data, "splits") if isinstance(s, dict)]
        frames = [s for s in frames if s.get("kind") == _SKIPPED]
        if not frames:
            return None
    if not frames:
        return NONE
    cards = []
    for f in frames:
        if not isinstance(f, dict):
            cards.append(f'<div class="card">{value_html(f)}</div>')
            continue
        path, line = location(f)
        function = f.get("frame") or f.get("function") or ""
        head = [f"<code>{esc(function)}</code>"] if function else []
        if path:
            head.append(f"at <code>{esc(short_path(path))}:{esc(line)}</code>")
        if f.get("count", 1) != 1:
            head.append(f'<span class="count">{esc(f["count"])} times</span>')
        if f.get("test"):
            head.append(f'<span class="test">{esc(f["test"])}</span>')
        known = {"kind", "frame", "function", "where", "filename", "lineno", "reason", "count"}
        cards.append(
            f'<div class="card"><div class="card-head">{" ".join(head)}</div>'
            f'<p class="reason">{esc(f.get("reason", ""))}</p>'
            f"{p.sources.snippet(path, line) if path else ''}{extras(f, known | {'test'})}</div>"
        )
    return "".join(cards)


def splits_table(data: dict, p: Page) -> str:
    """Where Dynamo split the program, a row each."""
    columns = [
        Col("kind", "kind"),
        Col("frame", "frame", lambda v: f"<code>{esc(v)}</code>"),
        Col("where", "where", lambda v: f"<code>{esc(short_path(str(v)))}</code>"),
        Col("count", "count"),
        Col("reason", "reason", cls="text"),
    ]
    return records(list_at(data, "splits"), columns)


def recompiles_table(data: dict, p: Page) -> str:
    """A row per recompile, with the guard that failed."""
    columns = [
        Col("compile_id", "compile id"),
        Col("frame", "frame", lambda v: f"<code>{esc(v)}</code>"),
        Col("reason", "guard that failed", lambda v: f'<pre class="text">{esc(v)}</pre>'),
    ]
    return records(list_at(data, "recompiles"), columns)


def tape_folds(data: dict, p: Page) -> str:
    """Each graph's tapes, folded, their source lines linked (to `source_cards`)."""
    graphs = list_at(data, "graphs")
    if not graphs:
        return NONE
    buttons = (
        '<p class="tools" hidden><button type="button" data-tapes="open">unfold all</button> '
        '<button type="button" data-tapes="close">fold all</button></p>'
    )
    parts = [buttons]
    for i, g in enumerate(graphs):
        if not isinstance(g, dict):
            parts.append(value_html(g))
            continue
        tapes = g.get("tapes") or []
        counts = f"{g.get('forward_entries', '?')} forward, {g.get('backward_entries', '?')} "
        counts += "backward entries"
        summary = (
            f"<code>{esc(g.get('compile_id', '?'))}</code> <code>{esc(g.get('frame', ''))}</code>"
            f' <span class="muted">{esc(counts)}</span>'
        )
        body = []
        if g.get("not_on_tape"):
            body.append(f'<p class="bad">Not compiled on the tape: {esc(g["not_on_tape"])}</p>')
        for text in tapes:
            body.append(linked_tape(str(text), p.sources))
        if not tapes and not g.get("not_on_tape"):
            body.append(NONE)
        parts.append(
            f'<details class="tapes" id="tapes-{i}"><summary>{summary}</summary>'
            f"{''.join(body)}</details>"
        )
    return "".join(parts)


def source_cards(data: dict, p: Page) -> str | None:
    """The lines the tapes link to, a card each; rendered last, after the tapes linked them."""
    refs = p.sources.refs
    if not refs:
        return None
    cards = []
    for (path, line), (anchor, fn) in refs.items():
        where = f"{short_path(path)}:{line}" + (f" in {fn}" if fn else "")
        cards.append(
            f'<div class="card" id="{anchor}"><div class="card-head"><code>{esc(where)}</code>'
            f"</div>{p.sources.snippet(path, line)}</div>"
        )
    return "".join(cards)


def generic(key: str) -> Callable:
    """The renderer of a top-level key no section knows: its value, whatever it is."""

    def render(data: dict, p: Page) -> str:
        return value_html(data.get(key))

    return render
