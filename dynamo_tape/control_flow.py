"""Control flow on the tape: `torch.cond`, `map`, `while_loop`.

`torch.cond`: a branch chosen at run time.

Dynamo hands `torch.cond(pred, true_fn, false_fn, operands)` over as `cond(pred, true_graph,
false_graph, operands)`, the branches as submodules. Lowering records each branch as an ATen
graph of its own and the call becomes one entry whose op is a `Cond`: run, it runs the tape of
the branch `pred` picks. Its rule records another `Cond` onto the backward tape, on the same
`pred`, whose branches are each branch's joint tape (the branch again, then its backward:
operands and cotangents -> one gradient per differentiable operand, zeros where a branch gives
none), so the backward takes the branch the forward took, and is itself differentiable.
`map` and `while_loop` follow the same pattern (see `Map`, `While`).
"""

from __future__ import annotations

import functools

import torch

from . import record
from .bodies import Body
from .ir import Tape, TapeEntry, is_differentiable, is_random
from .ops import aten
from .torch_private import FakeTensor


class Cond:
    """The op of a `torch.cond` entry; see the module docstring."""

    name = "cond"
    __name__ = "cond"

    def __init__(self, true_graph, false_graph, label: str = "cond"):
        self.graphs = (true_graph, false_graph)  # ATen graphs, made tapes by the lowering
        self.branches: tuple[Tape, Tape] | None = None
        self.label = label
        self._codes = None
        self._backward: Cond | None = None

    @classmethod
    def of_tapes(cls, true_tape: Tape, false_tape: Tape, label: str) -> Cond:
        op = cls(None, None, label)
        op.branches = (true_tape, false_tape)
        return op

    def bodies_to_lower(self) -> list[Body]:
        if self.branches is not None:
            return []
        return [Body(g, f"{self.label}.{b}") for g, b in zip(self.graphs, ("true", "false"))]

    def take_bodies(self, tapes: list[Tape]) -> None:
        self.branches = tuple(tapes)

    def __call__(self, pred, *operands):
        codes = self._codes or self._compile()
        if isinstance(pred, FakeTensor):  # recording: either branch gives the outputs' metadata
            return list(codes[0].fn(*operands))
        return list(codes[0 if bool(pred) else 1].fn(*operands))

    def probed_call(self, pred, *operands):
        """As probed code calls it (codegen.py): the branch's probed code."""
        from .execution import run_body

        codes = self._codes or self._compile()
        return list(run_body(codes[0 if bool(pred) else 1], *operands))

    def _compile(self):
        from .codegen import compile_body

        self._codes = [compile_body(t) for t in self.branches]
        return self._codes

    def text(self) -> str:
        head = f"# {self.label}: the branch its first argument picks runs"
        return "\n".join([head, *(t.text() for t in self.branches)])

    def propagate(self, g, y, pred, *operands):
        cotangents = materialized(g, y)
        wrt = [k for k, o in enumerate(operands) if differentiable(o)]
        if not wrt:
            return ()
        if self._backward is None:
            rec = record.current()
            joints = [joint_tape(t, wrt, rec.namer, rec.fake_mode) for t in self.branches]
            self._backward = Cond.of_tapes(*joints, label=f"{self.label}.backward")
        at = [1 + k for k in wrt]  # after pred
        return placed(at, 1 + len(operands), self._backward, pred, *operands, *cotangents)


def placed(at: list[int], n: int, op, *args) -> tuple:
    """Record `op` on `args`, a backward op returning one gradient per position in `at`: the
    gradients, at those positions of `n`, None elsewhere (a rule's result)."""
    grads = record.call(op, *args)
    grads = grads if isinstance(grads, list) else [grads]
    result = [None] * n
    for k, g in zip(at, grads, strict=True):
        result[k] = g
    return tuple(result)


def materialized(g, y) -> list:
    """One cotangent per output: zeros where none flows (the backward body reads them all)."""
    return [
        ct if ct is not None else record.call(aten.zeros_like.default, out) for ct, out in zip(g, y)
    ]


def differentiable(v) -> bool:
    return hasattr(v, "meta") and is_differentiable(v.meta)


def joint_tape(branch: Tape, wrt: list[int], namer, fake_mode) -> Tape:
    """(operands, one cotangent per output) -> the gradient of each operand in `wrt`."""
    from .autodiff import eliminate_dead_entries, grad

    bw = grad(branch, [branch.inputs[k] for k in wrt], namer, fake_mode)
    cotangents = bw.tape.inputs[len(bw.saved) :]
    given = dict(zip(bw.cotangent_of, cotangents))
    inputs = [given.get(i) or namer(out.meta) for i, out in enumerate(branch.outputs)]
    entries = [*branch.entries, *bw.tape.entries]
    outputs = []
    for k, out in zip(wrt, bw.tape.outputs):
        if out is None:  # no gradient in this branch: zeros, as the other branch gives a tensor
            x = branch.inputs[k]
            out = namer(x.meta)
            zeros = TapeEntry(aten.zeros_like.default, [x], {}, [out])
            zeros.propagate, zeros.kind = None, "nondiff"
            entries.append(zeros)
        outputs.append(out)
    joint = Tape(f"{branch.name}.joint", [*branch.inputs, *inputs], entries, outputs)
    eliminate_dead_entries(joint, keep=lambda e: is_random(e.op))  # draws keep their order
    return joint


class Map:
    """`torch._higher_order_ops.map(f, xs, *args)`: `f` on each slice of the mapped operands
    (along their first dimension), the others passed whole; its outputs stacked. Its rule
    records another `Map` onto the backward tape over the body's joint tape (slices and the
    cotangents' slices mapped, the others whole), and sums the whole operands' gradients."""

    name = "map"
    __name__ = "map"

    def __init__(self, body_graph, n_mapped: int, label: str = "map"):
        self.body_graph = body_graph
        self.body: Tape | None = None
        self.n_mapped = n_mapped
        self.label = label
        self._code = None
        self._backward: Map | None = None

    @classmethod
    def of_tape(cls, body: Tape, n_mapped: int, label: str) -> Map:
        op = cls(None, n_mapped, label)
        op.body = body
        return op

    def bodies_to_lower(self) -> list[Body]:
        return [] if self.body is not None else [Body(self.body_graph, f"{self.label}.body")]

    def take_bodies(self, tapes: list[Tape]) -> None:
        (self.body,) = tapes

    def __call__(self, *operands):
        return self._mapped((self._code or self._compile()).fn, operands)

    def probed_call(self, *operands):
        """As probed code calls it (codegen.py): the body's probed code on each slice."""
        return self._mapped(_probed(self._code or self._compile()), operands)

    def _mapped(self, body, operands):
        mapped, whole = operands[: self.n_mapped], operands[self.n_mapped :]
        results = [body(*(x[i] for x in mapped), *whole) for i in range(len(mapped[0]))]
        return [torch.stack(outs) for outs in zip(*results)]

    def _compile(self):
        from .codegen import compile_body

        self._code = compile_body(self.body)
        return self._code

    def text(self) -> str:
        head = f"# {self.label}: runs on each slice of its first {self.n_mapped} argument(s)"
        return f"{head}\n{self.body.text()}"

    def propagate(self, g, y, *operands):
        cotangents = materialized(g, y)
        wrt = [k for k, o in enumerate(operands) if differentiable(o)]
        if not wrt:
            return ()
        n, m = self.n_mapped, len(self.body.inputs)
        if self._backward is None:
            rec = record.current()
            joint = joint_tape(self.body, wrt, rec.namer, rec.fake_mode)
            ins = joint.inputs  # the body's inputs, then one cotangent per output
            joint.inputs = [*ins[:n], *ins[m:], *ins[n:m]]  # mapped, cotangents, then whole
            self._backward = Map.of_tape(joint, n + len(cotangents), f"{self.label}.backward")
        grads = record.call(self._backward, *operands[:n], *cotangents, *operands[n:])
        grads = grads if isinstance(grads, list) else [grads]
        result = [None] * len(operands)
        for k, gk in zip(wrt, grads):
            # a whole operand's gradient is the sum of its slices' contributions
            result[k] = gk if k < n else record.call(aten.sum.dim_IntList, gk, [0])
        return tuple(result)


class While:
    """`while_loop(cond_fn, body_fn, carried, additional)`: while `cond_fn(*carried,
    *additional)` holds, `carried = body_fn(*carried, *additional)`; its outputs are the last
    carried values. The loop runs at run time, its two functions each a tape. Its rule records a
    `WhileBackward`, which runs the loop again from the first carried values and then the
    body's joint tape over the iterations in reverse, as eager's `WhileLoopAutogradOp` does
    over the values it stacked."""

    name = "while_loop"
    __name__ = "while_loop"

    def __init__(self, cond_graph, body_graph, n_carried: int, label: str = "while_loop"):
        self.graphs = (cond_graph, body_graph)
        self.cond: Tape | None = None
        self.body: Tape | None = None
        self.n_carried = n_carried
        self.label = label
        self._codes = None
        self._backward: WhileBackward | None = None

    def bodies_to_lower(self) -> list[Body]:
        if self.body is not None:
            return []
        return [Body(g, f"{self.label}.{b}") for g, b in zip(self.graphs, ("cond", "body"))]

    def take_bodies(self, tapes: list[Tape]) -> None:
        self.cond, self.body = tapes

    def iterations(self, operands, probed=False) -> list[list]:
        """The carried values each iteration of the loop starts from, then the last ones;
        `probed`: its tapes' probed code runs (called from probed code: codegen.py)."""
        codes = self._codes or self._compile()
        cond, body = (_probed(code) if probed else code.fn for code in codes)
        carried, additional = list(operands[: self.n_carried]), operands[self.n_carried :]
        seen = [carried]
        while bool(cond(*carried, *additional)[0]):
            carried = list(body(*carried, *additional))
            seen.append(carried)
        return seen

    def __call__(self, *operands, probed=False):
        seen = self.iterations(operands, probed)
        # no iteration: new tensors all the same, as eager's (never an input handed back)
        return [x.clone() for x in seen[0]] if len(seen) == 1 else seen[-1]

    def probed_call(self, *operands):
        """As probed code calls it (codegen.py): the cond and body tapes' probed code."""
        return self(*operands, probed=True)

    def _compile(self):
        from .codegen import compile_body

        self._codes = (compile_body(self.cond), compile_body(self.body))
        return self._codes

    def text(self) -> str:
        head = f"# {self.label}: the body runs while the cond tape returns True"
        return "\n".join([head, self.cond.text(), self.body.text()])

    def propagate(self, g, y, *operands):
        cotangents = materialized(g, y)
        wrt = [k for k, o in enumerate(operands) if differentiable(o)]
        if not wrt:
            return ()
        rec = record.current()
        if any(is_random(e.op) for e in self.body.entries):
            where = f" (from {rec.source})" if rec.source else ""
            raise NotImplementedError(
                f"dynamo_tape: while_loop{where} draws random numbers in its body: its backward "
                "on the tape runs the loop again, which would draw others (run it without "
                "inputs that require grad, or draw the numbers outside the loop)"
            )
        if self._backward is None:
            joint = joint_tape(self.body, wrt, rec.namer, rec.fake_mode)
            self._backward = WhileBackward(self, joint, wrt)
        return placed(wrt, len(operands), self._backward, *operands, *cotangents)


class WhileBackward:
    """(carried, additional, one cotangent per output) -> the gradient of each operand in
    `wrt`: the forward loop again, then the body's joint tape on each iteration's carried
    values, last first; a carried value's gradient passes from iteration to iteration, an
    additional input's sums over them. Its own gradient (double backward) raises: eager's
    second derivatives through `while_loop` differ from those of the same loop written in
    Python (measured on torch 2.11 to 2.15), so there is no reference to match."""

    name = "while_loop.backward"
    __name__ = "while_loop_backward"

    def __init__(self, loop: While, joint: Tape, wrt: list[int]):
        self.loop = loop
        self.joint = joint  # the body's inputs, then one cotangent per body output
        self.wrt = wrt
        self._code = None

    def __call__(self, *args, probed=False):
        n_operands = len(self.loop.body.inputs)
        operands, cotangents = args[:n_operands], list(args[n_operands:])
        if isinstance(operands[0], FakeTensor):  # recording: the gradients' metadata
            return [torch.empty_like(operands[k]) for k in self.wrt]
        if self._code is None:
            from .codegen import compile_body

            self._code = compile_body(self.joint)
        joint = _probed(self._code) if probed else self._code.fn
        n = self.loop.n_carried
        additional = operands[n:]
        totals = {}
        for carried in reversed(self.loop.iterations(operands, probed)[:-1]):
            grads = dict(zip(self.wrt, joint(*carried, *additional, *cotangents)))
            cotangents = [grads.get(k, torch.zeros_like(c)) for k, c in enumerate(cotangents)]
            for k, gk in grads.items():
                if k >= n:
                    totals[k] = gk if k not in totals else totals[k] + gk
        return [
            cotangents[k] if k < n else totals.get(k, torch.zeros_like(operands[k]))
            for k in self.wrt
        ]

    def probed_call(self, *args):
        """As probed code calls it (codegen.py): the loop's and the joint tape's probed code."""
        return self(*args, probed=True)

    def text(self) -> str:
        head = f"# {self.name}: the loop again, then this tape on each iteration, last first"
        return f"{head}\n{self.joint.text()}"

    def propagate(self, g, y, *args):
        return tuple(
            record.call(_SECOND_ORDER_REFUSED, a)[0] if differentiable(a) else None for a in args
        )


class _SecondOrderRefused:
    """Recorded where a double backward would differentiate `while_loop`'s backward: raises
    when that code runs (and only then: a gradient nobody reads is never computed)."""

    name = "while_loop.backward.refused"
    __name__ = "while_loop_second_order_refused"

    def __call__(self, like):
        if isinstance(like, FakeTensor):  # recording: only its metadata is needed
            return [torch.empty_like(like)]
        raise RuntimeError(
            "dynamo_tape: double backward through torch while_loop is not supported: eager's "
            "second derivatives through while_loop differ from the same loop's in Python"
        )

    def propagate(self, g, y, like):
        return (None,)  # never needed: computing the value it would differentiate raises


_SECOND_ORDER_REFUSED = _SecondOrderRefused()


def _probed(code):
    """`code` as a function running its probed variant, for an op called from probed code."""
    from .execution import run_body

    return functools.partial(run_body, code)
