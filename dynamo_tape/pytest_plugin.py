"""pytest plugin, registered through the `pytest11` entry point.

- `pytest --tape-report=DIR` writes DIR/pytest.md and DIR/pytest.json: one report for the run
  with a row per test (graphs, break sites, recompiles, fallback ops, compile time), then the
  run's break sites, splits and recompiles.
- `@pytest.mark.tape(max_graph_breaks=0, max_recompiles=0, fallback_ops=0)` (every key
  optional) fails the test when what it compiled exceeds the budget: more graph-break sites,
  recompiles or fallback ops (forward entries whose VJP runs through torch.autograd) than
  allowed. The failure prints the sites, recompiles or fallback ops that went over. Counted
  from the start of the test's setup to the end of its call. An unknown key, a positional
  argument or a value that is not an int >= 0 stops the run at collection (usage error).
- `pytest --tape-baseline=FILE`: when FILE does not exist, the run writes it (JSON, sorted
  keys): for each test that passed, its nodeid -> graph-break sites ("file:line function",
  paths relative to the rootdir), recompiles, fallback ops (op names) and graphs. When FILE
  exists, the run compares with it and exits with status 1 (even if every test passed) when a
  test that passed has more break sites, recompiles or fallback ops than FILE says, listing
  each such test (old -> new); decreases are listed as improvements, and tests FILE lacks are
  listed but not added. A FILE that is not such JSON is a usage error.
  `--tape-baseline-update` rewrites FILE from the run: the entries of the tests that passed are
  replaced or added, those of tests that did not run or did not pass are kept.
- The `tape_counter` fixture gives each test a fresh `TapeCounter` (a backend that records):
  `torch.compile(fn, backend=tape_counter)`, then `assert tape_counter.graph_break_count == 0`.

Recorded tests: every test under `--tape-report` or `--tape-baseline`, else the tests with the
`tape` marker. Each starts with `torch._dynamo.reset()`, so its counts are its own: a function
an earlier test compiled is compiled again, neither found in Dynamo's cache nor charged as a
recompile. What a recorded test compiles with `backend="tape"` (or a `TapeCounter`) from its
setup to its teardown is its row. When tests were recorded, the terminal summary has a line of
totals over their rows: `dynamo-tape: 8 graphs, 2 graph-break sites, 1 recompile, 1 fallback
op in 5 tests` (a site two tests reach counts in both).

Without an option or a marked test the plugin only adds the options, the marker and the
fixture: it imports neither torch nor the rest of the package until a test is recorded or asks
for `tape_counter`.
"""

from __future__ import annotations

import json
import os

import pytest

# the marker's keys -> the count each limits, in `Tracked.summary()`
BUDGET = {
    "max_graph_breaks": "graph_break_sites",
    "max_recompiles": "recompiles",
    "fallback_ops": "fallback_ops",
}
# names in messages, of those counts and of the baseline's keys it compares
_NAMES = {
    "graph_break_sites": "graph-break sites",
    "recompiles": "recompiles",
    "fallback_ops": "fallback ops",
}
COMPARED = {
    "break_sites": "graph-break sites",
    "recompiles": "recompiles",
    "fallback_ops": "fallback ops",
}


def pytest_addoption(parser):
    group = parser.getgroup("dynamo_tape")
    group.addoption(
        "--tape-report",
        metavar="DIR",
        default=None,
        help="write a dynamo-tape compile report of the run to DIR/pytest.md and .json",
    )
    group.addoption(
        "--tape-baseline",
        metavar="FILE",
        default=None,
        help="write FILE (per test: graph-break sites, recompiles, fallback ops, graphs) if it "
        "does not exist; else fail the run if a test has more of them than FILE says",
    )
    group.addoption(
        "--tape-baseline-update",
        action="store_true",
        default=False,
        help="rewrite the --tape-baseline FILE from this run's tests that passed",
    )


def pytest_configure(config):
    keys = ", ".join(f"{key}=N" for key in BUDGET)
    config.addinivalue_line(
        "markers",
        f"tape({keys}): fail the test if it compiles (backend='tape') more graph-break sites, "
        "recompiles or fallback ops than allowed; every key is optional",
    )
    baseline = config.getoption("tape_baseline")
    update = config.getoption("tape_baseline_update")
    if update and not baseline:
        raise pytest.UsageError("--tape-baseline-update needs --tape-baseline=FILE")
    old = read_baseline(baseline) if baseline and os.path.exists(baseline) else None
    recorder = Recorder(config.getoption("tape_report"), baseline, old, update, config.rootpath)
    config.pluginmanager.register(recorder, "dynamo_tape_recorder")


@pytest.fixture
def tape_counter():
    from .backend import TapeCounter

    return TapeCounter()


def budget_of(item) -> dict[str, int]:
    """The `tape` markers of a test merged (the closest wins), checked."""
    budget: dict[str, int] = {}
    for marker in reversed(list(item.iter_markers("tape"))):
        where = f"{item.nodeid}: @pytest.mark.tape"
        if marker.args:
            raise pytest.UsageError(f"{where} takes keywords only ({', '.join(BUDGET)})")
        unknown = sorted(set(marker.kwargs) - set(BUDGET))
        if unknown:
            raise pytest.UsageError(
                f"{where} got unknown key(s) {', '.join(unknown)}; "
                f"the valid keys are {', '.join(BUDGET)}"
            )
        for key, value in marker.kwargs.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise pytest.UsageError(f"{where}: {key}={value!r} is not an int >= 0")
        budget.update(marker.kwargs)
    return budget


class Recorder:
    """Records each recorded test on its own (see the module docstring) and keeps only plain
    data (no compiled graphs, no tapes)."""

    SECTIONS = (
        "graphs",
        "breaks",
        "splits",
        "recompiles",
        "recompile_limits",
        "other_backends",
        "options_ignored",
    )

    def __init__(self, report_dir, baseline, old, update, rootdir):
        self.report_dir = report_dir
        self.baseline = baseline
        self.old = old  # the baseline's tests, None when FILE does not exist yet
        self.update = update
        self.rootdir = rootdir
        self.record_all = bool(report_dir or baseline)
        self.budgets: dict[str, dict] = {}  # nodeid -> budget, for tests with the marker
        self.tracked = None  # the Tracked of the test running now
        self.rows: list[dict] = []
        self.entries: dict[str, dict] = {}  # nodeid -> its baseline entry
        self.run: dict[str, list] = {section: [] for section in self.SECTIONS}
        self.outcomes: dict[str, str] = {}
        self.lines: list[tuple[str, dict]] = []  # for the terminal summary: (text, markup)
        self.worse = False

    def pytest_collection_modifyitems(self, items):
        for item in items:
            if item.get_closest_marker("tape") is not None:
                self.budgets[item.nodeid] = budget_of(item)

    def records(self, item) -> bool:
        return self.record_all or item.nodeid in self.budgets

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        if not self.records(item):
            return (yield)
        import torch._dynamo

        from .tracker import track

        torch._dynamo.reset()  # nothing an earlier test compiled is cached or counted here
        with track() as tracked:  # setup, call and teardown: fixtures may compile too
            self.tracked = tracked
            try:
                result = yield
            finally:
                self.tracked = None
        self.add(item.nodeid, tracked)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        result = yield  # a test that raised has failed already
        budget = self.budgets.get(item.nodeid)
        if budget and self.tracked is not None:
            over = self.over_budget(budget, self.tracked)
            if over:
                pytest.fail(over, pytrace=False)
        return result

    def over_budget(self, budget: dict, tracked) -> str:
        """The excerpt of the test's compile report that went over its budget ('' if none)."""
        from .records import first_line

        counts = tracked.summary()
        over, excerpt = [], []
        for key, limit in budget.items():
            count = counts[BUDGET[key]]
            if count <= limit:
                continue
            over.append(f"{_NAMES[BUDGET[key]]} {count} > {key}={limit}")
            excerpt.append(f"{_NAMES[BUDGET[key]]}:")
            if key == "max_graph_breaks":
                for b in tracked.breaks:
                    site = f"{self.relative(b.filename)}:{b.lineno}"
                    graphs = f"{b.count} graph{'s' if b.count != 1 else ''} ended there"
                    excerpt.append(f"  {site} in `{b.function}` ({graphs}): {b.short_reason}")
            elif key == "max_recompiles":
                for r in tracked.recompiles:
                    excerpt.append(f"  {r.compile_id} `{r.frame}`: {first_line(r.reason)}")
            else:
                for g in tracked.graphs:
                    for op in g.fallback_ops:
                        source = f" at {op['source']}" if op["source"] else ""
                        excerpt.append(f"  {op['op']} in `{g.frame}` ({g.compile_id}){source}")
        if not over:
            return ""
        return "\n".join([f"dynamo-tape: {'; '.join(over)}", *excerpt])

    def relative(self, path: str) -> str:
        if os.path.isabs(path):
            relative = os.path.relpath(path, self.rootdir)
            if not relative.startswith(".."):
                path = relative
        return path.replace(os.sep, "/")

    def add(self, nodeid: str, tracked) -> None:
        data = tracked.as_dict(tapes=False)
        for section in self.SECTIONS:
            for entry in data[section]:
                self.run[section].append({"test": nodeid, **entry})
        row = {"test": nodeid, "outcome": self.outcomes.get(nodeid, "?")}
        self.rows.append({**row, **data["summary"]})
        self.entries[nodeid] = {
            "break_sites": sorted(
                f"{self.relative(b.filename)}:{b.lineno} {b.function}" for b in tracked.breaks
            ),
            "recompiles": tracked.recompile_count,
            "fallback_ops": sorted(op["op"] for g in tracked.graphs for op in g.fallback_ops),
            "graphs": tracked.graph_count,
        }

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.outcomes.setdefault(report.nodeid, report.outcome)

    def pytest_sessionfinish(self, session):
        if self.report_dir:
            self.write_report()
        if self.baseline:
            self.check_baseline()
            if self.worse and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def write_report(self) -> None:
        from .report import write_run

        keys = [k for k in self.rows[0] if k not in ("test", "outcome")] if self.rows else []
        summary = {"tests": len(self.rows)}
        summary.update({key: round(sum(row[key] for row in self.rows), 4) for key in keys})
        written, _ = write_run(
            self.rows, {"summary": summary, **self.run}, self.report_dir, "pytest"
        )
        self.lines.append((f"dynamo-tape: compile report written to {written}", {}))

    def check_baseline(self) -> None:
        passed = {
            nodeid: entry
            for nodeid, entry in self.entries.items()
            if self.outcomes.get(nodeid) == "passed"
        }
        path, old = self.baseline, self.old
        if old is None:
            write_baseline(path, passed)
            self.lines.append((f"dynamo-tape: baseline {path} written ({_n(passed, 'test')})", {}))
            return
        worse, better, new = [], [], []
        for nodeid, entry in passed.items():
            if nodeid not in old:
                new.append(nodeid)
                continue
            up, down = [], []
            for key, name in COMPARED.items():
                before, after = _count(old[nodeid].get(key, 0)), _count(entry[key])
                change = f"{name} {before} -> {after}"
                if after > before:
                    added = sorted(set(_items(entry[key])) - set(_items(old[nodeid].get(key))))
                    up.append(change + (f" (new: {', '.join(added)})" if added else ""))
                elif after < before:
                    down.append(change)
            if up:
                worse.append(f"  {nodeid}: {'; '.join(up)}")
            if down:
                better.append(f"  {nodeid}: {'; '.join(down)}")
        if self.update:
            write_baseline(path, {**old, **passed})
        self.worse = bool(worse) and not self.update
        if worse:
            head = f"dynamo-tape: baseline {path}: {_n(worse, 'test')} compiled more than it says"
            if not self.update:
                head += " (accept with --tape-baseline-update)"
            self.lines += [(head + ":", {"red": not self.update})]
            self.lines += [(line, {"red": not self.update}) for line in worse]
        if better:
            self.lines.append((f"dynamo-tape: {_n(better, 'test')} improved on {path}:", {}))
            self.lines += [(line, {"green": True}) for line in better]
        if new:
            done = "added" if self.update else "not added (add with --tape-baseline-update)"
            self.lines.append((f"dynamo-tape: {_n(new, 'test')} not in {path}, {done}:", {}))
            self.lines += [(f"  {nodeid}", {}) for nodeid in new]
        if self.update:
            self.lines.append((f"dynamo-tape: baseline {path} updated", {}))
        elif not worse:
            self.lines.append((f"dynamo-tape: baseline {path}: no test compiled more", {}))

    def pytest_terminal_summary(self, terminalreporter):
        if self.record_all or self.rows:
            totals = {
                key: sum(row[key] for row in self.rows)
                for key in ("graphs", "graph_break_sites", "recompiles", "fallback_ops")
            }
            terminalreporter.write_line(
                f"dynamo-tape: {_n(totals['graphs'], 'graph')}, "
                f"{_n(totals['graph_break_sites'], 'graph-break site')}, "
                f"{_n(totals['recompiles'], 'recompile')}, "
                f"{_n(totals['fallback_ops'], 'fallback op')} in {_n(self.rows, 'test')}"
            )
        for text, markup in self.lines:
            terminalreporter.write_line(text, **markup)


def read_baseline(path: str) -> dict[str, dict]:
    try:
        with open(path) as f:
            tests = json.load(f)["tests"]
        if not isinstance(tests, dict) or not all(isinstance(e, dict) for e in tests.values()):
            raise ValueError('"tests" is not an object of objects')
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise pytest.UsageError(
            f"--tape-baseline {path}: not a dynamo-tape baseline ({type(error).__name__}: {error})"
        ) from None
    return tests


def write_baseline(path: str, entries: dict) -> None:
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"tests": entries}, f, indent=1, sort_keys=True)
        f.write("\n")


def _count(value) -> int:
    return len(value) if isinstance(value, list) else int(value or 0)


def _items(value) -> list:
    return value if isinstance(value, list) else []


def _n(count, word: str) -> str:
    count = count if isinstance(count, int) else len(count)
    return f"{count} {word}{'' if count == 1 else 's'}"
