"""Rules for matrix factorizations: LU, SVD, symmetric eigendecomposition, QR. Each follows
torch's own backward in FunctionsManual.cpp (real matrices, A^H = A^T; the LU rules, in
COMPLEX_SAFE, write A^H and take complex ones too).
g: cotangents of the factors (None for unused ones); return one cotangent per argument."""

from ..ops import aten
from ..record import call, matmul, narrow, solve_triangular, transpose, unsqueeze
from .conjugate import mH
from .fallback import autograd_vjp


def eigh_rule(g, y, a, uplo="L", compute_v=True):
    # A = V diag(L) V^T: gA = V (diag(gL) + skew(V^T gV) / (L_j - L_i)) V^T
    gl, gv = g
    values, vectors = y
    inner = None
    if gv is not None:
        vtgv = matmul(transpose(vectors), gv)
        skew = (vtgv - transpose(vtgv)) * 0.5
        gap = unsqueeze(values, -2) - unsqueeze(values, -1)
        eye = call(aten.diag_embed.default, call(aten.ones_like.default, values))
        inner = skew / (gap + eye)
    if gl is not None:
        diag = call(aten.diag_embed.default, gl)
        inner = diag if inner is None else inner + diag
    return (matmul(vectors, matmul(inner, transpose(vectors))),)


def _svd_backward(gu, gs, gvh, u, s, vh):
    # torch's svd_backward (real case, distinct singular values)
    m, n = u.shape[-2], vh.shape[-1]
    if gu is None and gvh is None:  # singular values only: U diag(gS) V^H
        if m >= n:
            return matmul(u, unsqueeze(gs, -1) * vh)
        return matmul(u * unsqueeze(gs, -2), vh)
    skew = lambda x: x - transpose(x)
    s_row, s_col = unsqueeze(s, -2), unsqueeze(s, -1)
    s2 = s * s
    eye = call(aten.diag_embed.default, call(aten.ones_like.default, s))
    gap = unsqueeze(s2, -2) - unsqueeze(s2, -1) + eye  # E, with ones on its zero diagonal
    if gu is not None and gvh is not None:
        inner = (
            skew(matmul(transpose(u), gu)) * s_row + s_col * skew(matmul(vh, transpose(gvh)))
        ) / gap
    elif gu is not None:
        inner = skew(matmul(transpose(u), gu)) * (s_row / gap)
    else:
        inner = s_col * (skew(matmul(vh, transpose(gvh))) / gap)
    if gs is not None:
        inner = inner + call(aten.diag_embed.default, gs)
    if m > n and gu is not None:  # gA = [U inner + (I - U U^H) gU S^-1] V^H
        gu_sinv = gu / s_row
        ga = matmul(u, inner) + gu_sinv - matmul(u, matmul(transpose(u), gu_sinv))
        return matmul(ga, vh)
    if m < n and gvh is not None:  # gA = U [inner V^H + S^-1 gV^H (I - V V^H)]
        sinv_gvh = gvh / s_col
        ga = matmul(inner, vh) + sinv_gvh - matmul(matmul(sinv_gvh, transpose(vh)), vh)
        return matmul(u, ga)
    return matmul(u, matmul(inner, vh))


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
        ga = matmul(gr, transpose(r)) - matmul(transpose(q), gq)
    elif gq is not None:
        ga = -matmul(transpose(q), gq)
    else:
        ga = matmul(gr, transpose(r))
    upper = call(aten.triu.default, ga)
    sym = upper + transpose(upper)
    sym = sym - call(aten.diag_embed.default, call(aten.diagonal.default, sym, 0, -2, -1)) * 0.5
    ga = matmul(q, sym)
    if gq is not None:
        ga = ga + gq
    return (solve_triangular(transpose(r), ga, upper=False, left=False),)


def _lu_backward(gl, gu, p, lower, upper, pivot):
    # torch's linalg_lu_backward: A = P L U with L (m x k) unit lower, U (k x n) upper
    m, n = lower.shape[-2], upper.shape[-1]
    k = min(m, n)
    tril, triu = aten.tril.default, aten.triu.default
    if m == n:  # gA = P L^-H [L^H gL o 1_L + gU U^H o 1_U] U^-H
        parts = []
        if gl is not None:
            parts.append(call(tril, matmul(mH(lower), gl), -1))
        if gu is not None:
            parts.append(call(triu, matmul(gu, mH(upper))))
        ga = parts[0] if len(parts) == 1 else parts[0] + parts[1]
        ga = solve_triangular(mH(upper), ga, upper=False, left=False)
        ga = solve_triangular(mH(lower), ga, upper=True, left=True, unitriangular=True)
    elif m < n:  # wide: U = [U1 U2]
        u1 = narrow(upper, -1, 0, k)
        ga = matmul(mH(lower), gl) if gl is not None else None
        if gu is not None:
            term = matmul(call(triu, gu), mH(upper))
            ga = -term if ga is None else ga - term
        ga = solve_triangular(mH(u1), call(tril, ga, -1), upper=False, left=False)
        if gu is not None:
            gu1, gu2 = narrow(gu, -1, 0, k), narrow(gu, -1, k, n - k)
            ga = call(aten.cat.default, [ga + call(triu, gu1), gu2], -1)
        ga = solve_triangular(mH(lower), ga, upper=True, left=True, unitriangular=True)
        if gu is None:
            zeros = call(aten.zeros_like.default, narrow(upper, -1, k, n - k))
            ga = call(aten.cat.default, [ga, zeros], -1)
    else:  # tall: L = [L1; L2]
        l1 = narrow(lower, -2, 0, k)
        ga = matmul(gu, mH(upper)) if gu is not None else None
        if gl is not None:
            term = matmul(mH(lower), call(tril, gl, -1))
            ga = -term if ga is None else ga - term
        ga = solve_triangular(mH(l1), call(triu, ga), upper=True, left=True, unitriangular=True)
        if gl is not None:
            gl1, gl2 = narrow(gl, -2, 0, k), narrow(gl, -2, k, m - k)
            ga = call(aten.cat.default, [ga + call(tril, gl1, -1), gl2], -2)
        ga = solve_triangular(mH(upper), ga, upper=False, left=False)
        if gl is None:
            zeros = call(aten.zeros_like.default, narrow(lower, -2, k, m - k))
            ga = call(aten.cat.default, [ga, zeros], -2)
    return matmul(p, ga) if pivot else ga


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
    p, lower, upper = call(aten.lu_unpack.default, lu, pivots, True, pivot)
    k = min(lu.shape[-2], lu.shape[-1])
    gl, gu = narrow(g[0], -1, 0, k), narrow(g[0], -2, 0, k)
    return (_lu_backward(gl, gu, p, lower, upper, pivot),)


def lu_solve_rule(g, y, lu, pivots, b, left=True, adjoint=False):
    # torch's linalg_lu_solve_LU: the adjoint of dX = -A^-1 dA X, written on the factors
    gb = call(aten.linalg_lu_solve.default, lu, pivots, g, left=left, adjoint=not adjoint)
    p, lower, upper = call(aten.lu_unpack.default, lu, pivots, True, left == adjoint)
    x = y
    if left != adjoint:
        rhs = -matmul(g, mH(x)) if left else -matmul(mH(g), x)
        gr = solve_triangular(mH(upper), rhs, upper=False)
        gl = solve_triangular(mH(lower), matmul(gr, mH(upper)), upper=True, unitriangular=True)
        glu = call(aten.tril.default, gl, -1) + call(aten.triu.default, gr)
    else:
        xs = x if left else mH(x)
        gs = mH(g) if left else g
        gr = -matmul(matmul(matmul(mH(p), xs), gs), p)
        gr = solve_triangular(mH(lower), gr, upper=True, left=False, unitriangular=True)
        gu = solve_triangular(mH(upper), matmul(mH(lower), gr), upper=False, left=False)
        glu = call(aten.tril.default, gr, -1) + call(aten.triu.default, gu)
    return (glu, None, gb)


def lu_unpack_rule(g, y, lu, pivots, unpack_data=True, unpack_pivots=True):
    # LU holds L below the diagonal and U on and above it: each takes its part back
    _, gl, gu = g
    m, n = lu.shape[-2], lu.shape[-1]
    parts = []
    if gl is not None:  # L is m x min(m, n): pad it out to m x n
        gl = call(aten.tril.default, gl, -1)
        parts.append(call(aten.constant_pad_nd.default, gl, [0, n - m], 0) if m < n else gl)
    if gu is not None:  # U is min(m, n) x n
        gu = call(aten.triu.default, gu)
        parts.append(call(aten.constant_pad_nd.default, gu, [0, 0, 0, m - n], 0) if m > n else gu)
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
