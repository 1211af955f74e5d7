"""The op-coverage report: summary counts per dtype on top, one row per ATen overload reached,
one per OpInfo op (its verdict in each dtype). Rendered from the results of the sweep in
`coverage.py` (the types of `coverage_results.py`)."""

from __future__ import annotations

from collections import defaultdict

import torch
from tabulate import tabulate

from . import coverage_results as results

_KINDS = ["rule", "fallback", "nondiff"]


def _kind_of(checks) -> str:
    kinds = [c.kind for c in checks]
    return min(kinds, key=_KINDS.index) if kinds else "-"


def overload_rows(ops: list[results.OpResult], calls: list[results.CallResult]):
    """[overload, kind on real values, kind on complex values, calls checked, max error,
    check, reached by]; the kind is where lookup sends the overload's entries ("unsupported"
    for nodes the lowering rejected, "-" where no call with such values was made)."""
    reached = defaultdict(set)
    for o in ops:
        for name in o.overloads:
            reached[name].add(o.name)
    by_overload = defaultdict(list)
    for c in calls:
        by_overload[c.overload].append(c)
    rows = []
    for name in sorted(reached):
        checks = by_overload.get(name, [])
        real = _kind_of([c for c in checks if not c.complex])
        complex_ = _kind_of([c for c in checks if c.complex])
        if not checks:
            real = "unsupported"
        bad = [c for c in checks if c.status == "FAIL"]
        unchecked = [c for c in checks if c.status == "unchecked"]
        worst = max((c.max_error for c in checks if c.max_error == c.max_error), default=0.0)
        if bad:
            status = f"FAIL: {bad[0].message}"
        elif unchecked and len(unchecked) == len(checks):
            status = f"unchecked: {unchecked[0].message}"
        else:
            status = "ok" if checks else "-"
        users = sorted(reached[name])
        shown = ", ".join(users[:4]) + (" ..." if len(users) > 4 else "")
        rows.append([name, real, complex_, len(checks), f"{worst:.1e}", status[:160], shown])
    return rows


def _summary(ops, calls, dtypes) -> list:
    by_dtype = defaultdict(list)
    for o in ops:
        by_dtype[o.dtype].append(o)
    names = [
        ("OpInfo ops (autograd in this dtype, CPU)", lambda os: len(os)),
        (
            f"first {results.SAMPLES_PER_OP} samples pass end to end (tape == eager)",
            lambda os: sum(o.verdict == results.PASS for o in os),
        ),
        (
            "ops Dynamo and aot_eager capture (all but the two verdicts below)",
            lambda os: sum(o.verdict not in (results.DYNAMO, results.AOT) for o in os),
        ),
        *[
            (f"verdict: {v}", lambda os, v=v: sum(o.verdict == v for o in os))
            for v in (
                results.DYNAMO,
                results.AOT,
                results.REFERENCE_MISMATCH,
                results.ERROR,
                results.WRONG,
            )
        ],
    ]
    rows = [[label, *(count(by_dtype[d]) for d in dtypes)] for label, count in names]
    # calls are checked once per process and signature: a float32 sample's calls, promoted to
    # float64, are often the float64 sample's, counted where they were made first
    call_rows = [
        ("ATen calls checked (first made by this dtype's samples)", lambda cs: len(cs)),
        ("  mismatching or failing", lambda cs: sum(c.status == "FAIL" for c in cs)),
        (
            "  not checkable (reason in the table)",
            lambda cs: sum(c.status == "unchecked" for c in cs),
        ),
        ("  on the generic fallback", lambda cs: sum(c.kind == "fallback" for c in cs)),
    ]
    per_dtype_calls = {d: [c for c in calls if c.dtype == d] for d in dtypes}
    rows += [[label, *(count(per_dtype_calls[d]) for d in dtypes)] for label, count in call_rows]
    return rows


def render(ops, calls, seconds, jobs, dtypes=tuple(results.DTYPES)) -> str:
    dtypes = list(dtypes)
    rows = overload_rows(ops, calls)
    kinds = defaultdict(int)
    complex_kinds = defaultdict(int)
    for r in rows:
        kinds[r[1]] += 1
        complex_kinds[r[2]] += 1
    differentiable = kinds["rule"] + kinds["fallback"]
    complex_differentiable = complex_kinds["rule"] + complex_kinds["fallback"]
    overloads = [
        ["ATen overloads reached", len(rows)],
        ["  own rule (real values)", kinds["rule"]],
        ["  generic fallback (real values)", kinds["fallback"]],
        ["  non-differentiable", kinds["nondiff"]],
        ["  unsupported", kinds["unsupported"]],
        [
            "own rules / differentiable overloads (real values)",
            f"{kinds['rule'] / max(differentiable, 1):.1%}",
        ],
        ["overloads reached with complex values", len(rows) - complex_kinds["-"]],
        ["  own rule, complex-safe", complex_kinds["rule"]],
        ["  generic fallback for complex values", complex_kinds["fallback"]],
        [
            "own rules / differentiable overloads (complex values)",
            f"{complex_kinds['rule'] / max(complex_differentiable, 1):.1%}",
        ],
        ["ATen calls checked (random cotangent)", len(calls)],
        ["  mismatching or failing", sum(c.status == "FAIL" for c in calls)],
        ["  not checkable (reason in the table)", sum(c.status == "unchecked" for c in calls)],
        ["sweep wall time", f"{seconds:.0f} s ({jobs} processes, 1 thread each)"],
    ]
    fallbacks = [r[0] for r in rows if r[1] == "fallback"]
    complex_fallbacks = [r[0] for r in rows if r[2] == "fallback"]
    verdicts = defaultdict(dict)
    details = defaultdict(list)
    seconds_of = defaultdict(float)
    for o in ops:
        verdicts[o.name][o.dtype] = o.verdict
        seconds_of[o.name] += o.seconds
        if o.detail:
            details[o.name].append(f"{o.dtype}: {o.detail}")
    op_rows = [
        [
            name,
            *(verdicts[name].get(d, "") for d in dtypes),
            f"{seconds_of[name]:.1f}",
            " ".join(details[name])[:200].replace("|", "/"),
        ]
        for name in verdicts
    ]
    command = "python -m dynamo_tape.tools.coverage --out reports/op_coverage.md"
    if jobs != 2:
        command += f" --jobs {jobs}"
    if dtypes != list(results.DTYPES):
        command += f" --dtypes {','.join(dtypes)}"
    parts = [
        "# Op coverage",
        f"Generated by `{command}`.",
        f"torch {torch.__version__}. In each dtype ({', '.join(dtypes)}), each OpInfo op whose "
        "entry supports that dtype and its autograd on CPU is compiled with "
        '`torch.compile(backend="tape", fullgraph=True, dynamic=False)` on its first '
        f"{results.SAMPLES_PER_OP} CPU samples and compared with eager: forward values; each "
        "output's requires_grad, grad_fn (None or not), dtype, layout and whether it is a view; "
        "and the gradients for a random cotangent over exactly the outputs eager differentiates "
        "(None where eager's is None, zeros where eager's are zeros). Every ATen call reached is "
        "checked by `check_rule` in float64 or complex128 against torch.autograd with a random "
        f"cotangent (up to {results.CALLS_PER_OVERLOAD} distinct calls per overload and process).",
        "## Summary",
        tabulate(_summary(ops, calls, dtypes), tablefmt="github", headers=["", *dtypes]),
        tabulate(overloads, tablefmt="github", headers=["ATen overloads (all dtypes)", "count"]),
        "Overloads on the generic fallback: " + (", ".join(f"`{n}`" for n in fallbacks) or "none"),
        "Overloads whose complex entries run on the generic fallback (no complex-safe rule): "
        + (", ".join(f"`{n}`" for n in complex_fallbacks) or "none"),
        "## ATen overloads reached",
        tabulate(
            rows,
            tablefmt="github",
            headers=[
                "overload",
                "kind",
                "complex",
                "calls checked",
                "max error",
                "check",
                "reached by (OpInfo)",
            ],
        ),
        "## OpInfo ops",
        tabulate(op_rows, tablefmt="github", headers=["op", *dtypes, "s", "detail"]),
    ]
    return "\n\n".join(parts) + "\n"
