"""Matrix-product rules. g: cotangent of the output; return one cotangent per argument."""

import torch

from ..record import bmm, mm, transpose

aten = torch.ops.aten


def addmm_rule(g, y, bias, a, b, beta=1, alpha=1):  # y = beta bias + alpha a b
    ga = mm(g, transpose(b))
    gb = mm(transpose(a), g)
    if alpha != 1:
        ga, gb = ga * alpha, gb * alpha
    return (g if beta == 1 else g * beta, ga, gb)


RULES = {
    aten.mm.default: lambda g, y, a, b: (mm(g, transpose(b)), mm(transpose(a), g)),
    aten.bmm.default: lambda g, y, a, b: (bmm(g, transpose(b)), bmm(transpose(a), g)),
    aten.addmm.default: addmm_rule,
}
