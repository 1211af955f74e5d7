"""dynamo-tape: a torch.compile backend that runs Dynamo's graphs on its own tape autograd.

    f = torch.compile(fn, backend="tape")      # found through the torch_dynamo_backends entry point
    print(dynamo_tape.last_tapes())            # forward and backward tapes of the last graph
"""

from __future__ import annotations

from .ir import Tape, TapeEntry, Variable
from .tracker import last_compiled


def last_tapes() -> str:
    """The forward tape and the backward tape(s) of the last graph compiled, as text."""
    compiled = last_compiled()
    if compiled is None:
        return "(no graph compiled yet)"
    parts = [compiled.tape.text()]
    for plan in compiled.plans.values():
        parts.append(plan.backward.tape.text())
    return "\n\n".join(parts)


__all__ = ["Tape", "TapeEntry", "Variable", "last_tapes"]
