"""The user's source on a page: the files it reads (once each), the lines around a site, and
tape lines linked to the lines they name.

A tape line that ends with `# path:line [in fn]`, or holds `(from path:line [in fn])`, gets a
link to a card of that line (`Sources.refs` keeps them, in order, for the page's last section),
the line's text as its tooltip. Files are read where the page is rendered: a path relative to
the working directory, else to this checkout; a file that is not there is only named.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .values import esc

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CONTEXT_LINES = 3  # source lines shown before and after a site
_MAX_SOURCE_BYTES = 4 << 20


@dataclass
class Sources:
    """The source lines one page links to, and the files it has read."""

    refs: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)  # -> (id, fn)
    files: dict[str, list[str] | None] = field(default_factory=dict)

    def ref(self, path: str, line: int, function: str = "") -> str:
        """The anchor of `path:line`'s card: `src-1`, `src-2`... in the order first linked."""
        key = (path, line)
        if key not in self.refs:
            self.refs[key] = (f"src-{len(self.refs) + 1}", function)
        return self.refs[key][0]

    def lines(self, path: str) -> list[str] | None:
        """The lines of the file `path` names (relative: to the working directory, else to this
        checkout), or None where there is none."""
        if path not in self.files:
            self.files[path] = None
            candidates = [path] if os.path.isabs(path) else [path, os.path.join(_REPOSITORY, path)]
            for candidate in candidates:
                try:
                    if os.path.isfile(candidate) and os.path.getsize(candidate) < _MAX_SOURCE_BYTES:
                        with open(candidate, encoding="utf-8", errors="replace") as f:
                            self.files[path] = f.read().splitlines()
                        break
                except OSError:
                    continue
        return self.files[path]

    def snippet(self, path: str, line) -> str:
        """The lines around `path:line`, that line marked; a note where the file is not here."""
        lines = self.lines(str(path)) if path else None
        if not isinstance(line, int) or not lines or not 1 <= line <= len(lines):
            return '<p class="note">(source not available where this page was rendered)</p>'
        first, last = max(1, line - _CONTEXT_LINES), min(len(lines), line + _CONTEXT_LINES)
        width = len(str(last))
        rows = []
        for n in range(first, last + 1):
            mark = ' class="hit"' if n == line else ""
            number = f'<span class="ln">{n:>{width}}</span>'
            rows.append(f"<span{mark}>{number} {esc(lines[n - 1])}</span>")
        return f'<pre class="snippet">{"".join(rows)}</pre>'

    def source_line(self, path: str, line: int) -> str:
        """The text of `path:line`, stripped; empty where the file or the line is not here."""
        lines = self.lines(path)
        return lines[line - 1].strip() if lines and 1 <= line <= len(lines) else ""


# a tape line's source: `... # path:line in fn` at its end, or `(from path:line[ in fn])`
_SOURCE_COMMENT = re.compile(
    r"(?P<ref>#\s*(?P<path>[^\s#][^#]*?):(?P<line>\d+)(?:\s+in\s+(?P<fn>\S+))?)\s*$"
)
# a verbose tape's comment line before the entries of one module and line of the user's code:
# `  # layer1.0.conv1 | model.py:12 in forward | x = self.conv1(x)`
_SOURCE_WHERE = re.compile(
    r"^\s*#\s*(?:[^|]*\|\s*)?(?P<ref>(?P<path>[^\s|#]+):(?P<line>\d+)(?:\s+in\s+(?P<fn>[^\s|]+))?)"
)
_SOURCE_FROM = re.compile(
    r"(?P<ref>\(from\s+(?P<path>[^()\s][^()]*?):(?P<line>\d+)(?:\s+in\s+(?P<fn>[^()\s]+))?\))"
)


def linked_tape(text: str, sources: Sources) -> str:
    """A printed tape as a `<pre>`: its header line bold, each source it names a link."""
    lines = []
    for n, line in enumerate(text.splitlines()):
        match = (
            _SOURCE_WHERE.search(line) or _SOURCE_COMMENT.search(line) or _SOURCE_FROM.search(line)
        )
        if match is None:
            code = esc(line)
        else:
            path, number, fn = match["path"].strip(), int(match["line"]), match["fn"] or ""
            anchor = sources.ref(path, number, fn)
            tip = sources.source_line(path, number) or f"{path}:{number}"
            code = (
                f'{esc(line[: match.start("ref")])}<a class="src" href="#{anchor}" '
                f'title="{esc(tip)}">{esc(match["ref"])}</a>{esc(line[match.end("ref") :])}'
            )
        lines.append(f'<span class="head">{code}</span>' if n == 0 else code)
    return f'<pre class="tape">{chr(10).join(lines)}</pre>'
