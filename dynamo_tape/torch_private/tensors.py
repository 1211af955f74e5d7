"""Tensors at run time, as the compiled code and the tracker read them.

Relies on storages (`untyped_storage()._cdata`), aliasing (torch._C._is_alias_of), version
counters (`_version`, none on an inference tensor), functorch's wrapped tensors and transforms
(torch._C._functorch), autograd's C++ `_FunctionBase.apply` and a Function context's
`maybe_clear_saved_tensors`, torch._foreach_copy_, and
torch._C's Python bindings of ATen ops, and whether torch.profiler records
(torch.autograd.profiler._is_profiler_enabled). A wrapper subclass's storage is its first inner
tensor's (subclasses.py says which tensors are such subclasses).
"""

from __future__ import annotations

import torch

from .subclasses import is_traceable_wrapper_subclass


def storage_id(x: torch.Tensor) -> int:
    """One number per storage: views share it. A wrapper subclass (DTensor) has none of its
    own: its first inner tensor's (`__tensor_flatten__` names them, and from torch 2.13 a
    DTensor's DeviceMesh too)."""
    if is_traceable_wrapper_subclass(x):
        inner = (getattr(x, name) for name in x.__tensor_flatten__()[0])
        return storage_id(next(t for t in inner if isinstance(t, torch.Tensor)))
    return x.untyped_storage()._cdata


def is_alias_of(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch._C._is_alias_of(a, b)


def version(x: torch.Tensor) -> int | None:
    """The tensor's version counter: bumped by every in-place write. None for a tensor made
    under `torch.inference_mode()`, which has none (and is written only inside that mode)."""
    return None if x.is_inference() else x._version


def versions(tensors) -> list:
    """`version` of each, at one attribute read a tensor where none is an inference tensor
    (a training step reads them for every input its double backward would recompute from)."""
    try:
        return [x._version for x in tensors]
    except RuntimeError:  # "Inference tensors do not track version counter"
        return [version(x) for x in tensors]


foreach_copy_ = torch._foreach_copy_  # copy_ of many tensors in one call


def fake_empty_strided(like, shape, stride):
    """A fake tensor of `like`'s fake mode, device and dtype, made without a dispatch: a meta tensor
    wrapped the way the fake mode wraps a kernel's outputs (`new_empty_strided` goes through the
    fake mode's dispatch and cache, 0.4 ms a call)."""
    meta = torch.empty_strided(shape, stride, dtype=like.dtype, device="meta")
    mode = like.fake_mode
    return mode.fake_tensor_converter.from_meta_and_device(mode, meta, like.device)


def is_functorch_wrapped(x) -> bool:
    return isinstance(x, torch.Tensor) and torch._C._functorch.is_functorch_wrapped_tensor(x)


functorch_transforms_active = torch._C._are_functorch_transforms_active


def c_apply(function_class):
    """`function_class.apply` without `Function.apply`'s Python wrapper, which checks every
    argument for a dead functorch wrapper (autograd's C++ `_FunctionBase.apply`)."""
    return torch._C._FunctionBase.__dict__["apply"].__get__(None, function_class)


def clear_saved_tensors(ctx) -> None:
    """In a Function's backward, after reading `ctx.saved_tensors`: autograd drops its references
    to them now rather than when the backward returns, unless the graph is retained
    (`retain_graph=True`), as AOTAutograd's compiled backward does."""
    ctx.maybe_clear_saved_tensors()


# The Python bindings where an ATen op may have a cheaper entry point than `op._op`
# (torch.addmm, torch._C._nn.gelu, Tensor.expand): searched by name, in this order.
BINDINGS = (
    torch._C._VariableFunctions,
    torch._C._nn,
    torch._C._linalg,
    torch._C._special,
    torch._C._fft,
    torch._C.TensorBase,  # methods: Tensor.expand(self, size)
)


def profiler_enabled() -> bool:
    """torch.profiler (or the autograd profiler) is recording."""
    return torch.autograd.profiler._is_profiler_enabled
