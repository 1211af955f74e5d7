"""More linear-algebra rules: matrix-vector products, solves, inverses, determinants,
Cholesky, distances. g: cotangent of the output(s); return one cotangent per argument.
Real matrices (A^H = A^T). Math from derivatives.yaml and FunctionsManual.cpp."""

import torch

from ..record import call, transpose, unsqueeze

aten = torch.ops.aten


def _scale(g, c):
    return g if c == 1 else g * c


def _matmul(a, b):
    return call(aten.matmul.default, a, b)


def _solve_triangular(a, b, upper, left=True, unitriangular=False):
    return call(
        aten.linalg_solve_triangular.default,
        a,
        b,
        upper=upper,
        left=left,
        unitriangular=unitriangular,
    )


def addmv_rule(g, y, bias, mat, vec, beta=1, alpha=1):  # y = beta bias + alpha mat vec
    gmat = unsqueeze(g, -1) * unsqueeze(vec, 0)
    gvec = call(aten.mv.default, transpose(mat), g)
    return (_scale(g, beta), _scale(gmat, alpha), _scale(gvec, alpha))


def addbmm_rule(g, y, bias, b1, b2, beta=1, alpha=1):  # y = beta bias + alpha sum_i b1_i b2_i
    gb = call(aten.expand.default, unsqueeze(g, 0), [b1.shape[0], b1.shape[1], b2.shape[2]])
    g1 = call(aten.bmm.default, gb, transpose(b2))
    g2 = call(aten.bmm.default, transpose(b1), gb)
    return (_scale(g, beta), _scale(g1, alpha), _scale(g2, alpha))


def inv_rule(g, y, a, check_errors=False):  # d(A^-1) = -A^-1 dA A^-1
    inverse = transpose(y[0])
    return (-_matmul(inverse, _matmul(g[0], inverse)),)


def slogdet_rule(g, y, a):  # d log|det A| = tr(A^-1 dA)
    if g[1] is None:
        return (None,)
    inverse = call(aten.linalg_inv_ex.default, a)[0]
    return (unsqueeze(unsqueeze(g[1], -1), -1) * transpose(inverse),)


def solve_rule(g, y, a, b, left=True, check_errors=False):
    # X = A^-1 B: gB = A^-H gX, gA = -gB X^H (left); X = B A^-1: gB = gX A^-H, gA = -X^H gB
    gx, x, lu, pivots = g[0], y[0], y[1], y[2]
    vector = b.dim() == 1 or a.dim() - 1 == b.dim()
    if vector:
        gx, x = unsqueeze(gx, -1), unsqueeze(x, -1)
    gb = call(aten.linalg_lu_solve.default, lu, pivots, gx, left=left, adjoint=True)
    ga = -_matmul(gb, transpose(x)) if left else -_matmul(transpose(x), gb)
    if vector:
        gb = call(aten.squeeze.dim, gb, -1)
    return (ga, gb)


def solve_triangular_rule(g, y, a, b, upper, left=True, unitriangular=False):
    gb = _solve_triangular(transpose(a), g, not upper, left, unitriangular)
    ga = -_matmul(gb, transpose(y)) if left else -_matmul(transpose(y), gb)
    # only the triangle the solve reads gets a gradient
    if upper:
        ga = call(aten.triu.default, ga, 1 if unitriangular else 0)
    else:
        ga = call(aten.tril.default, ga, -1 if unitriangular else 0)
    return (ga, gb)


def cholesky_rule(g, y, a, upper=False):
    # A = L L^H: gA = L^-H Phi(L^H gL) L^-1, Phi = lower triangle with half the diagonal,
    # then symmetrised
    lower = transpose(y) if upper else y
    gl = transpose(g) if upper else g
    phi = call(aten.tril.default, _matmul(transpose(lower), gl))
    phi = phi - call(aten.diag_embed.default, call(aten.diagonal.default, phi, 0, -2, -1)) * 0.5
    ga = _solve_triangular(transpose(lower), phi, upper=True, left=True)
    ga = _solve_triangular(lower, ga, upper=False, left=False)
    return ((ga + transpose(ga)) * 0.5,)


def matrix_exp_rule(g, y, a):
    # the gradient is the top-right block of exp([[A^H, G], [0, A^H]])
    n = a.shape[-1]
    at = transpose(a)
    top = call(aten.cat.default, [at, g], -1)
    bottom = call(aten.cat.default, [call(aten.zeros_like.default, g), at], -1)
    big = call(aten.linalg_matrix_exp.default, call(aten.cat.default, [top, bottom], -2))
    block = call(aten.slice.Tensor, big, -2, 0, n)
    return (call(aten.slice.Tensor, block, -1, n, 2 * n),)


def trilinear_rule(g, y, i1, i2, i3, e1, e2, e3, sumdim, unroll_dim=1):
    # each input's gradient is another trilinear product with g in its place
    return (
        call(aten._trilinear.default, g, i2, i3, sumdim, e2, e3, e1),
        call(aten._trilinear.default, i1, g, i3, e1, sumdim, e3, e2),
        call(aten._trilinear.default, i1, i2, g, e1, e2, sumdim, e3),
    )


def _contiguous(x):
    return call(aten.clone.default, x, memory_format=torch.contiguous_format)


def cdist_rule(g, y, x1, x2, p, compute_mode=None):
    g1 = call(aten._cdist_backward.default, _contiguous(g), x1, x2, p, y)
    g2 = call(
        aten._cdist_backward.default,
        _contiguous(transpose(g)),
        x2,
        x1,
        p,
        _contiguous(transpose(y)),
    )
    return (g1, g2)


RULES = {
    aten.mv.default: lambda g, y, mat, vec: (
        unsqueeze(g, -1) * unsqueeze(vec, 0),
        call(aten.mv.default, transpose(mat), g),
    ),
    aten.dot.default: lambda g, y, a, b: (g * b, g * a),
    aten.addmv.default: addmv_rule,
    aten.addbmm.default: addbmm_rule,
    aten.linalg_inv_ex.default: inv_rule,
    aten._linalg_slogdet.default: slogdet_rule,
    aten._linalg_solve_ex.default: solve_rule,
    aten.linalg_solve_triangular.default: solve_triangular_rule,
    aten.cholesky.default: cholesky_rule,
    aten.linalg_cholesky_ex.default: lambda g, y, a, upper=False, check_errors=False: cholesky_rule(
        g[0], y[0], a, upper
    ),
    aten.linalg_matrix_exp.default: matrix_exp_rule,
    aten._trilinear.default: trilinear_rule,
    aten._cdist_forward.default: cdist_rule,
}


def cholesky_inverse_rule(g, y, factor, upper=False):  # y = (L L^H)^-1
    common = _matmul(y, _matmul(g + transpose(g), y))
    return (-_matmul(factor, common) if upper else -_matmul(common, factor),)


def cholesky_solve_rule(g, y, b, factor, upper=False):  # y = (L L^H)^-1 B
    gb = call(aten.cholesky_solve.default, g, factor, upper)
    common = _matmul(gb, transpose(y))
    common = common + transpose(common)
    return (gb, -_matmul(factor, common) if upper else -_matmul(common, factor))


def triangular_solve_rule(g, y, b, a, upper=True, transposed=False, unitriangular=False):
    gx, gm = g
    x = y[0]
    gb = ga = None
    if gx is not None:
        gb = call(aten.triangular_solve.default, gx, a, upper, not transposed, unitriangular)[0]
        ga = -_matmul(x, transpose(gb)) if transposed else -_matmul(gb, transpose(x))
        # the solve reads one triangle (without the diagonal when unitriangular)
        if upper:
            ga = call(aten.triu.default, ga, 1 if unitriangular else 0)
        else:
            ga = call(aten.tril.default, ga, -1 if unitriangular else 0)
    if gm is not None:  # the cloned coefficient is A itself
        ga = gm if ga is None else ga + gm
    return (gb, ga)


def det_rule(g, y, a):  # d det A = det A tr(A^-1 dA); A is taken invertible
    scaled = unsqueeze(unsqueeze(g[0] * y[0], -1), -1)
    return (scaled * transpose(call(aten.linalg_inv_ex.default, a)[0]),)


def eigh_rule(g, y, a, uplo="L", compute_v=True):
    # A = V diag(L) V^T: gA = V (diag(gL) + skew(V^T gV) / (L_j - L_i)) V^T
    gl, gv = g
    values, vectors = y
    inner = None
    if gv is not None:
        vtgv = _matmul(transpose(vectors), gv)
        skew = (vtgv - transpose(vtgv)) * 0.5
        gap = unsqueeze(values, -2) - unsqueeze(values, -1)
        eye = call(aten.diag_embed.default, call(aten.ones_like.default, values))
        inner = skew / (gap + eye)
    if gl is not None:
        diag = call(aten.diag_embed.default, gl)
        inner = diag if inner is None else inner + diag
    return (_matmul(vectors, _matmul(inner, transpose(vectors))),)


RULES.update(
    {
        aten.cholesky_inverse.default: cholesky_inverse_rule,
        aten.cholesky_solve.default: cholesky_solve_rule,
        aten.triangular_solve.default: triangular_solve_rule,
        aten._linalg_det.default: det_rule,
        aten._linalg_eigh.default: eigh_rule,
    }
)


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


RULES[aten.lu_unpack.default] = lu_unpack_rule


def _narrow(x, dim, start, length):
    return call(aten.slice.Tensor, x, dim, start, start + length)


def _lu_backward(gl, gu, p, lower, upper, pivot):
    # torch's linalg_lu_backward: A = P L U with L (m x k) unit lower, U (k x n) upper
    m, n = lower.shape[-2], upper.shape[-1]
    k = min(m, n)
    tril, triu = aten.tril.default, aten.triu.default
    if m == n:  # gA = P L^-H [L^H gL o 1_L + gU U^H o 1_U] U^-H
        parts = []
        if gl is not None:
            parts.append(call(tril, _matmul(transpose(lower), gl), -1))
        if gu is not None:
            parts.append(call(triu, _matmul(gu, transpose(upper))))
        ga = parts[0] if len(parts) == 1 else parts[0] + parts[1]
        ga = _solve_triangular(transpose(upper), ga, upper=False, left=False)
        ga = _solve_triangular(transpose(lower), ga, upper=True, left=True, unitriangular=True)
    elif m < n:  # wide: U = [U1 U2]
        u1 = _narrow(upper, -1, 0, k)
        ga = _matmul(transpose(lower), gl) if gl is not None else None
        if gu is not None:
            term = _matmul(call(triu, gu), transpose(upper))
            ga = -term if ga is None else ga - term
        ga = _solve_triangular(transpose(u1), call(tril, ga, -1), upper=False, left=False)
        if gu is not None:
            gu1, gu2 = _narrow(gu, -1, 0, k), _narrow(gu, -1, k, n - k)
            ga = call(aten.cat.default, [ga + call(triu, gu1), gu2], -1)
        ga = _solve_triangular(transpose(lower), ga, upper=True, left=True, unitriangular=True)
        if gu is None:
            zeros = call(aten.zeros_like.default, _narrow(upper, -1, k, n - k))
            ga = call(aten.cat.default, [ga, zeros], -1)
    else:  # tall: L = [L1; L2]
        l1 = _narrow(lower, -2, 0, k)
        ga = _matmul(gu, transpose(upper)) if gu is not None else None
        if gl is not None:
            term = _matmul(transpose(lower), call(tril, gl, -1))
            ga = -term if ga is None else ga - term
        ga = _solve_triangular(
            transpose(l1), call(triu, ga), upper=True, left=True, unitriangular=True
        )
        if gl is not None:
            gl1, gl2 = _narrow(gl, -2, 0, k), _narrow(gl, -2, k, m - k)
            ga = call(aten.cat.default, [ga + call(tril, gl1, -1), gl2], -2)
        ga = _solve_triangular(transpose(upper), ga, upper=False, left=False)
        if gl is None:
            zeros = call(aten.zeros_like.default, _narrow(lower, -2, k, m - k))
            ga = call(aten.cat.default, [ga, zeros], -2)
    return _matmul(p, ga) if pivot else ga


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
    gl, gu = _narrow(g[0], -1, 0, k), _narrow(g[0], -2, 0, k)
    return (_lu_backward(gl, gu, p, lower, upper, pivot),)


RULES[aten.linalg_lu.default] = linalg_lu_rule
RULES[aten.linalg_lu_factor_ex.default] = lu_factor_ex_rule


def lu_solve_rule(g, y, lu, pivots, b, left=True, adjoint=False):
    # torch's linalg_lu_solve_LU: the adjoint of dX = -A^-1 dA X, written on the factors
    gb = call(aten.linalg_lu_solve.default, lu, pivots, g, left=left, adjoint=not adjoint)
    p, lower, upper = call(aten.lu_unpack.default, lu, pivots, True, left == adjoint)
    x = y
    if left != adjoint:
        rhs = -_matmul(g, transpose(x)) if left else -_matmul(transpose(g), x)
        gr = _solve_triangular(transpose(upper), rhs, upper=False)
        gl = _solve_triangular(
            transpose(lower), _matmul(gr, transpose(upper)), upper=True, unitriangular=True
        )
        glu = call(aten.tril.default, gl, -1) + call(aten.triu.default, gr)
    else:
        xs = x if left else transpose(x)
        gs = transpose(g) if left else g
        gr = -_matmul(_matmul(_matmul(transpose(p), xs), gs), p)
        gr = _solve_triangular(transpose(lower), gr, upper=True, left=False, unitriangular=True)
        gu = _solve_triangular(
            transpose(upper), _matmul(transpose(lower), gr), upper=False, left=False
        )
        glu = call(aten.tril.default, gr, -1) + call(aten.triu.default, gu)
    return (glu, None, gb)


RULES[aten.linalg_lu_solve.default] = lu_solve_rule


def pinv_rule(g, y, a, atol=None, rtol=None, hermitian=False):
    # torch's pinv_backward (real case), with the products kept to the smaller dimension
    m, n = a.shape[-2], a.shape[-1]
    pinv_t, g_t = transpose(y), transpose(g)
    if m <= n:
        k = _matmul(g_t, y)
        k_pinv_t = _matmul(k, pinv_t)
        ga = -transpose(_matmul(y, k)) + k_pinv_t - _matmul(_matmul(a, y), k_pinv_t)
        ga = ga + _matmul(_matmul(pinv_t, y), g_t - _matmul(k, a))
    else:
        k = _matmul(y, g_t)
        pinv_t_k = _matmul(pinv_t, k)
        ga = -transpose(_matmul(k, y)) + _matmul(_matmul(g_t - _matmul(a, k), y), pinv_t)
        ga = ga + pinv_t_k - _matmul(_matmul(pinv_t_k, y), a)
    return (ga,)


RULES[aten.linalg_pinv.atol_rtol_tensor] = pinv_rule


def _svd_backward(gu, gs, gvh, u, s, vh):
    # torch's svd_backward (real case, distinct singular values)
    m, n = u.shape[-2], vh.shape[-1]
    if gu is None and gvh is None:  # singular values only: U diag(gS) V^H
        if m >= n:
            return _matmul(u, unsqueeze(gs, -1) * vh)
        return _matmul(u * unsqueeze(gs, -2), vh)
    skew = lambda x: x - transpose(x)
    s_row, s_col = unsqueeze(s, -2), unsqueeze(s, -1)
    s2 = s * s
    eye = call(aten.diag_embed.default, call(aten.ones_like.default, s))
    gap = unsqueeze(s2, -2) - unsqueeze(s2, -1) + eye  # E, with ones on its zero diagonal
    if gu is not None and gvh is not None:
        inner = (
            skew(_matmul(transpose(u), gu)) * s_row + s_col * skew(_matmul(vh, transpose(gvh)))
        ) / gap
    elif gu is not None:
        inner = skew(_matmul(transpose(u), gu)) * (s_row / gap)
    else:
        inner = s_col * (skew(_matmul(vh, transpose(gvh))) / gap)
    if gs is not None:
        inner = inner + call(aten.diag_embed.default, gs)
    if m > n and gu is not None:  # gA = [U inner + (I - U U^H) gU S^-1] V^H
        gu_sinv = gu / s_row
        ga = _matmul(u, inner) + gu_sinv - _matmul(u, _matmul(transpose(u), gu_sinv))
        return _matmul(ga, vh)
    if m < n and gvh is not None:  # gA = U [inner V^H + S^-1 gV^H (I - V V^H)]
        sinv_gvh = gvh / s_col
        ga = _matmul(inner, vh) + sinv_gvh - _matmul(_matmul(sinv_gvh, transpose(vh)), vh)
        return _matmul(u, ga)
    return _matmul(u, _matmul(inner, vh))


def svd_rule(g, y, a, full_matrices, compute_uv=True, driver=None):
    gu, gs, gvh = g
    u, s, vh = y
    if not compute_uv:  # svdvals traced without grad: the backward needs the vectors anyway
        u, s, vh = call(aten._linalg_svd.default, a, False, True, driver=driver)
    k = s.shape[-1]
    if full_matrices:  # only the first k singular vectors carry information
        u, vh = _narrow(u, -1, 0, k), _narrow(vh, -2, 0, k)
        gu = _narrow(gu, -1, 0, k) if gu is not None else None
        gvh = _narrow(gvh, -2, 0, k) if gvh is not None else None
    if gu is None and gs is None and gvh is None:
        return (None,)
    return (_svd_backward(gu, gs, gvh, u, s, vh),)


RULES[aten._linalg_svd.default] = svd_rule
