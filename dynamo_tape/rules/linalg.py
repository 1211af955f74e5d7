"""Matrix-product rules. g: cotangent of the output; return one cotangent per argument.
Right for complex values too: the transposes are conjugate transposes (mH, see conjugate.py)."""


from ..ops import aten
from ..record import bmm, mm, transpose
from ..torch_private import statically_known_true
from .conjugate import conj, mH


# As eager does (mm_mat1_backward, mm_mat2_backward): a cotangent comes out laid out like its
# input. A Linear's `weight.t()` is column-major; a row-major gradient for it would be copied
# by autograd's AccumulateGrad into the weight's layout on every step.
def _column_major(x) -> bool:
    m = x.meta
    return statically_known_true(m.stride(0) == 1) and statically_known_true(
        m.stride(1) == m.shape[0]
    )


def mm_grad_a(g, a, b):  # g b^H
    return transpose(mm(conj(b), transpose(g))) if _column_major(a) else mm(g, mH(b))


def mm_grad_b(g, a, b):  # a^H g
    return transpose(mm(transpose(g), conj(a))) if _column_major(b) else mm(mH(a), g)


def addmm_rule(g, y, bias, a, b, beta=1, alpha=1):  # y = beta bias + alpha a b
    ga = mm_grad_a(g, a, b)
    gb = mm_grad_b(g, a, b)
    if alpha != 1:
        ga, gb = ga * conj(alpha), gb * conj(alpha)
    return (g if beta == 1 else g * conj(beta), ga, gb)


RULES = {
    aten.mm.default: lambda g, y, a, b: (mm_grad_a(g, a, b), mm_grad_b(g, a, b)),
    aten.bmm.default: lambda g, y, a, b: (bmm(g, mH(b)), bmm(mH(a), g)),
    aten.addmm.default: addmm_rule,
}

COMPLEX_SAFE = set(RULES)
