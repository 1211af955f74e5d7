"""Compile reports as one self-contained HTML page, beside the markdown and the JSON.

Rendered from the same plain data (`Tracked.as_dict()`, plus "tests" for a test run), so it
can be regenerated from the JSON. The page loads nothing: its stylesheet and its small script
are inline (assets.py), its chart is SVG drawn here (chart.py), and a Content-Security-Policy
forbids any fetch.

What it shows (sections.py, a renderer each): the summary; a test run's tests; the graphs,
with a chart of the bytes each saves for the backward and of its compile time; the break sites,
each with the lines of source around it (read from the file the data names, when it exists
where the page is rendered: sources.py); the frames Dynamo ran as Python; splits; recompiles;
each graph's tapes (folded), a tape line that ends with `# path:line [in fn]` or
`(from path:line)` linked to that source line.

Rendering is defensive: a top-level key no section knows gets a section of its own, an item's
key a table does not know gets a column of its own (`values.records`), and a section that fails
to render shows its raw data instead. A new section is one `_SECTIONS` row.

The summary's labels come from the caller (report.py passes the markdown's, so both say the
same); this package imports nothing of the rest of dynamo_tape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .assets import CSP, CSS, ERROR_SCRIPT, SCRIPT
from .sections import (
    Page,
    break_cards,
    frame_cards,
    generic,
    graphs_chart,
    graphs_table,
    recompiles_table,
    source_cards,
    splits_table,
    summary_tiles,
    tape_folds,
    tests_table,
)
from .values import esc, slug, value_html

__all__ = ["page", "write_html"]


def write_html(data: dict, path: str, title: str, summary_names: dict | None = None) -> str:
    """Write the page of `data` to `path`; returns the path. `summary_names`: the summary's
    labels by key (the markdown's, so both say the same); a key without one shows as itself."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(page(data, title, summary_names))
    return path


def page(data: dict, title: str, summary_names: dict | None = None) -> str:
    """The page of `data` as one self-contained HTML document (see `write_html`)."""
    p = Page(summary_names=dict(summary_names or {}))
    sections = []
    for section in _SECTIONS:
        body = _render(section, data, p)
        if body is not None:
            sections.append((section, body))
    known = {s.key for s in _SECTIONS if s.key}
    for key in data:
        if key not in known:
            heading = str(key).replace("_", " ")
            extra = Section(key, f"extra-{slug(key)}", heading, generic(key))
            sections.append((extra, _render(extra, data, p)))
    # last: the cards of the source lines the sections above linked to
    sources = Section(None, "sources", "Source lines the tapes name", source_cards)
    body = _render(sources, data, p)
    if body is not None:
        sections.append((sources, body))
    nav = " ".join(f'<a href="#{s.id}">{esc(s.heading)}{_count(data, s)}</a>' for s, _ in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">',
        f"<title>{esc(title)}</title>",
        f"<script>{ERROR_SCRIPT}</script>",
        f"<style>{CSS}</style>",
        "</head><body>",
        f"<header><h1>{esc(title)}</h1><nav>{nav}</nav></header>",
        "<main>",
        *(
            f'<section id="{s.id}"><h2>{esc(s.heading)}{_count(data, s)}</h2>{b}</section>'
            for s, b in sections
        ),
        "</main>",
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


@dataclass
class Section:
    """One section of the page: the data key it shows, its anchor, heading and renderer."""

    key: str | None  # the data key it shows (None: derived from other keys)
    id: str
    heading: str
    render: Callable  # (data, page) -> html, or None to leave the section out


_SECTIONS = [
    Section("summary", "summary", "Summary", summary_tiles),
    Section("tests", "tests", "Tests", tests_table),
    Section("graphs", "graphs", "Graphs", graphs_table),
    Section(None, "chart", "Bytes saved and compile time per graph", graphs_chart),
    Section("breaks", "breaks", "Graph-break sites", break_cards),
    Section("skipped_frames", "skipped", "Frames run as Python", frame_cards),
    Section("splits", "splits", "Splits", splits_table),
    Section("recompiles", "recompiles", "Recompiles", recompiles_table),
    Section(None, "tapes", "Tapes", tape_folds),
]


def _render(section: Section, data: dict, p: Page) -> str | None:
    """The section's html; where its renderer fails, a note saying why and its raw data."""
    try:
        return section.render(data, p)
    except Exception as e:  # noqa: BLE001 - the raw data is shown instead of nothing
        note = f"(this section could not be rendered: {type(e).__name__}: {e}; its data:)"
        raw = data.get(section.key) if section.key else None
        return f'<p class="note">{esc(note)}</p>{value_html(raw)}'


def _count(data: dict, section: Section) -> str:
    """` <span class="n">3</span>` after the heading of a section that shows a list of 3."""
    value = data.get(section.key) if section.key else None
    return f' <span class="n">{len(value)}</span>' if isinstance(value, list) else ""
