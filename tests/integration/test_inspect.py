"""`rasterflow plan | status | view` and run progress, on real runs of the synthetic sample.

`plan` is checked against what runs then do (tiles, batches, bytes, and what a
rerun skips); `status` against a run whose staged tree holds a zero-byte and a
corrupt GeoPackage. (Progress is unit-tested in tests/unit/workflow/test_progress.py.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.batches import TileBatch, failed_results, with_driver_columns
from rasterflow.workflow.cli import main
from rasterflow.workflow.config import load_config
from rasterflow.workflow.demo.synthetic import make_sample
from rasterflow.workflow.records import RunRecords
from rasterflow.workflow.report.plan import plan_report
from rasterflow.workflow.report.status import status_report
from rasterflow.workflow.run import run_workflow
from rasterflow.workflow.steps import Step
from tests.helpers.paths import THREADS_SITE

BAD_TILES = {Tile(13, 1421, 907): b"", Tile(13, 1421, 908): b"not a geopackage"}


def run_ids(config) -> pd.Series:
    return pd.read_csv(config.filename_rasterization_events)["run_id"]


@pytest.fixture
def clean(demo_run):
    """The shared demo run (tests/conftest.py): its plan before the run, then the run."""
    return demo_run.config, demo_run.plan_before, demo_run.sample


@pytest.fixture(scope="module")
def failed(tmp_path_factory):
    """A run whose staged tree holds a zero-byte and a corrupt GeoPackage."""
    sample = make_sample(tmp_path_factory.mktemp("inspect-failed"), tiles=(2, 1))
    config = load_config(sample.config_path)
    for tile, content in BAD_TILES.items():
        path = Path(config.dir_staged, config.tms_id, str(tile.z), str(tile.x), f"{tile.y}.gpkg")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    report = run_workflow(config, site=THREADS_SITE, live_progress=False)
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
    """A touched staged tile: it and every parent above it may change (upper bound). The
    shared run's tile is touched and put back: a copy would change every tile's stamp."""
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
    durations = [float(r["total_time"]) for r in report.slowest["rasterize"]]
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


def test_status_sees_a_run_in_progress(demo_copy):
    """Rows a running driver has journaled but not yet written to the CSV count."""
    config = load_config(demo_copy)
    records = RunRecords(config)
    records.open()
    batch = TileBatch(13, np.array([1418]), np.array([907]))
    failed = failed_results(Step.RASTERIZE, batch, ["simulated: still running"], [None])
    records.add(with_driver_columns(failed.events, "in-progress", 1, np.zeros(1)))
    records.close()  # committed, as a running driver's flush
    try:
        report = status_report(config)
        assert [r["error"] for r in report.failures] == ["simulated: still running"]
    finally:
        shutil.rmtree(records.files.parts)
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
