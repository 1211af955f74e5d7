"""What the op-coverage sweep finds, as data: the dtypes it runs, its verdicts, the results
of one OpInfo op (`OpResult`) and of one ATen call checked (`CallResult`), and the short text
they carry for an error (`short`). The sweep (`coverage.py`, with `coverage_sample.py` and
`coverage_calls.py`) produces them and the report (`coverage_report.py`) renders them; all
import them from here, so data goes one way: sweep -> results -> report."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}
SAMPLES_PER_OP = 2
CALLS_PER_OVERLOAD = 3  # distinct (shape, constant) signatures checked per ATen overload

# Verdicts of the end-to-end run, best first.
PASS = "pass"
DYNAMO = "dynamo cannot capture"  # the `eager` backend (Dynamo alone) fails too
AOT = "aot_eager fails"  # Dynamo captures, AOTAutograd fails: not ours either
REFERENCE_MISMATCH = "aot_eager mismatches too"  # e.g. random ops drawn in another order
ERROR = "ERROR"  # the tape raised where aot_eager passed
WRONG = "WRONG"  # the tape gave a different answer where aot_eager matched eager


@dataclass
class OpResult:
    name: str  # OpInfo name, with its variant
    verdict: str
    detail: str = ""
    seconds: float = 0.0
    overloads: set[str] = field(default_factory=set)  # ATen overloads the tape reached
    dtype: str = "float32"  # the dtype of the samples


@dataclass
class CallResult:
    overload: str
    kind: str  # "rule" | "fallback" | "nondiff"
    status: str  # "ok" | "FAIL" | "unchecked" (why in message)
    max_error: float
    message: str
    op: str  # the OpInfo op whose sample made this call
    complex: bool = False  # whether a complex value flows into or out of the call
    dtype: str = "float32"  # the dtype of the sample that made it (before promotion)


def short(e: BaseException) -> str:
    """An error as a result's detail or message: its first three lines, at most 300 characters."""
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return " ".join(text[:3])[:300]
