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
    from .backend import TapeCounter

    return TapeCounter()


class RunReport:
    """Tracks each test on its own and keeps only plain data (no compiled graphs, no tapes)."""

    SECTIONS = ("graphs", "breaks", "splits", "recompiles")

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.rows: list[dict] = []
        self.run: dict[str, list] = {section: [] for section in self.SECTIONS}
        self.outcomes: dict[str, str] = {}
        self.written = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        from .tracker import track

        with track() as tracked:  # setup, call and teardown: fixtures may compile too
            yield
        data = tracked.as_dict(tapes=False)
        for section in self.SECTIONS:
            for entry in data[section]:
                self.run[section].append({"test": item.nodeid, **entry})
        row = {"test": item.nodeid, "outcome": self.outcomes.get(item.nodeid, "?")}
        self.rows.append({**row, **data["summary"]})

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.outcomes.setdefault(report.nodeid, report.outcome)

    def pytest_sessionfinish(self, session):
        from .report import write_run

        keys = [k for k in self.rows[0] if k not in ("test", "outcome")] if self.rows else []
        summary = {"tests": len(self.rows)}
        summary.update({key: round(sum(row[key] for row in self.rows), 4) for key in keys})
        self.written, _ = write_run(
            self.rows, {"summary": summary, **self.run}, self.out_dir, "pytest"
        )

    def pytest_terminal_summary(self, terminalreporter):
        if self.written:
            terminalreporter.write_line(f"dynamo-tape: compile report written to {self.written}")
