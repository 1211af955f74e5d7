"""A compiled graph's program: every trace its tapes went through, in the order they were made.

Lowering yields the first trace; autodiff the backward's; each later step is a named pass from
a tape to a new tape (passes.py), appended here, in the way Lightning Thunder keeps
`last_traces`. Code generation prints only the last trace of each generated function, so the
last trace is, entry for entry, the code that runs. `dynamo_tape.last_traces()` returns them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .ir import Tape

# tests set it (tests/conftest.py): every trace is verified (`Tape.check`) as it is added
CHECK = os.environ.get("DYNAMO_TAPE_CHECK") == "1"


@dataclass(frozen=True)
class Trace:
    function: str  # the generated function it leads to: forward, forward_train, backward...
    step: str  # what made it: "lowered", "grad", or a pass
    tape: Tape

    def text(self) -> str:
        return f"# {self.function}, {self.step}\n{self.tape.text()}"

    __str__ = text


class Program:
    """The traces of one compiled graph (see the module docstring)."""

    def __init__(self):
        self.traces: list[Trace] = []
        self.code: dict = {}  # function -> its CompiledTape, once generated

    def add(self, function: str, step: str, tape: Tape) -> Tape:
        if CHECK:
            tape.check()
        self.traces.append(Trace(function, step, tape))
        return tape

    def then(self, function: str, step: str, new: Tape, old: Tape) -> Tape:
        """`new`, made from `old` by the step: a trace of its own where the step changed it."""
        return new if new is old else self.add(function, step, new)

    def functions(self) -> list[str]:
        return list(dict.fromkeys(t.function for t in self.traces))

    def final(self, function: str) -> Tape:
        """The tape the generated code of `function` is printed from."""
        return next(t.tape for t in reversed(self.traces) if t.function == function)
