"""Tensor subclasses other than DTensor (tests/test_distributed.py) are refused by name."""

import pytest
import torch
from torch.testing._internal.two_tensor import TwoTensor

from dynamo_tape.backend import TapeCounter


def test_wrapper_subclass_is_refused_by_name_with_the_source_line():
    def f(x):
        return (x * 2).sin()

    x = TwoTensor(torch.randn(3), torch.randn(3))
    counter = TapeCounter()
    with pytest.raises(Exception, match=r"tensor subclass .*\.TwoTensor \(from .*test_subclasses"):
        torch.compile(f, backend=counter)(x)
    (graph,) = counter.graphs
    assert graph.not_on_tape.startswith("LoweringError: tensor subclass")
    assert "TwoTensor" in graph.not_on_tape
