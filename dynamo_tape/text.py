"""Text as printed tapes write it, needing nothing of the tape itself: short names for dtypes,
SymInts and DTensor placements; long lines wrapped at `WIDTH`; a user's `file:line in fn`
shortened, and the text of that line.

Imports nothing of the package but `torch_private`, so ir.py's printer (and anything else that
writes tape-like text) can use it.
"""

from __future__ import annotations

import functools
import linecache
import os
import re
import textwrap

import torch

from .torch_private import symbolic_expr

WIDTH = 120  # printed tapes wrap lines longer than this

_DTYPE_NAMES = {
    torch.float64: "f64",
    torch.float32: "f32",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
    torch.complex64: "c64",
    torch.complex128: "c128",
    torch.int64: "i64",
    torch.int32: "i32",
    torch.int16: "i16",
    torch.int8: "i8",
    torch.uint8: "u8",
    torch.bool: "b8",
}


def short_dtype(dtype: torch.dtype) -> str:
    """`f32`, `bf16`, `i64`, `b8`...; a dtype without a short name as torch writes it."""
    return _DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


def sym_text(value) -> str:
    """An int or SymInt as text: `8`, `s77`, `2*s77`."""
    if isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool):
        return str(symbolic_expr(value))
    return str(value)


def placement_text(p) -> str:
    """`S(0)`, `R`, `P(sum)`: a DTensor placement as DTensor's own short repr writes it."""
    return (
        str(p)
        if not hasattr(p, "is_shard")
        else (f"S({p.dim})" if p.is_shard() else "R" if p.is_replicate() else f"P({p.reduce_op})")
    )


def wrapped(line: str, indent: str) -> list[str]:
    """A line longer than `WIDTH` as lines of at most that, the later ones indented by `indent`:
    cut between outputs, operands, constants (`[stride=[1, 1], padding=...]`) or returned
    values; inside a constant (`size=[...]`) only where it alone is longer than a line."""
    if len(line) <= WIDTH:
        return [line]
    body = line.lstrip(" ")
    lines, current, fresh = [], line[: len(line) - len(body)], True
    for piece in _pieces(body):
        if fresh or len(current) + 1 + len(piece) <= WIDTH:
            current, fresh = current + ("" if fresh else " ") + piece, False
        else:
            lines.append(current)
            current = indent + piece
    lines.append(current)
    cut = functools.partial(
        textwrap.wrap, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )
    return [part for ln in lines for part in (cut(ln, WIDTH) if len(ln) > WIDTH else [ln])]


def _pieces(text: str) -> list[str]:
    """`text` cut at the spaces outside brackets and at those directly inside one pair (between
    the elements of `[...]` or `(...)`), never inside a quoted string."""
    pieces, start, depth, quote = [], 0, 0, None
    for i, c in enumerate(text):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "[({":
            depth += 1
        elif c in "])}":
            depth -= 1
        elif c == " " and depth <= 1:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    return [p for p in pieces if p]


def clipped(line: str) -> str:
    """`line`, cut to `WIDTH` with `...` where it is longer."""
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


_SOURCE = re.compile(r"^(.*):(\d+) in (.*)$")


def short_source(source: str | None) -> str | None:
    """`file:line in fn`, the file relative to the working directory where it lies below it,
    and the function the user wrote where Dynamo's resume frame stands for it."""
    found = _SOURCE.match(source or "")
    if not found:
        return source
    filename, cwd = found[1], os.getcwd() + os.sep
    function = _RESUMED.sub(r"\1", found[3])  # torch_dynamo_resume_in_forward_at_17: forward
    return f"{filename.removeprefix(cwd)}:{found[2]} in {function}"


_RESUMED = re.compile(r"^torch_dynamo_resume_in_(.+)_at_\d+$")


def code_at(source: str | None) -> str | None:
    """The text of the line a `file:line in fn` names, where its file can be read."""
    found = _SOURCE.match(source or "")
    code = linecache.getline(found[1], int(found[2])).strip() if found else ""
    return code or None
