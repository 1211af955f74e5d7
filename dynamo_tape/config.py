"""Options of the `tape` backend: `torch.compile(fn, backend="tape", options={...})`."""

from __future__ import annotations

from dataclasses import dataclass, fields

# name -> (allowed values, what it does); the defaults are the dataclass's.
OPTIONS = {
    "fallback": (
        ("autograd", "error"),
        "ops without a rule of ours: 'autograd' computes their VJP through torch.autograd "
        "(counted and reported); 'error' refuses to compile them, naming the op and source line",
    ),
}


@dataclass(frozen=True)
class Config:
    fallback: str = "autograd"

    @classmethod
    def from_options(cls, options: dict | None) -> Config:
        options = dict(options or {})
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            valid = ", ".join(f"{k!r} ({'|'.join(v[0])})" for k, v in OPTIONS.items())
            raise ValueError(
                f"unknown tape option(s) {', '.join(map(repr, unknown))}; valid: {valid}"
            )
        for key, value in options.items():
            allowed = OPTIONS[key][0]
            if value not in allowed:
                raise ValueError(f"tape option {key!r} must be one of {allowed}, got {value!r}")
        return cls(**options)

    @property
    def strict(self) -> bool:
        return self.fallback == "error"


assert {f.name for f in fields(Config)} == set(OPTIONS)
