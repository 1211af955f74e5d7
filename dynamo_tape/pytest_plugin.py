"""pytest plugin, registered through the `pytest11` entry point.

- `pytest --tape-report=DIR` writes DIR/pytest.md and DIR/pytest.json: one report for the run
  with a row per test (graphs, break sites, recompiles, fallback ops, compile time), then the
  run's break sites, splits and recompiles.
- The `tape_counter` fixture gives each test a fresh `TapeCounter` (a backend that records):
  `torch.compile(fn, backend=tape_counter)`, then `assert tape_counter.graph_break_count == 0`.

Without the option the plugin only adds the option and the fixture: it imports neither torch
nor the rest of the package until a test asks for `tape_counter`.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.getgroup("dynamo_tape").addoption(
        "--tape-report",
        metavar="DIR",
        default=None,
        help="write a dynamo-tape compile report of the run to DIR/pytest.md and .json",
    )


def pytest_configure(config):
    out_dir = config.getoption("tape_report")
    if out_dir:
        config.pluginmanager.register(RunReport(out_dir), "dynamo_tape_run_report")


@pytest.fixture
def tape_counter():
    from .tracker import TapeCounter

    return TapeCounter()


class RunReport:
    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.rows: list[dict] = []
        self.outcomes: dict[str, str] = {}

    def pytest_sessionstart(self, session):
        from .tracker import track

        self.session_tracking = track()
        self.run = self.session_tracking.__enter__()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        from .tracker import track

        with track() as tracked:  # setup, call and teardown: fixtures may compile too
            yield
        row = {"test": item.nodeid, "outcome": self.outcomes.get(item.nodeid, "?")}
        row.update(tracked.summary())
        self.rows.append(row)

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.outcomes.setdefault(report.nodeid, report.outcome)

    def pytest_sessionfinish(self, session):
        from .report import write_run

        self.session_tracking.__exit__(None, None, None)
        md_path, _ = write_run(self.rows, self.run.as_dict(), self.out_dir, "pytest")
        self.written = md_path

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_line(f"dynamo-tape: compile report written to {self.written}")
