"""The records: journal parts streamed while a run goes, a writer killed at any moment
(a real SIGKILL), the files at PDG's names with PDG's columns and formats first, files of
the format before this one read and converted, and merges that hold a chunk at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rasterflow.rasterize_core.tiles import Tile, xy_bounds
from rasterflow.workflow.batches import pack, with_driver_columns
from rasterflow.workflow.config import load_config
from rasterflow.workflow.records import RecordsReader, RunRecords
from rasterflow.workflow.records import store as store_module
from rasterflow.workflow.records.parts import committed_parts
from tests.helpers.real_data import real_data_missing

PDG_EXAMPLE = Path(__file__).resolve().parents[3].parent / "shared/data/pdg-minimal-example"


def tile_results(config, tiles: list[Tile], step: str = "rasterize", start: float = 1.7e9):
    """Outcomes of these tiles as the batch apps return them, with true bounds."""
    records = []
    for i, tile in enumerate(tiles):
        bounds = xy_bounds(config.tms_id, tile)
        summary = [{"stat": name, "bounds": list(bounds), "min": 0.0, "max": float(i),
                    "mean": 0.5, "median": 0.0, "std": 0.1, "var": 0.01, "sum": 3.0,
                    "path": f"g/{tile.z}/{tile.x}/{tile.y}.tif", "z": tile.z, "x": tile.x,
                    "y": tile.y, "n_nonempty": 2} for name in config.stat_names]  # fmt: skip
        records.append({"step": step, "z": tile.z, "x": tile.x, "y": tile.y, "status": "ok",
                        "start_time": start + i, "total_time": 0.125, "host": "h",
                        "path": f"g/{tile.z}/{tile.x}/{tile.y}.tif", "n_polygons": 7,
                        "checksum": f"{i + 1:016x}", "summary": summary})  # fmt: skip
    return pack(records, range(len(records)))


def add(records: RunRecords, results, run_id: str = "run-a") -> None:
    fingerprints = np.arange(1, len(results.events) + 1)
    records.add(with_driver_columns(results.events, run_id, 1, fingerprints), results.summary)


@pytest.fixture
def config(make_config):
    return load_config(make_config(z_range=[11, 13]))


def test_rows_stream_to_parts_as_the_run_goes(config):
    records = RunRecords(config, flush_s=0.0)  # every batch is flushed at once
    records.open()
    for x in range(3):
        add(records, tile_results(config, [Tile(13, x, 5)]))
    parts = committed_parts(records.files.parts)
    assert len({p.seq for p in parts}) == 3 and {p.kind for p in parts} == {"e", "s"}
    seen = RecordsReader(config)  # `status` while the run goes
    rows = [t.to_pylist() for t in seen.events("rasterize", 13, ["status"])]
    assert sorted(r["x"] for chunk in rows for r in chunk) == [0, 1, 2]
    assert not Path(config.filename_rasterization_events).exists()  # written at the end
    records.finish()
    assert not records.files.parts.exists()
    assert len(pd.read_csv(config.filename_rasterization_events)) == 3


WRITER = """
import sys
import numpy as np
from rasterflow.workflow.batches import pack, with_driver_columns
from rasterflow.workflow.config import load_config
from rasterflow.workflow.records import RunRecords
config = load_config(sys.argv[1])
records = RunRecords(config, flush_s=0.002)
records.open()
x = 0
while True:  # a tile a row, forever: killed from outside
    tile = {"step": "rasterize", "z": 13, "x": x % 8000, "y": x // 8000, "status": "ok",
            "summary": [{"stat": name, "bounds": [0, 0, 1, 1], "z": 13, "x": x % 8000,
                         "y": x // 8000} for name in config.stat_names]}
    results = pack([tile], [0])
    records.add(with_driver_columns(results.events, "run-a", 1, np.ones(1)), results.summary)
    x += 1
"""


def test_a_killed_writer_loses_no_committed_row(config):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(config.filename_config)])
    parts = Path(f"{config.filename_rasterization_events}.parts")
    try:
        deadline = time.time() + 60
        while len(list(parts.glob("*.done"))) < 20:
            assert writer.poll() is None and time.time() < deadline, "the writer did not write"
            time.sleep(0.01)
    finally:
        if writer.poll() is None:
            os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    seen = RecordsReader(config)
    xs = sorted(r["x"] + 8000 * r["y"] for t in seen.events("rasterize", 13, []) for r in
                t.to_pylist())  # fmt: skip
    assert xs == list(range(len(xs))) and len(xs) >= 20  # every committed row, in order
    summary = sorted(r["x"] for t in seen.summary(13, ["stat"]) for r in t.to_pylist())
    assert len(summary) == len(xs) * len(config.stat_names)
    rerun = RunRecords(config)
    rerun.open()  # folds them in; a flush cut short is dropped
    add(rerun, tile_results(config, [Tile(13, 0, 0)]), run_id="run-b")  # tile 0 again
    rerun.finish()
    events = pd.read_csv(config.filename_rasterization_events)
    assert len(events) == len(xs) and not events.duplicated(["step", "z", "x", "y"]).any()
    assert events.loc[(events["x"] == 0) & (events["y"] == 0), "run_id"].tolist() == ["run-b"]
    assert not parts.exists()


def test_parts_of_one_file_only_do_not_hide_the_next_runs_rows(config):
    """A run that writes web-tile rows only (no summary rows) moves the event file ahead of
    the summary file; the next run's parts must still be newer than both."""
    first = RunRecords(config)
    first.open()
    add(first, tile_results(config, [Tile(13, 1, 1)]))
    first.finish()
    for run in ("web-1", "web-2"):
        again = RunRecords(config)
        again.open()
        results = tile_results(config, [Tile(13, 1, 1)], step="webtile")
        again.add(with_driver_columns(results.events, run, 1, np.ones(1)))
        again.finish()
    last = RunRecords(config)
    last.open()
    add(last, tile_results(config, [Tile(13, 1, 1)]), run_id="raster-2")
    last.finish()
    events = pd.read_csv(config.filename_rasterization_events)
    assert dict(zip(events["step"], events["run_id"], strict=True)) == {
        "rasterize": "raster-2", "webtile": "web-2"}  # fmt: skip


def test_pdg_columns_first_with_pdg_meanings(config):
    tiles = [Tile(13, 1418, 907), Tile(13, 1419, 907)]
    records = RunRecords(config)
    records.open()
    add(records, tile_results(config, tiles), run_id="20260101T000000Z-abc123")
    records.finish()
    events = pd.read_csv(config.filename_rasterization_events)
    assert list(events.columns[:10]) == [
        "id",
        "type",
        "start_time",
        "total_time",
        "end_time",
        "error",
        "path",
        "raster_summary",
        "tile",
        "z",
    ]
    assert list(events.columns[10:]) == ["run_id", "step", "x", "y", "status", "attempt",
                                         "n_polygons", "host", "fingerprint", "checksum",
                                         "skipped", "detail"]  # fmt: skip
    assert events["id"].tolist() == [
        "20260101T000000Z-abc123/rasterize/13/1418/907",
        "20260101T000000Z-abc123/rasterize/13/1419/907",
    ]
    assert (events["type"] == "geotiffs_from_vectors").all()
    assert events["start_time"].tolist() == [1.7e9, 1.7e9 + 1]
    assert (events["end_time"] == events["start_time"] + events["total_time"]).all()
    assert events["tile"].tolist() == ["Tile(x=1418, y=907, z=13)", "Tile(x=1419, y=907, z=13)"]
    assert events["raster_summary"].isna().all()
    summary = pd.read_csv(config.filename_rasters_summary)
    assert list(summary.columns) == [
        "stat",
        "bounds",
        "min",
        "max",
        "mean",
        "median",
        "std",
        "var",
        "sum",
        "path",
        "tile",
        "z",
        "x",
        "y",
        "n_nonempty",
    ]
    for row in summary.itertuples():
        left, bottom, right, top = xy_bounds(config.tms_id, Tile(row.z, row.x, row.y))
        assert json.loads(row.bounds) == [left, right, bottom, top]  # PDG: minx, maxx, miny, maxy
        assert row.bounds == f"[{left!r}, {right!r}, {bottom!r}, {top!r}]"
        assert row.tile == f"Tile(x={row.x}, y={row.y}, z={row.z})"
    parquet = pd.read_parquet(Path(config.filename_rasters_summary).with_suffix(".parquet"))
    assert [list(b) for b in parquet["bounds"]] == [json.loads(b) for b in summary["bounds"]]


@pytest.mark.skipif(bool(real_data_missing()), reason="PDG's example files are not here")
def test_same_header_and_formats_as_pdgs_own_files(config):
    pdg_summary = pd.read_csv(PDG_EXAMPLE / "rasters_summary.csv")
    pdg_events = pd.read_csv(PDG_EXAMPLE / "rasterization_events.csv")
    records = RunRecords(config)
    records.open()
    add(records, tile_results(config, [Tile(13, 1524, 910)]))
    records.finish()
    ours = pd.read_csv(config.filename_rasters_summary)
    assert list(ours.columns[: len(pdg_summary.columns)]) == list(pdg_summary.columns)
    events = pd.read_csv(config.filename_rasterization_events)
    assert list(events.columns[: len(pdg_events.columns)]) == list(pdg_events.columns)
    theirs = pdg_summary[pdg_summary["tile"] == "Tile(x=1524, y=910, z=13)"].iloc[0]
    # The same tile's bounds in the same order (PDG's carry morecantile's rounding, ~1e-13).
    np.testing.assert_allclose(json.loads(ours["bounds"].iloc[0]), json.loads(theirs["bounds"]),
                               rtol=0, atol=1e-9)  # fmt: skip
    assert ours["tile"].iloc[0] == theirs["tile"]


def test_files_of_the_format_before_are_read_and_converted(config):
    old_events = pd.DataFrame(
        {
            "run_id": ["old"],
            "step": ["rasterize"],
            "z": [13],
            "x": [3],
            "y": [4],
            "status": ["ok"],
            "attempt": [1],
            "started_at": ["2026-01-02T03:04:05.250+00:00"],
            "duration_s": [0.5],
            "n_polygons": [9],
            "path": ["g.tif"],
            "host": ["h"],
            "error": [None],
            "fingerprint": ["00000000000000ff"],
            "checksum": ["0000000000000abc"],
        }
    )
    old_events.to_csv(config.filename_rasterization_events, index=False)
    left, bottom, right, top = xy_bounds(config.tms_id, Tile(13, 3, 4))
    pd.DataFrame({"stat": ["iwp_count"], "bounds": [f"[{left}, {bottom}, {right}, {top}]"],
                  "min": [0.0], "max": [2.0], "path": ["g.tif"], "tile": ["t"], "z": [13],
                  "x": [3], "y": [4], "n_nonempty": [1]}).to_csv(
        config.filename_rasters_summary, index=False)  # fmt: skip
    seen = RecordsReader(config)
    (chunk,) = seen.events("rasterize", 13, ["start_time", "checksum", "fingerprint"])
    when = datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC).timestamp()
    assert chunk.to_pylist() == [{"x": 3, "y": 4, "start_time": when, "checksum": 0xABC,
                                  "fingerprint": 0xFF}]  # fmt: skip
    records = RunRecords(config)
    records.open()
    records.finish()
    events = pd.read_csv(config.filename_rasterization_events, dtype={"checksum": str})
    assert events["total_time"].tolist() == [0.5] and events["checksum"].tolist() == [
        "0000000000000abc"
    ]
    summary = pd.read_csv(config.filename_rasters_summary)
    assert json.loads(summary["bounds"].iloc[0]) == [left, right, bottom, top]
    assert summary["tile"].iloc[0] == "Tile(x=3, y=4, z=13)"


def test_a_merge_holds_a_chunk_at_a_time(config, monkeypatch):
    monkeypatch.setattr(store_module, "ROW_GROUP_ROWS", 7)
    tiles = [Tile(13, x, y) for x in range(10) for y in range(5)]
    first = RunRecords(config)
    first.open()
    add(first, tile_results(config, tiles))
    first.finish()
    again = RunRecords(config)
    again.open()
    add(again, tile_results(config, tiles[::3]), run_id="run-b")  # redo every third tile
    again.finish()
    parquet = pq.ParquetFile(Path(config.filename_rasterization_events).with_suffix(".parquet"))
    assert max(parquet.metadata.row_group(i).num_rows
               for i in range(parquet.metadata.num_row_groups)) <= 7  # fmt: skip
    events = pd.read_csv(config.filename_rasterization_events)
    assert len(events) == 50 and not events.duplicated(["step", "z", "x", "y"]).any()
    assert (events["run_id"] == "run-b").sum() == len(tiles[::3])
    summary = pd.read_csv(config.filename_rasters_summary)
    assert len(summary) == 50 * len(config.stat_names)
    assert not summary.duplicated(["stat", "z", "x", "y"]).any()
