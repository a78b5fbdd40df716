"""Run progress against the calls the driver makes: few honest log lines, and the live bar."""

from __future__ import annotations

import logging

import pytest

from rasterflow.workflow.plan import Level, Plan
from rasterflow.workflow.progress import RunProgress, format_duration


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines():
    handler = Lines()
    logger = logging.getLogger("rasterflow")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(old)


def small_plan() -> Plan:
    levels = {3: Level.of_tiles(3, range(8), [0] * 8), 2: Level.of_tiles(2, range(4), [0] * 4)}
    return Plan(z_max=3, z_min=2, levels=levels, source_template="")


def test_progress_log_lines_are_few_and_honest(log_lines, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("rasterflow.workflow.progress.time.time", lambda: clock[0])
    with RunProgress(live=False, every_s=10) as progress:
        progress.expect(small_plan())
        progress.add_total("rasterize", 3, 8)
        progress.skip("rasterize", 3, 6)  # 6 up to date: no line, no rate
        assert log_lines == []
        clock[0] += 4
        progress.advance("rasterize", 3, 1, 1)  # a failed tile, within 10 s: no line yet
        assert log_lines == []
        clock[0] += 7
        progress.add_total("parent", 2, 4)
        progress.skip("parent", 2, 0)
        clock[0] += 1
        progress.advance("parent", 2, 2, 0)  # 1 s after it started: too soon for a line
        progress.advance("rasterize", 3, 1, 0)  # the level ends: one line
        clock[0] += 10
        progress.advance("parent", 2, 1, 0)  # 11 s in: a periodic line with ETA
    rasterize, parent, stopped = log_lines
    assert rasterize == "rasterize z3 done: 8/8 tiles (6 up to date), 0.17 tiles/s in 12s, 1 failed"
    assert parent == "parent z2: 3/4 tiles, 0.27 tiles/s, ETA 3.7s"
    assert stopped == "parent z2: stopped at 3/4 tiles, 0.27 tiles/s, ETA 3.7s"


def test_progress_of_a_level_all_up_to_date(log_lines):
    with RunProgress(live=False) as progress:
        progress.expect(small_plan())
        progress.add_total("webtile", 2, 4)
        progress.skip("webtile", 2, 4)
    assert log_lines == ["webtile z2 done: 4 tiles, all up to date"]
    assert progress.summary_lines()[-1] == "webtile z2: 4 tiles, all up to date"


def test_progress_without_a_plan_grows_totals(log_lines):
    with RunProgress(live=False) as progress:
        progress.add_total("parent", 5, 2)
        progress.skip("parent", 5, 0)
        progress.add_total("parent", 5, 2)
        progress.skip("parent", 5, 1)  # 1 of the second batch up to date
        progress.advance("parent", 5, 2, 0)
        progress.advance("parent", 5, 1, 0)
    counter = progress.counters["parent", 5]
    assert (counter.total, counter.done, counter.skipped) == (4, 3, 1)
    assert log_lines[-1].startswith("parent z5 done: 4/4 tiles (1 up to date)")


def test_progress_bar_on_a_terminal():
    """The live bar renders (rich) with the same counts."""
    from io import StringIO

    from rich.console import Console

    console = Console(file=StringIO(), force_terminal=True, width=120)
    with RunProgress(live=True, console=console) as progress:
        progress.expect(small_plan())
        progress.add_total("rasterize", 3, 8)
        progress.skip("rasterize", 3, 2)
        progress.advance("rasterize", 3, 6, 1)
    task = progress._bar.tasks[0]
    assert task.description == "rasterize z3" and task.completed == task.total == 8
    assert task.fields["failed"] == "1 failed" and task.fields["skipped"] == "2 up to date"
    output = console.file.getvalue()
    assert "rasterize z3" in output and "8/8" in output


def test_durations():
    assert [format_duration(s) for s in (None, 0.25, 42, 125, 7322)] == [
        "--", "0.2s", "42s", "2m05s", "2h02m"
    ]  # fmt: skip
