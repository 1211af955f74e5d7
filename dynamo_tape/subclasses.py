"""Tensor subclasses on the tape: DTensor runs on it; any other traceable subclass is refused.

Under tensor parallelism Dynamo's graph takes DTensors (the parameters) and crosses between
local tensors and DTensors with three calls: `DTensor.from_local`, `.redistribute` and
`.to_local`. The tape records the ATen ops between them on DTensors, as eager's autograd sees
them, so the rules differentiate the DTensor program and its gradients come out with eager's
placements; DTensor's own dispatch runs each op on the local tensors. Differentiating the local
program instead gives other gradients: DTensor's convention for the gradient of a replicated
value is not the vector-Jacobian product of the collectives on the local tensors (a
`Replicate` bias added before a sum over ranks is divided by the world size in the forward and
not in eager's backward).

Each of the three calls is an entry of its own (`Boundary`); its backward is eager's own
(`Redistribute.backward` and the like, which differ between releases): the forward runs the
call with autograd recording that one step and keeps it beside the value (the entry's second
and third outputs: the step's result and its detached input), and the backward entry
(`BoundaryVJP`) runs torch.autograd on it. The collectives a call and its backward make are
shown under the tapes, as the ATen entries DTensor ran on the local tensors.
"""

from __future__ import annotations

import torch

from . import record
from . import torch_private as tp
from .ir import Tape, TapeEntry, Variable


def is_dtensor(x) -> bool:
    from torch.distributed.tensor import DTensor  # imported once a subclass is seen

    return isinstance(x, DTensor)


def inner_tensors(x) -> list:
    """The plain tensors of one of Dynamo's values: a DTensor's local tensor (from torch 2.13
    its flattening lists the DeviceMesh too), a tensor itself, none for anything else."""
    if tp.is_traceable_wrapper_subclass(x):
        names, _ = x.__tensor_flatten__()
        return [t for name in names for t in inner_tensors(getattr(x, name))]
    return [x] if isinstance(x, torch.Tensor) else []


def boundary_of(node: torch.fx.Node, args, kwargs) -> Boundary | None:
    """The entry op for a node of Dynamo's graph that is one of the three calls, else None."""
    kind = tp.dtensor_call_kind(node)
    if kind is None:
        return None
    x, *rest = args
    rest = [tp.real_object(a) for a in rest]  # the DeviceMesh arrives as a fake script object
    kwargs = {k: tp.real_object(a) for k, a in kwargs.items()}
    if node.op == "call_method":
        method = node.target

        def call(t):
            return getattr(t, method)(*rest, **kwargs)
    else:
        target = node.target

        def call(t):
            return target(t, *rest, **kwargs)

    from torch.distributed.device_mesh import DeviceMesh

    shown = [repr(a) for a in rest if not isinstance(a, DeviceMesh)]
    shown += [f"{k}={a!r}" for k, a in kwargs.items() if k != "run_check"]
    return Boundary(kind, call, ", ".join(shown))


class Boundary:
    """`y, step, start = boundary(x)`: the call's value, and the same call recorded by autograd
    (`step`) from `start`, a detached `x`: what the backward differentiates; see the module
    docstring."""

    def __init__(self, kind: str, call, constants: str):
        self.__name__ = kind
        self.name = f"{kind}({constants})" if constants else kind
        self.call = call
        self.local_tape = Tape("local")  # the collectives, recorded by `record_local`

    def __call__(self, x):
        if not (x.is_floating_point() or x.is_complex()):  # no gradient: no step to keep
            y = self.call(x)
            return [y, y, x]
        with torch.enable_grad():
            start = x.detach().requires_grad_()
            step = self.call(start)
        return [step.detach(), step, start]

    def record_local(self, x) -> None:
        """The local ATen ops the call runs on `x` (fake), kept for the printout."""
        self.local_tape = _local_ops(self.call, x)

    def text(self) -> str:
        return f"# {self.name}: DTensor's own call, on the local tensors\n{self.local_tape.text()}"

    def propagate(self, g, y, x):
        if g[0] is None:
            return (None,)
        vjp = BoundaryVJP(self)
        vjp.local_tape = _local_ops(vjp, y[1].meta, y[2].meta, g[0].meta)
        (dx,) = record.call(vjp, y[1], y[2], g[0])
        return (dx,)


class BoundaryVJP:
    """The gradient of a `Boundary`'s input: eager's backward of the recorded step."""

    def __init__(self, boundary: Boundary):
        self.__name__ = f"vjp_{boundary.__name__}"
        self.name = f"vjp[{boundary.name}]"
        self.local_tape = Tape("local")  # eager's backward on the local tensors, for printing

    def text(self) -> str:
        return f"# {self.name}: eager's backward, on the local tensors\n{self.local_tape.text()}"

    def __call__(self, step, start, g):
        with torch.enable_grad():  # kept: a user's second backward, `retain_graph=True`
            (dx,) = torch.autograd.grad(step, start, g, retain_graph=True)
        return [dx]


def _local_ops(fn, *args) -> Tape:
    """The ATen ops `fn(*args)` dispatches (on fake values: nothing runs), as a tape."""
    recorder = _LocalOps()
    with recorder, torch.no_grad():
        fn(*args)
    return recorder.tape


class _LocalOps(tp.TorchDispatchMode):
    """Records the ATen ops called on local (plain) tensors as tape entries, for printing."""

    def __init__(self):
        super().__init__()
        self.tape = Tape("local")
        self.names: dict[int, Variable] = {}

    def _var(self, t):
        if id(t) not in self.names:
            self.names[id(t)] = Variable(f"l{len(self.names)}", t)
            self.tape.inputs.append(self.names[id(t)])
        return self.names[id(t)]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        flat = list(out) if isinstance(out, tuple | list) else [out]
        if not any(isinstance(o, torch.Tensor) for o in flat):
            return out  # a metadata query (`prim.device`)
        inputs = tp.tree_map(lambda a: self._var(a) if isinstance(a, torch.Tensor) else a, args)
        outputs = []
        for o in flat:
            if isinstance(o, torch.Tensor):
                self.names[id(o)] = Variable(f"l{len(self.names)}", o)
                outputs.append(self.names[id(o)])
        self.tape.entries.append(TapeEntry(func, list(inputs), dict(kwargs), outputs))
        return out
