"""Complex numbers in rules: PyTorch's convention, and the two helpers rules write it with.

For a real loss L and a complex input z, torch.autograd's gradient is conj(dL/dz) in Wirtinger
terms (dL/dx + i dL/dy), so a holomorphic op's rule multiplies the cotangent by the *conjugate*
of its derivative: mul's is `g * conj(other)`, mm's `g @ mH(b)` (derivatives.yaml writes the
same `.conj()`). On real values both helpers record nothing, so real tapes are unchanged.
"""

from __future__ import annotations

from ..ir import Variable
from ..ops import aten
from ..record import call


def is_complex(v) -> bool:
    return isinstance(v, Variable) and v.is_tensor and v.meta.is_complex()


def conj(x):
    """The conjugate of a complex Variable or number; a real one itself."""
    if is_complex(x):
        return call(aten._conj.default, x)
    if isinstance(x, complex):
        return x.conjugate()
    return x


def mH(x):
    """The conjugate transpose of the last two dimensions (the transpose, for real values)."""
    return conj(x.mT)
