"""pytest plugin (registered through the pytest11 entry point); filled out by the tracker issue."""

from __future__ import annotations


def pytest_addoption(parser):
    parser.getgroup("dynamo_tape").addoption(
        "--tape-report", metavar="DIR", default=None, help="write a dynamo-tape compile report"
    )
