"""Tensor hooks registered inside a compiled region: `y.register_hook(lambda g: g * 10)`.

From torch 2.13 Dynamo hands such a hook over as `register_hook(y, hook_body)`, whose value is
`y` with the hook attached, read by every later use of `y` (on 2.11 and 2.12 it is a custom
autograd.Function, see custom_function.py). Its entry's op is a `TensorHook`: run, it passes
`y` through; differentiated, its rule records the hook bodies onto the backward tape, applied
to `y`'s whole gradient in the order they were registered, as eager runs a tensor's hooks once
on its summed gradient.
"""

from __future__ import annotations

from .bodies import Body
from .custom_function import replay
from .ir import Tape


class TensorHook:
    """The op of a hooked tensor's entry; see the module docstring."""

    name = "register_hook"
    __name__ = "register_hook"

    def __init__(self, body_graph):
        # the hooks' ATen graphs, gradient -> new gradient, in the order they were registered:
        # Dynamo chains a second hook on the first one's value, which is the same tensor
        self.body_graphs = [body_graph]
        self.bodies: list[Tape] = []

    def bodies_to_lower(self) -> list[Body]:
        return [] if self.bodies else [Body(b, "hook") for b in self.body_graphs]

    def take_bodies(self, tapes: list[Tape]) -> None:
        self.bodies = list(tapes)

    def __call__(self, x):
        return [x]

    def text(self) -> str:
        head = "# tensor hooks, run on the gradient in the backward, in this order"
        return "\n".join([head, *(body.text() for body in self.bodies)])

    def propagate(self, g, y, x):
        gradient = g[0]
        for body in self.bodies:
            (new,) = replay(body, [gradient])
            gradient = gradient if new is None else new  # a hook returning None keeps it
        return (gradient,)
