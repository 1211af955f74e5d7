"""Tensor subclasses: the ones Dynamo traces through, and DTensor in its graph.

Relies on torch.utils._python_dispatch's test for a traceable wrapper subclass, the
FakeScriptObject that stands for a DeviceMesh in Dynamo's example values
(torch._library.fake_class_registry, from torch 2.13), and the names Dynamo gives DTensor's
calls in its graph (torch/_dynamo/variables/), which changed at 2.13.
"""

from __future__ import annotations

import torch
import torch.utils._python_dispatch

# A subclass Dynamo traces through: it has __tensor_flatten__ / __tensor_unflatten__
# (torch.utils._python_dispatch.is_traceable_wrapper_subclass).
is_traceable_wrapper_subclass = torch.utils._python_dispatch.is_traceable_wrapper_subclass


def local_tensor(x):
    """The one plain tensor a wrapper subclass holds (`__tensor_flatten__`): a DTensor's local
    shard, an AsyncCollectiveTensor's value; any other value as it is."""
    while is_traceable_wrapper_subclass(x):
        names, _ = x.__tensor_flatten__()  # from 2.13 a DTensor's lists its mesh too
        inner = [getattr(x, n) for n in names]
        inner = [t for t in inner if isinstance(t, torch.Tensor)]
        if len(inner) != 1:
            break
        (x,) = inner
    return x


def real_object(x):
    """The object behind a FakeScriptObject (torch._library.fake_class_registry; its
    `real_obj`): Dynamo's example value of a DeviceMesh graph input from torch 2.13 on."""
    return getattr(x, "real_obj", x) if type(x).__name__ == "FakeScriptObject" else x


# Dynamo's names for DTensor's calls in its graph: from torch 2.13 `DTensor.from_local` itself
# and the methods by name; on 2.11 and 2.12, closures over the constant arguments, named
# "prim from_local", "prim_redistribute", "prim_to_local" (torch/_dynamo/variables/).
_DTENSOR_METHODS = {"redistribute", "to_local"}
_DTENSOR_CLOSURES = {
    "prim from_local": "from_local",
    "prim_redistribute": "redistribute",
    "prim_to_local": "to_local",
}


def dtensor_call_kind(node) -> str | None:
    """ "from_local", "redistribute" or "to_local" for a node of Dynamo's graph making that
    DTensor call, else None."""
    if node.op == "call_method":
        return node.target if node.target in _DTENSOR_METHODS else None
    if node.op != "call_function":
        return None
    from torch.distributed.tensor import DTensor

    if node.target is DTensor.from_local:
        return "from_local"
    return _DTENSOR_CLOSURES.get(getattr(node.target, "__name__", None))
