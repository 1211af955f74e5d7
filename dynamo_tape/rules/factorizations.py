"""Rules for matrix factorizations: LU, SVD, symmetric eigendecomposition, QR. Each follows
torch's own backward in FunctionsManual.cpp (real matrices, A^H = A^T; the LU rules, in
COMPLEX_SAFE, write A^H and take complex ones too).
g: cotangents of the factors (None for unused ones); return one cotangent per argument."""

from ..ops import aten
from ..record import (
    call,
    cat,
    lu_solve,
    lu_unpack,
    narrow,
    ones_like,
    pad,
    solve_triangular,
    unsqueeze,
    zeros_like,
)
from .conjugate import mH
from .fallback import autograd_vjp


def eigh_rule(g, y, a, uplo="L", compute_v=True):
    # A = V diag(L) V^T: gA = V (diag(gL) + skew(V^T gV) / (L_j - L_i)) V^T
    gl, gv = g
    values, vectors = y
    inner = None
    if gv is not None:
        vtgv = vectors.mT @ gv
        skew = (vtgv - vtgv.mT) * 0.5
        gap = unsqueeze(values, -2) - unsqueeze(values, -1)
        eye = ones_like(values).diag_embed()
        inner = skew / (gap + eye)
    if gl is not None:
        diag = gl.diag_embed()
        inner = diag if inner is None else inner + diag
    return (vectors @ (inner @ vectors.mT),)


def _svd_backward(gu, gs, gvh, u, s, vh):
    # torch's svd_backward (real case, distinct singular values)
    m, n = u.shape[-2], vh.shape[-1]
    if gu is None and gvh is None:  # singular values only: U diag(gS) V^H
        if m >= n:
            return u @ (unsqueeze(gs, -1) * vh)
        return (u * unsqueeze(gs, -2)) @ vh
    skew = lambda x: x - x.mT
    s_row, s_col = unsqueeze(s, -2), unsqueeze(s, -1)
    s2 = s * s
    eye = ones_like(s).diag_embed()
    gap = unsqueeze(s2, -2) - unsqueeze(s2, -1) + eye  # E, with ones on its zero diagonal
    if gu is not None and gvh is not None:
        inner = (skew(u.mT @ gu) * s_row + s_col * skew(vh @ gvh.mT)) / gap
    elif gu is not None:
        inner = skew(u.mT @ gu) * (s_row / gap)
    else:
        inner = s_col * (skew(vh @ gvh.mT) / gap)
    if gs is not None:
        inner = inner + gs.diag_embed()
    if m > n and gu is not None:  # gA = [U inner + (I - U U^H) gU S^-1] V^H
        gu_sinv = gu / s_row
        ga = u @ inner + gu_sinv - u @ (u.mT @ gu_sinv)
        return ga @ vh
    if m < n and gvh is not None:  # gA = U [inner V^H + S^-1 gV^H (I - V V^H)]
        sinv_gvh = gvh / s_col
        ga = inner @ vh + sinv_gvh - sinv_gvh @ vh.mT @ vh
        return u @ ga
    return u @ (inner @ vh)


def svd_rule(g, y, a, full_matrices, compute_uv=True, driver=None):
    gu, gs, gvh = g
    u, s, vh = y
    if not compute_uv:  # svdvals traced without grad: the backward needs the vectors anyway
        u, s, vh = call(aten._linalg_svd.default, a, False, True, driver=driver)
    k = s.shape[-1]
    if full_matrices:  # only the first k singular vectors carry information
        u, vh = narrow(u, -1, 0, k), narrow(vh, -2, 0, k)
        gu = narrow(gu, -1, 0, k) if gu is not None else None
        gvh = narrow(gvh, -2, 0, k) if gvh is not None else None
    if gu is None and gs is None and gvh is None:
        return (None,)
    return (_svd_backward(gu, gs, gvh, u, s, vh),)


def qr_rule(g, y, a, mode="reduced"):
    # torch's linalg_qr_backward for m >= n: gA = [gQ + Q syminvadj(triu(gR R^H - Q^H gQ))] R^-H
    gq, gr = g
    q, r = y
    if q.shape[-2] < r.shape[-1] or mode == "r":  # wide matrices: left to torch
        return autograd_vjp(aten.linalg_qr.default, g, y, a, mode)
    if gq is not None and gr is not None:
        ga = gr @ r.mT - q.mT @ gq
    elif gq is not None:
        ga = -(q.mT @ gq)
    else:
        ga = gr @ r.mT
    upper = ga.triu()
    sym = upper + upper.mT
    sym = sym - sym.diagonal(0, -2, -1).diag_embed() * 0.5
    ga = q @ sym
    if gq is not None:
        ga = ga + gq
    return (solve_triangular(r.mT, ga, upper=False, left=False),)


def _lu_backward(gl, gu, p, lower, upper, pivot):
    # torch's linalg_lu_backward: A = P L U with L (m x k) unit lower, U (k x n) upper
    m, n = lower.shape[-2], upper.shape[-1]
    k = min(m, n)
    if m == n:  # gA = P L^-H [L^H gL o 1_L + gU U^H o 1_U] U^-H
        parts = []
        if gl is not None:
            parts.append((mH(lower) @ gl).tril(-1))
        if gu is not None:
            parts.append((gu @ mH(upper)).triu())
        ga = parts[0] if len(parts) == 1 else parts[0] + parts[1]
        ga = solve_triangular(mH(upper), ga, upper=False, left=False)
        ga = solve_triangular(mH(lower), ga, upper=True, left=True, unitriangular=True)
    elif m < n:  # wide: U = [U1 U2]
        u1 = narrow(upper, -1, 0, k)
        ga = mH(lower) @ gl if gl is not None else None
        if gu is not None:
            term = gu.triu() @ mH(upper)
            ga = -term if ga is None else ga - term
        ga = solve_triangular(mH(u1), ga.tril(-1), upper=False, left=False)
        if gu is not None:
            gu1, gu2 = narrow(gu, -1, 0, k), narrow(gu, -1, k, n - k)
            ga = cat([ga + gu1.triu(), gu2], -1)
        ga = solve_triangular(mH(lower), ga, upper=True, left=True, unitriangular=True)
        if gu is None:
            ga = cat([ga, zeros_like(narrow(upper, -1, k, n - k))], -1)
    else:  # tall: L = [L1; L2]
        l1 = narrow(lower, -2, 0, k)
        ga = gu @ mH(upper) if gu is not None else None
        if gl is not None:
            term = mH(lower) @ gl.tril(-1)
            ga = -term if ga is None else ga - term
        ga = solve_triangular(mH(l1), ga.triu(), upper=True, left=True, unitriangular=True)
        if gl is not None:
            gl1, gl2 = narrow(gl, -2, 0, k), narrow(gl, -2, k, m - k)
            ga = cat([ga + gl1.tril(-1), gl2], -2)
        ga = solve_triangular(mH(upper), ga, upper=False, left=False)
        if gl is None:
            ga = cat([ga, zeros_like(narrow(lower, -2, k, m - k))], -2)
    return p @ ga if pivot else ga


def linalg_lu_rule(g, y, a, pivot=True):
    _, gl, gu = g
    if gl is None and gu is None:
        return (None,)
    return (_lu_backward(gl, gu, y[0], y[1], y[2], pivot),)


def lu_factor_ex_rule(g, y, a, pivot=True, check_errors=False):
    # L and U share one matrix: its lower part is L's gradient, its upper part U's
    if g[0] is None:
        return (None,)
    lu, pivots = y[0], y[1]
    p, lower, upper = lu_unpack(lu, pivots, True, pivot)
    k = min(lu.shape[-2], lu.shape[-1])
    gl, gu = narrow(g[0], -1, 0, k), narrow(g[0], -2, 0, k)
    return (_lu_backward(gl, gu, p, lower, upper, pivot),)


def lu_solve_rule(g, y, lu, pivots, b, left=True, adjoint=False):
    # torch's linalg_lu_solve_LU: the adjoint of dX = -A^-1 dA X, written on the factors
    gb = lu_solve(lu, pivots, g, left=left, adjoint=not adjoint)
    p, lower, upper = lu_unpack(lu, pivots, True, left == adjoint)
    x = y
    if left != adjoint:
        rhs = -(g @ mH(x)) if left else -(mH(g) @ x)
        gr = solve_triangular(mH(upper), rhs, upper=False)
        gl = solve_triangular(mH(lower), gr @ mH(upper), upper=True, unitriangular=True)
        glu = gl.tril(-1) + gr.triu()
    else:
        xs = x if left else mH(x)
        gs = mH(g) if left else g
        gr = -(mH(p) @ xs @ gs @ p)
        gr = solve_triangular(mH(lower), gr, upper=True, left=False, unitriangular=True)
        gu = solve_triangular(mH(upper), mH(lower) @ gr, upper=False, left=False)
        glu = gr.tril(-1) + gu.triu()
    return (glu, None, gb)


def lu_unpack_rule(g, y, lu, pivots, unpack_data=True, unpack_pivots=True):
    # LU holds L below the diagonal and U on and above it: each takes its part back
    _, gl, gu = g
    m, n = lu.shape[-2], lu.shape[-1]
    parts = []
    if gl is not None:  # L is m x min(m, n): pad it out to m x n
        gl = gl.tril(-1)
        parts.append(pad(gl, [0, n - m]) if m < n else gl)
    if gu is not None:  # U is min(m, n) x n
        gu = gu.triu()
        parts.append(pad(gu, [0, 0, 0, m - n]) if m > n else gu)
    if not parts:
        return (None,)
    return (parts[0] if len(parts) == 1 else parts[0] + parts[1],)


RULES = {
    aten._linalg_eigh.default: eigh_rule,
    aten._linalg_svd.default: svd_rule,
    aten.linalg_qr.default: qr_rule,
    aten.linalg_lu.default: linalg_lu_rule,
    aten.linalg_lu_factor_ex.default: lu_factor_ex_rule,
    aten.linalg_lu_solve.default: lu_solve_rule,
    aten.lu_unpack.default: lu_unpack_rule,
}

# The LU family's rules take complex matrices too (each has a complex128 case in
# tests/test_rules.py); eigh, svd and qr are for real ones (their complex gauges are not
# handled here), and complex entries of those ops run on the generic fallback.
COMPLEX_SAFE = {
    aten.linalg_lu.default,
    aten.linalg_lu_factor_ex.default,
    aten.linalg_lu_solve.default,
    aten.lu_unpack.default,
}
