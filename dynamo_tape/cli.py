"""`dynamo-tape bench [...]`: the benchmark (see tools/bench.py).

`dynamo-tape report SCRIPT [ARGS...] --out DIR`: run a script the way `python -m cProfile`
does (as `__main__`, with its own argv and its folder first on sys.path), record every
`backend="tape"` compile, and write DIR/<script>.md and DIR/<script>.json.

Our options go before SCRIPT, or after the script's own arguments at the very end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import runpy
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynamo-tape")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="run a script and write its compile report")
    report.add_argument("--out", default="reports", help="folder for <script>.md and .json")
    report.add_argument(
        "--backend-default",
        action="store_true",
        help='torch.compile calls that name no backend use "tape"',
    )
    report.add_argument("script", help="a Python script, run as __main__")
    report.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        help="the script's arguments; --out and --backend-default may also come last",
    )
    commands.add_parser("bench", help="benchmark eager, aot_eager and tape (its own --help)")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # tools/bench.py parses its own arguments
        from .tools.bench import main as bench_main

        return bench_main(argv[1:])
    options = parser.parse_args(argv)
    options.args = _take_trailing_options(options.args, options)
    return report_script(options.script, options.args, options.out, options.backend_default)


def report_script(script: str, args: list[str], out_dir: str, backend_default: bool = False):
    """Run `script` with tracking on and write its report, also when the script fails;
    returns the script's exit code."""
    from .report import write

    name = os.path.splitext(os.path.basename(script))[0]
    exit_code = 0
    with _script_environment(script, args), tracking(backend_default) as tracked:
        try:
            runpy.run_path(os.path.abspath(script), run_name="__main__")  # as python does
        except SystemExit as e:
            exit_code = e.code if isinstance(e.code, int) else int(e.code is not None)
        finally:
            paths = write(tracked.as_dict(), out_dir, name, f"dynamo-tape report: {name}")
            print(f"dynamo-tape: wrote {' and '.join(paths)}", file=sys.stderr)
    return exit_code


@contextlib.contextmanager
def tracking(backend_default: bool = False):
    """`track()`, optionally with "tape" as the backend of `torch.compile` calls naming none."""
    from .torch_private import default_backend
    from .tracker import track

    with default_backend("tape" if backend_default else None), track() as tracked:
        yield tracked


class _script_environment:
    """sys.argv and sys.path as `python SCRIPT ARGS...` would set them, restored afterwards."""

    def __init__(self, script, args):
        self.argv = [script, *args]
        self.folder = os.path.dirname(os.path.abspath(script))

    def __enter__(self):
        self.saved = sys.argv, list(sys.path)
        sys.argv = self.argv
        sys.path.insert(0, self.folder)

    def __exit__(self, *exc):
        sys.argv, sys.path[:] = self.saved


def _take_trailing_options(args: list[str], options) -> list[str]:
    """Move `--out DIR` / `--backend-default` written after the script's arguments to us."""
    args = list(args)
    while args:
        if len(args) >= 2 and args[-2] == "--out":
            options.out = args[-1]
            del args[-2:]
        elif args[-1].startswith("--out="):
            options.out = args.pop().split("=", 1)[1]
        elif args[-1] == "--backend-default":
            options.backend_default = True
            args.pop()
        else:
            return args
    return args


if __name__ == "__main__":
    sys.exit(main())
