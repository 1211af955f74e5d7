"""Every rule of ours against torch.autograd: float64 and complex128, a random cotangent, one
table.

A case is one line (tests/rule_cases.py): the ATen overload, its arguments (tensor specs of
tests/helpers.py, or constants) and keyword arguments. `check_rule` builds a one-entry tape,
differentiates it with the tape's own `grad`, runs it, and compares each output's
requires_grad and the input gradients with torch.autograd's for a random cotangent. Adding a
rule means adding a line there; a rule marked complex-safe (rules.COMPLEX_SAFE) also needs a
line with complex tensors (`C`, `D`).
"""

import os
import re

import pytest
import torch
import torchgen
import yaml
from helpers import C, Spec, T, assert_own_rule_matches_autograd, draw
from rule_cases import CASES, CASES_COMPLEX, CASES_COMPLEX_ORACLE, LOSS_CASES, NN_CASES
from torch.utils._pytree import tree_flatten

from dynamo_tape.ir import op_name
from dynamo_tape.ops import aten
from dynamo_tape.record import mm
from dynamo_tape.rules import (
    COMPLEX_SAFE,
    NONDIFFERENTIABLE,
    NONDIFFERENTIABLE_OUTPUTS,
    RULES,
    UnsupportedOpError,
)
from dynamo_tape.tools.check import check_rule
from dynamo_tape.torch_private import schema

# The rules this foundation promises: each needs a case in CASES, checked as ours.
FOUNDATION = {
    aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.neg.default,
    aten.pow.Tensor_Scalar, aten.pow.Tensor_Tensor, aten.pow.Scalar,
    aten.exp.default, aten.log.default, aten.sqrt.default, aten.rsqrt.default,
    aten.sin.default, aten.cos.default, aten.tanh.default, aten.sigmoid.default,
    aten.relu.default, aten.where.self,
    aten.sum.default, aten.sum.dim_IntList, aten.mean.default, aten.mean.dim,
    aten.amax.default,
    aten.view.default, aten.reshape.default, aten.permute.default,
    aten.expand.default, aten.squeeze.dim, aten.squeeze.dims,
    aten.unsqueeze.default, aten.slice.Tensor, aten.select.int,
    aten.mm.default, aten.addmm.default, aten.bmm.default,
}  # fmt: skip

# Rules no case line can check, and what checks them instead.
CHECKED_ELSEWHERE = {
    # their running statistics: through the backend against eager
    aten._native_batch_norm_legit_functional.default: "tests/test_rules_nn.py",
    aten._native_batch_norm_legit_no_training.default: "tests/test_rules_nn.py",
    aten._native_batch_norm_legit.no_stats: "tests/test_rules_nn.py",
    # the checker's fake tensors cannot record a data-dependent output shape: OpInfo's samples
    aten.masked_select.default: "tests/test_coverage.py (masked_select, float and complex)",
    # eager has no derivative for them to check against
    aten.bernoulli.p: "test_bernoulli_p_requires_grad_with_a_zero_gradient",
    aten.silu_backward.default: "second-order gradients of silu, tests/test_robustness.py",
    aten.embedding_renorm.default: "tests/test_rules_nn.py, refused as eager refuses",
    # fused attention kernels (the CPU one: test_cpu_flash_attention_rule_matches_autograd)
    aten._scaled_dot_product_flash_attention.default: "tests/test_cuda.py",
    aten._scaled_dot_product_efficient_attention.default: "tests/test_cuda.py",
    aten._scaled_dot_product_cudnn_attention.default: "tests/test_cuda.py",
    aten._scaled_dot_product_flash_attention_for_cpu.default: "tests/test_cuda.py",
}


@pytest.mark.parametrize("op, args, kwargs", CASES)
def test_rule(op, args, kwargs):
    assert_own_rule_matches_autograd(op, args, kwargs)


@pytest.mark.parametrize("op, args, kwargs", CASES_COMPLEX)
def test_rule_complex(op, args, kwargs):
    assert_own_rule_matches_autograd(op, args, kwargs)


def wrong_mm(g, y, a, b):
    return (mm(g, b), mm(a, g))  # the transposes forgotten


def mul_without_cotangent(g, y, x, other):
    return (other, x)  # right only when g is all ones: what a random cotangent catches


@pytest.mark.parametrize(
    "op, rule, args",
    [
        (aten.mm.default, wrong_mm, [T(4, 4), T(4, 4)]),
        (aten.mul.Tensor, mul_without_cotangent, [T(3, 4), T(3, 4)]),
    ],
    ids=["mm-untransposed", "mul-ignores-g"],
)
def test_a_wrong_rule_fails_the_check(op, rule, args):
    args, _ = draw(args, {}, seed=0)
    assert check_rule(op, args).ok  # the table's rule passes on these inputs...
    broken = check_rule(op, args, rule=rule)
    assert not broken.ok and broken.max_error > 1e-3  # ...and the broken one is caught
    assert "input" in broken.message


def test_rule_families_are_disjoint():
    from types import SimpleNamespace

    from dynamo_tape.rules import FAMILIES, merged

    assert merged(FAMILIES) == (RULES, COMPLEX_SAFE)
    family = lambda name: SimpleNamespace(__name__=name, RULES={aten.sin.default: name},
                                          COMPLEX_SAFE=set())  # fmt: skip
    with pytest.raises(ValueError, match="special has rules for ops another family covers: sin"):
        merged([family("pointwise"), family("special")])


def test_foundation_rules_are_ours_and_have_cases():
    cased = {p.values[0] for p in CASES}
    assert not FOUNDATION - set(RULES), "foundation ops without a rule"
    assert not FOUNDATION - cased, "foundation rules without a case"


def test_every_rule_has_a_case():
    """Adding a rule means adding its case line in tests/rule_cases.py (or, for the few no
    case line can check, CHECKED_ELSEWHERE)."""
    cased = {p.values[0] for p in [*CASES, *CASES_COMPLEX, *NN_CASES]}
    cased |= {op for op, _, _ in CASES_COMPLEX_ORACLE} | {op for op, _ in LOSS_CASES}
    missing = sorted(op_name(op) for op in set(RULES) - cased - set(CHECKED_ELSEWHERE))
    assert not missing, f"rules without a case: {', '.join(missing)}"
    assert not cased & set(CHECKED_ELSEWHERE), "CHECKED_ELSEWHERE lists ops with a case line"


# --- complex values --------------------------------------------------------------------------


# Complex-safe rules no case line can check, and what checks them instead.
COMPLEX_CHECKED_ELSEWHERE = {
    # the checker's fake tensors cannot record a data-dependent output shape
    aten.masked_select.default: "masked_select in complex128, tests/test_coverage.py",
}


@pytest.mark.parametrize(
    "op, args, oracle", CASES_COMPLEX_ORACLE, ids=[op_name(c[0]) for c in CASES_COMPLEX_ORACLE]
)
def test_rule_complex_against_another_oracle(op, args, oracle):
    args, kwargs = draw(args, {}, seed=0)
    result = check_rule(op, args, kwargs, oracle=oracle)
    assert result.kind == "rule", f"{op} ran the {result.kind} path, not a rule of ours"
    assert result.ok, result.message


def _is_complex_spec(spec) -> bool:
    return any(isinstance(a, Spec) and a.kind in "CD" for a in tree_flatten(spec)[0])


def test_every_complex_safe_rule_has_a_complex_case():
    # CASES_COMPLEX's cases all make complex values (complex(), polar and rfft from real ones)
    cased = {p.values[0] for p in CASES_COMPLEX}
    cased |= {p.values[0] for p in NN_CASES if _is_complex_spec(p.values[1:])}
    cased |= {op for op, args, _ in CASES_COMPLEX_ORACLE if _is_complex_spec(args)}
    missing = sorted(map(op_name, COMPLEX_SAFE - cased - set(COMPLEX_CHECKED_ELSEWHERE)))
    assert not missing, f"complex-safe rules without a complex case: {missing}"
    assert COMPLEX_SAFE <= set(RULES)


def test_a_dropped_conjugate_fails_the_complex_check():
    args, _ = draw([C(3, 4), C(3, 4)], {}, seed=0)
    assert check_rule(aten.mul.Tensor, args).ok
    broken = check_rule(aten.mul.Tensor, args, rule=lambda g, y, x, other: (g * other, g * x))
    assert not broken.ok and broken.max_error > 1e-3
    # the same rule is right for real values: only a complex case can catch it
    real, _ = draw([T(3, 4), T(3, 4)], {}, seed=0)
    assert check_rule(aten.mul.Tensor, real, rule=lambda g, y, x, other: (g * other, g * x)).ok


def cumprod_twice(z):  # cumprod has a rule for real values only
    return z.cumprod(0) * 2


def test_complex_values_of_a_real_only_rule_take_the_fallback():
    from dynamo_tape.tracker import last_compiled

    assert aten.cumprod.default in RULES and aten.cumprod.default not in COMPLEX_SAFE
    z = torch.randn(5, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    cotangent = torch.randn(5, dtype=torch.complex128, generator=torch.Generator().manual_seed(1))
    ours_in, theirs_in = z.clone().requires_grad_(), z.clone().requires_grad_()
    (ours,) = torch.autograd.grad(torch.compile(cumprod_twice, backend="tape")(ours_in),
                                  ours_in, cotangent)  # fmt: skip
    (theirs,) = torch.autograd.grad(cumprod_twice(theirs_in), theirs_in, cotangent)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    kinds = {e.op: e.kind for e in last_compiled().tape.entries}
    assert kinds[aten.cumprod.default] == "fallback" and kinds[aten.mul.Tensor] == "rule"


def test_complex_values_of_a_real_only_rule_are_refused_in_error_mode():
    torch._dynamo.reset()
    z = torch.randn(5, dtype=torch.complex128, requires_grad=True)
    compiled = torch.compile(cumprod_twice, backend="tape", options={"fallback": "error"})
    with pytest.raises(Exception, match=r"complex values of aten\.cumprod") as info:
        compiled(z)
    assert isinstance(info.value, UnsupportedOpError) or "UnsupportedOpError" in str(info.value)
    # real values of the same op have their rule
    torch._dynamo.reset()
    compiled(torch.randn(5, dtype=torch.float64, requires_grad=True)).sum().backward()


@pytest.mark.parametrize(
    "fn, make",
    [
        (
            lambda z: (z * z).real.sum(),
            lambda g: [torch.randn(3, dtype=torch.complex128, generator=g)],
        ),
        (
            lambda x: torch.fft.irfft(torch.fft.rfft(x) * torch.fft.rfft(x.flip(0)), n=8),
            lambda g: [torch.randn(8, dtype=torch.float64, generator=g)],
        ),
        (
            lambda a, b: (a @ b.conj().t()).abs() + torch.view_as_real(a.exp()).sum(),
            lambda g: [torch.randn(3, 4, dtype=torch.complex64, generator=g) for _ in range(2)],
        ),
    ],
    ids=["real_part_of_a_square", "rfft_product_irfft", "matmul_abs_exp_complex64"],
)
def test_complex_programs_match_eager(fn, make):
    # real losses of complex values, and real inputs through complex ones: eager's gradients
    torch._dynamo.reset()
    inputs = make(torch.Generator().manual_seed(0))
    ours_in = [x.clone().requires_grad_() for x in inputs]
    theirs_in = [x.clone().requires_grad_() for x in inputs]
    compiled = torch.compile(fn, backend="tape", options={"fallback": "error"})
    ours, theirs = compiled(*ours_in), fn(*theirs_in)
    cotangent = torch.randn(theirs.shape, dtype=theirs.dtype,
                            generator=torch.Generator().manual_seed(1))  # fmt: skip
    torch.testing.assert_close(ours, theirs)
    for a, b in zip(torch.autograd.grad(ours, ours_in, cotangent),
                    torch.autograd.grad(theirs, theirs_in, cotangent), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b)


# --- output flags: what requires grad -----------------------------------------------------------


def _nondifferentiable_call(op, x):
    """A call of an op in NONDIFFERENTIABLE on `x` (float64, requiring grad)."""
    special = {
        aten.full_like.default: lambda: op(x, 2.0),
        aten.new_zeros.default: lambda: op(x, [2]),
        aten.new_ones.default: lambda: op(x, [2]),
        aten.new_empty.default: lambda: op(x, [2]),
        aten.new_full.default: lambda: op(x, [2], 1.0),
        aten.new_empty_strided.default: lambda: op(x, [2], [1]),
        aten.scalar_tensor.default: lambda: op(x.detach().sum().item(), dtype=x.dtype),
        aten.empty_strided.default: lambda: op([2], [1], dtype=x.dtype),
    }
    return special.get(op, lambda: op(x))()


@pytest.mark.parametrize("op", sorted(NONDIFFERENTIABLE, key=op_name), ids=op_name)
def test_nondifferentiable_ops_are_so_in_eager(op):
    # a zero-gradient op (ceil) is no such op: eager's output requires grad
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    out = _nondifferentiable_call(op, x)
    assert not out.requires_grad, f"eager's {op_name(op)} output requires grad: give it a rule"


def _derivatives_yaml() -> dict:
    path = os.path.join(os.path.dirname(torchgen.__file__), "packaged/autograd/derivatives.yaml")
    with open(path) as f:
        entries = yaml.safe_load(f)
    return {e["name"].split("(")[0]: e for e in entries}


def _yaml_nondifferentiable_outputs(op, entry) -> set:
    """The outputs eager's autograd leaves without a gradient, as torchgen decides
    (gen_differentiable_outputs): `output_differentiability`'s False ones; without that list,
    every output but the first when the backward formulas read `grad` rather than `grads[i]`."""
    listed = entry.get("output_differentiability")
    if listed is not None:
        return {k for k, d in enumerate(listed) if d is False}
    names = {a.name for a in schema(op).arguments}
    backward = [v for k, v in entry.items() if any(n.strip() in names for n in k.split(","))]
    if len(schema(op).returns) > 1 and any(re.search(r"\bgrad\b", str(f)) for f in backward):
        return set(range(1, len(schema(op).returns)))
    return set()


def test_nondifferentiable_outputs_are_derivatives_yamls():
    """Every op with a rule of ours whose outputs derivatives.yaml leaves without a gradient
    has them in NONDIFFERENTIABLE_OUTPUTS (LU's permutation matrix, a solve's LU factors, a
    norm's saved statistics)."""
    formulas = _derivatives_yaml()
    missing = {}
    for op in RULES:
        entry = formulas.get(op_name(op)) or formulas.get(op_name(op) + ".default")
        wanted = _yaml_nondifferentiable_outputs(op, entry) if entry else set()
        if wanted - set(NONDIFFERENTIABLE_OUTPUTS.get(op, ())):
            missing[op_name(op)] = sorted(wanted)
    assert not missing, f"not differentiable in derivatives.yaml: {missing}"
    # the reading of the yaml itself: LU's pivots by the list, layer norm's mean and rstd by
    # its `grad`, var_mean's two outputs both differentiable (`grads[0]`, `grads[1]`)
    assert _yaml_nondifferentiable_outputs(aten.linalg_lu.default, formulas["linalg_lu"]) == {0}
    layer_norm = formulas["native_layer_norm"]
    assert _yaml_nondifferentiable_outputs(aten.native_layer_norm.default, layer_norm) == {1, 2}
    var_mean = formulas["var_mean.correction"]
    assert _yaml_nondifferentiable_outputs(aten.var_mean.correction, var_mean) == set()


def test_lu_pivots_do_not_require_grad_and_rounding_does():
    torch._dynamo.reset()
    a = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    for fn in (torch.linalg.lu, lambda a: torch.lu_unpack(*torch.linalg.lu_factor(a))):
        ours = torch.compile(fn, backend="tape", fullgraph=True)(a)
        assert [t.requires_grad for t in ours] == [t.requires_grad for t in fn(a)]
        assert [t.requires_grad for t in ours] == [False, True, True]
    for fn in (torch.round, torch.floor, torch.ceil, torch.trunc, torch.sign, torch.frac):
        x = torch.randn(5, dtype=torch.float64, requires_grad=True)
        torch.compile(fn, backend="tape", fullgraph=True)(x).sum().backward()
        ours, x.grad = x.grad, None
        fn(x).sum().backward()
        assert ours is not None and torch.equal(ours, x.grad)  # zeros, not None (ones for frac)


def test_bernoulli_p_requires_grad_with_a_zero_gradient():
    # eager: the output requires grad, and its backward refuses (no formula); the draw does not
    # depend on the input's values, so the tape's gradient is zero
    torch._dynamo.reset()
    x = torch.rand(6, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    ours = torch.compile(lambda x: torch.bernoulli(x, 0.5), backend="tape", fullgraph=True)(x)
    torch.manual_seed(0)
    theirs = torch.bernoulli(x, 0.5)
    assert ours.requires_grad and theirs.requires_grad
    (grad,) = torch.autograd.grad(ours.sum(), x)
    assert torch.equal(grad, torch.zeros_like(x))


# --- the engine checks each rule as it runs it -------------------------------------------------


def sin_then_cube(x):
    return x.sin() ** 3


def _compile_error(monkeypatch, rule):
    monkeypatch.setitem(RULES, aten.sin.default, rule)
    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(Exception) as failure:
        torch.compile(sin_then_cube, backend="tape")(x).sum().backward()
    return str(failure.value)


def _names_the_op_the_entry_and_the_line(message):
    assert "aten.sin" in message and "on tape entry `v" in message and "= sin v" in message
    assert f"{__file__}:{sin_then_cube.__code__.co_firstlineno + 1}" in message


def test_a_rule_returning_more_cotangents_than_arguments_is_refused(monkeypatch):
    message = _compile_error(monkeypatch, lambda g, y, x: (g * x.cos(), g))
    assert "returned 2 cotangents for 1 positional arguments" in message
    _names_the_op_the_entry_and_the_line(message)


def test_a_failing_rule_names_the_op_the_entry_and_the_line(monkeypatch):
    message = _compile_error(monkeypatch, lambda g, y, x: (g * x.no_such_method(),))
    assert "the rule for aten.sin failed" in message and "no_such_method" in message
    _names_the_op_the_entry_and_the_line(message)
