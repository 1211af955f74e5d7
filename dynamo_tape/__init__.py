"""dynamo-tape: a torch.compile backend that runs Dynamo's graphs on its own tape autograd.

f = torch.compile(fn, backend="tape")      # found through the torch_dynamo_backends entry point
print(dynamo_tape.last_tapes())            # forward and backward tapes of the last graph
"""

from __future__ import annotations

import importlib

# Exports load on first use (PEP 562): pytest imports this package for the plugin entry point
# in every run, and importing torch there would cost seconds when the plugin is not used.
_EXPORTS = {
    "Tape": "ir",
    "TapeEntry": "ir",
    "Variable": "ir",
    "TapeCounter": "backend",
    "track": "tracker",
}


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def last_tapes() -> str:
    """The forward tape and the backward tape(s) of the last graph compiled, as text."""
    from .tracker import last_compiled

    compiled = last_compiled()
    if compiled is None:
        return "(no graph compiled yet)"
    from .lower import BODIES
    from .subclasses import Boundary, BoundaryVJP

    tapes = [compiled.tape, *(plan.backward.tape for plan in compiled.plans.values())]
    parts = []
    for tape in tapes:
        parts.append(tape.text())
        # after each tape, the tapes of its entries that run one of their own: a custom
        # autograd.Function's forward, a checkpointed region, tensor hooks, torch.cond's branches;
        # once per op (every call of one invoke_subgraph region runs the same), and the
        # collectives of DTensor's calls and of their backward
        shown = (*BODIES, Boundary, BoundaryVJP)
        ops = dict.fromkeys(e.op for e in tape.entries if isinstance(e.op, shown))
        parts += [op.text() for op in ops]
    return "\n\n".join(parts)


__all__ = ["Tape", "TapeCounter", "TapeEntry", "Variable", "last_tapes", "track"]
