"""Running generated code: the plain code, or its probed variant with the probe current.

`run` runs a generated function; with a probe, its probed variant (codegen.py), the probe made
current for the ops of its entries that run bodies of their own: their `probed_call` runs the
body's probed code with it (`run_body`), in the phase of the code calling it (probes.py). An
error carries a note naming the tape entry and the user's line, or the probe that raised.
"""

from __future__ import annotations

import threading

from .codegen import CompiledTape
from .probes import NonFiniteError


def run(code: CompiledTape, args, probe=None):
    """Run generated code, its probed variant calling `probe` where there is one (probes.py);
    an error carries a note naming the tape entry and user line. Boxed code takes `args`, a
    list, as its one argument (and empties it)."""
    if code.boxed:
        args = (args,)
    if probe is not None:
        return _run_probed(code.probed, args, probe)
    try:
        return code.fn(*args)
    except Exception as e:
        _note_entry(code, e)
        raise


def run_body(code: CompiledTape, *args):
    """Run a body's code from the op of an entry of probed code (its `probed_call`: codegen.py):
    its probed variant, with the probe of the code calling it, in that code's phase."""
    probe, phase = _probing.stack[-1]
    return _run_probed(code.probed_in(phase), args, probe)


class _Probing(threading.local):
    """Per thread: (probe, phase) of each probed code running, the innermost last."""

    def __init__(self):
        self.stack = []


_probing = _Probing()


def _run_probed(code: CompiledTape, args, probe):
    begin = getattr(probe, "begin", None)
    if begin is not None:  # the profile (profile.py) times the whole call
        begin(code)
    _probing.stack.append((probe, code.phase))
    try:
        return code.fn(*args, probe)
    except Exception as e:
        _note_entry(code, e)
        raise
    finally:
        _probing.stack.pop()
        if begin is not None:
            probe.end(code)


def _note_entry(code: CompiledTape, e: Exception) -> None:
    found = code.entry_at(e.__traceback__)
    if found is None:
        return
    entry, probing = found
    where = f", from {entry.source}" if entry.source else ""
    if not probing:
        e.add_note(f"dynamo_tape: while running tape entry `{entry.text()}`{where}")
    elif not isinstance(e, NonFiniteError):  # the anomaly check's own error names the entry
        e.add_note(f"dynamo_tape: while probing tape entry `{entry.text()}` ({code.phase}){where}")
