"""Pytrees, dispatch modes, fake tensors.

Relies on torch.utils._pytree's tree functions, torch.utils._python_dispatch's
TorchDispatchMode, torch._subclasses.fake_tensor's FakeTensor and FakeTensorMode, and
torch._guards' detect_fake_mode; the same on every supported release.
"""

from __future__ import annotations

import torch._guards
import torch.utils._python_dispatch
import torch.utils._pytree
from torch._subclasses.fake_tensor import FakeTensor as FakeTensor
from torch._subclasses.fake_tensor import FakeTensorMode as FakeTensorMode

tree_map = torch.utils._pytree.tree_map
tree_flatten = torch.utils._pytree.tree_flatten
tree_unflatten = torch.utils._pytree.tree_unflatten
tree_leaves = torch.utils._pytree.tree_leaves
TorchDispatchMode = torch.utils._python_dispatch.TorchDispatchMode


def detect_fake_mode(example_inputs):
    """The fake mode of Dynamo's example inputs (torch._guards.detect_fake_mode), else None."""
    return torch._guards.detect_fake_mode(example_inputs)
