"""Loss rules. g: cotangent of the output (a tuple for ops with several outputs); return one
cotangent per argument. Losses stay whole ops on the tape (aten_graph.py decomposes no op that has a
rule): `cross_entropy` is then two forward entries and two backward kernels, as in eager,
instead of some twenty decomposed ones."""

from ..ops import aten
from ..record import call


def nll_loss(g, y, x, target, weight, reduction, ignore_index):  # y = (loss, total_weight)
    if g[0] is None:
        return ()
    backward = aten.nll_loss_backward.default
    if x.dim() > 2:  # nll_loss2d_forward: (N, C, H, W) inputs
        backward = aten.nll_loss2d_backward.default
    return (call(backward, g[0], x, target, weight, reduction, ignore_index, y[1]),)


def multilabel_margin_loss(g, y, x, target, reduction):  # y = (loss, is_target)
    if g[0] is None:
        return ()
    backward = aten.multilabel_margin_loss_backward.default
    return (call(backward, g[0], x, target, reduction, y[1]),)


RULES = {
    # kept whole (aten_graph.KEEP_WHOLE): torch's decomposition of it gives another loss than eager
    aten.multilabel_margin_loss_forward.default: multilabel_margin_loss,
    aten.nll_loss_forward.default: nll_loss,
    aten.nll_loss2d_forward.default: nll_loss,
    aten.mse_loss.default: lambda g, y, x, target, reduction=1: (  # d (x - t)^2 = 2 (x - t) dx
        call(aten.mse_loss_backward.default, g, x, target, reduction),
        call(aten.mse_loss_backward.default, g, target, x, reduction),
    ),
}

COMPLEX_SAFE: set = set()
