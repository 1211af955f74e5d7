"""Op coverage: PyTorch's OpInfo database run through the tape backend, two ways.

In each dtype (float32, float64, complex64, complex128), each OpInfo op that supports that
dtype and its autograd on CPU runs on its first two samples:

- end to end (`coverage_sample.py`): compiled with `torch.compile(backend="tape",
  fullgraph=True)` and compared with eager (forward, output flags, gradients); where the tape
  fails, aot_eager and Dynamo alone say whether the failure is Dynamo's, AOTAutograd's or ours;
- per rule (`coverage_calls.py`): every ATen call the tape's graph makes on the samples is
  recorded, and each distinct one checked against torch.autograd by `check.check_rule`.

This module drives the sweep: one task per op and dtype, under a time limit, fanned out to
worker processes; the results (`coverage_results.py`) go to the report (`coverage_report.py`).

    python -m dynamo_tape.tools.coverage --out reports/op_coverage.md [--ops add,mul] [--jobs 2]
        [--dtypes float32,complex128]
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import signal
import sys
import time
import traceback

import torch
from tqdm import tqdm

from .. import torch_private as tp
from ..ir import op_name
from .coverage_calls import check_calls, recording_tape_backend
from .coverage_report import render
from .coverage_results import (
    DTYPES,
    ERROR,
    PASS,
    SAMPLES_PER_OP,
    WRONG,
    CallResult,
    OpResult,
    short,
)
from .coverage_sample import judge

OP_TIMEOUT_S = 120
_UNSUPPORTED_NODE = re.compile(r"unsupported node .*?target=torch\.ops\.(?:aten\.)?([\w.]+)")


def autograd_opinfos(dtype=torch.float32):
    """The OpInfo entries that support `dtype` and its autograd on CPU."""
    return [
        o
        for o in tp.opinfo_database()
        if o.supports_autograd
        and o.supports_dtype(dtype, "cpu")
        and dtype in o.supported_backward_dtypes("cpu")
    ]


def full_name(opinfo) -> str:
    return opinfo.name + (f".{opinfo.variant_test_name}" if opinfo.variant_test_name else "")


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout(f"op took over {OP_TIMEOUT_S} s")


_checked: dict = {}  # overload name -> call signatures this process has checked


def sweep_op(task, checked=None) -> tuple[OpResult, list[CallResult]]:
    """One OpInfo op in one dtype; `task` is (dtype name, index into autograd_opinfos)."""
    dtype_name, index = task
    dtype = DTYPES[dtype_name]
    opinfo = autograd_opinfos(dtype)[index]
    name = full_name(opinfo)
    start = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(OP_TIMEOUT_S)
    calls, results = [], []
    verdict, detail = PASS, ""
    try:
        torch.manual_seed(0)
        samples = opinfo.sample_inputs("cpu", dtype, requires_grad=True)
        for i, sample in enumerate(samples):
            if i == SAMPLES_PER_OP:
                break
            verdict, detail = judge(opinfo, sample, recording_tape_backend(calls))
            if verdict != PASS:
                detail = f"sample {i}: {detail}"
                break
        results = check_calls(calls, _checked if checked is None else checked, name, dtype_name)
    except _Timeout as e:
        verdict, detail = ERROR, str(e)
    except Exception as e:  # noqa: BLE001
        verdict, detail = ERROR, short(e) + "\n" + traceback.format_exc(limit=3)
    finally:
        signal.alarm(0)
        torch.compiler.reset()
    overloads = {op_name(call[0]) for call in calls}
    overloads.update(_UNSUPPORTED_NODE.findall(detail))  # nodes the lowering rejected
    seconds = time.perf_counter() - start
    return OpResult(name, verdict, detail, seconds, overloads, dtype_name), results


def opinfo_names(dtype="float32") -> list[str]:
    """The full names of the OpInfo entries the sweep runs in `dtype`, on this torch release."""
    return [full_name(o) for o in autograd_opinfos(DTYPES[dtype])]


def sweep_named(name: str, dtype="float32") -> tuple[OpResult, list[CallResult]]:
    """One op by its full name, its ATen calls all checked (none counted as seen before)."""
    return sweep_op((dtype, opinfo_names(dtype).index(name)), {})


def sweep(names=None, jobs=2, dtypes=tuple(DTYPES), progress=False):
    """Every task's results; `progress`: a progress bar on stderr (tqdm), an op per step."""
    tasks = [
        (dtype, i)
        for dtype in dtypes
        for i, o in enumerate(autograd_opinfos(DTYPES[dtype]))
        if names is None or full_name(o) in names or o.name in names
    ]
    bar = tqdm(total=len(tasks), desc="OpInfo sweep", unit="op", disable=not progress)
    if jobs <= 1:
        outcomes = [_advancing(bar, sweep_op(t)) for t in tasks]
    else:
        context = multiprocessing.get_context("spawn")
        # fresh workers now and then: each compile leaves a little behind
        pool = context.Pool(jobs, torch.set_num_threads, (1,), maxtasksperchild=100)
        with pool:
            outcomes = [_advancing(bar, o) for o in pool.imap(sweep_op, tasks, chunksize=1)]
    bar.close()
    return [o for o, _ in outcomes], [c for _, cs in outcomes for c in cs]


def _advancing(bar, outcome):
    bar.update()
    return outcome


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="reports/op_coverage.md")
    parser.add_argument("--ops", default=None, help="comma-separated OpInfo names (default: all)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--dtypes",
        default=",".join(DTYPES),
        help=f"comma-separated dtypes of the samples (default: {','.join(DTYPES)})",
    )
    a = parser.parse_args(argv)
    dtypes = a.dtypes.split(",")
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown:
        parser.error(f"unknown dtype(s) {', '.join(unknown)}; valid: {', '.join(DTYPES)}")
    torch.set_num_threads(1)  # the machine's cores go to the worker processes
    start = time.perf_counter()
    ops, calls = sweep(a.ops.split(",") if a.ops else None, a.jobs, dtypes, progress=True)
    text = render(ops, calls, time.perf_counter() - start, a.jobs, dtypes)
    with open(a.out, "w") as f:
        f.write(text)
    print(text.split("## ATen overloads")[0])
    bad = [o for o in ops if o.verdict in (ERROR, WRONG)] + [c for c in calls if c.status == "FAIL"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
