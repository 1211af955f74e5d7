"""`backend="tape"` is found through the `torch_dynamo_backends` entry point, in a fresh
interpreter, and importing the package never registers the name itself (torch >= 2.5 then
fails with "duplicate name")."""

import subprocess
import sys
import textwrap

COMPILE_AND_COMPARE = """
import torch

def fn(x, w):
    return (x @ w).tanh().sum()

x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
w = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
x_eager = x.detach().clone().requires_grad_()
w_eager = w.detach().clone().requires_grad_()
torch.compile(fn, backend="tape", fullgraph=True)(x, w).backward()
fn(x_eager, w_eager).backward()
torch.testing.assert_close(x.grad, x_eager.grad)
torch.testing.assert_close(w.grad, w_eager.grad)

from dynamo_tape.tracker import last_compiled
assert last_compiled().calls["backward"] == 1, last_compiled().calls  # the tape's own backward
"""


def run_fresh(*parts: str):
    source = "\n".join(textwrap.dedent(part) for part in parts)
    result = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_backend_found_without_importing_the_package():
    run_fresh(
        """
        import sys
        import torch
        from torch._dynamo.backends.registry import list_backends
        assert "dynamo_tape" not in sys.modules
        assert "tape" in list_backends(exclude_tags=())  # listed from the entry point
        assert "dynamo_tape" not in sys.modules
        """,
        COMPILE_AND_COMPARE,
    )


def test_importing_the_package_first_does_not_register_tape():
    run_fresh(
        """
        import torch
        from torch._dynamo.backends import registry
        import dynamo_tape, dynamo_tape.backend
        assert "tape" not in registry._COMPILER_FNS  # only Dynamo registers it, when asked
        """,
        COMPILE_AND_COMPARE,
    )
