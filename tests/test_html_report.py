"""The HTML report: one self-contained page beside the markdown and the JSON, that loads in a
real headless Chromium with no console message or uncaught exception and shows the summary at
the top; break sites with their source, tape lines linked to theirs, unknown keys kept, all
text escaped. The Chromium test skips where there is no `chromium` (.ci/run installs it)."""

import inspect
import os
import re
import shutil
import struct
import subprocess
import zlib

import pytest
import torch

from dynamo_tape import html_report, report, track

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1280, 900)


def tiny(x):
    y = x.sin() * 2
    print("a graph break")  # the break site: the page shows this line
    return (y.cos() + 1).sum()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A real compile's report (a graph break and a backward), written by the project's writer."""
    out = tmp_path_factory.mktemp("report")
    with track() as tracked:
        f = torch.compile(tiny, backend="tape")
        f(torch.randn(8, requires_grad=True)).backward()
    data = tracked.as_dict()
    assert data["summary"]["graph_break_sites"] == 1 and data["graphs"][0]["backward_entries"]
    report.write(data, str(out), "tiny", "dynamo-tape report: tiny <&>")
    return out / "tiny.html", data


def test_written_beside_the_markdown_and_json_and_self_contained(written):
    path, data = written
    assert {p.name for p in path.parent.iterdir()} == {"tiny.md", "tiny.json", "tiny.html"}
    text = path.read_text()
    assert "<title>dynamo-tape report: tiny &lt;&amp;&gt;</title>" in text
    # nothing to fetch: every link is in the page, no stylesheet, font or script from elsewhere
    assert all(url.startswith("#") for url in re.findall(r'(?:src|href)="([^"]*)"', text))
    assert not re.search(r"<link|@import|url\(|<iframe|<img", text)
    assert "default-src &#x27;none&#x27;" in text  # the CSP, in case anything tried
    # the break site with its source line; each graph's tapes folded
    line = inspect.getsourcelines(tiny)[1] + 2
    assert f"test_html_report.py:{line}" in text
    assert "print(&quot;a graph break&quot;)" in text
    assert text.count('<details class="tapes"') == len(data["graphs"]) == 2
    assert "<svg" in text and "bytes saved for backward" in text


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_page_loads_in_chromium_and_shows_the_summary(written, tmp_path):
    path, _ = written
    # a probe copy: the page, then a script that says where the summary was laid out
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text() + _PROBE)
    dom, log = _chromium(tmp_path, "--dump-dom", probe)
    root = re.search(r"<html[^>]*>", dom).group()  # the page's script marks its root element
    assert 'data-report-ready="1"' in root  # the script ran to its end
    assert "data-report-error" not in root  # and nothing threw (window.onerror would say what)
    assert not _console(log)
    top, bottom = map(float, re.search(r'id="probe" data-top="([\d.]+)" data-bottom="([\d.]+)"',
                                       dom).groups())  # fmt: skip
    assert 0 < top < bottom < WINDOW[1]  # all of the summary in the first screen

    screenshot = tmp_path / "page.png"
    _, log = _chromium(tmp_path, f"--screenshot={screenshot}", path)
    assert not _console(log)
    width, rows = _png_rows(screenshot.read_bytes(), int(bottom) + 1)
    assert width == WINDOW[0]
    band = rows[int(top) : int(bottom)]  # the summary's tiles: text on them, and the tiles
    dark = sum(1 for row in band for i in range(0, len(row), 3) if sum(row[i : i + 3]) < 200)
    colours = {bytes(row[i : i + 3]) for row in band for i in range(0, len(row), 3)}
    assert dark > 500 and len(colours) > 8


def test_unknown_keys_tape_sources_and_escaping(tmp_path):
    here = os.path.relpath(__file__)
    line = inspect.getsourcelines(tiny)[1] + 1  # `y = x.sin() * 2`
    graph = {
        "compile_id": "0/0", "frame": "tiny", "dynamo_ops": 2, "forward_entries": 2,
        "backward_entries": 1, "saved_bytes": 2048, "fallback_ops": [{"op": "x", "source": None}],
        "compile_seconds": 0.25, "ended_by": "<b>bold?</b>", "not_on_tape": None,
        "tapes": [f"forward_train(v0:f32[8]):\n  v1:f32[8] = sin v0  # {here}:{line} in tiny\n"
                  "  v2:f32[8] = cos v1 (from gone/away.py:3)\n  return (v2,)"],
        "per_graph_note": "new",
    }  # fmt: skip
    data = {
        "summary": {"graphs": 1, "graph_break_sites": 1, "brand_new_count": 3},
        "graphs": [graph],
        "breaks": [{"filename": "missing/file.py", "lineno": 7, "function": "f",
                    "reason": "<script>alert(1)</script>\nmore", "count": 2,
                    "kind": "<script>alert(1)</script>",
                    "short_reason": "<script>alert(1)</script>", "hint": "try X"}],
        "splits": [],
        "recompiles": [],
        "skipped_frames": [{"frame": "hooks", "where": f"{here}:{line}", "reason": "hooks"}],
        "break_hints": {"print": "use logging"},
    }  # fmt: skip
    text = html_report.page(data, "t")
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;bold?&lt;/b&gt;" in text
    # the tape line's source: a link to a card with its lines, the file's line as its tooltip
    assert (
        f'<a class="src" href="#src-1" title="y = x.sin() * 2"># {here}:{line} in tiny</a>' in text
    )
    assert re.search(r'id="src-1".*class="hit">.*y = x\.sin\(\) \* 2', text, re.S)
    assert 'href="#src-2"' in text and "(from gone/away.py:3)</a>" in text
    assert "source not available" in text  # the missing files: just their location
    # what no section knows is still shown: a column, a tile, a card's table, a section
    assert "per graph note" in text and "brand new count" in text and "try X" in text
    assert 'id="extra-break-hints"' in text and "use logging" in text
    assert 'id="skipped"' in text and "y = x.sin() * 2" in text
    assert "2.0 KiB" in text


def test_a_section_that_fails_shows_its_data(monkeypatch):
    (graphs,) = [s for s in html_report._SECTIONS if s.key == "graphs"]
    monkeypatch.setattr(graphs, "render", lambda data, page: 1 / 0)
    text = html_report.page({"summary": {}, "graphs": [{"frame": "kept"}]}, "t")
    assert "could not be rendered: ZeroDivisionError" in text and "kept" in text


def test_a_test_run_report_has_its_tests(written, tmp_path):
    _, data = written
    tests = [{"test": "t.py::a", "outcome": "failed", "graphs": 2, "graph_break_sites": 1,
              "recompiles": 0, "fallback_ops": 0, "compile_seconds": 0.5}]  # fmt: skip
    report.write_run(tests, data, str(tmp_path), "pytest")
    text = (tmp_path / "pytest.html").read_text()
    assert "<title>dynamo-tape report: test run</title>" in text
    assert '<span class="outcome-failed">failed</span>' in text


_PROBE = """<script>
(function () {
  var r = document.getElementById("summary").getBoundingClientRect();
  var d = document.createElement("div");
  d.id = "probe";
  d.setAttribute("data-top", r.top);
  d.setAttribute("data-bottom", r.bottom);
  document.body.appendChild(d);
})();
</script>"""


def _chromium(tmp_path, action: str, page) -> tuple[str, str]:
    profile = tmp_path / f"profile-{len(os.listdir(tmp_path))}"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        f"--window-size={WINDOW[0]},{WINDOW[1]}", action, page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def _console(log: str) -> list[str]:
    """The page's console messages and uncaught exceptions, as Chromium logs them."""
    return [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def _png_rows(png: bytes, count: int) -> tuple[int, list[bytearray]]:
    """The first `count` rows of an 8-bit RGB or RGBA PNG, as RGB bytes per row."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, i = {}, 8
    while i < len(png):
        size, kind = struct.unpack(">I4s", png[i : i + 8])
        chunks.setdefault(kind, []).append(png[i + 8 : i + 8 + size])
        i += 12 + size
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert depth == 8 and colour in (2, 6) and not interlace
    pixel = 3 if colour == 2 else 4
    stride = width * pixel
    raw = zlib.decompressobj().decompress(b"".join(chunks[b"IDAT"]), (stride + 1) * count)
    rows, prior = [], bytearray(stride)
    for r in range(min(count, height)):
        kind, row = (
            raw[r * (stride + 1)],
            bytearray(raw[r * (stride + 1) + 1 : (r + 1) * (stride + 1)]),
        )
        for x in range(stride):
            a = row[x - pixel] if x >= pixel else 0
            b = prior[x]
            if kind == 1:
                row[x] = (row[x] + a) & 255
            elif kind == 2:
                row[x] = (row[x] + b) & 255
            elif kind == 3:
                row[x] = (row[x] + (a + b) // 2) & 255
            elif kind == 4:
                c = prior[x - pixel] if x >= pixel else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(row)
        prior = row
    if pixel == 4:
        rows = [bytearray(b for i, b in enumerate(row) if i % 4 != 3) for row in rows]
    return width, rows
