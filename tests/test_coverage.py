"""OpInfo coverage: a representative subset by default, the whole sweep (float32, float64,
complex64, complex128) with `pytest -m slow`.

Each case compiles an OpInfo op with the tape backend (fullgraph) on its first two samples in
one dtype, compares forward, output flags (requires_grad, grad_fn, dtype, layout, view) and
gradients (random cotangent) with eager, and checks every ATen call it reached against
torch.autograd in float64 or complex128 (see dynamo_tape/tools/coverage.py)."""

import pytest
import torch

from dynamo_tape.ops import aten
from dynamo_tape.record import mm
from dynamo_tape.rules import NONDIFFERENTIABLE, NONDIFFERENTIABLE_OUTPUTS, RULES
from dynamo_tape.rules.conjugate import conj
from dynamo_tape.tools import coverage, coverage_report
from dynamo_tape.tools.coverage_results import DYNAMO, ERROR, PASS, WRONG

# One op per rule family and per way a sample can be awkward: lists of tensors, integer
# outputs (sort's indices), zero-gradient ops (ceil), saved views fed to the generic fallback
# (vander), ops kept whole because their decompositions differ from eager at the edges, a
# Python binding whose default differs from the schema's (mse_loss), data-dependent backward
# (scatter_reduce.prod), factorizations and FFTs, sizes known only at run time (masked_select,
# tensor_split's `.item()`), a split into one piece (a list of one tensor), random ops (seeded;
# rrelu's backward must reuse the slopes its forward drew).
SUBSET = [
    "atan2",
    "clamp",
    "maximum",
    "special.i1",
    "nn.functional.elu",
    "cumsum",
    "sort",
    "max.reduction_with_dim",
    "var_mean",
    "linalg.vector_norm",
    "repeat",
    "diagonal_scatter",
    "nn.functional.pad.constant",
    "cat",
    "addmv",
    "linalg.solve",
    "cholesky",  # OpInfo has no `cholesky` from torch 2.14 on: linalg.cholesky covers the family
    "linalg.cholesky",
    "ceil",
    "linalg.vander",
    "special.log_ndtr",
    "torch.ops.aten._safe_softmax.default",
    "nn.functional.mse_loss",
    "scatter_reduce.prod",
    "linalg.svd",
    "linalg.lu_solve",
    "fft.rfft",
    "masked_select",
    "tensor_split",
    "split",
    "nn.functional.rrelu",
]

# Complex values: the rules known right for them (mul's conjugate, mm's conjugate transpose,
# the FFTs, complex numbers' own ops), real inputs through complex values and back (rfft,
# complex, polar), and ops whose complex values take the generic fallback (cumprod, det, eigh).
SUBSET_COMPLEX = [
    ("mul", "complex128"),
    ("div.no_rounding_mode", "complex128"),
    ("pow", "complex128"),
    ("exp", "complex128"),
    ("log", "complex128"),
    ("abs", "complex128"),
    ("angle", "complex128"),
    ("sgn", "complex128"),
    ("conj", "complex128"),
    ("real", "complex128"),
    ("imag", "complex128"),
    ("view_as_real", "complex128"),
    ("matmul", "complex128"),
    ("addmm", "complex128"),
    ("vdot", "complex128"),
    ("fft.fft", "complex128"),
    ("fft.irfft", "complex128"),
    ("fft.hfft", "complex128"),
    ("sum", "complex128"),
    ("cat", "complex128"),
    ("linalg.solve", "complex128"),
    ("linalg.vector_norm", "complex128"),
    ("masked_select", "complex128"),
    ("cumprod", "complex128"),
    ("linalg.det", "complex128"),
    ("linalg.eigh", "complex128"),
    ("mul", "complex64"),
    ("matmul", "complex64"),
    ("fft.fftn", "complex64"),
    ("complex", "float64"),
    ("polar", "float64"),
    ("view_as_complex", "float64"),
    ("fft.rfft", "float64"),
]

# Output flags: zero-gradient ops (the output requires grad, the gradient is zeros),
# derivatives.yaml's non-differentiable outputs (LU's P, layer norm's mean and rstd), a
# gradient eager gives as zeros rather than None (copysign's other).
SUBSET_FLAGS = [
    ("round", "float32"),
    ("sign", "float32"),
    ("frac", "float32"),
    ("copysign", "float32"),
    ("div.floor_rounding", "float32"),
    ("linalg.lu", "float64"),
    ("lu_unpack", "float64"),
    ("native_layer_norm", "float32"),
    ("native_batch_norm", "float32"),
    # kept whole (aten_graph.KEEP_WHOLE): decomposed into factories they stopped requiring grad
    ("bernoulli", "float32"),
    ("fill", "float32"),
    # eager's output is a tensor of its own, the tape's last entry a view of an intermediate
    ("stack", "float32"),
    ("kron", "complex128"),
    ("rot90", "float32"),
    ("unsafe_chunk", "float32"),
    ("index_add", "float32"),
    ("nn.functional.channel_shuffle", "float32"),
    ("nn.functional.scaled_dot_product_attention", "float64"),
]

# every overload these ops reach has a rule of ours (no generic fallback)
OWN_RULES_ONLY = {
    "atan2",
    "clamp",
    "maximum",
    "cumsum",
    "sort",
    "var_mean",
    "addmv",
    "cholesky",
    "linalg.cholesky",
    "linalg.svd",
    "linalg.lu_solve",
    "fft.rfft",
}


# every overload these reach with complex values has a complex-safe rule of ours
OWN_RULES_ONLY_COMPLEX = {
    ("mul", "complex128"),
    ("matmul", "complex128"),
    ("fft.fft", "complex128"),
    ("fft.irfft", "complex128"),
    ("linalg.solve", "complex128"),
    ("complex", "float64"),
    ("polar", "float64"),
    ("fft.rfft", "float64"),
}


def _cases():
    for name in SUBSET:
        yield pytest.param(name, "float32", id=name)
    for name, dtype in [*SUBSET_COMPLEX, *SUBSET_FLAGS]:
        yield pytest.param(name, dtype, id=f"{name}-{dtype}")


# Where a release's eager differs from the others' and the tape follows the others'
RELEASE_DIFFERENCES = {
    ("linalg.det", "complex128"): (
        "2.12",
        "its eager gives a 0x0 matrix's determinant no gradient (None), later releases and the "
        "tape an empty one",
    ),
}


@pytest.mark.parametrize("name, dtype", _cases())
def test_opinfo_op_matches_eager(name, dtype):
    since, why = RELEASE_DIFFERENCES.get((name, dtype), ("0", ""))
    if torch.__version__ < since:
        pytest.skip(f"torch {torch.__version__}: {why}")
    if name not in coverage.opinfo_names(dtype):  # `cholesky` left OpInfo with it (2.14)
        pytest.skip(f"torch {torch.__version__} has no OpInfo entry {name!r} for {dtype}")
    result, calls = coverage.sweep_named(name, dtype=dtype)
    assert result.verdict == PASS, result.detail
    failed = [c for c in calls if c.status == "FAIL"]
    assert not failed, failed
    assert calls, "no ATen call was recorded"
    if dtype.startswith("complex") or (name, dtype) in OWN_RULES_ONLY_COMPLEX:
        assert any(c.complex for c in calls), "no call with complex values was checked"
    if name in OWN_RULES_ONLY and dtype == "float32" or (name, dtype) in OWN_RULES_ONLY_COMPLEX:
        assert all(c.kind != "fallback" for c in calls), [c.overload for c in calls]


def test_complex_values_of_a_real_only_rule_are_counted_as_fallback():
    # cumprod has a rule for real values only: its complex calls take the fallback
    _, calls = coverage.sweep_named("cumprod", dtype="complex128")
    assert {c.kind for c in calls if c.overload == "cumprod"} == {"fallback"}
    _, calls = coverage.sweep_named("cumprod", dtype="float64")
    assert {c.kind for c in calls if c.overload == "cumprod"} == {"rule"}


def test_a_wrong_rule_is_caught_end_to_end_and_per_call(monkeypatch):
    monkeypatch.setitem(RULES, aten.atan.default, lambda g, y, x: (g * x,))
    result, calls = coverage.sweep_named("atan")
    assert result.verdict == WRONG
    assert any(c.overload == "atan" and c.status == "FAIL" for c in calls)


def test_a_dropped_conjugate_is_caught_end_to_end_and_per_call(monkeypatch):
    # mul's rule without its conjugates: right for real values, wrong for complex ones
    result, _ = coverage.sweep_named("mul", dtype="complex128")
    assert result.verdict == PASS, result.detail
    monkeypatch.setitem(RULES, aten.mul.Tensor, lambda g, y, x, other: (g * other, g * x))
    result, calls = coverage.sweep_named("mul", dtype="complex128")
    assert result.verdict == WRONG and "grad" in result.detail, result.detail
    assert any(c.overload == "mul.Tensor" and c.status == "FAIL" for c in calls)
    result, _ = coverage.sweep_named("mul", dtype="float64")
    assert result.verdict == PASS, result.detail  # no real sample can see it


def test_a_dropped_conjugate_transpose_is_caught(monkeypatch):
    def mm_transposed(g, y, a, b):  # b^T where b^H belongs
        return (mm(g, b.t()), mm(conj(a).t(), g))

    monkeypatch.setitem(RULES, aten.mm.default, mm_transposed)
    result, calls = coverage.sweep_named("mm", dtype="complex128")
    assert result.verdict == WRONG, result.detail
    assert any(c.overload == "mm" and c.status == "FAIL" for c in calls)


def test_a_flipped_requires_grad_is_caught_end_to_end_and_per_call():
    # ceil treated as non-differentiable again: its output would not require grad
    result, _ = coverage.sweep_named("ceil")
    assert result.verdict == PASS, result.detail
    NONDIFFERENTIABLE.add(aten.ceil.default)
    try:
        result, calls = coverage.sweep_named("ceil")
    finally:
        NONDIFFERENTIABLE.discard(aten.ceil.default)
    assert result.verdict == WRONG, result.detail
    assert "requires_grad False, eager True" in result.detail
    assert any(c.overload == "ceil" and c.status == "FAIL" for c in calls)


def test_an_output_left_requiring_grad_is_caught(monkeypatch):
    # LU's pivots P (derivatives.yaml: not differentiable) requiring grad again
    monkeypatch.delitem(NONDIFFERENTIABLE_OUTPUTS, aten.linalg_lu.default)
    result, calls = coverage.sweep_named("linalg.lu", dtype="float64")
    assert result.verdict == WRONG, result.detail
    assert "output 0 flags: requires_grad True, eager False" in result.detail


def test_dynamo_failures_are_listed_as_dynamo_not_ours():
    # Dynamo stops at an untraceable pybind11 builtin here; aot_eager and eager fail with it
    result, _ = coverage.sweep_named("svd_lowrank")
    assert result.verdict == DYNAMO, result.detail


@pytest.mark.slow
def test_full_opinfo_sweep():
    ops, calls = coverage.sweep(jobs=2)
    assert not [o for o in ops if o.verdict in (ERROR, WRONG)]
    assert not [c for c in calls if c.status == "FAIL"]
    rows = coverage_report.overload_rows(ops, calls)
    own = sum(r[1] == "rule" for r in rows)
    fallback = sum(r[1] == "fallback" for r in rows)
    assert own / (own + fallback) >= 0.95
