"""Ops and their schemas: what torch._ops.OpOverload keeps in private attributes.

`torch.ops.aten.add.Tensor` is a torch._ops.OpOverload; its FunctionSchema (`arguments`,
`returns`, `name`, `is_mutable`, each argument's `alias_info`, `kwarg_only`, `type`) is
`op._schema`, its overload name `op._overloadname`, and the unbound C++ kernel `op._op`.
"""

from __future__ import annotations

import torch

OpOverload = torch._ops.OpOverload


def schema(op: OpOverload):
    return op._schema


def overload_name(op: OpOverload) -> str:
    return op._overloadname


def kernel(op: OpOverload):
    """The op's C++ entry point without OpOverload's Python `__call__` (one frame cheaper)."""
    return op._op
