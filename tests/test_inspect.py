"""`rasterflow plan | status | view` and run progress, on real runs of the synthetic sample.

`plan` is checked against what runs then do (tiles, batches, bytes, and what a
rerun skips); `status` against a run whose staged tree holds a zero-byte and a
corrupt GeoPackage; progress against the calls the driver makes.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.cli import main
from rasterflow.workflow.config import load_config
from rasterflow.workflow.demo.synthetic import make_sample
from rasterflow.workflow.plan import Plan
from rasterflow.workflow.progress import RunProgress, format_duration
from rasterflow.workflow.records import RunRecords
from rasterflow.workflow.report.plan import plan_report
from rasterflow.workflow.report.status import status_report
from rasterflow.workflow.run import run_workflow

pytestmark = pytest.mark.slow
BAD_TILES = {Tile(13, 1421, 907): b"", Tile(13, 1421, 908): b"not a geopackage"}


def run_ids(config) -> pd.Series:
    return pd.read_csv(config.filename_rasterization_events)["run_id"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The demo sample: its plan before any run, then one run."""
    sample = make_sample(tmp_path_factory.mktemp("inspect-clean"))
    config = load_config(sample.config_path)
    before = plan_report(config)
    report = run_workflow(config, live_progress=False)
    assert report.exit_code == 0
    return config, before, sample


@pytest.fixture(scope="module")
def failed(tmp_path_factory):
    """A run whose staged tree holds a zero-byte and a corrupt GeoPackage."""
    sample = make_sample(tmp_path_factory.mktemp("inspect-failed"), tiles=(2, 1))
    config = load_config(sample.config_path)
    for tile, content in BAD_TILES.items():
        path = Path(config.dir_staged, config.tms_id, str(tile.z), str(tile.x), f"{tile.y}.gpkg")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    report = run_workflow(config, live_progress=False)
    assert report.exit_code == 1 and len(report.failures) == 2
    return config


# -- plan --------------------------------------------------------------------------------
def test_plan_before_a_run(clean):
    config, before, sample = clean
    assert not before.has_log
    levels = {level.z: level for level in before.levels}
    assert [level.z for level in before.levels] == [13, 12, 11, 10, 9]
    assert {z: level.tiles for z, level in levels.items()} == {13: 6, 12: 4, 11: 4, 10: 1, 9: 1}
    staged = Path(config.dir_staged, config.tms_id, "13")
    assert levels[13].input_bytes == sum(p.stat().st_size for p in staged.rglob("*.gpkg"))
    assert levels[13].step == "rasterize" and levels[12].step == "parent"
    assert all(level.batches >= 1 and level.skip == 0 and level.web_skip == 0
               for level in before.levels)  # fmt: skip
    assert "a run would do all 32 tile steps" in before.text()


def test_plan_matches_the_run_and_then_skips_everything(clean):
    config, before, _ = clean
    events = pd.read_csv(config.filename_rasterization_events)
    for level in before.levels:  # the run did what the plan said
        assert (events["z"] == level.z).sum() == 2 * level.tiles
    after = plan_report(config)
    assert all(level.redo == 0 and level.web_redo == 0 for level in after.levels)
    assert "up to date: a rerun would skip all 32 tile steps" in after.text()
    forced = plan_report(config, overwrite=True)
    assert sum(level.redo + level.web_redo for level in forced.levels) == 32


def test_plan_after_a_palette_change_redoes_only_web_tiles(clean, tmp_path):
    config, _, sample = clean
    raw = json.loads(sample.config_path.read_text())
    raw["statistics"][0]["palette"] = ["#000000", "#ff0000"]
    changed = tmp_path / "config.json"
    changed.write_text(json.dumps(raw))
    report = plan_report(load_config(changed))
    assert all(level.redo == 0 for level in report.levels)
    assert all(level.web_redo == level.tiles for level in report.levels)


def test_plan_after_a_staged_tile_changes(clean):
    """A touched staged tile: it and every parent above it may change (upper bound)."""
    config, _, _ = clean
    path = Path(config.dir_staged, config.tms_id, "13", "1419", "907.gpkg")
    stat = path.stat()
    try:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        levels = {level.z: level for level in plan_report(config).levels}
        assert {z: level.redo for z, level in levels.items()} == {13: 1, 12: 1, 11: 1, 10: 1, 9: 1}
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_plan_with_failures_counts_retries(failed):
    report = plan_report(failed)
    levels = {level.z: level for level in report.levels}
    assert levels[13].redo == 2 and levels[13].skip == levels[13].tiles - 2
    assert len(report.retries) == 2
    assert all(level.redo == 0 for level in report.levels if level.z < 13)  # parents: unchanged
    assert "2 of them retry tiles that failed" in report.text()


# -- status ------------------------------------------------------------------------------
def test_status_of_a_clean_run(clean):
    config, _, _ = clean
    report = status_report(config)
    assert report.exit_code == 0 and not report.failures
    table = {(row.step, row.z): row for row in report.levels}
    assert set(table) == {("rasterize", 13)} | {("parent", z) for z in (12, 11, 10, 9)} | {
        ("webtile", z) for z in (13, 12, 11, 10, 9)
    }
    assert all(row.ok == row.expected and row.failed == row.missing == 0 for row in table.values())
    assert report.last_run == run_ids(config).iloc[0]
    assert len(report.slowest["rasterize"]) == 3
    durations = [float(r["duration_s"]) for r in report.slowest["rasterize"]]
    assert durations == sorted(durations, reverse=True)
    assert "no failures." in report.text()


def test_status_shows_failures_with_reasons(failed):
    report = status_report(failed)
    assert report.exit_code == 1
    table = {(row.step, row.z): row for row in report.levels}
    assert table["rasterize", 13].failed == 2 and table["rasterize", 13].ok >= 1
    assert table["webtile", 13].missing == 2 and table["webtile", 13].blocked == 2
    text = report.text()
    assert "zero-byte file" in text and "not a readable vector file" in text
    for tile in BAD_TILES:
        assert f"rasterize {tile.z}/{tile.x}/{tile.y}:" in text
    assert "2 blocked" in text


def test_status_sees_a_run_in_progress(clean):
    """Rows a running driver has journaled but not yet written to the CSV count."""
    config, _, _ = clean
    records = RunRecords(config).load()
    row = dict(records.event("rasterize", 13, 1418, 907))
    row.update(status="failed", error="simulated: still running", run_id="in-progress")
    records.add(row)
    try:
        report = status_report(config)
        assert [r["error"] for r in report.failures] == ["simulated: still running"]
    finally:
        records.close()
        records.journal.unlink()
    assert status_report(config).exit_code == 0


# -- the commands -----------------------------------------------------------------------------
def test_cli_plan_status_view_on_a_clean_run(clean):
    config, _, sample = clean
    runner = CliRunner()
    planned = runner.invoke(main, ["plan", str(sample.config_path)])
    assert planned.exit_code == 0, planned.output
    assert re.search(r"z13\s+rasterize\s+6\s+\d+\s+[\d.]+ [KM]B\s+6\s+0\s+6\s+0", planned.output)
    status = runner.invoke(main, ["status", str(sample.config_path)])
    assert status.exit_code == 0 and "no failures." in status.output
    viewed = runner.invoke(main, ["view", str(sample.config_path)])
    assert viewed.exit_code == 0, viewed.output
    assert f"map page: {Path(config.dir_web_tiles) / 'viewer.html'}" in viewed.output
    assert "WMTS: " in viewed.output and "quick-looks: 15 in" in viewed.output


def test_cli_status_exits_1_on_failures(failed):
    result = CliRunner().invoke(main, ["status", str(failed.filename_config), "--failures", "1"])
    assert result.exit_code == 1
    assert "failures (2), by reason:" in result.output and "... and 1 more" in result.output


def test_cli_bad_config_exits_2(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"z_rnage": [0, 3]}))
    for command in ("plan", "status", "view"):
        result = CliRunner().invoke(main, [command, str(bad)])
        assert result.exit_code == 2, (command, result.output)


def test_cli_plan_with_nothing_staged_exits_2(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"dir_staged": str(tmp_path / "none")}))
    result = CliRunner().invoke(main, ["plan", str(config)])
    assert result.exit_code == 2 and "no staged tiles" in result.output


# -- progress ------------------------------------------------------------------------------
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
    plan = Plan(z_max=3, z_min=2, sources={}, source_bytes={})
    plan.levels = {3: [Tile(3, x, 0) for x in range(8)], 2: [Tile(2, x, 0) for x in range(4)]}
    return plan


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
