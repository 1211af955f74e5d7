"""The model zoo's report, in markdown: a summary (verdict counts, median ratios, the models
slower than eager), per family a parity table and a timing table, then each model's details
(its configuration, where the largest difference is, fallback ops, graph breaks, errors)."""

from __future__ import annotations

import importlib.metadata
import platform
import statistics
import textwrap

import torch
from tabulate import tabulate

from .bench_measure import DYNAMO_ALONE
from .bench_report import _cpu
from .zoo import ATOL, FIRST_CALLS, RTOL, TOLERANCE_F64, ZooResult
from .zoo_models import FAMILIES

WITHIN = f"within {RTOL:.0e}"
VERDICTS = ["exact", WITHIN, "WRONG", "ERROR", "skipped"]

PARITY_HEADERS = ["model", "params", "verdict", "largest diff", "aot_eager", "graphs", "breaks",
                  "fallbacks"]  # fmt: skip
TIMING_HEADERS = ["model", "step/eager", "step/aot", "step/Dynamo", "first (s)", "first/aot",
                  "first/Dynamo", "saved/aot"]  # fmt: skip
FRAMES_LISTED = 4  # a model's frames run as Python listed in Details (the rest counted)
# the kinds of value a largest difference can be in, as the parity table shortens them
KINDS = {"loss": "loss", "parameter": "param", "buffer": "buffer", "gradient": "grad"}


def _markdown(rows, headers) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _ratio(values: dict[str, float], a: str, b: str) -> float | None:
    if a in values and b in values and values[b] > 0:
        return values[a] / values[b]
    return None


def _fmt(x: float | None, digits=2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _difference(d, kind=False) -> str:
    """The largest difference, with (where `kind`) the kind of value it is in."""
    if d is None:
        return "-"
    if d.largest == 0:
        return "0"
    first = d.where.split(" ", 1)[0]
    where = f" {KINDS[first]}" if kind and first in KINDS else ""
    return f"{d.largest:.1e}{where}"


def parity_row(r: ZooResult) -> list[str]:
    t = r.tracked
    aot = "ERROR" if r.aot_error else _difference(r.aot_eager)
    if r.verdict == "skipped":
        return [r.name, "-", "skipped", "-", "-", "-", "-", "-"]
    return [
        r.name,
        _params(r.parameters),
        r.verdict,
        _difference(r.tape, kind=True),
        aot,
        str(t.get("graphs", "-")),
        str(t.get("graph_break_sites", "-")),
        str(t.get("fallback_ops", "-")),
    ]


def _params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else str(n)


def timing_row(r: ZooResult) -> list[str]:
    s, f = r.step_s, r.first_call_s
    return [
        r.name,
        _fmt(_ratio(s, "tape", "eager")),
        _fmt(_ratio(s, "tape", "aot_eager")),
        _fmt(_ratio(s, "tape", DYNAMO_ALONE)),
        _fmt(f.get("tape")),
        _fmt(_ratio(f, "tape", "aot_eager")),
        _fmt(_ratio(f, "tape", DYNAMO_ALONE)),
        _fmt(_ratio(r.saved_bytes, "tape", "aot_eager")),
    ]


def parity_table(results: list[ZooResult]) -> str:
    return _markdown([parity_row(r) for r in results], PARITY_HEADERS)


def timing_table(results: list[ZooResult]) -> str:
    return _markdown([timing_row(r) for r in results if r.step_s], TIMING_HEADERS)


def _median(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):.2f} (over {len(values)})" if values else "-"


def _bullet(text: str) -> str:
    return textwrap.fill(text, width=100, initial_indent="- ", subsequent_indent="  ")


def summary(results: list[ZooResult], timing: bool) -> str:
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    models = f"{len(results)} model" + "s" * (len(results) != 1)
    lines = [f"- {models}: " + ", ".join(f"{n} {v}" for v, n in counts.items())]
    for verdict in ("WRONG", "ERROR"):
        bad = [r.key for r in results if r.verdict == verdict]
        if bad:
            lines.append(f"- {verdict}: " + ", ".join(bad))
    rounding = [r.key for r in results if r.float64 is not None and r.float64.within]
    if rounding:
        lines.append(
            f"- WRONG in float32 but within {TOLERANCE_F64:.0e} when trained again in float64 "
            "(float32 rounding that the training steps amplified): " + ", ".join(rounding)
        )
    aot_wrong = [r.key for r in results if r.aot_eager is not None and not r.aot_eager.within]
    aot_error = [r.key for r in results if r.aot_error]
    if aot_wrong:
        lines.append("- aot_eager itself outside the tolerance: " + ", ".join(aot_wrong))
    if aot_error:
        lines.append("- aot_eager itself failed: " + ", ".join(aot_error))
    fallbacks = [r for r in results if r.fallback_ops]
    lines.append(
        f"- models with fallback ops: {len(fallbacks)}"
        + (": " + ", ".join(f"{r.key} ({', '.join(r.fallback_ops)})" for r in fallbacks))
        * bool(fallbacks)
    )
    broken = [r.key for r in results if r.tracked.get("graph_break_sites")]
    lines.append(
        f"- models with graph breaks: {len(broken)}" + (": " + ", ".join(broken)) * bool(broken)
    )
    if timing:
        timed = [r for r in results if r.step_s]
        steps = lambda a, b: [_ratio(r.step_s, a, b) for r in timed]
        firsts = lambda a, b: [_ratio(r.first_call_s, a, b) for r in timed]
        lines += [
            "- median step ratio over the models timed: tape/eager "
            f"{_median(steps('tape', 'eager'))}, tape/aot_eager "
            f"{_median(steps('tape', 'aot_eager'))}, tape/Dynamo alone "
            f"{_median(steps('tape', DYNAMO_ALONE))}",
            "- median first-call ratio: tape/aot_eager "
            f"{_median(firsts('tape', 'aot_eager'))}, tape/Dynamo alone "
            f"{_median(firsts('tape', DYNAMO_ALONE))}",
        ]
        slower = [
            (r, _ratio(r.step_s, "tape", "eager"))
            for r in timed
            if (_ratio(r.step_s, "tape", "eager") or 0) > 1.0
        ]
        lines.append(
            f"- step slower than eager's (tape/eager above 1.00): {len(slower)} of {len(timed)}"
            + (": " + ", ".join(f"{r.key} {x:.2f}" for r, x in slower)) * bool(slower)
        )
        saved = [(r, _ratio(r.saved_bytes, "tape", "aot_eager")) for r in timed]
        saved = [(r, x) for r, x in saved if x is not None]
        more = [(r, x) for r, x in saved if x > 1.0]
        lines.append(
            f"- bytes saved for backward, tape/aot_eager: median {_median(x for _, x in saved)}; "
            f"above 1.00 on {len(more)} of {len(saved)}"
            + (": " + ", ".join(f"{r.key} {x:.2f}" for r, x in more))
            * bool(more)
        )
    return "\n".join(_bullet(line[2:]) for line in lines)


def details(r: ZooResult) -> str:
    lines = [f"- **{r.key}**: {r.config}"]
    if r.parameters:
        lines[0] += f"; {r.parameters:,} parameters"
    if r.error:
        lines.append(f"  - {'skipped' if r.verdict == 'skipped' else 'error'}: `{r.error}`")
    if r.tape is not None and r.tape.largest:
        lines.append(f"  - tape's largest difference: {r.tape.largest:.3g} in {r.tape.where}")
    if r.first_step is not None:
        d = r.first_step
        lines.append(
            f"  - the first step's gradients: largest difference {d.largest:.3g} in "
            f"{d.where or '-'} ({d.verdict})"
        )
    if r.float64 is not None:
        ok = "within" if r.float64.within else "outside"
        lines.append(
            f"  - trained again in float64: largest difference {r.float64.largest:.3g} "
            f"in {r.float64.where or '-'} ({ok} {TOLERANCE_F64:.0e})"
        )
    elif r.float64_error:
        lines.append(f"  - trained again in float64: `{r.float64_error}`")
    if r.aot_error:
        lines.append(f"  - aot_eager's error: `{r.aot_error}`")
    elif r.aot_eager is not None and r.aot_eager.largest:
        lines.append(
            f"  - aot_eager's largest difference: {r.aot_eager.largest:.3g} in {r.aot_eager.where}"
        )
    if r.fallback_ops:
        lines.append(f"  - fallback ops: {', '.join(r.fallback_ops)}")
    if r.saved_bytes:
        saved = ", ".join(f"{b} {n / 1024:.1f}" for b, n in r.saved_bytes.items())
        lines.append(f"  - saved for backward (KiB): {saved}")
    for site in r.breaks:
        lines.append(f"  - graph break at {site}")
    for frame in r.run_as_python[:FRAMES_LISTED]:
        lines.append(f"  - frame run as Python: {frame}")
    if len(r.run_as_python) > FRAMES_LISTED:
        more = len(r.run_as_python) - FRAMES_LISTED
        lines.append(f"  - and {_count(more, 'more frame(s)')} run as Python")
    for recompile in r.recompiles:
        lines.append(f"  - recompiled {recompile}")
    t = r.tracked
    extra = [
        _count(t[k], words)
        for k, words in [
            ("graphs_not_on_tape", "graph(s) not on the tape"),
            ("recompile_limits", "recompile limit(s) hit"),
        ]
        if t.get(k)
    ]
    if extra:
        lines.append("  - tape: " + ", ".join(extra))
    return "\n".join(lines)


def _count(n: int, words: str) -> str:
    """ "1 graph not on the tape", "2 graphs not on the tape" from "graph(s) not on the tape"."""
    return f"{n} " + words.replace("(s)", "" if n == 1 else "s")


def _versions() -> str:
    parts = [f"torch {torch.__version__}"]
    for name in ("transformers", "torchvision", "timm"):
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def report(results: list[ZooResult], command: str, steps: int, timing: bool, rounds: int,
           first_call_rounds: int, seconds: float) -> str:  # fmt: skip
    sections = []
    for family in FAMILIES:
        rows = [r for r in results if r.family == family]
        if not rows:
            continue
        sections.append(f"## {family}\n\n{parity_table(rows)}")
        if timing and any(r.step_s for r in rows):
            sections.append(f"### {family}: timings\n\n{timing_table(rows)}")
    legend = _LEGEND.format(steps=steps, rtol=RTOL, atol=ATOL)
    if timing:
        legend += "\n\n" + _TIMING_LEGEND.format(
            rounds=rounds, first=first_call_rounds, backends=", ".join(FIRST_CALLS)
        )
    body = "\n\n".join(sections)
    notes = "\n".join(details(r) for r in results)
    where = textwrap.fill(
        f"{_versions()}. Machine: {_cpu()}; {platform.system()} {platform.release()}; Python "
        f"{platform.python_version()}; `torch.set_num_threads(1)`.",
        width=100,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return f"""# Model zoo

Generated by this command, in {seconds / 60:.1f} min of CPU time:

```
{command}
```

{where}

{legend}

## Summary

{summary(results, timing)}

{body}

## Details

{notes}
"""


_LEGEND = """Each model (`dynamo_tape/tools/zoo_models.py`: random weights, a tiny configuration, no
download) is trained {steps} SGD steps (lr 0.01) four times from the same weights on the same
batches, step by step in turn: eager, `backend="tape"` (default options: ops without a rule of
ours run their VJP through torch.autograd, as fallback ops), `aot_eager` and Dynamo alone
(`torch.compile` with Dynamo's `eager` backend). torch's global RNG is reseeded before each
step of each copy, so the "+dropout" variants draw the same dropout masks where a backend
draws them as eager does. float32, training mode.

- verdict: the tape's per-step losses, final parameters and buffers, and last gradients
  against eager's: `exact` (bitwise equal), `within {rtol:.0e}` (every value within
  |a - b| <= {atol:.0e} + {rtol:.0e} |b|; losses without the absolute term), `WRONG`
  (outside), `ERROR` (it raised; the first line is in Details), `skipped` (a library missing);
- largest diff: the largest absolute difference over all of those values, and the kind of
  value it is in (loss, param, buffer, grad; the name is in Details); a model WRONG in
  float32 is trained again in float64 (eager and tape), its difference in Details;
- aot_eager: the same largest difference for `aot_eager` against eager, for reference;
- graphs, breaks, fallbacks: what `dynamo_tape.track()` saw of the tape's compiles:
  graphs compiled, graph-break sites, fallback entries over all graphs (the ops are named in
  Details)."""

_TIMING_LEGEND = """Timings are CPU time of this one process (`time.process_time`).
- step/...: the tape's training step (forward + backward, gradients reset to None) over
  eager's, aot_eager's ("aot") and Dynamo alone's: medians over {rounds} rounds of the four
  copies' steps interleaved one by one (`bench_measure`'s loop) on one batch, after training;
- first (s): the tape's first call in seconds: compile (Dynamo's and the backend's), then one
  forward and backward, on a freshly built model after `torch.compiler.reset()`; first/...:
  that over aot_eager's and Dynamo alone's, measured the same way, in the order
  {backends}; the median of {first} such call(s) per backend (`--first-calls N`). These
  first calls come after the model's training run in the same process, so what a process
  does once per model (imports, caches that `torch.compiler.reset()` keeps) is not in them: a
  fresh process's first call would include that too.
- saved/aot: the bytes the tape's autograd graph keeps for one step's backward (distinct
  storages `saved_tensors_hooks` sees, the parameters' and the batch's left out:
  `bench_measure.saved_bytes`) over aot_eager's, measured the same way (bytes in Details)."""
