"""Every rule of ours against torch.autograd: float64 and complex128, a random cotangent, one
table.

A case is one line: the ATen overload, its arguments (tensor specs below, or constants) and
keyword arguments. `check_rule` builds a one-entry tape, differentiates it with the tape's
own `grad`, runs it, and compares each output's requires_grad and the input gradients with
torch.autograd's for a random cotangent. Adding a rule means adding a line here; a rule marked
complex-safe (rules.COMPLEX_SAFE) also needs a line with complex tensors (`C`, `D`).
"""

import os
import re

import pytest
import torch
import torchgen
import yaml
from torch.utils._pytree import tree_flatten, tree_map

from dynamo_tape.ir import op_name
from dynamo_tape.ops import MissingOp, aten
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


class Spec:
    """A tensor drawn when the case runs: float64 `T` normal, `P` positive (log, sqrt, pow
    bases), `A` away from zero (divisors, relu's kink); `F` float32 normal (dtype promotion),
    `Z` int64 (not differentiable), `M` a boolean mask, `U` uniform in [0, 1) (probabilities);
    complex128 `C` normal, `D` away from zero (divisors, logs)."""

    def __init__(self, kind, *shape):
        self.kind, self.shape = kind, shape

    def draw(self, generator):
        if self.kind in "CD":
            z = torch.randn(self.shape, dtype=torch.complex128, generator=generator)
            return z / z.abs() * (z.abs() + 0.5) if self.kind == "D" else z
        if self.kind == "U":
            return torch.rand(self.shape, dtype=torch.float64, generator=generator)
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


T, P, A, F, Z, M, U, C, D = (lambda *shape, kind=k: Spec(kind, *shape) for k in "TPAFZMUCD")


class Index(Spec):
    """int64 indices in [0, high), repeats allowed; `unique=True` draws distinct ones."""

    def __init__(self, high, *shape, unique=False):
        super().__init__("I", *shape)
        self.high, self.unique = high, unique

    def draw(self, generator):
        if self.unique:
            n = torch.Size(self.shape).numel()
            return torch.randperm(self.high, generator=generator)[:n].reshape(self.shape)
        return torch.randint(0, self.high, self.shape, generator=generator)

    def __repr__(self):
        return f"I{self.high}:{'x'.join(map(str, self.shape))}"


class Fixed(Spec):
    """A tensor drawn as `kind` that gets no gradient: an input torch.autograd refuses to
    differentiate (fractional pooling's random samples)."""

    def __repr__(self):
        return "fixed " + super().__repr__()


# amax/amin split the cotangent evenly between tied extremes
TIES = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]], dtype=torch.float64)
ZEROS = torch.zeros(3, 4, dtype=torch.float64)


def _complex_matrices():
    g = torch.Generator().manual_seed(7)
    b = torch.randn(3, 3, dtype=torch.complex128, generator=g)
    eye = torch.eye(3, dtype=torch.complex128)
    hpd = b @ b.mH + 3 * eye  # Hermitian positive definite
    lu, pivots = torch.linalg.lu_factor(torch.randn(3, 3, dtype=torch.complex128, generator=g))
    return hpd, torch.linalg.cholesky(hpd), b.triu() + 3 * eye, lu, pivots


def _real_matrices():
    g = torch.Generator().manual_seed(5)
    b = torch.randn(3, 3, dtype=torch.float64, generator=g)
    eye = torch.eye(3, dtype=torch.float64)
    return b @ b.mT + 3 * eye, b.triu() + 3 * eye


# real matrices: symmetric positive definite (distinct eigenvalues), well-conditioned upper
# triangular
SPD, TRIU = _real_matrices()


# complex matrices for the factorizations: HPD, its Cholesky factor, well-conditioned upper
# triangular, an LU factorization and its pivots
HPD_C, CHOL_C, TRIU_C, LU_C, PIVOTS_C = _complex_matrices()


def _text(a) -> str:
    if isinstance(a, torch.Tensor):  # a constant: its type, not its values
        return f"{str(a.dtype).removeprefix('torch.')}{list(a.shape)}"
    return repr(a)


def case(op, *args, **kwargs):
    text = ", ".join([*map(_text, args), *(f"{k}={_text(v)}" for k, v in kwargs.items())])
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
    case(aten.hardtanh_backward.default, T(3, 4), A(3, 4), -0.5, 0.5),
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
    # flat everywhere: the outputs require grad, and the gradient is zero (not None)
    case(aten.sign.default, T(3, 4)),
    case(aten.sgn.default, T(3, 4)),
    case(aten.floor.default, T(3, 4)),
    case(aten.ceil.default, T(3, 4)),
    case(aten.round.default, T(3, 4)),
    case(aten.round.decimals, T(3, 4), decimals=2),
    case(aten.trunc.default, T(3, 4)),
    case(aten.fill.Scalar, T(3, 4), 1.5),
    case(aten.fill.Tensor, T(3, 4), T()),
    case(aten.angle.default, T(3, 4)),
    case(aten.bernoulli.default, U(3, 4)),
    case(aten.normal.Tensor_Tensor, T(3, 4), P(3, 4)),
    case(aten.normal.Tensor_float, T(3, 4), 2.0),
    case(aten.normal.float_Tensor, 1.0, P(3, 4)),
    case(aten.poisson.default, P(3, 4)),
    case(aten.pow.Tensor_Tensor, T(3, 4), ZEROS),  # x^0 = 1 whatever x is
    case(aten.pow.Tensor_Tensor, ZEROS, P(3, 4)),  # flat in the exponent at a zero base
    case(aten.pow.Tensor_Scalar, T(3, 4), 0.0),
    case(aten.pow.Scalar, 0.0, T(3, 4)),
    # comparisons, clamps, signs, remainders
    case(aten.clamp.default, T(3, 4), -0.5, 0.5),
    case(aten.clamp.default, T(3, 4), None, 0.3),
    case(aten.clamp.Tensor, T(3, 4), T(3, 4), T(3, 4)),
    case(aten.clamp.Tensor, T(3, 4), T(4)),
    case(aten.clamp.Tensor, T(3, 4), None, T(3, 1)),
    case(aten.maximum.default, T(3, 4), T(4)),
    case(aten.maximum.default, TIES, TIES.flip(1)),  # ties split the gradient
    case(aten.minimum.default, T(3, 4), T(3, 4)),
    case(aten.fmax.default, T(3, 4), T(3, 4)),
    case(aten.fmin.default, T(3, 4), T(1, 4)),
    case(aten.hypot.default, T(3, 4), T(3, 4)),
    case(aten.atan2.default, T(3, 4), A(3, 4)),
    case(aten.copysign.Tensor, A(3, 4), T(3, 4)),
    case(aten.copysign.Scalar, A(3, 4), -1.0),
    case(aten.nextafter.default, T(3, 4), T(3, 4)),
    case(aten.div.Tensor_mode, T(3, 4), A(3, 4), rounding_mode=None),
    case(aten.div.Tensor_mode, T(3, 4), A(3, 4), rounding_mode="floor"),
    case(aten.remainder.Tensor, T(3, 4), A(3, 4)),
    case(aten.remainder.Scalar, T(3, 4), 0.7),
    case(aten.fmod.Tensor, T(3, 4), A(3, 4)),
    case(aten.fmod.Scalar, T(3, 4), -0.7),
    # special functions
    case(aten.erf.default, T(3, 4)),
    case(aten.erfc.default, T(3, 4)),
    case(aten.erfinv.default, U(3, 4)),
    case(aten.special_erfcx.default, T(3, 4)),
    case(aten.special_ndtri.default, U(3, 4)),
    case(aten.special_log_ndtr.default, T(3, 4)),
    case(aten.lgamma.default, P(3, 4)),
    case(aten.digamma.default, P(3, 4)),
    case(aten.polygamma.default, 1, P(3, 4)),
    case(aten.polygamma.default, 2, P(3, 4)),
    case(aten._standard_gamma.default, P(3, 4)),
    case(aten.i0.default, T(3, 4)),
    case(aten.special_i0e.default, T(3, 4)),
    case(aten.special_i1.default, T(3, 4)),
    case(aten.special_i1e.default, T(3, 4)),
    case(aten.ldexp.Tensor, T(3, 4), T(3, 4)),
    case(aten.frexp.Tensor, A(3, 4)),
    # extremes and selections: values and the indices they came from
    case(aten.max.default, T(3, 4)),
    case(aten.max.default, TIES),  # ties share the gradient
    case(aten.min.default, T(3, 4)),
    case(aten.median.default, T(3, 5)),
    case(aten.nanmedian.default, T(3, 5)),
    case(aten.max.dim, T(3, 4), 1),
    case(aten.min.dim, T(3, 4), 0, True),
    case(aten.median.dim, T(3, 5), 1),
    case(aten.nanmedian.dim, T(3, 5), 0, True),
    case(aten.mode.default, T(3, 5), 1),
    case(aten.kthvalue.default, T(3, 5), 2, 1),
    case(aten.sort.default, T(3, 5), 1),
    case(aten.sort.default, T(3, 5), 0, True),
    case(aten.sort.stable, T(3, 5), stable=True, dim=1),
    case(aten.topk.default, T(3, 5), 2, 1),
    case(aten.topk.default, T(3, 5), 2, 0, False),
    # scans
    case(aten.cumprod.default, A(3, 4), 1),
    case(aten.cummax.default, T(3, 5), 1),
    case(aten.cummin.default, T(3, 5), 0),
    case(aten.logcumsumexp.default, T(3, 4), 1),
    # scatters with reductions
    case(aten.scatter_reduce.two, T(3, 5), 1, Index(5, 3, 4), T(3, 4), "sum"),
    case(aten.scatter_reduce.two, T(3, 5), 1, Index(5, 3, 4), T(3, 4), "mean", include_self=False),
    case(aten.scatter_reduce.two, T(3, 5), 1, Index(5, 3, 4), T(3, 4), "amax"),
    case(aten.scatter_reduce.two, T(3, 5), 1, Index(5, 3, 4), T(3, 4), "amin", include_self=False),
    case(aten.index_reduce.default, T(5, 3), 0, Index(5, 4), T(4, 3), "mean"),
    case(aten.index_reduce.default, T(5, 3), 0, Index(5, 4), T(4, 3), "amax", include_self=False),
    # linear algebra of real matrices
    case(aten._trilinear.default, T(2, 3), T(4, 3, 5), T(2, 5), [1, 3], [0], [1, 2], [2, 3]),
    case(aten._cdist_forward.default, T(4, 3), T(5, 3), 2.0, None),
    case(aten._cdist_forward.default, T(2, 4, 3), T(2, 5, 3), 1.0, None),
    case(aten._linalg_slogdet.default, SPD),
    case(aten.linalg_matrix_exp.default, T(3, 3)),
    case(aten.linalg_pinv.atol_rtol_tensor, T(4, 3)),
    case(aten.linalg_pinv.atol_rtol_tensor, T(3, 5)),
    case(aten.triangular_solve.default, T(3, 2), TRIU, True, False, False),
    case(aten.triangular_solve.default, T(3, 2), TRIU.mT, False, True, False),
    case(aten._linalg_eigh.default, SPD),
    case(aten._linalg_svd.default, T(4, 3), False),
    case(aten._linalg_svd.default, T(3, 5), True),
    case(aten.linalg_qr.default, T(4, 3)),
    case(aten.linalg_qr.default, T(3, 3), "complete"),
    # the backward kernels' own rules (linear in the cotangent they were given)
    case(aten.max_pool2d_with_indices_backward.default, T(2, 3, 3, 3), A(2, 3, 6, 6), [2, 2],
         [2, 2], [0, 0], [1, 1], False, Index(36, 2, 3, 3, 3)),
    case(aten.nll_loss2d_backward.default, T(2, 2, 3), T(2, 3, 2, 3), Index(3, 2, 2, 3), None, 0,
         -100, Fixed("P")),
]

# Complex values: every rule in rules.COMPLEX_SAFE against torch.autograd in complex128 (real
# and complex arguments mixed where ATen allows: a real input gets the real part).
CASES_COMPLEX = [
    # pointwise
    case(aten.add.Tensor, C(3, 4), C(4)),
    case(aten.add.Tensor, C(3, 4), T(3, 4), alpha=1 - 2j),
    case(aten.add.Tensor, T(3), 2j),
    case(aten.sub.Tensor, T(3, 4), C(3, 1), alpha=0.5j),
    case(aten.rsub.Scalar, C(3, 4), 2.0, alpha=3j),
    case(aten.mul.Tensor, C(3, 4), C(3, 4)),
    case(aten.mul.Tensor, C(3, 4), T(4)),
    case(aten.mul.Tensor, T(), C(2, 3)),
    case(aten.mul.Tensor, C(3), 1.5 - 2j),
    case(aten.mul.Tensor, T(3), 1.5j),
    case(aten.mul.Scalar, C(3, 4), 0.5 - 2j),
    case(aten.div.Tensor, C(3, 4), D(3, 4)),
    case(aten.div.Tensor, T(3, 4), D(4)),
    case(aten.div.Tensor, C(3, 4), A(4)),
    case(aten.div.Tensor, C(3), 2j),
    case(aten.neg.default, C(3, 4)),
    case(aten.pow.Tensor_Scalar, C(3, 4), 2),
    case(aten.pow.Tensor_Scalar, C(3, 4), 3),
    case(aten.pow.Tensor_Scalar, D(3, 4), -1.5),
    case(aten.pow.Tensor_Scalar, C(3, 4), 0),
    case(aten.pow.Tensor_Scalar, D(3, 4), 0.5 + 1j),
    case(aten.pow.Tensor_Scalar, P(3, 4), 1j),
    case(aten.pow.Tensor_Tensor, D(3, 4), C(3, 4)),
    case(aten.pow.Tensor_Tensor, P(3, 4), C(4)),
    case(aten.pow.Tensor_Tensor, D(3), T(3)),
    case(aten.pow.Scalar, 2.0, C(3, 4)),
    case(aten.pow.Scalar, 1 + 1j, T(3, 4)),
    case(aten.pow.Scalar, -2.0, C(3)),
    case(aten.pow.Scalar, 0.0, C(3)),
    case(aten.exp.default, C(3, 4)),
    case(aten.log.default, D(3, 4)),
    case(aten.sqrt.default, D(3, 4)),
    case(aten.rsqrt.default, D(3, 4)),
    case(aten.reciprocal.default, D(3, 4)),
    case(aten.sin.default, C(3, 4)),
    case(aten.cos.default, C(3, 4)),
    case(aten.tanh.default, C(3, 4)),
    case(aten.sigmoid.default, C(3, 4)),
    case(aten.where.self, M(3, 4), C(3, 4), C(3, 4)),
    case(aten.where.self, M(3, 1), C(4), C(3, 4)),
    case(aten.clone.default, C(3, 4)),
    case(aten.alias.default, C(3)),
    case(aten._to_copy.default, C(3, 4), dtype=torch.complex64),
    case(aten._to_copy.default, T(3, 4), dtype=torch.complex128),
    case(aten.tanh_backward.default, C(3, 4), C(3, 4)),
    case(aten.sigmoid_backward.default, C(3, 4), C(3, 4)),
    case(aten.fill.Scalar, C(3, 4), 1.5),
    case(aten.fill.Tensor, C(3, 4), C()),
    case(aten.sgn.default, D(3, 4)),
    case(aten.abs.default, D(3, 4)),
    case(aten.acos.default, C(3, 4)),
    case(aten.asin.default, C(3, 4)),
    case(aten.acosh.default, C(3, 4)),
    case(aten.asinh.default, C(3, 4)),
    case(aten.atan.default, C(3, 4)),
    case(aten.atanh.default, C(3, 4)),
    case(aten.sinh.default, C(3, 4)),
    case(aten.cosh.default, C(3, 4)),
    case(aten.tan.default, C(3, 4)),
    case(aten.exp2.default, C(3, 4)),
    case(aten.expm1.default, C(3, 4)),
    case(aten.log2.default, D(3, 4)),
    case(aten.log10.default, D(3, 4)),
    case(aten.log1p.default, D(3, 4)),
    case(aten.add.Scalar, C(3, 4), 2.0 + 1j),
    case(aten.sub.Scalar, C(3, 4), 2.0),
    case(aten.div.Scalar, C(3, 4), 2j),
    case(aten.lerp.Scalar, C(3, 4), C(3, 4), 0.3 + 0.2j),
    case(aten.lerp.Tensor, C(3, 4), C(3, 4), C(3, 4)),
    case(aten.addcmul.default, C(3, 4), C(3, 4), C(3, 4), value=2j),
    case(aten.addcdiv.default, C(3, 4), C(3, 4), D(3, 4), value=0.5),
    case(aten.square.default, C(3, 4)),
    # complex numbers' own ops
    case(aten._conj.default, C(3, 4)),
    case(aten._conj_physical.default, C(3, 4)),
    case(aten.resolve_conj.default, C(3, 4)),
    case(aten.resolve_neg.default, C(3, 4)),
    case(aten.real.default, C(3, 4)),
    case(aten.imag.default, C(3, 4)),
    case(aten.complex.default, T(3, 4), T(3, 4)),
    case(aten.view_as_real.default, C(3, 4)),
    case(aten.view_as_complex.default, T(3, 4, 2)),
    case(aten.angle.default, D(3, 4)),
    case(aten.polar.default, P(3, 4), T(3, 4)),
    # reductions
    case(aten.sum.default, C(3, 4)),
    case(aten.sum.dim_IntList, C(2, 3, 4), [-1, 0], keepdim=True),
    case(aten.mean.default, C(3, 4)),
    case(aten.mean.dim, C(2, 3, 4), [2, 0], True),
    case(aten.cumsum.default, C(3, 4), 1),
    case(aten.var_mean.correction, C(3, 4), [1]),
    case(aten.var.correction, C(3, 4), [0], correction=0),
    case(aten.linalg_vector_norm.default, D(3, 4)),
    case(aten.linalg_vector_norm.default, D(3, 4), 1, [1]),
    case(aten.linalg_vector_norm.default, D(3, 4), 3, [0], True),
    case(aten.linalg_vector_norm.default, D(3, 4), float("inf"), [1]),
    case(aten.linalg_vector_norm.default, D(3, 4), 0),
    case(aten.dist.default, C(3, 4), C(3, 4)),
    case(aten.prod.default, C(3, 4)),
    case(aten.prod.dim_int, C(3, 4), 1),
    # views and shapes
    case(aten.view.default, C(3, 4), [12]),
    case(aten._unsafe_view.default, C(3, 4), [4, 3]),
    case(aten.reshape.default, C(2, 3, 4), [6, 4]),
    case(aten.permute.default, C(2, 3, 4), [2, 0, 1]),
    case(aten.transpose.int, C(2, 3, 4), 0, 2),
    case(aten.expand.default, C(3, 1), [3, 4]),
    case(aten.squeeze.default, C(3, 1, 4, 1)),
    case(aten.squeeze.dim, C(3, 1, 4), 1),
    case(aten.squeeze.dims, C(3, 1, 1, 4), [1, -2]),
    case(aten.unsqueeze.default, C(3, 4), 1),
    case(aten.flatten.using_ints, C(2, 3, 4), 1, 2),
    case(aten.slice.Tensor, C(5, 6), 1, 1, 5, 2),
    case(aten.select.int, C(3, 4), 1, 2),
    case(aten.slice_backward.default, C(5, 3), [5, 6], 1, 1, 6, 2),
    case(aten.select_backward.default, C(4), [3, 4], 0, 1),
    case(aten.view_copy.default, C(3, 4), [2, 6]),
    case(aten.permute_copy.default, C(2, 3, 4), [1, 2, 0]),
    case(aten.diagonal.default, C(3, 4), 1),
    case(aten.diagonal_scatter.default, C(3, 4), C(3), 0),
    case(aten.flip.default, C(3, 4), [0, 1]),
    case(aten.repeat.default, C(2, 3), [2, 1, 2]),
    case(aten.unfold.default, C(3, 7), 1, 3, 2),
    case(aten.index_select.default, C(5, 4), 0, Index(5, 7)),
    case(aten.constant_pad_nd.default, C(3, 4), [1, 2, 0, 1], 0),
    case(aten.masked_scatter.default, C(3, 4), M(3, 4), C(12)),
    case(aten.tril.default, C(4, 4), -1),
    case(aten.triu.default, C(4, 4), 1),
    case(aten.scatter.src, C(1, 5), 1, Index(5, 1, 3, unique=True), C(1, 3)),
    case(aten.scatter.value, C(3, 5), 1, Index(5, 3, 2), 2.0),
    case(aten.put.default, C(3, 4), Index(12, 5, unique=True), C(5)),
    case(aten.put.default, C(3, 4), Index(12, 5), C(5), True),
    case(aten.take.default, C(3, 4), Index(12, 7)),
    case(aten.unbind_copy.int, C(3, 4), 1),
    case(aten.as_strided.default, C(3, 4), [2, 3], [4, 1], 1),
    case(aten.as_strided_copy.default, C(3, 4), [3, 3], [1, 2]),
    # matrix products
    case(aten.mm.default, C(3, 4), C(4, 5)),
    case(aten.addmm.default, C(3, 5), C(3, 4), C(4, 5)),
    case(aten.addmm.default, C(5), C(3, 4), C(4, 5), beta=0.5j, alpha=2.0 - 1j),
    case(aten.bmm.default, C(2, 3, 4), C(2, 4, 5)),
    case(aten.mv.default, C(3, 4), C(4)),
    case(aten.addmv.default, C(3), C(3, 4), C(4), beta=2j, alpha=0.5),
    case(aten.addbmm.default, C(3, 5), C(2, 3, 4), C(2, 4, 5), alpha=1j),
    case(aten.linalg_inv_ex.default, C(3, 3)),
    case(aten._linalg_solve_ex.default, C(3, 3), C(3, 2)),
    case(aten._linalg_solve_ex.default, C(3, 3), C(3)),
    case(aten._linalg_solve_ex.default, C(3, 3), C(2, 3), left=False),
    case(aten.linalg_solve_triangular.default, TRIU_C, C(3, 2), upper=True),
    case(aten.linalg_solve_triangular.default, TRIU_C.mH, C(2, 3), upper=False, left=False),
    case(aten.linalg_solve_triangular.default, TRIU_C, C(3, 2), upper=True, unitriangular=True),
    case(aten.cholesky.default, HPD_C),
    case(aten.cholesky.default, HPD_C, True),
    case(aten.linalg_cholesky_ex.default, HPD_C),
    case(aten.cholesky_inverse.default, CHOL_C),
    case(aten.cholesky_inverse.default, CHOL_C.mH, True),
    case(aten.cholesky_solve.default, C(3, 2), CHOL_C),
    case(aten.cholesky_solve.default, C(3, 2), CHOL_C.mH, True),
    case(aten._linalg_det.default, C(3, 3)),
    case(aten._linalg_det.default, C(2, 3, 3)),
    case(aten.linalg_lu.default, C(3, 3)),
    case(aten.linalg_lu.default, C(3, 5)),
    case(aten.linalg_lu.default, C(5, 3)),
    case(aten.linalg_lu_factor_ex.default, C(3, 3)),
    case(aten.linalg_lu_factor_ex.default, C(4, 3)),
    case(aten.linalg_lu_solve.default, LU_C, PIVOTS_C, C(3, 2)),
    case(aten.linalg_lu_solve.default, LU_C, PIVOTS_C, C(3, 2), adjoint=True),
    case(aten.linalg_lu_solve.default, LU_C, PIVOTS_C, C(2, 3), left=False),
    case(aten.linalg_lu_solve.default, LU_C, PIVOTS_C, C(2, 3), left=False, adjoint=True),
    case(aten.lu_unpack.default, LU_C, PIVOTS_C),
    # FFTs: complex by nature, from real inputs and to real outputs too
    case(aten._fft_r2c.default, T(8), [0], 0, True),
    case(aten._fft_r2c.default, T(3, 6), [1], 2, False),
    case(aten._fft_r2c.default, T(4, 6), [0, 1], 1, True),
    case(aten._fft_c2r.default, C(3, 5), [1], 2, 8),
    case(aten._fft_c2r.default, C(4, 4), [0, 1], 0, 7),
    case(aten._fft_c2c.default, C(4, 6), [0, 1], 0, True),
    case(aten._fft_c2c.default, C(5), [0], 1, False),
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
    # fused attention kernels of CUDA (the CPU one runs only where it is called directly)
    aten._scaled_dot_product_flash_attention.default: "tests/test_cuda.py",
    aten._scaled_dot_product_efficient_attention.default: "tests/test_cuda.py",
    aten._scaled_dot_product_cudnn_attention.default: "tests/test_cuda.py",
    aten._scaled_dot_product_flash_attention_for_cpu.default: "tests/test_cuda.py",
}


def draw(args, kwargs, seed):
    generator = torch.Generator().manual_seed(seed)
    spec = lambda a: a.draw(generator) if isinstance(a, Spec) else a
    return tree_map(spec, list(args)), tree_map(spec, dict(kwargs))


def assert_own_rule_matches_autograd(op, args, kwargs):
    specs = tree_flatten([list(args), dict(kwargs)])[0]
    args, kwargs = draw(args, kwargs, seed=0)
    drawn = tree_flatten([args, kwargs])[0]
    fixed = [x for spec, x in zip(specs, drawn, strict=True) if isinstance(spec, Fixed)]
    try:
        result = check_rule(op, args, kwargs, constants=fixed)
    except NotImplementedError as e:  # the oracle's, when this torch has no formula (2.11's
        base = op_name(op).split(".")[0]  # nextafter): nothing to check the rule against
        if f"the derivative for '{base}' is not implemented" not in str(e):
            raise
        pytest.skip(f"torch {torch.__version__} has no derivative for {base} to compare with")
    assert result.kind == "rule", f"{op} ran the {result.kind} path, not a rule of ours"
    assert result.ok, result.message


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
    """Adding a rule means adding its case line: here, in tests/test_rules_nn.py or
    tests/test_losses.py (or, for the few no case line can check, CHECKED_ELSEWHERE)."""
    import test_losses
    import test_rules_nn  # their cases use this module's specs

    cased = {p.values[0] for p in [*CASES, *CASES_COMPLEX, *test_rules_nn.CASES]}
    cased |= {op for op, _, _ in CASES_COMPLEX_ORACLE} | {op for op, _ in test_losses.CASES}
    missing = sorted(op_name(op) for op in set(RULES) - cased - set(CHECKED_ELSEWHERE))
    assert not missing, f"rules without a case: {', '.join(missing)}"
    assert not cased & set(CHECKED_ELSEWHERE), "CHECKED_ELSEWHERE lists ops with a case line"


# --- complex values --------------------------------------------------------------------------


def by_parts(op):
    """`op` of complex tensors computed from their real and imaginary parts, which is the same
    function for an op linear with real coefficients, and one torch.autograd differentiates
    where it refuses complex values of `op` itself."""

    def oracle(*args, **kwargs):
        def part(f):
            take = lambda a: f(a) if isinstance(a, torch.Tensor) and a.is_complex() else a
            return tree_map(take, (list(args), dict(kwargs)))

        (re_args, re_kwargs), (im_args, im_kwargs) = part(torch.real), part(torch.imag)
        return torch.complex(op(*re_args, **re_kwargs), op(*im_args, **im_kwargs))

    return oracle


# Complex-safe rules of ops whose complex values torch.autograd refuses ("does not support
# automatic differentiation for outputs with complex dtype", or no formula at all: the
# functional copy), checked against the same function written another way.
CASES_COMPLEX_ORACLE = [
    (aten.slice_scatter.default, [C(5, 4), C(2, 4), 0, 1, 5, 2],
     by_parts(aten.slice_scatter.default)),
    (aten.lift_fresh_copy.default, [C(3, 4)], by_parts(aten.lift_fresh_copy.default)),
    # torch 2.11 has no derivative for narrow_copy ("not implemented"): the same copy, taken
    # as a narrow view, then cloned
    (aten.narrow_copy.default, [C(5, 4), 0, 1, 3],
     lambda x, dim, start, length: x.narrow(dim, start, length).clone()),
    # copy's x is overwritten (a zero gradient, as copy_'s in derivatives.yaml)
    (aten.copy.default, [C(3, 4), C(3, 4)], lambda x, src, non_blocking=False: x * 0 + src),
    (aten.copy.default, [T(3, 4), T(4)], lambda x, src, non_blocking=False: x * 0 + src),
]  # fmt: skip

# Complex-safe rules no case here can check, and what checks them instead.
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
    import test_rules_nn  # its cases use this module's specs

    # CASES_COMPLEX's cases all make complex values (complex(), polar and rfft from real ones)
    cased = {p.values[0] for p in CASES_COMPLEX}
    cased |= {p.values[0] for p in test_rules_nn.CASES if _is_complex_spec(p.values[1:])}
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
        (lambda z: (z * z).real.sum(),
         lambda g: [torch.randn(3, dtype=torch.complex128, generator=g)]),
        (lambda x: torch.fft.irfft(torch.fft.rfft(x) * torch.fft.rfft(x.flip(0)), n=8),
         lambda g: [torch.randn(8, dtype=torch.float64, generator=g)]),
        (lambda a, b: (a @ b.conj().t()).abs() + torch.view_as_real(a.exp()).sum(),
         lambda g: [torch.randn(3, 4, dtype=torch.complex64, generator=g) for _ in range(2)]),
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
