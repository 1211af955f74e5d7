"""Where precision is lost: a probe running each entry again on float64 shadow values.

With `options={"numerics": "float64"}` every graph's probes (probes.py) include a `Numerics`:
after each entry runs, its op runs again on the float64 shadows of its inputs (the shadow an
earlier entry made, else the input's own value in float64), with low-precision dtype arguments
made float64, and the shadows of its outputs are kept for the entries after it: the float64
program runs in lockstep with the one that runs. Each entry's error is the relative error of
its outputs against their shadows (max |out - shadow| / max |shadow|), and what it introduced,
that error less its inputs' largest, the call with the largest of it kept; `ranked()` lists the
entries, the one that lost most precision first (`(x + 1e4) - 1e4` in float16: the subtraction,
whose cancellation turns the addition's rounding into an error as large as the result). Random
ops, uninitialized memory (`empty`), ops that are not ATen overloads and ops that fail in float64
are not run again: their outputs' shadows are their own
values. Shadows are kept per Variable, and used only while the value they shadow is unchanged
(same storage, version and shape), so a saved value the backward reads keeps its forward shadow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import torch_private as tp
from .ir import TapeEntry, Variable, is_random, op_name
from .text import short_source
from .torch_private import OpOverload, tree_map

_LOW = (torch.float16, torch.bfloat16, torch.float32)


@dataclass
class EntryError:
    entry: TapeEntry
    phase: str
    error: float  # the largest relative error of its outputs against their float64 shadows
    introduced: float  # that error less the largest of its inputs': what this entry lost

    def text(self) -> str:
        where = f"  # {self.entry.source}" if self.entry.source else ""
        numbers = f"{self.introduced:<9.3g} {self.error:<9.3g}"
        return f"{numbers} {self.phase:<8} `{self.entry.text()}`{where}"


class Numerics:
    """The float64 shadow probe of one compiled graph (see the module docstring)."""

    def __init__(self, graph: str):
        self.graph = graph
        self.errors: dict[TapeEntry, EntryError] = {}
        self._shadows: dict[Variable, tuple] = {}  # Variable -> (key of its value, shadow)

    def __call__(self, entry: TapeEntry, inputs, outputs, phase: str) -> None:
        shadow_in, before = {}, 0.0
        for v, x in zip(entry.inputs, inputs, strict=True):
            shadow_in[v], error = self._shadow(v, x)
            before = max(before, error)
        made = self._again(entry, shadow_in)
        worst = 0.0
        for k, (v, x) in enumerate(zip(entry.outputs, outputs, strict=True)):
            if v is None or not _floating(x):
                continue
            s = made[k] if made is not None and k < len(made) else None
            if not isinstance(s, torch.Tensor) or s.shape != x.shape:
                s = x.detach().to(torch.float64)
            error = _relative_error(x, s)
            self._shadows[v] = (_key(x), s, error)
            worst = max(worst, error)
        introduced = max(worst - before, 0.0)
        seen = self.errors.get(entry)
        if seen is None or (introduced, worst) > (seen.introduced, seen.error):
            self.errors[entry] = EntryError(entry, phase, worst, introduced)

    def ranked(self) -> list[EntryError]:
        return sorted(self.errors.values(), key=lambda e: (-e.introduced, -e.error))

    def as_dict(self, top: int | None = 20) -> dict:
        """Plain data: the graph, and its entries that lost most precision, first."""
        rows = [
            {"phase": e.phase, "op": op_name(e.entry.op), "module": e.entry.module or "",
             "line": short_source(e.entry.source) or "", "entry": e.entry.text(),
             "introduced": e.introduced, "error": e.error}
            for e in self.ranked()[:top]
        ]  # fmt: skip
        return {"graph": self.graph, "entries": rows}

    def text(self, top: int = 10) -> str:
        head = f"# numerics of graph {self.graph}, relative errors against float64"
        columns = f"{'introduced':<9} {'error':<9} {'phase':<8} entry"
        return "\n".join([head, columns] + [e.text() for e in self.ranked()[:top]])

    def _shadow(self, v: Variable, x):
        """The shadow of input `v` holding `x`, and its error."""
        if not _floating(x):
            return x, 0.0
        kept = self._shadows.get(v)
        if kept is not None and kept[0] == _key(x):
            return kept[1], kept[2]
        return x.detach().to(torch.float64), 0.0

    def _again(self, entry: TapeEntry, shadow_in: dict):
        if not isinstance(entry.op, OpOverload) or is_random(entry.op):
            return None
        if "empty" in entry.op.__name__:  # empty, new_empty, empty_permuted...: no values
            return None

        def value(a):
            if isinstance(a, Variable):
                return shadow_in[a]
            return torch.float64 if isinstance(a, torch.dtype) and a in _LOW else a

        args, kwargs = tree_map(value, (list(entry.args), dict(entry.kwargs)))
        try:
            with torch.no_grad():
                out = entry.op(*args, **kwargs)
        except Exception:  # noqa: BLE001 - no float64 form (a dtype view...): not shadowed
            return None
        return list(out) if isinstance(out, list | tuple) else [out]


def _floating(x) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point()


def _key(x: torch.Tensor):
    x = tp.local_tensor(x)
    return x.untyped_storage().data_ptr(), x.storage_offset(), x._version, tuple(x.shape)


def _relative_error(x: torch.Tensor, shadow: torch.Tensor) -> float:
    """max |x - shadow| / max |shadow| over the elements where both are finite; for a DTensor,
    over this rank's shard (no collective)."""
    x, shadow = tp.local_tensor(x), tp.local_tensor(shadow)
    if x.numel() == 0:
        return 0.0
    diff = (x.detach().to(torch.float64) - shadow).abs()
    finite = torch.isfinite(diff) & torch.isfinite(shadow)
    if not finite.any():
        return 0.0
    scale = shadow.abs()[finite].max().item()
    err = diff[finite].max().item()
    return err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))
