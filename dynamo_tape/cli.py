"""`dynamo-tape bench [...]`: the benchmark (see tools/bench.py).

`dynamo-tape zoo [...]`: the model zoo's parity sweep and timings (see tools/zoo.py).

`dynamo-tape report SCRIPT [ARGS...] --out DIR`: run a script the way `python -m cProfile`
does (as `__main__`, with its own argv and its folder first on sys.path), record every
`backend="tape"` compile, and write DIR/<script>.md, .json and .html.
`dynamo-tape report -m package.module [ARGS...]` runs a module as `python -m` does.

Our options (`--out DIR`, `--backend-default`) are ours wherever they stand, before or among
the script's arguments; everything after a `--` goes to the script as it is (a script's own
`--out` goes there).
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
    report = commands.add_parser(
        "report",
        help="run a script and write its compile report",
        usage="dynamo-tape report [--out DIR] [--backend-default] (SCRIPT | -m MODULE) [ARGS...]",
    )
    report.add_argument("--out", default="reports", help="folder for <script>.md, .json and .html")
    report.add_argument(
        "--backend-default",
        action="store_true",
        help='torch.compile calls that name no backend use "tape"',
    )
    report.add_argument("-m", dest="module", help="run a module as `python -m MODULE` does")
    report.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        help="SCRIPT and its arguments (or the module's); after `--`, all go to it as they are",
    )
    commands.add_parser("bench", help="benchmark eager, aot_eager and tape (its own --help)")
    commands.add_parser("zoo", help="train the model zoo on eager and the tape (its own --help)")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # tools/bench.py parses its own arguments
        from .tools.bench import main as bench_main

        return bench_main(argv[1:])
    if argv[:1] == ["zoo"]:  # so does tools/zoo.py
        from .tools.zoo import main as zoo_main

        return zoo_main(argv[1:])
    if argv[:1] != ["report"] or argv[1:2] in (["-h"], ["--help"]):
        parser.parse_args(argv)  # help, or the error of a command that is not ours
    options = argparse.Namespace(out="reports", backend_default=False)
    args = _take_our_options(argv[1:], options)  # the script's own arguments may look like ours
    if args[:1] == ["-m"]:
        if len(args) < 2:
            report.error("-m needs a MODULE")
        module, args = args[1], args[2:]
        return report_script(module, args, options.out, options.backend_default, module=True)
    if not args:
        report.error("a SCRIPT or -m MODULE is required")
    script, args = args[0], args[1:]
    if not os.path.isfile(script):
        print(f"dynamo-tape: error: no such script: {script}", file=sys.stderr)
        return 2
    return report_script(script, args, options.out, options.backend_default)


def report_script(
    script: str, args: list[str], out_dir: str, backend_default: bool = False, module=False
):
    """Run `script` (a module's name where `module`) with tracking on and write its report,
    also when the script fails; returns the script's exit code."""
    from .report import write

    name = script if module else os.path.splitext(os.path.basename(script))[0]
    exit_code = 0
    with _script_environment(script, args, module), tracking(backend_default) as tracked:
        try:
            if module:  # as python -m does: found on sys.path, run as __main__
                runpy.run_module(script, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(os.path.abspath(script), run_name="__main__")  # as python does
        except SystemExit as e:
            exit_code = e.code if isinstance(e.code, int) else int(e.code is not None)
        finally:
            paths = write(tracked.as_dict(), out_dir, name, f"dynamo-tape report: {name}")
            print(f"dynamo-tape: wrote {' and '.join(paths)}", file=sys.stderr)
            if not tracked.graphs:
                print(_NOTHING_ON_THE_TAPE, file=sys.stderr)
    return exit_code


_NOTHING_ON_THE_TAPE = (
    'dynamo-tape: no graph was compiled with backend="tape": does the script call '
    "torch.compile with another backend, or with none (then try --backend-default)?"
)


@contextlib.contextmanager
def tracking(backend_default: bool = False):
    """`track()`, optionally with "tape" as the backend of `torch.compile` calls naming none."""
    from .torch_private import default_backend
    from .tracker import track

    with default_backend("tape" if backend_default else None), track() as tracked:
        yield tracked


class _script_environment:
    """sys.argv and sys.path as `python SCRIPT ARGS...` (or `python -m MODULE ARGS...`) would
    set them, restored afterwards."""

    def __init__(self, script, args, module=False):
        self.argv = [script, *args]
        self.folder = os.getcwd() if module else os.path.dirname(os.path.abspath(script))

    def __enter__(self):
        self.saved = sys.argv, list(sys.path)
        sys.argv = self.argv
        sys.path.insert(0, self.folder)

    def __exit__(self, *exc):
        sys.argv, sys.path[:] = self.saved


def _take_our_options(args: list[str], options) -> list[str]:
    """The arguments with `--out DIR`, `--out=DIR` and `--backend-default` taken out for us,
    wherever they stand before a `--`; the `--` itself is dropped."""
    rest = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return rest + args[i + 1 :]
        if a == "--out" and i + 1 < len(args):
            options.out = args[i + 1]
            i += 2
            continue
        if a.startswith("--out="):
            options.out = a.split("=", 1)[1]
        elif a == "--backend-default":
            options.backend_default = True
        else:
            rest.append(a)
        i += 1
    return rest


if __name__ == "__main__":
    sys.exit(main())
