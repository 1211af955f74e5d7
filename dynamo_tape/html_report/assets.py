"""What every page carries inline: its Content-Security-Policy, its stylesheet and its two small
scripts. Nothing here is fetched or fetches anything (the CSP forbids it), so a page works from a
file, offline, as it is."""

# nothing is fetched: no network, fonts, frames or images other than inline ones
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

# first in <head>: an uncaught error anywhere is written on the page (tests read it there)
ERROR_SCRIPT = (
    'window.addEventListener("error",function(e){document.documentElement'
    '.setAttribute("data-report-error",String(e.message||e));});'
)

SCRIPT = """
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

CSS = """
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
