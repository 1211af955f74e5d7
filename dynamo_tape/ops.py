"""The ATen namespace as this project's tables name it, on any supported torch release.

`aten.cholesky.default` is an `OpOverload` where the running torch has that op, and a
`MissingOp` where it does not (`aten::cholesky` is gone from torch 2.14): naming an op never
fails at import time. Tables drop their `MissingOp` keys where they are built (`present`), and
`missing_ops()` lists every op the project named that this torch lacks. Calling a `MissingOp`
raises an error that names it.
"""

from __future__ import annotations

import torch

_MISSING: dict[str, MissingOp] = {}


class MissingOp:
    """An ATen op or overload the running torch does not have. Hashable, equal only to itself,
    so it can sit in a table without matching any real op."""

    def __init__(self, name: str):
        self.name = name  # "cholesky.default"

    def __getattr__(self, overload: str) -> MissingOp:
        if overload.startswith("__"):
            raise AttributeError(overload)
        return missing(f"{self.name}.{overload}")

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(f"aten.{self.name} is not in torch {torch.__version__}")

    def __repr__(self):
        return f"MissingOp(aten.{self.name})"


def missing(name: str) -> MissingOp:
    if name not in _MISSING:
        _MISSING[name] = MissingOp(name)
    return _MISSING[name]


class _Namespace:
    """`torch.ops.aten`, but an absent op is a `MissingOp` instead of an AttributeError."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            found = _Packet(getattr(torch.ops.aten, name))
        except AttributeError:
            found = missing(name)
        setattr(self, name, found)  # looked up once: rules name ops every time they run
        return found


class _Packet:
    """One op's overloads; an absent overload is a `MissingOp` too."""

    def __init__(self, packet):
        self._packet = packet

    def __getattr__(self, overload: str):
        if overload.startswith("__"):
            raise AttributeError(overload)
        try:
            found = getattr(self._packet, overload)
        except AttributeError:
            found = missing(f"{self._packet.__name__}.{overload}")
        setattr(self, overload, found)
        return found

    def __call__(self, *args, **kwargs):
        return self._packet(*args, **kwargs)


aten = _Namespace()


def is_missing(op) -> bool:
    return isinstance(op, MissingOp)


def present(table):
    """The table (a dict or set keyed by ops) without the ops this torch lacks."""
    if isinstance(table, dict):
        return {op: v for op, v in table.items() if not is_missing(op)}
    return type(table)(op for op in table if not is_missing(op))


def missing_ops() -> list[str]:
    """`aten.<op>.<overload>` for every op the project's tables and rules name that the running
    torch does not have (each skipped where its table is built)."""
    return sorted(f"aten.{name}" for name in _MISSING if not _is_prefix(name))


def _is_prefix(name: str) -> bool:
    # `aten.cholesky` is recorded on the way to `aten.cholesky.default`: list the overload only
    return any(other.startswith(name + ".") for other in _MISSING)
