"""Every supported torch release: an op a release lacks never breaks the backend.

`aten::cholesky` left torch in 2.14 and naming it in the rule table killed the import of the
backend there. Tables now name ops through `dynamo_tape.ops.aten`, which gives a `MissingOp`
for an absent op; tables drop those where they are built and `missing_ops()` lists them.
"""

import subprocess
import sys
import textwrap

import pytest
import torch

from dynamo_tape.ops import MissingOp, aten, missing_ops, present
from dynamo_tape.rules import RULES


def test_an_op_torch_lacks_is_dropped_from_a_table_and_listed():
    absent = aten.no_such_op_in_any_torch.default
    assert isinstance(absent, MissingOp)
    assert isinstance(aten.add.no_such_overload, MissingOp)  # an absent overload of a real op
    table = present({absent: "rule", aten.add.Tensor: "rule"})
    assert table == {aten.add.Tensor: "rule"}
    assert present({absent, aten.mul.Tensor}) == {aten.mul.Tensor}
    assert "aten.no_such_op_in_any_torch.default" in missing_ops()
    assert "aten.no_such_op_in_any_torch" not in missing_ops()  # the overload, not its packet
    assert "aten.add.no_such_overload" in missing_ops()
    with pytest.raises(NotImplementedError, match="no_such_op_in_any_torch.default is not in"):
        absent(torch.ones(1))


def test_rule_table_holds_only_ops_of_this_torch():
    assert not [op for op in RULES if isinstance(op, MissingOp)]
    # each op the tables name and this torch lacks is listed, and has no rule
    listed = {name.removeprefix("aten.") for name in missing_ops()}
    assert not listed & {str(op).removeprefix("aten.") for op in RULES}


# A fresh interpreter in which torch lacks an op the rule table names, as torch 2.14 lacks
# aten::cholesky: the backend still loads through its entry point, compiles and differentiates
# a function that uses other linear algebra, and lists the absent op.
_HIDDEN_OP = textwrap.dedent(
    """
    import torch
    import torch._dynamo
    import torch._inductor.compiler_bisector  # torch.compile's own imports, which name the op
    from torch._ops import _OpNamespace

    hidden = "cholesky_solve"
    found = _OpNamespace.__getattr__

    def getattr_without(self, name):
        if self.name == "aten" and name == hidden:
            raise AttributeError(f"'_OpNamespace' 'aten' object has no attribute {name!r}")
        return found(self, name)

    _OpNamespace.__getattr__ = getattr_without
    torch.ops.aten.__dict__.pop(hidden, None)

    a = torch.randn(4, 4, dtype=torch.float64)
    a = (a @ a.T + 4 * torch.eye(4, dtype=torch.float64)).requires_grad_()
    f = lambda a: torch.linalg.cholesky(a).sum()
    torch.compile(f, backend="tape")(a).backward()
    expected = torch.autograd.grad(f(a), a)[0]
    assert torch.allclose(a.grad, expected), (a.grad, expected)

    from dynamo_tape.ops import missing_ops
    from dynamo_tape.rules import RULES
    assert "aten.cholesky_solve.default" in missing_ops(), missing_ops()
    assert not any("cholesky_solve" in str(op) for op in RULES)
    print("ok")
    """
)


def test_backend_loads_and_runs_where_torch_lacks_an_op_of_the_table():
    done = subprocess.run(
        [sys.executable, "-c", _HIDDEN_OP], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
