"""Options of the `tape` backend: `torch.compile(fn, backend="tape", options={...})`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

# an option's allowed value that is any callable (a probe)
CALLABLE = "a callable"
# an option's allowed value that is any number from 0 to 1 (not a bool)
FRACTION = "a number from 0 to 1"

# name -> (allowed values, what it does); the defaults are the dataclass's.
OPTIONS = {
    "fallback": (
        ("autograd", "error"),
        "ops without a rule of ours: 'autograd' computes their VJP through torch.autograd "
        "(counted and reported); 'error' refuses to compile them, naming the op and source line",
    ),
    "probe": (
        (None, CALLABLE),
        "probe(entry, inputs, outputs, phase), called after each tape entry runs, in the "
        "forward and the backward, with the entry's input and output values (probes.py); the "
        "code that runs then is the probed variant of the generated code",
    ),
    "detect_anomaly": (
        (False, True),
        "check every entry's outputs as under torch.autograd.set_detect_anomaly(True): the "
        "first entry to make a NaN or infinity raises dynamo_tape.NonFiniteError naming it",
    ),
    "numerics": (
        (None, "float64"),
        "run each entry's op again on float64 shadow values, in lockstep, and record each "
        "entry's relative error (dynamo_tape.last_numerics(), numerics.py)",
    ),
    "profile": (
        (False, True),
        "time every entry of the forward and backward, and the tape's own overhead "
        "(dynamo_tape.last_profile(), the report's Profile section; profile.py)",
    ),
    "memory_budget": (
        (None, FRACTION),
        "make saved values again in the backward, by chains of cheap entries (views, pointwise "
        "ops and activations, LayerNorm, BatchNorm, max pooling; never a matmul, a convolution "
        "or a random op) from other saved values, until the bytes saved for backward are at "
        "most this fraction of those of all the backward reads (memory.py); None or 1: the "
        "default's, values of views and pointwise entries that only pointwise entries of the "
        "backward read; 0: make again all that can be",
    ),
    "cache": (
        (True, False),
        "look the graph up in the persistent compile cache, and store it there (cache.py; "
        "DYNAMO_TAPE_CACHE=0 turns it off for every graph)",
    ),
}


@dataclass(frozen=True)
class Config:
    fallback: str = "autograd"
    probe: Callable | None = None
    detect_anomaly: bool = False
    numerics: str | None = None
    profile: bool = False
    memory_budget: float | None = None
    cache: bool = True

    @classmethod
    def from_options(cls, options: dict | None) -> Config:
        options = dict(options or {})
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            valid = ", ".join(f"{k!r} ({'|'.join(map(_text, v[0]))})" for k, v in OPTIONS.items())
            raise ValueError(
                f"unknown tape option(s) {', '.join(map(repr, unknown))}; valid: {valid}"
            )
        for key, value in options.items():
            allowed = OPTIONS[key][0]
            if not any(_fits(value, a) for a in allowed):
                raise ValueError(f"tape option {key!r} must be one of {allowed}, got {value!r}")
        return cls(**options)

    @property
    def strict(self) -> bool:
        return self.fallback == "error"


def _fits(value, allowed) -> bool:
    if allowed is CALLABLE:
        return callable(value)
    if allowed is FRACTION:
        return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
    return type(value) is type(allowed) and value == allowed


def _text(allowed) -> str:
    return allowed if isinstance(allowed, str) else repr(allowed)


assert {f.name for f in fields(Config)} == set(OPTIONS)
