"""Linear-algebra rules: matrix products, solves, inverses, determinants, Cholesky, distances.
g: cotangent of the output(s); return one cotangent per argument. Math from derivatives.yaml
and FunctionsManual.cpp. The rules in COMPLEX_SAFE take complex matrices too (mH: the
conjugate transpose, see conjugate.py); the others are for real ones (A^H = A^T), and complex
entries of their ops run on the generic fallback."""

from ..ops import aten
from ..record import bmm, call, cat, inverse, lu_solve, mm, solve_triangular, unsqueeze, zeros_like
from ..torch_private import statically_known_true
from .conjugate import conj, mH
from .helpers import scaled


# As eager does (mm_mat1_backward, mm_mat2_backward): a cotangent comes out laid out like its
# input. A Linear's `weight.t()` is column-major; a row-major gradient for it would be copied
# by autograd's AccumulateGrad into the weight's layout on every step.
def _column_major(x) -> bool:
    m = x.meta
    return statically_known_true(m.stride(0) == 1) and statically_known_true(
        m.stride(1) == m.shape[0]
    )


def mm_grad_a(g, a, b):  # g b^H
    return mm(conj(b), g.mT).mT if _column_major(a) else mm(g, mH(b))


def mm_grad_b(g, a, b):  # a^H g
    return mm(g.mT, conj(a)).mT if _column_major(b) else mm(mH(a), g)


def _triangle(ga, upper, unitriangular):
    # only the triangle a triangular solve reads gets a gradient (no diagonal when unitriangular)
    return ga.triu(1 if unitriangular else 0) if upper else ga.tril(-1 if unitriangular else 0)


def mv_grads(g, mat, vec):  # y = mat vec: (g vec^H, mat^H g)
    return (unsqueeze(g, -1) * unsqueeze(conj(vec), 0), mH(mat).mv(g))


def addmm_rule(g, y, bias, a, b, beta=1, alpha=1):  # y = beta bias + alpha a b
    ga = mm_grad_a(g, a, b)
    gb = mm_grad_b(g, a, b)
    if alpha != 1:
        ga, gb = ga * conj(alpha), gb * conj(alpha)
    return (g if beta == 1 else g * conj(beta), ga, gb)


def addmv_rule(g, y, bias, mat, vec, beta=1, alpha=1):  # y = beta bias + alpha mat vec
    gmat, gvec = mv_grads(g, mat, vec)
    return (scaled(g, beta), scaled(gmat, alpha), scaled(gvec, alpha))


def addbmm_rule(g, y, bias, b1, b2, beta=1, alpha=1):  # y = beta bias + alpha sum_i b1_i b2_i
    # (expanded even to its own shape, a batch of one: record.expand would skip that)
    gb = call(aten.expand.default, unsqueeze(g, 0), [b1.shape[0], b1.shape[1], b2.shape[2]])
    g1 = bmm(gb, mH(b2))
    g2 = bmm(mH(b1), gb)
    return (scaled(g, beta), scaled(g1, alpha), scaled(g2, alpha))


def inv_rule(g, y, a, check_errors=False):  # d(A^-1) = -A^-1 dA A^-1
    inverse_h = mH(y[0])
    return (-(inverse_h @ (g[0] @ inverse_h)),)


def slogdet_rule(g, y, a):  # d log|det A| = tr(A^-1 dA)
    if g[1] is None:
        return (None,)
    inv = inverse(a)
    return (unsqueeze(unsqueeze(g[1], -1), -1) * inv.mT,)


def solve_rule(g, y, a, b, left=True, check_errors=False):
    # X = A^-1 B: gB = A^-H gX, gA = -gB X^H (left); X = B A^-1: gB = gX A^-H, gA = -X^H gB
    gx, x, lu, pivots = g[0], y[0], y[1], y[2]
    vector = b.dim() == 1 or a.dim() - 1 == b.dim()
    if vector:
        gx, x = unsqueeze(gx, -1), unsqueeze(x, -1)
    gb = lu_solve(lu, pivots, gx, left=left, adjoint=True)
    ga = -(gb @ mH(x)) if left else -(mH(x) @ gb)
    if vector:
        gb = call(aten.squeeze.dim, gb, -1)
    return (ga, gb)


def solve_triangular_rule(g, y, a, b, upper, left=True, unitriangular=False):
    gb = solve_triangular(mH(a), g, not upper, left, unitriangular)
    ga = -(gb @ mH(y)) if left else -(mH(y) @ gb)
    return (_triangle(ga, upper, unitriangular), gb)


def cholesky_rule(g, y, a, upper=False):
    # A = L L^H (torch's cholesky_backward): gA = L^-H S L^-1 with phi = tril(L^H gL) and
    # S = (phi + tril(phi, -1)^H) / 2, phi's diagonal halved and its lower part mirrored
    lower = mH(y) if upper else y
    gl = mH(g) if upper else g
    phi = (mH(lower) @ gl).tril()
    ga = (phi + mH(phi.tril(-1))) * 0.5
    ga = solve_triangular(mH(lower), ga, upper=True, left=True)
    return (solve_triangular(lower, ga, upper=False, left=False),)


def matrix_exp_rule(g, y, a):
    # the gradient is the top-right block of exp([[A^H, G], [0, A^H]])
    n = a.shape[-1]
    at = a.mT
    top, bottom = cat([at, g], -1), cat([zeros_like(g), at], -1)
    big = cat([top, bottom], -2).matrix_exp()
    return (big.slice(-2, 0, n).slice(-1, n, 2 * n),)


def trilinear_rule(g, y, i1, i2, i3, e1, e2, e3, sumdim, unroll_dim=1):
    # each input's gradient is another trilinear product with g in its place
    return (
        call(aten._trilinear.default, g, i2, i3, sumdim, e2, e3, e1),
        call(aten._trilinear.default, i1, g, i3, e1, sumdim, e3, e2),
        call(aten._trilinear.default, i1, i2, g, e1, e2, sumdim, e3),
    )


def cdist_rule(g, y, x1, x2, p, compute_mode=None):
    backward = aten._cdist_backward.default
    g1 = call(backward, g.contiguous(), x1, x2, p, y)
    g2 = call(backward, g.mT.contiguous(), x2, x1, p, y.mT.contiguous())
    return (g1, g2)


def cholesky_inverse_rule(g, y, factor, upper=False):  # y = (L L^H)^-1
    common = y @ ((g + mH(g)) @ y)
    return (-(factor @ common) if upper else -(common @ factor),)


def cholesky_solve_rule(g, y, b, factor, upper=False):  # y = (L L^H)^-1 B
    gb = g.cholesky_solve(factor, upper)
    common = gb @ mH(y)
    common = common + mH(common)
    return (gb, -(factor @ common) if upper else -(common @ factor))


def triangular_solve_rule(g, y, b, a, upper=True, transposed=False, unitriangular=False):
    gx, gm = g
    x = y[0]
    gb = ga = None
    if gx is not None:
        gb = gx.triangular_solve(a, upper, not transposed, unitriangular)[0]
        ga = -(x @ gb.mT) if transposed else -(gb @ x.mT)
        ga = _triangle(ga, upper, unitriangular)
    if gm is not None:  # the cloned coefficient is A itself
        ga = gm if ga is None else ga + gm
    return (gb, ga)


def det_rule(g, y, a):  # d det A = det A tr(A^-1 dA); A is taken invertible
    scale = unsqueeze(unsqueeze(g[0] * conj(y[0]), -1), -1)
    return (scale * mH(inverse(a)),)


def pinv_rule(g, y, a, atol=None, rtol=None, hermitian=False):
    # torch's pinv_backward (real case), with the products kept to the smaller dimension
    m, n = a.shape[-2], a.shape[-1]
    pinv_t, g_t = y.mT, g.mT
    if m <= n:
        k = g_t @ y
        k_pinv_t = k @ pinv_t
        ga = -(y @ k).mT + k_pinv_t - a @ y @ k_pinv_t
        ga = ga + pinv_t @ y @ (g_t - k @ a)
    else:
        k = y @ g_t
        pinv_t_k = pinv_t @ k
        ga = -(k @ y).mT + (g_t - a @ k) @ y @ pinv_t
        ga = ga + pinv_t_k - pinv_t_k @ y @ a
    return (ga,)


RULES = {
    aten.mm.default: lambda g, y, a, b: (mm_grad_a(g, a, b), mm_grad_b(g, a, b)),
    aten.bmm.default: lambda g, y, a, b: (bmm(g, mH(b)), bmm(mH(a), g)),
    aten.addmm.default: addmm_rule,
    aten.mv.default: lambda g, y, mat, vec: mv_grads(g, mat, vec),
    aten.addmv.default: addmv_rule,
    aten.addbmm.default: addbmm_rule,
    aten._trilinear.default: trilinear_rule,
    aten._cdist_forward.default: cdist_rule,
    aten.linalg_inv_ex.default: inv_rule,
    aten._linalg_det.default: det_rule,
    aten._linalg_slogdet.default: slogdet_rule,
    aten._linalg_solve_ex.default: solve_rule,
    aten.linalg_solve_triangular.default: solve_triangular_rule,
    aten.triangular_solve.default: triangular_solve_rule,
    aten.cholesky.default: cholesky_rule,
    aten.linalg_cholesky_ex.default: lambda g, y, a, upper=False, check_errors=False: cholesky_rule(
        g[0], y[0], a, upper
    ),
    aten.cholesky_inverse.default: cholesky_inverse_rule,
    aten.cholesky_solve.default: cholesky_solve_rule,
    aten.linalg_matrix_exp.default: matrix_exp_rule,
    aten.linalg_pinv.atol_rtol_tensor: pinv_rule,
}

COMPLEX_SAFE = {
    *(aten.mm.default, aten.bmm.default, aten.addmm.default),
    *(aten.mv.default, aten.addmv.default, aten.addbmm.default),
    *(aten.linalg_inv_ex.default, aten._linalg_det.default, aten._linalg_solve_ex.default),
    *(aten.linalg_solve_triangular.default, aten.cholesky.default),
    *(aten.linalg_cholesky_ex.default, aten.cholesky_inverse.default),
    aten.cholesky_solve.default,
}  # fmt: skip
