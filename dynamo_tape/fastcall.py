"""The cheapest Python callable that runs an ATen overload exactly as the overload does.

`torch.ops.aten.addmm.default._op` matches its arguments against the schema in TorchScript's
generic argument parser; the Python bindings (`torch.addmm`, `torch._C._nn.gelu`,
`Tensor.expand`) parse them in generated C++ and cost 1.5-2.5x less per call. A binding picks
its overload from the Python types it is given, so `fast_callable` hands one out only after
checking, on fake tensors, that it dispatches exactly the same ATen ops and gives outputs of
the same metadata as the overload itself; the answer is cached per (overload, argument kinds).
`without_defaults` leaves out the arguments equal to their schema defaults (`alpha=1`), for
calls of the overload itself: same meaning, less parsing.
"""

from __future__ import annotations

import torch

from .ir import Variable
from .torch_private import (
    BINDINGS,
    FakeTensor,
    TorchDispatchMode,
    kernel,
    schema,
    tree_flatten,
    tree_map,
)

_SYM = torch.SymInt | torch.SymFloat | torch.SymBool
_verified: dict = {}
# Defaults the Python bindings do not share with the schema: `int reduction=Mean` in
# native_functions.yaml is 1 in the schema, but torch._C._nn.mse_loss(x, t) does not reduce
_ALWAYS_PASSED = {"reduction"}


def without_defaults(op, args: list, kwargs: dict) -> tuple[list, dict]:
    """Trailing positional arguments and keyword arguments equal to their schema defaults
    dropped."""
    positional = [a for a in schema(op).arguments if not a.kwarg_only]
    n = len(args)
    while (
        n
        and n <= len(positional)
        and positional[n - 1].name not in _ALWAYS_PASSED
        and _is_default(positional[n - 1], args[n - 1])
    ):
        n -= 1
    by_name = {a.name: a for a in schema(op).arguments if a.kwarg_only}
    kept = {k: v for k, v in kwargs.items() if k not in by_name or not _is_default(by_name[k], v)}
    return list(args[:n]), kept


def _is_default(argument, value) -> bool:
    if not argument.has_default_value() or isinstance(value, Variable | _SYM | torch.Tensor):
        return False
    default = argument.default_value
    try:
        return type(default) is type(value) and bool(default == value)
    except Exception:  # noqa: BLE001 - a value that cannot be compared is simply kept
        return False


def fast_callable(op, args: list, kwargs: dict, fake_mode):
    """A Python binding equivalent to `kernel(op)` for these arguments, or None."""
    if fake_mode is None or not schema(op).name.startswith("aten::"):
        return None
    key = (op, _kinds(args), _kinds(kwargs))
    if key not in _verified:
        _verified[key] = _find_binding(op, args, kwargs, fake_mode)
    return _verified[key]


def _kinds(value):
    if isinstance(value, dict):
        return tuple((k, _kinds(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return (type(value).__name__, *map(_kinds, value))
    if isinstance(value, Variable):
        # the dtype too: a Python number meets a tensor differently in type promotion
        return str(value.dtype) if value.is_tensor else _python_type(value.meta).__name__
    return _python_type(value).__name__


def _python_type(value):
    for sym, plain in ((torch.SymInt, int), (torch.SymFloat, float), (torch.SymBool, bool)):
        if isinstance(value, sym):
            return plain
    return type(value)


def _find_binding(op, args, kwargs, fake_mode):
    metas = tree_map(lambda v: v.meta if isinstance(v, Variable) else v, (args, kwargs))
    leaves, _ = tree_flatten(metas)
    if any(isinstance(x, torch.Tensor) and not isinstance(x, FakeTensor) for x in leaves):
        return None  # a real constant tensor: the fake check cannot run, keep the overload
    expected = _trace(kernel(op), *metas, fake_mode)
    if expected is None:
        return None
    name = schema(op).name.removeprefix("aten::")
    for namespace in BINDINGS:
        binding = getattr(namespace, name, None)
        if binding is not None and _trace(binding, *metas, fake_mode) == expected:
            return binding
    return None


class DispatchedOps(TorchDispatchMode):
    """Lists the ATen overloads dispatched inside it (`.ops`), running each."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


def _trace(fn, args, kwargs, fake_mode):
    """The ATen ops `fn` dispatches and its outputs' metadata, on fake tensors; None if it
    fails there."""
    try:
        with fake_mode, DispatchedOps() as seen:
            out = fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - a binding that cannot take these arguments is skipped
        return None
    outs, _ = tree_flatten(out)
    return tuple(seen.ops), tuple(map(_meta_text, outs))


def _meta_text(x) -> str:
    # text, not SymInt comparisons, so checking adds no guards to the shape environment
    if isinstance(x, torch.Tensor):
        return f"{x.dtype} {x.device} {tuple(x.shape)} {x.stride()} {x.storage_offset()}"
    return repr(type(x))
