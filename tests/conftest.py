"""Fixtures shared by the tests (fixtures only)."""

import pytest
import torch
import torch._dynamo


@pytest.fixture(autouse=True)
def reset_dynamo():
    # each test compiles from scratch: no cached frames, guards or recompile counts carry over
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
