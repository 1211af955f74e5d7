"""Op coverage: PyTorch's OpInfo database run through the tape backend, two ways.

End to end: in each dtype (float32, float64, complex64, complex128), each OpInfo op that
supports that dtype and its autograd on CPU, on its first two samples, is compiled as
`lambda *tensors: op(...)` with `torch.compile(backend="tape", fullgraph=True)`; its forward,
each output's flags (requires_grad, whether it has a grad_fn, dtype, layout, whether it is a
view) and its gradients for a random cotangent over exactly the outputs eager differentiates
are compared with eager. When the tape fails, the same sample goes through `aot_eager` and
then through Dynamo alone (`eager`), so a failure is charged to Dynamo, to AOTAutograd or to us.

Per rule: while the tape runs, the ATen graph it was lowered from is interpreted on the real
inputs, recording every ATen call; each distinct call is then checked by `check.check_rule`
in float64 or complex128 (float32 and complex64 tensors promoted) with a random cotangent.

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
from dataclasses import dataclass

import torch
import torch.fx

from .. import torch_private as tp
from ..backend import tape
from ..ir import is_differentiable, op_name
from ..ops import aten
from ..rules import COMPLEX_SAFE, NONDIFFERENTIABLE, RULES
from ..torch_private import OpOverload, schema, tree_flatten, tree_map, tree_unflatten, version
from .check import check_rule
from .coverage_report import render
from .coverage_results import (
    AOT,
    CALLS_PER_OVERLOAD,
    DTYPES,
    DYNAMO,
    ERROR,
    PASS,
    REFERENCE_MISMATCH,
    SAMPLES_PER_OP,
    WRONG,
    CallResult,
    OpResult,
)

OP_TIMEOUT_S = 120


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


# ---------------------------------------------------------------------------- recording ATen


class _CallRecorder(torch.fx.Interpreter):
    def __init__(self, gm, calls):
        super().__init__(gm)
        self.calls = calls

    def call_function(self, target, args, kwargs):
        out = super().call_function(target, args, kwargs)
        if isinstance(target, OpOverload):
            # (op, args, kwargs, whether a complex value flows in or out)
            args_, kwargs_ = tree_map(_float64, (list(args), dict(kwargs)))
            self.calls.append((target, args_, kwargs_, _has_complex((args, kwargs, out))))
        return out


_PROMOTED = {torch.float32: torch.float64, torch.complex64: torch.complex128}


def _float64(x):
    if isinstance(x, torch.Tensor):
        return x.detach().to(_PROMOTED.get(x.dtype, x.dtype), copy=True)
    if isinstance(x, torch.dtype):  # `vector_norm(x, dtype=torch.float32)` promotes too
        return _PROMOTED.get(x, x)
    return x


def recording_tape_backend(calls: list):
    """The tape backend, plus: every run also records the ATen calls of its graph."""

    def backend(gm, example_inputs):
        compiled = tape(gm, example_inputs)

        def run(*args):
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                _CallRecorder(compiled.lowered.aten_graph, calls).run(*args)
            return compiled(*args)

        return run

    return backend


# ------------------------------------------------------------------------------ end to end


class Mismatch(AssertionError):
    pass


def _sample_leaves(sample):
    structure = (sample.input, list(sample.args), dict(sample.kwargs))
    flat, spec = tree_flatten(structure)
    positions = [i for i, x in enumerate(flat) if isinstance(x, torch.Tensor)]
    return flat, spec, positions


def _fresh(flat, positions):
    return [flat[i].detach().clone().requires_grad_(flat[i].requires_grad) for i in positions]


def _callable(opinfo):
    # Random ops wrap themselves in OpInfo's `wrapper_set_seed`, which Dynamo cannot trace; the
    # sweep seeds both runs itself, so it calls the torch function the op is named after.
    code = getattr(opinfo.op, "__code__", None)
    if code is None or "wrapper_set_seed" not in code.co_names:
        return opinfo.op
    target = torch
    for part in opinfo.name.split("."):
        target = getattr(target, part)
    return target


def _function(opinfo, flat, spec, positions, clone_inputs: bool, op=None):
    op = op or _callable(opinfo)

    def fn(*tensors):
        leaves = list(flat)
        for i, t in zip(positions, tensors, strict=True):
            leaves[i] = t.clone() if clone_inputs else t
        x, args, kwargs = tree_unflatten(leaves, spec)
        return op(x, *args, **kwargs)

    return fn


def _mutates(opinfo, flat, spec, positions) -> bool:
    tensors = [t.detach() for t in _fresh(flat, positions)]
    versions = [version(t) for t in tensors]
    with torch.no_grad():
        _function(opinfo, flat, spec, positions, False, opinfo.op)(*tensors)
    return [version(t) for t in tensors] != versions


def _flags(x) -> tuple:
    """What eager says about an output besides its values."""
    return (
        ("requires_grad", x.requires_grad),
        ("has grad_fn", x.grad_fn is not None),
        ("dtype", x.dtype),
        ("layout", x.layout),
        ("is a view", x._base is not None),
    )


@dataclass
class Evaluation:
    outputs: list  # the op's outputs, flattened
    grads: list  # one per input that requires grad, zeros where autograd gave None
    flags: list  # _flags of each tensor output, None for other outputs
    differentiated: list  # per processed floating output: whether eager differentiates it
    undefined: list  # per input that requires grad: whether autograd gave no gradient


def _evaluate(fn, tensors, sample, seed, differentiated=None) -> Evaluation:
    """Forward outputs, flags and gradients (random cotangent) of `fn` at fresh copies of
    `tensors`. The cotangent goes to the outputs eager differentiates: those that require grad
    in this run, or, for the run compared with eager, `differentiated` (eager's)."""
    torch.manual_seed(seed)
    out = fn(*tensors)
    flat = tree_flatten(out)[0]
    flags = [_flags(o) if isinstance(o, torch.Tensor) else None for o in flat]
    processed = sample.output_process_fn_grad(out)
    floating = [
        o
        for o in tree_flatten(processed)[0]
        if isinstance(o, torch.Tensor) and is_differentiable(o)
    ]
    if differentiated is None or len(differentiated) != len(floating):
        differentiated = [o.requires_grad for o in floating]
    generator = torch.Generator().manual_seed(seed + 1)
    cts = [torch.randn(o.shape, dtype=o.dtype, generator=generator) for o in floating]
    # an output eager differentiates but this run does not is a flag mismatch, reported as such
    pairs = [
        (o, c)
        for o, c, d in zip(floating, cts, differentiated, strict=True)
        if d and o.requires_grad
    ]
    wrt = [t for t in tensors if t.requires_grad]
    grads = [None] * len(wrt)
    if pairs and wrt:
        outs, cts = zip(*pairs, strict=True)
        grads = list(torch.autograd.grad(outs, wrt, cts, allow_unused=True))
    undefined = [g is None for g in grads]
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, wrt, strict=True)]
    return Evaluation(flat, grads, flags, differentiated, undefined)


def _compare(expected: Evaluation, actual: Evaluation):
    e_out, e_grads = expected.outputs, expected.grads
    a_out, a_grads = actual.outputs, actual.grads
    if len(e_out) != len(a_out) or len(e_grads) != len(a_grads):
        raise Mismatch(
            f"{len(a_out)} outputs/{len(a_grads)} grads, eager {len(e_out)}/{len(e_grads)}"
        )
    for i, (e, a) in enumerate(zip(expected.flags, actual.flags, strict=True)):
        if e is None or a is None:
            continue
        for (what, theirs), (_, ours) in zip(e, a, strict=True):
            if theirs != ours:
                raise Mismatch(f"output {i} flags: {what} {ours}, eager {theirs}")
    for what, es, as_ in (("output", e_out, a_out), ("grad", e_grads, a_grads)):
        for i, (e, a) in enumerate(zip(es, as_, strict=True)):
            if isinstance(e, torch.Tensor):
                try:
                    torch.testing.assert_close(a, e, equal_nan=True)
                except AssertionError as err:
                    raise Mismatch(f"{what} {i}: {err}") from None
            elif a != e:
                raise Mismatch(f"{what} {i}: {a!r} != eager {e!r}")
    for i, (e, a) in enumerate(zip(expected.undefined, actual.undefined, strict=True)):
        if e != a:  # x.grad after .backward(): None on one side, zeros on the other
            said = lambda undefined: "None" if undefined else "zeros"
            raise Mismatch(f"grad {i}: {said(a)}, eager {said(e)}")


def _kind_of(x):
    return (tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else type(x)


def run_sample(opinfo, sample, backend, seed=0):
    flat, spec, positions = _sample_leaves(sample)
    clone = _mutates(opinfo, flat, spec, positions)
    wrapped = _function(opinfo, flat, spec, positions, clone, opinfo.op)
    expected = _evaluate(wrapped, _fresh(flat, positions), sample, seed)
    fn = _function(opinfo, flat, spec, positions, clone)
    if _callable(opinfo) is not opinfo.op:  # unwrapped, it must be the same op (svd_lowrank not)
        try:
            unwrapped = _evaluate(fn, _fresh(flat, positions), sample, seed)
            same = [_kind_of(o) for o in unwrapped.outputs] == [
                _kind_of(o) for o in expected.outputs
            ]
        except Exception:  # noqa: BLE001
            same = False
        # random draws differ from the wrapper's own seeding: compare with the unwrapped run
        expected, fn = (unwrapped, fn) if same else (expected, wrapped)
    torch.compiler.reset()
    compiled = torch.compile(fn, backend=backend, fullgraph=True, dynamic=False)
    actual = _evaluate(compiled, _fresh(flat, positions), sample, seed, expected.differentiated)
    _compare(expected, actual)


def _short(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return " ".join(text[:3])[:300]


def judge(opinfo, sample, calls) -> tuple[str, str]:
    try:
        run_sample(opinfo, sample, recording_tape_backend(calls))
        return PASS, ""
    except Exception as ours:  # noqa: BLE001 - every failure is classified below
        ours_text = _short(ours)
        wrong = isinstance(ours, Mismatch)
    try:
        run_sample(opinfo, sample, "aot_eager")
    except Mismatch as theirs:
        return (
            REFERENCE_MISMATCH if wrong else ERROR
        ), f"{ours_text} | aot_eager: {_short(theirs)}"
    except Exception as theirs:  # noqa: BLE001
        try:
            run_sample(opinfo, sample, "eager")
            return AOT, _short(theirs)
        except Exception as dynamo:  # noqa: BLE001
            return DYNAMO, _short(dynamo)
    return (WRONG if wrong else ERROR), ours_text


# --------------------------------------------------------------------------------- per rule


def _signature(call) -> str:
    def describe(x):
        if isinstance(x, torch.Tensor):
            return f"T{tuple(x.shape)}{x.dtype}"
        return repr(x)

    op, args, kwargs, _ = call
    return repr(tree_map(describe, (str(op), args, kwargs)))


def _has_complex(tree) -> bool:
    return any(isinstance(x, torch.Tensor) and x.is_complex() for x in tree_flatten(tree)[0])


def _kind(op, complex_values=False) -> str:
    """Where lookup sends an entry of `op`: complex entries of rules not in COMPLEX_SAFE go to
    the fallback."""
    if op in NONDIFFERENTIABLE:
        return "nondiff"
    if op in RULES and (op in COMPLEX_SAFE or not complex_values):
        return "rule"
    return "fallback"


_UNSUPPORTED_NODE = re.compile(r"unsupported node .*?target=torch\.ops\.(?:aten\.)?([\w.]+)")
_REFUSED = re.compile(r"not differentiable with respect to argument '(\w+)'")
_UNCHECKABLE = (
    # torch.autograd itself rejects a random cotangent for gauge-dependent outputs
    "specified up to multiplication by",
    # the checker's fake tensors have no shape environment for data-dependent shapes
    "DynamicOutputShapeException",
    # an op that insists on float32 inputs cannot be promoted to float64
    "acc_dtype",
    # torch.autograd has no formula to compare with (the functional aten.copy)
    "RuntimeError: derivative for aten::",
    # torch.autograd refuses complex values of the op (slice_scatter, lift_fresh_copy), or its
    # formula gives a real input a complex gradient (where.self of real and complex values);
    # tests/test_rules.py checks those rules against the function computed another way
    "does not support automatic differentiation for outputs with complex dtype",
    "input_is_complex == grad_is_complex",
)


# Calls whose torch.autograd formula is not eager's, so it cannot be the oracle: the end-to-end
# run (against eager) checks them instead.
_ORACLE_DIFFERS = {
    # derivatives.yaml reads the functional variant's noise *input*, never filled in; eager's
    # rrelu reads the slopes it drew, as our rule does
    aten.rrelu_with_noise_functional.default: "torch's formula reads the noise input",
}


def _refused_arguments(op, args, kwargs, error) -> list:
    names = set(_REFUSED.findall(str(error)))
    argument_names = [a.name for a in schema(op).arguments]
    values = list(args) + [kwargs.get(n) for n in argument_names[len(args) :]]
    named = zip(argument_names, values, strict=False)  # values may stop before the schema's end
    return [v for n, v in named if n in names and isinstance(v, torch.Tensor)]


def _nondifferentiable_is_right(op, args, kwargs) -> tuple[float, str]:
    """An op we call non-differentiable must be one in eager: its outputs do not require grad
    although its inputs do (a zero-gradient op's do: ceil is differentiable, with zeros)."""
    leaves = tree_map(
        lambda x: x.detach().requires_grad_() if is_differentiable(x) else x, (args, kwargs)
    )
    wrt = [x for x in tree_flatten(leaves)[0] if isinstance(x, torch.Tensor) and x.requires_grad]
    out = op(*leaves[0], **leaves[1])
    outs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor) and o.requires_grad]
    if not wrt or not outs:
        return 0.0, ""
    return float("nan"), "torch.autograd's output requires grad: the op is differentiable"


def check_call(op, args, kwargs) -> tuple[str, str, float, str]:
    """(kind, status, max error, message); status is "ok", "FAIL" or "unchecked"."""
    out = op(*args, **kwargs)
    if not any(isinstance(o, torch.Tensor) for o in tree_flatten(out)[0]):
        return "nondiff", "ok", 0.0, "no tensor output"
    kind = _kind(op, _has_complex((args, kwargs, out)))
    if op in _ORACLE_DIFFERS:
        return kind, "unchecked", float("nan"), _ORACLE_DIFFERS[op]
    if op in NONDIFFERENTIABLE:
        worst, message = _nondifferentiable_is_right(op, args, kwargs)
        return "nondiff", "FAIL" if message else "ok", worst, message
    constants = []
    for _ in range(3):
        try:
            r = check_rule(op, args, kwargs, constants=constants)
        except Exception as e:  # noqa: BLE001 - an error is a failed check, unless explained
            refused = _refused_arguments(op, args, kwargs, e)
            if refused and not all(any(t is c for c in constants) for t in refused):
                constants += refused
                continue
            status = "unchecked" if any(u in _short(e) for u in _UNCHECKABLE) else "FAIL"
            return kind, status, float("nan"), _short(e)
        return r.kind, "ok" if r.ok else "FAIL", r.max_error, r.message[:300]
    return kind, "FAIL", float("nan"), "arguments refused"


def check_calls(calls, checked: dict, opname: str, dtype="float32") -> list[CallResult]:
    results = []
    for call in calls:
        op, args, kwargs, complex_values = call
        name = op_name(op)
        key = _signature(call)
        seen = checked.setdefault(name, set())
        if key in seen or len(seen) >= CALLS_PER_OVERLOAD:
            continue
        seen.add(key)
        try:
            kind, status, worst, message = check_call(op, args, kwargs)
        except Exception as e:  # noqa: BLE001 - the op itself failed on the recorded inputs
            status = "unchecked" if any(u in _short(e) for u in _UNCHECKABLE) else "FAIL"
            kind, worst, message = _kind(op, complex_values), float("nan"), _short(e)
        results.append(
            CallResult(name, kind, status, worst, message, opname, complex_values, dtype)
        )
    return results


# ------------------------------------------------------------------------------------ sweep


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
            verdict, detail = judge(opinfo, sample, calls)
            if verdict != PASS:
                detail = f"sample {i}: {detail}"
                break
        results = check_calls(calls, _checked if checked is None else checked, name, dtype_name)
    except _Timeout as e:
        verdict, detail = ERROR, str(e)
    except Exception as e:  # noqa: BLE001
        verdict, detail = ERROR, _short(e) + "\n" + traceback.format_exc(limit=3)
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


def sweep_named(name: str, checked=None, dtype="float32") -> tuple[OpResult, list[CallResult]]:
    task = (dtype, opinfo_names(dtype).index(name))
    return sweep_op(task, {} if checked is None else checked)


def sweep(names=None, jobs=2, dtypes=tuple(DTYPES)):
    tasks = [
        (dtype, i)
        for dtype in dtypes
        for i, o in enumerate(autograd_opinfos(DTYPES[dtype]))
        if names is None or full_name(o) in names or o.name in names
    ]
    if jobs <= 1:
        outcomes = [sweep_op(t) for t in tasks]
    else:
        context = multiprocessing.get_context("spawn")
        # fresh workers now and then: each compile leaves a little behind
        pool = context.Pool(jobs, torch.set_num_threads, (1,), maxtasksperchild=100)
        with pool:
            outcomes = list(pool.imap(sweep_op, tasks, chunksize=1))
    return [o for o, _ in outcomes], [c for _, cs in outcomes for c in cs]


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
    ops, calls = sweep(a.ops.split(",") if a.ops else None, a.jobs, dtypes)
    text = render(ops, calls, time.perf_counter() - start, a.jobs, dtypes)
    with open(a.out, "w") as f:
        f.write(text)
    print(text.split("## ATen overloads")[0])
    bad = [o for o in ops if o.verdict in (ERROR, WRONG)] + [c for c in calls if c.status == "FAIL"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
