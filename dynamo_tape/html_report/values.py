"""HTML for any JSON value, and the small pieces the sections are made of: a table of records
(its known columns, then a column for each key they do not know, so nothing the data has is
dropped), key/value tables, number, byte and second formats, paths, escaping."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

NONE = '<p class="muted">(none)</p>'


@dataclass
class Col:
    """A column of `records`: the items' `key`, under `header`."""

    key: str
    header: str
    fmt: Callable | None = None  # value -> html; with row=True, (value, item, index) -> html
    row: bool = False
    cls: str = ""
    optional: bool = False  # left out when no item has a true value


def records(items, columns: list[Col], hidden: set[str] = frozenset()) -> str:
    """A table of dicts: the known columns, a test run's "test" first, then a column for each
    key no column knows (so nothing the data has is dropped)."""
    if not isinstance(items, list):
        return value_html(items)
    if not items:
        return NONE
    dicts = [x for x in items if isinstance(x, dict)]
    columns = [c for c in columns if not c.optional or any(d.get(c.key) for d in dicts)]
    keys = {c.key for c in columns}
    if "test" not in keys and any("test" in d for d in dicts):
        columns.insert(0, Col("test", "test", lambda v: f"<code>{esc(v)}</code>"))
        keys.add("test")
    for d in dicts:
        for k in d:
            if k not in keys and k not in hidden:
                columns.append(Col(k, k.replace("_", " ")))
                keys.add(k)
    head = "".join(f"<th>{esc(c.header)}</th>" for c in columns)
    rows = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            rows.append(f'<tr><td colspan="{len(columns)}">{value_html(item)}</td></tr>')
            continue
        cells = []
        for c in columns:
            if c.key not in item:
                cells.append("<td></td>")
                continue
            v = item[c.key]
            try:
                shown = (c.fmt(v, item, i) if c.row else c.fmt(v)) if c.fmt else value_html(v)
            except Exception:  # noqa: BLE001 - a value of an unexpected type: shown as it is
                shown = value_html(v)
            cells.append(f'<td class="{c.cls}">{shown}</td>' if c.cls else f"<td>{shown}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def extras(item: dict, known: set[str]) -> str:
    """The keys of an item its card does not show, as a small table."""
    rest = {k: v for k, v in item.items() if k not in known}
    return f'<div class="extras">{value_html(rest)}</div>' if rest else ""


def value_html(v) -> str:
    """Any JSON value as html: a list of dicts a table, a dict a key/value table, a list an
    itemized list, multi-line text preformatted."""
    if v is None:
        return '<span class="muted">—</span>'
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return plain(v)
    if isinstance(v, str):
        return f'<pre class="text">{esc(v)}</pre>' if "\n" in v.strip() else esc(v)
    if isinstance(v, dict):
        if not v:
            return NONE
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{value_html(x)}</td></tr>" for k, x in v.items())
        return f'<div class="scroll"><table class="kv">{rows}</table></div>'
    if isinstance(v, list | tuple):
        if not v:
            return NONE
        if all(isinstance(x, dict) for x in v):
            return records(list(v), [])
        return "<ul>" + "".join(f"<li>{value_html(x)}</li>" for x in v) + "</ul>"
    return esc(json.dumps(v, default=str))


def plain(v) -> str:
    """A number or text as it is (a float to 6 significant digits), escaped."""
    if isinstance(v, float):
        return esc(f"{v:.6g}")
    return esc(v)


def as_number(v) -> float:
    """A number as a float, to draw; anything else (None, text, a bool) 0."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def fmt_bytes(v) -> str:
    """`512 B`, `2.0 KiB`...: a byte count in the unit that keeps it under 1024 (GiB at most)."""
    if not isinstance(v, int | float):
        return value_html(v)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(v) < 1024 or unit == "GiB":
            return f"{v:,.0f} {unit}" if unit == "B" else f"{v:,.1f} {unit}"
        v /= 1024
    return esc(v)


def fmt_seconds(v) -> str:
    """Seconds, to the millisecond."""
    return f"{v:.3f}" if isinstance(v, int | float) else value_html(v)


def fmt_fallbacks(v) -> str:
    """A graph's fallback ops: how many, and which."""
    if not isinstance(v, list):
        return value_html(v)
    if not v:
        return "0"
    ops = sorted({str(op.get("op", op)) if isinstance(op, dict) else str(op) for op in v})
    return f'{len(v)} <span class="muted">({esc(", ".join(ops))})</span>'


def location(item: dict) -> tuple[str, int | None]:
    """(path, line) of an item naming `filename` and `lineno`, or `where` as "path:line"."""
    if item.get("filename"):
        line = item.get("lineno")
        return str(item["filename"]), line if isinstance(line, int) else None
    path, _, line = str(item.get("where") or "").rpartition(":")
    return (path, int(line)) if path and line.isdigit() else ("", None)


def list_at(data: dict, key: str) -> list:
    """`data[key]` where it is a list, else an empty one."""
    value = data.get(key)
    return value if isinstance(value, list) else []


def first_line(text) -> str:
    """The first line of `text` with anything on it, stripped."""
    lines = [x.strip() for x in str(text).strip().splitlines()]
    return lines[0] if lines else ""


def short_path(path: str) -> str:
    """Paths inside the working directory are shown relative to it (as the markdown does)."""
    if not os.path.isabs(path):
        return path
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if relative.startswith("..") else relative


def slug(text) -> str:
    """`text` as an id or a class name: lower case, other characters a hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def esc(value) -> str:
    """Any value as text, escaped for html (quotes too: safe in an attribute)."""
    return html.escape(str(value), quote=True)
