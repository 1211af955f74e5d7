"""The case lines of the rule tests: one line per call of an ATen overload, checked against
torch.autograd by `assert_own_rule_matches_autograd` (helpers.py): the overload, its arguments
(tensor specs, drawn when the case runs, or constants) and its keyword arguments.

CASES and CASES_COMPLEX run in tests/test_rules.py, NN_CASES (rules/nn.py) in
tests/test_rules_nn.py, LOSS_CASES (rules/losses.py) in tests/test_losses.py, and
CASES_COMPLEX_ORACLE (complex values torch.autograd refuses, against another oracle) in
tests/test_rules.py, whose test_every_rule_has_a_case reads them all: adding a rule means adding
its line here.
"""

import torch
from helpers import A, C, D, F, Fixed, Index, M, P, T, U, Z, case
from torch.utils._pytree import tree_map

from dynamo_tape.ops import aten

# ---- the other rule families, real and complex values (tests/test_rules.py) ----------------------

# amax/amin split the cotangent evenly between tied extremes
TIES = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]], dtype=torch.float64)
ZEROS = torch.zeros(3, 4, dtype=torch.float64)
# below, inside and above hardswish's and hardsigmoid's (-3, 3), none at a kink
WIDE = torch.linspace(-5, 5, 12, dtype=torch.float64).reshape(3, 4)


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
    case(aten.hardswish_backward.default, T(3, 4), WIDE),
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
    case(aten.expand.default, T(3, 1), [3, 4]),
    case(aten.expand.default, T(4), [2, 3, 4]),
    case(aten.expand.default, T(3, 1), [-1, 5]),
    case(aten.expand.default, T(), [2, 3]),
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
]  # fmt: skip

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
    case(aten.expand.default, C(3, 1), [3, 4]),
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
    # reading x in order: a reshape, and a restride of size-1 dims (adaptive_avg_pool2d's 1x1
    # output of a channels-last input); a transpose of as many elements is not in order
    case(aten.as_strided.default, C(3, 4), [2, 6], [6, 1]),
    case(aten.as_strided.default, C(4, 6, 1, 1), [4, 6, 1, 1], [6, 1, 6, 6], 0),
    case(aten.as_strided.default, T(2, 3, 1, 1), [2, 3, 1, 1], [3, 1, 3, 3]),
    case(aten.as_strided_copy.default, C(3, 4), [4, 3], [1, 4]),
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


# ---- rules/nn.py (tests/test_rules_nn.py) --------------------------------------------------------

NN_CASES = [
    # convolution: stride, padding, groups, with and without bias, transposed
    case(aten.convolution.default, T(2, 4, 7, 7), T(6, 2, 3, 3), T(6), [2, 2], [1, 1], [1, 1],
         False, [0, 0], 2),
    case(aten.convolution.default, T(2, 3, 6, 6), T(4, 3, 1, 1), None, [1, 1], [0, 0], [1, 1],
         False, [0, 0], 1),
    case(aten.convolution.default, T(2, 4, 5, 5), T(4, 3, 3, 3), T(3), [2, 2], [1, 1], [1, 1],
         True, [1, 1], 1),
    # normalisation, softmax, activations
    case(aten.native_layer_norm.default, T(3, 4, 5), [5], T(5), T(5), 1e-5),
    case(aten.native_layer_norm.default, T(3, 4, 5), [4, 5], None, None, 1e-5),
    case(aten._softmax.default, T(3, 5), 1, False),
    case(aten._softmax.default, T(2, 3, 4), 0, False),
    case(aten._log_softmax.default, T(3, 5), 1, False),
    case(aten._log_softmax.default, T(2, 3, 4), -2, False),
    case(aten.gelu.default, T(3, 4)),
    case(aten.gelu.default, T(3, 4), approximate="tanh"),
    case(aten.silu.default, T(3, 4)),
    case(aten.hardswish.default, WIDE),
    case(aten.hardsigmoid.default, WIDE),
    # embedding, pooling, dropout in eval
    case(aten.embedding.default, T(10, 4), Index(10, 3, 5)),
    case(aten.embedding.default, T(10, 4), Index(10, 20), 2),
    case(aten.max_pool2d_with_indices.default, A(2, 3, 6, 6), [2, 2], [2, 2]),
    case(aten.max_pool2d_with_indices.default, A(2, 3, 7, 7), [3, 3], [2, 2], [1, 1], [1, 1],
         True),
    case(aten._adaptive_avg_pool2d.default, T(2, 3, 6, 6), [1, 1]),
    case(aten._adaptive_avg_pool2d.default, T(2, 3, 7, 5), [3, 2]),
    case(aten.avg_pool2d.default, T(2, 3, 6, 6), [2, 2], [2, 2]),
    case(aten.avg_pool2d.default, T(2, 3, 7, 7), [3, 3], [2, 2], [1, 1], True, False),
    case(aten.native_dropout.default, T(3, 4), 0.3, False),
    case(aten.native_dropout_backward.default, T(3, 4), M(3, 4), 1.25),
    # indexing and masking
    case(aten.gather.default, T(3, 5), 1, Index(5, 3, 7)),
    case(aten.scatter_add.default, T(3, 5), 1, Index(5, 3, 4), T(3, 4)),
    case(aten.index.Tensor, T(5, 4), [Index(5, 7)]),
    case(aten.index.Tensor, T(5, 4, 3), [None, Index(4, 2, 3)]),
    case(aten.index_put.default, T(6, 4), [Index(6, 3, unique=True)], T(3, 4)),
    case(aten.index_put.default, T(6, 4), [Index(6, 5)], T(4), True),
    case(aten.masked_fill.Scalar, T(3, 4), M(3, 4), -2.5),
    case(aten.masked_fill.Tensor, T(3, 4), M(3, 1), T()),
    # joining and splitting
    case(aten.cat.default, [T(2, 3), T(4, 3)]),
    case(aten.cat.default, [T(2, 3), T(2, 1), T(2, 2)], -1),
    case(aten.split_with_sizes.default, T(3, 7), [2, 5], 1),
    case(aten.stack.default, [T(3, 4), T(3, 4)], 1),
    # activations the decompositions leave whole, resampling, 3-d and adaptive pooling
    case(aten.elu.default, T(3, 4), 0.7, 1.2, 0.9),
    case(aten.hardtanh.default, A(3, 4), -0.5, 0.8),
    case(aten.leaky_relu.default, A(3, 4), 0.2),
    case(aten.rrelu_with_noise_functional.default, A(3, 4), T(3, 4), 0.1, 0.3, False),
    case(aten._safe_softmax.default, T(3, 5), 1),
    case(aten.native_group_norm.default, T(2, 6, 4), T(6), T(6), 2, 6, 4, 3, 1e-5),
    # weight_norm's fused kernel: norms over every dim but the first, or but the last
    case(aten._weight_norm_interface.default, T(6, 4, 5), P(6, 1, 1)),
    case(aten._weight_norm_interface.default, T(4, 3, 5), T(1, 1, 5), 2),
    case(aten._weight_norm_interface.default, T(5, 3), P(5, 1), 0),
    case(aten.upsample_bilinear2d.default, T(1, 2, 3, 4), [5, 6], False),
    case(aten.upsample_bicubic2d.default, T(1, 2, 3, 4), [5, 6], True),
    case(aten.upsample_trilinear3d.default, T(1, 2, 2, 3, 3), [3, 4, 5], False),
    case(aten._upsample_bilinear2d_aa.default, T(1, 2, 6, 6), [4, 3], False),
    case(aten.grid_sampler_2d.default, T(1, 2, 4, 5), U(1, 3, 3, 2), 0, 0, False),
    case(aten.grid_sampler_3d.default, T(1, 2, 3, 4, 5), U(1, 2, 2, 3, 3), 0, 0, True),
    case(aten.avg_pool3d.default, T(1, 2, 4, 4, 4), [2, 2, 2], [2, 2, 2]),
    case(aten._adaptive_avg_pool3d.default, T(1, 2, 5, 4, 3), [2, 2, 1]),
    case(aten.adaptive_max_pool2d.default, T(2, 3, 6, 5), [3, 2]),
    case(aten.adaptive_max_pool3d.default, T(1, 2, 4, 4, 4), [2, 2, 2]),
    case(aten.max_pool3d_with_indices.default, T(1, 2, 4, 4, 4), [2, 2, 2], [2, 2, 2]),
    case(aten.fractional_max_pool2d.default, T(1, 2, 7, 7), [2, 2], [4, 4], Fixed('U', 1, 2, 2)),
    case(aten.fractional_max_pool3d.default, T(1, 2, 5, 5, 5), [2, 2, 2], [3, 3, 3],
         Fixed('U', 1, 2, 3)),
    case(aten._pdist_forward.default, T(5, 3), 2.0),
    case(aten._pdist_forward.default, T(4, 3), 1.0),
    # complex values: the rules in rules.COMPLEX_SAFE (linear, blind to the values)
    case(aten.gather.default, C(3, 5), 1, Index(5, 3, 7)),
    case(aten.scatter_add.default, C(3, 5), 1, Index(5, 3, 4), C(3, 4)),
    case(aten.index.Tensor, C(5, 4), [Index(5, 7)]),
    case(aten.index_put.default, C(6, 4), [Index(6, 3, unique=True)], C(3, 4)),
    case(aten.index_put.default, C(6, 4), [Index(6, 5)], C(4), True),
    case(aten.masked_fill.Scalar, C(3, 4), M(3, 4), -2.5),
    case(aten.masked_fill.Tensor, C(3, 4), M(3, 1), C()),
    case(aten.cat.default, [C(2, 3), C(4, 3)]),
    case(aten.cat.default, [C(2, 3), T(2, 1)], -1),  # a real piece, promoted
    case(aten.split_with_sizes.default, C(3, 7), [2, 5], 1),
    case(aten.stack.default, [C(3, 4), C(3, 4)], 1),
]  # fmt: skip


# ---- rules/losses.py (tests/test_losses.py) ------------------------------------------------------


def randn64(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _log_probs(*shape):
    return torch.log_softmax(randn64(*shape), dim=min(1, len(shape) - 1))


TARGET = torch.tensor([0, 3, 1, 3, 2])
TARGET_IGNORED = torch.tensor([0, -100, 1, 3, -100])
TARGET_2D = torch.tensor([[[0, 1, 2], [2, 1, 0]], [[1, 1, 1], [0, 2, -100]]])
WEIGHT = randn64(4, seed=1).abs()  # class weights: constants, torch.autograd gives them no gradient
TOTAL_WEIGHT = torch.tensor(0.0, dtype=torch.float64)
# each row's targets, ended by -1
MULTILABEL = torch.tensor([[3, 0, -1, 1, 0], [1, 2, 4, -1, 0], [0, -1, 0, 0, 0]])

LOSS_CASES = [
    (aten.nll_loss_forward.default, (_log_probs(5, 4), TARGET, None, 1, -100)),  # mean
    (aten.nll_loss_forward.default, (_log_probs(5, 4), TARGET, None, 2, -100)),  # sum
    (aten.nll_loss_forward.default, (_log_probs(5, 4), TARGET, None, 0, -100)),  # none
    (aten.nll_loss_forward.default, (_log_probs(5, 4), TARGET_IGNORED, WEIGHT, 1, -100)),
    (aten.nll_loss_forward.default, (_log_probs(4), torch.tensor(2), None, 1, -100)),  # one sample
    (aten.nll_loss2d_forward.default, (_log_probs(2, 3, 2, 3), TARGET_2D, None, 1, -100)),
    (
        aten.nll_loss_backward.default,
        (randn64(5, seed=2), _log_probs(5, 4), TARGET, WEIGHT, 0, -100, TOTAL_WEIGHT),
    ),
    (aten.mse_loss.default, (randn64(3, 4), randn64(3, 4, seed=3), 1)),
    (aten.mse_loss.default, (randn64(3, 4), randn64(3, 4, seed=3), 0)),
    (aten.multilabel_margin_loss_forward.default, (randn64(3, 5), MULTILABEL, 1)),
    (aten.multilabel_margin_loss_forward.default, (randn64(3, 5), MULTILABEL, 0)),
]


# ---- complex values torch.autograd refuses (tests/test_rules.py) ---------------------------------


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


def _weight_norm_backward_oracle(*args):
    kernel = aten._weight_norm_interface_backward.default(*args)
    twin = aten._weight_norm_differentiable_backward.default(*args)
    return tuple(k.detach() + (t - t.detach()) for k, t in zip(kernel, twin, strict=True))


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
    # real values too: eager has no derivative for hardsigmoid_backward, its kernel written out
    # (whose 1/6 is a float32 constant, in every dtype)
    (aten.hardsigmoid_backward.default, [T(3, 4), WIDE],
     lambda go, x: go * ((x > -3) & (x < 3)) * float(torch.tensor(1 / 6, dtype=torch.float32))),
    # eager has no derivative for weight_norm's backward kernel: its double backward runs the
    # kernel's differentiable twin (the kernel's values, the twin's gradients)
    (aten._weight_norm_interface_backward.default,
     [T(6, 4, 5), T(6, 4, 5), P(6, 1, 1), P(6, 1, 1), 0], _weight_norm_backward_oracle),
]  # fmt: skip
