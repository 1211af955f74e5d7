"""User-defined `torch.autograd.Function`s: one tape entry that runs the user's forward and
whose rule is the user's backward.

Dynamo hands a custom Function over as `autograd_function_apply(fwd_body, bwd_body,
*operands, non_differentiable_idx=[...], ...)`: the forward body returns `((outputs...),
(saved...))`; the backward body takes one cotangent per output, then the saved values, and
returns one gradient per operand. Lowering records each body as an ATen graph of its own and
the entry's op is a `CustomFunction`:

- run, it runs the forward body's tape (printed beside the graph's forward tape);
- differentiated, its rule replays the backward body's entries onto the backward tape being
  recorded, each with its own rule: the user's backward appears in the backward tape line by
  line (their source lines point into the user's `backward`), and double backward
  differentiates it in its turn, as eager does with a differentiable backward.

Saved values that are operands or outputs of the Function are read from those Variables, so
second-order gradients flow through them as in eager; other saved values (intermediates of
the forward, computed without history in eager too) are extra outputs of the entry, constants
to any gradient. Cotangents of outputs the loss does not read are zeros, as autograd
materializes them.
"""

from __future__ import annotations

import dataclasses
import re

import torch

from . import record
from .bodies import Body
from .ir import Tape, Variable, is_differentiable
from .ops import aten
from .torch_private import FakeTensor


class CustomFunction:
    """The op of a custom Function's tape entry; see the module docstring."""

    def __init__(
        self,
        name: str,
        defined_at: str | None,
        forward_graph,
        backward_graph,
        n_outputs: int,
        saved: list[tuple[str, int]],
        non_differentiable: tuple[int, ...],
        once_differentiable: bool = False,
        n_written: int = 0,
    ):
        self.name = f"{name}.apply"  # how the entry prints: `v5:f32[3] = GradReverse.apply v4`
        self.function = name
        self.defined_at = defined_at  # the user's forward: file:line in forward
        self.__name__ = re.sub(r"\W", "_", self.name)  # generated code calls it by this name
        # ATen graphs of the two bodies, made tapes by the lowering
        self.forward_graph = forward_graph
        self.backward_graph = backward_graph
        self.n_outputs = n_outputs
        # per saved value: ("input", k) an operand, ("output", i) an output, ("intermediate", j)
        # the entry's extra output n_outputs + j
        self.saved = saved
        n_intermediates = sum(kind == "intermediate" for kind, _ in saved)
        # outputs no gradient flows back through: marked by the user, the intermediates, and
        # the new values of operands the forward writes (`mark_dirty`, read by nothing later)
        self.nondifferentiable_outputs = (
            *non_differentiable,
            *range(n_outputs, n_outputs + n_intermediates + n_written),
        )
        # `@once_differentiable`: differentiating its backward raises eager's error
        self.once_differentiable = once_differentiable
        self.forward: Tape | None = None
        self.backward: Tape | None = None
        self._code = None

    def bodies_to_lower(self) -> list[Body]:
        """The forward, whose entries' rules the user's backward replaces, and the backward,
        whose ops need no rule unless a double backward differentiates it."""
        if self.forward is not None:
            return []
        return [
            Body(self.forward_graph, f"{self.function}.forward", no_grad=True, strict=False),
            Body(self.backward_graph, f"{self.function}.backward", strict=False),
        ]

    def take_bodies(self, tapes: list[Tape]) -> None:
        self.forward, self.backward = tapes

    def __call__(self, *operands):
        return (self._code or self._compile()).fn(*operands)

    def probed_call(self, *operands):
        """As probed code calls it (codegen.py): the forward body's probed code."""
        from .execution import run_body

        return run_body(self._code or self._compile(), *operands)

    def _compile(self):
        from .codegen import compile_body

        self._code = compile_body(self.forward)
        return self._code

    def text(self) -> str:
        """The forward body's tape, headed by what the Function is."""
        where = f" defined at {self.defined_at}" if self.defined_at else ""
        return f"# {self.function}: a torch.autograd.Function{where}\n{self.forward.text()}"

    def propagate(self, g, y, *operands):
        """The user's backward, recorded onto the current tape."""
        n = self.n_outputs
        backward = self.backward
        cotangents = []
        for i in range(n):
            if not isinstance(backward.inputs[i].meta, torch.Tensor):
                cotangents.append(None)  # a slot the user's backward never reads
            elif g[i] is not None:
                cotangents.append(g[i])
            else:
                cotangents.append(record.call(aten.zeros_like.default, y[i]))
        saved, extra = [], iter(y[n:])
        for kind, k in self.saved:
            if kind == "input":
                saved.append(operands[k])
            else:
                saved.append(y[k] if kind == "output" else next(extra))
        refused = None
        if self.once_differentiable:
            # as eager runs it: under no_grad, so the saved values are constants to any further
            # gradient, and one through the cotangents raises (`_Refused`)
            refused = _Refused(self.function)
            saved = [record.call(aten.detach.default, s) if _is_tensor(s) else s for s in saved]
        return tuple(replay(backward, [*cotangents, *saved], refused))


class _Refused:
    """Stands for the gradient of a `@once_differentiable` backward: recorded where the double
    backward would differentiate it, it raises eager's error when that code runs (and only if
    it runs: a gradient nobody reads is never computed, as eager never asks for it)."""

    def __init__(self, function: str):
        self.name = f"{function}.backward is once_differentiable"
        self.__name__ = "once_differentiable_error"

    def __call__(self, like):
        if isinstance(like, FakeTensor):  # recording: only its metadata is needed
            return [torch.empty_like(like)]  # a list: ops of ours return their outputs so
        raise RuntimeError(
            "trying to differentiate twice a function that was marked with @once_differentiable"
        )

    def rule(self, g, y, *args, **kwargs):
        wanted = [isinstance(a, Variable) and is_differentiable(a.meta) for a in args]
        return tuple(record.call(self, a)[0] if w else None for a, w in zip(args, wanted))


def _is_tensor(v) -> bool:
    return isinstance(v, Variable) and v.is_tensor


def replay(tape: Tape, inputs: list, refused: _Refused | None = None) -> list:
    """Record `tape`'s entries onto the current tape with `inputs` for its inputs; returns its
    outputs. Each entry keeps its own source line; with `refused`, differentiating an entry
    raises instead (see `_Refused`)."""
    values, entries = replay_into(tape, inputs)
    if refused is not None:
        for e in entries:
            e.propagate = refused.rule
    return [_value(values, o) for o in tape.outputs]


def replay_into(tape: Tape, inputs: list, kept: dict | None = None) -> tuple[dict, list]:
    """Record `tape`'s entries onto the current tape with `inputs` for its inputs: (each of its
    Variables -> the value recorded for it, the recorded entries). An entry whose outputs are
    all in `kept` (Variable -> a Variable of the current tape) is not recorded again: it reads
    those, and stands in the list, unrecorded, for its rule."""
    values = dict(zip(tape.inputs, inputs, strict=True))
    kept = kept or {}
    rec = record.current()
    source, entries = rec.source, []
    try:
        for e in tape.entries:
            args = _value(values, e.args)
            kwargs = {k: _value(values, a) for k, a in e.kwargs.items()}
            outputs = [v for v in e.outputs if v is not None]
            if outputs and all(v in kept for v in outputs):
                again = [kept.get(v) for v in e.outputs]
                entries.append(dataclasses.replace(e, args=args, kwargs=kwargs, outputs=again))
                values.update(kept)
                continue
            rec.source = e.source
            start = len(rec.tape.entries)
            out = record.call(e.op, *args, **kwargs)
            for made in rec.tape.entries[start:]:  # replayed: from the body entry's module
                made.module = made.module or e.module
            entries.append(rec.tape.entries[-1])
            outs = out if isinstance(out, list) else [out]
            values.update((v, o) for v, o in zip(e.outputs, outs) if v is not None)
    finally:
        rec.source = source
    return values, entries


def _value(values: dict, a):
    if isinstance(a, Variable):
        return values[a]
    if isinstance(a, list | tuple):
        return type(a)(_value(values, x) for x in a)
    return a
