"""Rules for other libraries' custom ops (`torch.library.custom_op`), by qualified name: such an
op exists only once its library is imported, which may be after the rule table is built, so
`lookup` finds these by the op's name. Each rule records the backward the library registered
for its op (`register_autograd`), as eager's autograd runs it, where the generic fallback
would run the op again under torch.autograd to reach that same backward."""

import torch

from ..record import call


def grouped_mm_fallback(g, y, input, weight, offs):
    # transformers' grouped matmul of the MoE experts (integrations/moe.py) where torch's
    # grouped_mm cannot run (float32, CPU): a loop of mm per expert. Its registered backward
    # is another custom op, for both gradients (offs: integer group ends, none)
    backward = torch.ops.transformers.grouped_mm_fallback_backward.default
    grad_input, grad_weight = call(backward, input, weight, offs, g)
    return (grad_input, grad_weight)


RULES_BY_NAME = {
    "transformers::grouped_mm_fallback": grouped_mm_fallback,
}


def rule_for(op):
    """The rule of a custom op named in RULES_BY_NAME, else None."""
    name = getattr(op, "name", None)
    if not callable(name) or getattr(op, "namespace", "aten") == "aten":
        return None
    return RULES_BY_NAME.get(name())
