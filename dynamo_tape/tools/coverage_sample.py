"""Op coverage end to end: one OpInfo sample, compiled as `lambda *tensors: op(...)` with
`torch.compile(backend=..., fullgraph=True)`, against eager: its forward, each output's flags
(requires_grad, whether it has a grad_fn, dtype, layout, whether it is a view) and its
gradients for a random cotangent over exactly the outputs eager differentiates (`run_sample`).
When the tape fails, `judge` runs the same sample through `aot_eager` and then through Dynamo
alone (`eager`), so that a failure is charged to Dynamo, to AOTAutograd or to us."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..ir import is_differentiable
from ..torch_private import tree_flatten, tree_unflatten, version
from .coverage_results import AOT, DYNAMO, ERROR, PASS, REFERENCE_MISMATCH, WRONG, short


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


def judge(opinfo, sample, tape_backend) -> tuple[str, str]:
    """The verdict on one sample, and its detail: the tape (`tape_backend`, which in the sweep
    also records the ATen calls) against eager; where it fails, aot_eager and then Dynamo alone
    say whose failure it is."""
    try:
        run_sample(opinfo, sample, tape_backend)
        return PASS, ""
    except Exception as ours:  # noqa: BLE001 - every failure is classified below
        ours_text = short(ours)
        wrong = isinstance(ours, Mismatch)
    try:
        run_sample(opinfo, sample, "aot_eager")
    except Mismatch as theirs:
        return (REFERENCE_MISMATCH if wrong else ERROR), f"{ours_text} | aot_eager: {short(theirs)}"
    except Exception as theirs:  # noqa: BLE001
        try:
            run_sample(opinfo, sample, "eager")
            return AOT, short(theirs)
        except Exception as dynamo:  # noqa: BLE001
            return DYNAMO, short(dynamo)
    return (WRONG if wrong else ERROR), ours_text
