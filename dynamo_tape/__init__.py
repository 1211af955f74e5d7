"""dynamo-tape: a torch.compile backend that runs Dynamo's graphs on its own tape autograd.

f = torch.compile(fn, backend="tape")      # found through the torch_dynamo_backends entry point
print(dynamo_tape.last_tapes())            # the tapes that run for the last graph
dynamo_tape.last_traces()                  # every trace on the way there, pass by pass
print(dynamo_tape.explain(fn)(x))          # compile, run forward and backward: the report
with dynamo_tape.profile_step() as step:   # with options={"profile": True}: where a step's
    f(x).sum().backward()                  # time goes, inside and outside the graphs
print(step.text())
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
    "profile_step": "tracker",
    "explain": "explanation",
    "NonFiniteError": "probes",
}


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def last_tapes(sources: bool = False) -> str:
    """The tapes that run for the last graph compiled, as text: for each function generated so
    far (the training forward and its backward, the forward alone), the tape its code is printed
    from, then the tapes of its entries that run one of their own. `sources`: each run of
    entries under a comment naming the module and the line of the user's code it comes from
    (`Tape.text`)."""
    compiled = _last_compiled()
    if compiled is None:
        return "(no graph compiled yet)"
    from .subclasses import Boundary, BoundaryVJP
    from .tape_builder import BODIES

    program = compiled.program
    parts = []
    for function in program.code:
        tape = program.final(function)
        parts.append(tape.text(sources=sources))
        # after each tape, the tapes of its entries that run one of their own: a custom
        # autograd.Function's forward, a checkpointed region, tensor hooks, torch.cond's branches;
        # once per op (every call of one invoke_subgraph region runs the same), and the
        # collectives of DTensor's calls and of their backward
        shown = (*BODIES, Boundary, BoundaryVJP)
        ops = dict.fromkeys(e.op for e in tape.entries if isinstance(e.op, shown))
        parts += [op.text() for op in ops]
    return "\n\n".join(parts)


def last_traces() -> list:
    """Every trace of the last graph compiled, in the order they were made (`Trace`: the
    function it leads to, the step that made it, the tape): the lowered forward, the backward,
    then each pass's result. The last trace of each function is the code that runs."""
    compiled = _last_compiled()
    return [] if compiled is None else list(compiled.program.traces)


def last_code(probed: bool = False) -> dict[str, str]:
    """The Python source generated for the last graph compiled: function name -> source. The
    plain code, the one that runs with no probe active; `probed`: the variant that runs with one
    (dynamo_tape.probes), the same lines with a probe call after each entry."""
    compiled = _last_compiled()
    if compiled is None:
        return {}
    code = compiled.program.code
    return {f: (c.probed if probed else c).source for f, c in code.items()}


def last_numerics():
    """With `options={"numerics": "float64"}`: the float64 shadow of the last graph compiled
    (`Numerics`: `ranked()`, each entry's relative error, largest first; `text()`), else None."""
    compiled = _last_compiled()
    return None if compiled is None else compiled.probes.shadow


def last_profile():
    """With `options={"profile": True}`: the profile of the last graph compiled (`Profile`:
    `as_dict()`, time by op, module and line, forward and backward apart; `text()`), else
    None."""
    compiled = _last_compiled()
    return None if compiled is None else compiled.probes.profile


def _last_compiled():
    from .tracker import last_compiled

    return last_compiled()


__all__ = [
    "NonFiniteError",
    "Tape",
    "TapeCounter",
    "TapeEntry",
    "Variable",
    "explain",
    "last_code",
    "last_numerics",
    "last_profile",
    "last_tapes",
    "last_traces",
    "profile_step",
    "track",
]
