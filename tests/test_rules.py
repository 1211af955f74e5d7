"""Every rule of ours against torch.autograd: float64, a random cotangent, one table.

A case is one line: the ATen overload, its arguments (tensor specs below, or constants) and
keyword arguments. `check_rule` builds a one-entry tape, differentiates it with the tape's
own `grad`, runs it, and compares the input gradients with torch.autograd's for a random
cotangent. Adding a rule means adding a line here.
"""

import warnings

import pytest
import torch
from torch.utils._pytree import tree_map

from dynamo_tape.check import check_rule
from dynamo_tape.ir import op_name
from dynamo_tape.ops import MissingOp, aten
from dynamo_tape.record import mm
from dynamo_tape.rules import RULES
from dynamo_tape.rules import nn as nn_rules


class Spec:
    """A tensor drawn when the case runs: float64 `T` normal, `P` positive (log, sqrt, pow
    bases), `A` away from zero (divisors, relu's kink); `F` float32 normal (dtype promotion),
    `Z` int64 (not differentiable), `M` a boolean mask."""

    def __init__(self, kind, *shape):
        self.kind, self.shape = kind, shape

    def draw(self, generator):
        x = torch.randn(self.shape, dtype=torch.float64, generator=generator)
        if self.kind == "P":
            return x.abs() + 0.5
        if self.kind == "A":
            return x.sign() * (x.abs() + 0.5)
        if self.kind == "M":
            return x > 0
        if self.kind == "F":
            return x.float()
        if self.kind == "Z":
            return (x * 3).long()
        return x

    def __repr__(self):
        return self.kind + "x".join(map(str, self.shape)) if self.shape else self.kind + "0d"


T, P, A, F, Z, M = (lambda *shape, kind=k: Spec(kind, *shape) for k in "TPAFZM")

# amax/amin split the cotangent evenly between tied extremes
TIES = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]], dtype=torch.float64)


def case(op, *args, **kwargs):
    text = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    if isinstance(op, MissingOp):  # an op this torch release does not have
        reason = f"torch {torch.__version__} has no aten.{op.name}"
        return pytest.param(
            op, args, kwargs, id=f"{op.name}({text})", marks=pytest.mark.skip(reason)
        )
    return pytest.param(op, args, kwargs, id=f"{op_name(op)}({text})")


CASES = [
    # pointwise arithmetic, with broadcasting, 0-d tensors and Python scalars
    case(aten.add.Tensor, T(3, 4), T(3, 4)),
    case(aten.add.Tensor, T(3, 4), T(4)),
    case(aten.add.Tensor, T(2, 1), T(1, 3), alpha=2.5),
    case(aten.add.Tensor, T(), T(3)),
    case(aten.add.Tensor, T(3), 2.0),
    case(aten.add.Tensor, F(3, 4), T(4)),
    case(aten.sub.Tensor, T(3, 4), T(3, 1)),
    case(aten.sub.Tensor, T(), T(2, 3), alpha=-0.5),
    case(aten.rsub.Scalar, T(3, 4), 2.0, alpha=3.0),
    case(aten.mul.Tensor, T(3, 4), T(3, 4)),
    case(aten.mul.Tensor, T(3, 4), T(3, 1)),
    case(aten.mul.Tensor, T(), T(2, 3)),
    case(aten.mul.Tensor, T(3), 1.5),
    case(aten.mul.Scalar, T(3, 4), -0.5),
    case(aten.mul.Tensor, T(3, 4), Z(4)),
    case(aten.div.Tensor, T(3, 4), A(3, 4)),
    case(aten.div.Tensor, T(3, 4), A(4)),
    case(aten.div.Tensor, T(), A(3)),
    case(aten.div.Tensor, T(3), 4.0),
    case(aten.div.Tensor, F(3), A()),
    case(aten.neg.default, T(3, 4)),
    case(aten.neg.default, T()),
    case(aten.pow.Tensor_Scalar, T(3, 4), 2),
    case(aten.pow.Tensor_Scalar, T(3, 4), 3),
    case(aten.pow.Tensor_Scalar, P(3, 4), 0.5),
    case(aten.pow.Tensor_Scalar, P(3, 4), -1.5),
    case(aten.pow.Tensor_Scalar, T(3, 4), 1),
    case(aten.pow.Tensor_Scalar, T(3, 4), 0),
    case(aten.pow.Tensor_Scalar, T(), 2.0),
    case(aten.pow.Tensor_Tensor, P(3, 4), T(3, 4)),
    case(aten.pow.Tensor_Tensor, P(3, 4), T(4)),
    case(aten.pow.Tensor_Tensor, P(), T(3)),
    case(aten.pow.Scalar, 2.0, T(3, 4)),
    case(aten.pow.Scalar, 0.5, T()),
    case(aten.exp.default, T(3, 4)),
    case(aten.exp.default, T()),
    case(aten.log.default, P(3, 4)),
    case(aten.sqrt.default, P(3, 4)),
    case(aten.rsqrt.default, P(3, 4)),
    case(aten.reciprocal.default, A(3, 4)),
    case(aten.sin.default, T(3, 4)),
    case(aten.cos.default, T(3, 4)),
    case(aten.tanh.default, T(3, 4)),
    case(aten.sigmoid.default, T(3, 4)),
    case(aten.relu.default, A(3, 4)),
    case(aten.relu.default, A()),
    case(aten.where.self, M(3, 4), T(3, 4), T(3, 4)),
    case(aten.where.self, M(3, 1), T(4), T(3, 4)),
    case(aten.where.self, M(), T(3), T()),
    case(aten.clone.default, T(3, 4)),
    case(aten.alias.default, T(3)),
    case(aten._to_copy.default, T(3, 4), dtype=torch.float32),
    case(aten.tanh_backward.default, T(3, 4), T(3, 4)),
    case(aten.sigmoid_backward.default, T(3, 4), T(3, 4)),
    case(aten.threshold_backward.default, T(3, 4), A(3, 4), 0.0),
    # reductions
    case(aten.sum.default, T(3, 4)),
    case(aten.sum.default, T()),
    case(aten.sum.dim_IntList, T(3, 4), [1]),
    case(aten.sum.dim_IntList, T(2, 3, 4), [-1, 0], keepdim=True),
    case(aten.sum.dim_IntList, T(3, 4), None),
    case(aten.sum.dim_IntList, T(), []),
    case(aten.sum.dim_IntList, T(3, 4), [1], dtype=torch.float32),
    case(aten.mean.default, T(3, 4)),
    case(aten.mean.dim, T(3, 4), [0]),
    case(aten.mean.dim, T(2, 3, 4), [2, 0], True),
    case(aten.mean.dim, T(2, 3), [-1], keepdim=True),
    case(aten.mean.dim, F(2, 3), [0], dtype=torch.float64),
    case(aten.amax.default, T(3, 4), [1]),
    case(aten.amax.default, T(2, 3, 4), [-1, 0], keepdim=True),
    case(aten.amax.default, T(3, 4)),
    case(aten.amax.default, TIES, [1]),
    case(aten.amax.default, T()),
    case(aten.amin.default, T(3, 4), [0]),
    case(aten.amin.default, -TIES, [1], keepdim=True),
    # views and shapes
    case(aten.view.default, T(3, 4), [12]),
    case(aten.view.default, T(3, 4), [2, -1, 2]),
    case(aten.view.default, T(), [1]),
    case(aten._unsafe_view.default, T(3, 4), [4, 3]),
    case(aten.reshape.default, T(3, 4), [-1]),
    case(aten.reshape.default, T(2, 3, 4), [6, 4]),
    case(aten.permute.default, T(2, 3, 4), [2, 0, 1]),
    case(aten.permute.default, T(2, 3, 4), [-1, 0, 1]),
    case(aten.transpose.int, T(2, 3, 4), 0, 2),
    case(aten.transpose.int, T(3, 4), -1, 0),
    case(aten.t.default, T(3, 4)),
    case(aten.t.default, T(3)),
    case(aten.expand.default, T(3, 1), [3, 4]),
    case(aten.expand.default, T(4), [2, 3, 4]),
    case(aten.expand.default, T(3, 1), [-1, 5]),
    case(aten.expand.default, T(), [2, 3]),
    case(aten.squeeze.default, T(3, 1, 4, 1)),
    case(aten.squeeze.dim, T(3, 1, 4), 1),
    case(aten.squeeze.dim, T(3, 4), 0),
    case(aten.squeeze.dims, T(3, 1, 1, 4), [1, -2]),
    case(aten.unsqueeze.default, T(3, 4), 1),
    case(aten.unsqueeze.default, T(3, 4), -1),
    case(aten.unsqueeze.default, T(), 0),
    case(aten.flatten.using_ints, T(2, 3, 4), 1, 2),
    case(aten.flatten.using_ints, T(2, 3, 4)),
    case(aten.slice.Tensor, T(5, 6), 1, 1, 5, 2),
    case(aten.slice.Tensor, T(5, 6), 0, -3),
    case(aten.slice.Tensor, T(5, 6), 1, 2, 100),
    case(aten.slice.Tensor, T(5, 6), dim=1, start=1, step=2),
    case(aten.select.int, T(3, 4), 1, 2),
    case(aten.select.int, T(3, 4), 0, -1),
    case(aten.select.int, T(4), 0, 1),
    case(aten.slice_backward.default, T(5, 3), [5, 6], 1, 1, 6, 2),
    case(aten.select_backward.default, T(4), [3, 4], 0, 1),
    # matrix products
    case(aten.mm.default, T(3, 4), T(4, 5)),
    case(aten.addmm.default, T(3, 5), T(3, 4), T(4, 5)),
    case(aten.addmm.default, T(5), T(3, 4), T(4, 5)),
    case(aten.addmm.default, T(), T(3, 4), T(4, 5), beta=0.5, alpha=2.0),
    case(aten.addmm.default, T(3, 5), T(3, 4), T(4, 5), beta=0),
    case(aten.bmm.default, T(2, 3, 4), T(2, 4, 5)),
]

# The rules this foundation promises: each needs a case above, checked as ours.
FOUNDATION = {
    aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.neg.default,
    aten.pow.Tensor_Scalar, aten.pow.Tensor_Tensor, aten.pow.Scalar,
    aten.exp.default, aten.log.default, aten.sqrt.default, aten.rsqrt.default,
    aten.sin.default, aten.cos.default, aten.tanh.default, aten.sigmoid.default,
    aten.relu.default, aten.where.self,
    aten.sum.default, aten.sum.dim_IntList, aten.mean.default, aten.mean.dim,
    aten.amax.default,
    aten.view.default, aten.reshape.default, aten.permute.default, aten.transpose.int,
    aten.expand.default, aten.squeeze.default, aten.squeeze.dim, aten.squeeze.dims,
    aten.unsqueeze.default, aten.slice.Tensor, aten.select.int,
    aten.mm.default, aten.addmm.default, aten.bmm.default,
}  # fmt: skip

# Rules whose cases live in another test file (name the file when adding one).
TESTED_ELSEWHERE: dict = {op: "tests/test_rules_nn.py" for op in nn_rules.RULES}


def draw(args, kwargs, seed):
    generator = torch.Generator().manual_seed(seed)
    spec = lambda a: a.draw(generator) if isinstance(a, Spec) else a
    return tree_map(spec, list(args)), tree_map(spec, dict(kwargs))


def assert_own_rule_matches_autograd(op, args, kwargs):
    args, kwargs = draw(args, kwargs, seed=0)
    result = check_rule(op, args, kwargs)
    assert result.kind == "rule", f"{op} ran the {result.kind} path, not a rule of ours"
    assert result.ok, result.message


@pytest.mark.parametrize("op, args, kwargs", CASES)
def test_rule(op, args, kwargs):
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


def test_foundation_rules_are_ours_and_have_cases():
    cased = {p.values[0] for p in CASES}
    assert not FOUNDATION - set(RULES), "foundation ops without a rule"
    assert not FOUNDATION - cased, "foundation rules without a case"


def test_rules_without_a_case_are_listed():
    """Rules others add (nn ops...) land with their own tests; list the ones with no case
    anywhere so the gap stays visible, but fail only for the foundation's."""
    cased = {p.values[0] for p in CASES} | set(TESTED_ELSEWHERE)
    missing = sorted(op_name(op) for op in set(RULES) - cased)
    if missing:
        listing = ", ".join(missing)
        warnings.warn(f"rules without a case in tests/test_rules.py: {listing}", stacklevel=1)
    assert not {op_name(op) for op in FOUNDATION} & set(missing)
