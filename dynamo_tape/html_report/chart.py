"""The graphs' chart: an inline SVG drawn here (no script, no library), two panels of bars side
by side with a row per graph, the bytes each saves for the backward and its compile time, each
bar's exact value as its tooltip. Over `_CHART_OPEN` graphs (a test run's) it comes folded."""

from __future__ import annotations

from .values import as_number, esc, fmt_bytes

_CHART_OPEN = 40


def bar_chart(graphs: list[dict]) -> str:
    """The chart of `graphs` (the report's "graphs" items, at least one)."""
    label_w, bar_w, value_w, row_h, top = 340, 300, 90, 20, 26
    panels = [("saved_bytes", "bytes saved for backward", fmt_bytes), ("compile_seconds",
              "compile time", lambda v: f"{v:.3f} s")]  # fmt: skip
    # a report written without timings (the committed ones) has no compile time to draw
    panels = [p for p in panels if any(p[0] in g for g in graphs)] or panels[:1]
    width = label_w + len(panels) * (bar_w + value_w)
    height = top + row_h * len(graphs) + 6
    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="bytes saved and compile time per graph">'
    ]
    for k, (key, heading, fmt) in enumerate(panels):
        x0 = label_w + k * (bar_w + value_w)
        out.append(f'<text class="head" x="{x0}" y="16">{esc(heading)}</text>')
        values = [as_number(g.get(key)) for g in graphs]
        scale = max(values) or 1
        for i, (g, v) in enumerate(zip(graphs, values)):
            y = top + i * row_h
            w = max(1.0, bar_w * v / scale) if v else 0
            tip = f"{g.get('compile_id', '?')} {_name(g)}: {fmt(v)}"
            out.append(
                f'<rect class="bar{k}" x="{x0}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}">'
                f"<title>{esc(tip)}</title></rect>"
                f'<text x="{x0 + w + 4:.1f}" y="{y + row_h - 6}">{esc(fmt(v))}</text>'
            )
    for i, g in enumerate(graphs):
        label = f"{g.get('compile_id', '?')}  {_name(g)}"
        short = label if len(label) <= 42 else label[:41] + "…"
        out.append(
            f'<text class="label" x="{label_w - 8}" y="{top + i * row_h + row_h - 6}">'
            f"<title>{esc(label)}</title>{esc(short)}</text>"
        )
    out.append("</svg>")
    chart = f'<div class="scroll">{"".join(out)}</div>'
    if len(graphs) > _CHART_OPEN:  # a test run's hundreds of graphs: folded
        return f"<details><summary>{len(graphs)} graphs</summary>{chart}</details>"
    return chart


def _name(graph: dict) -> str:
    return graph.get("function") or graph.get("frame", "")
