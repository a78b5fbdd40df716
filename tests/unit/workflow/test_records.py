"""Run records: a flush cut short by a kill loses no committed row, and rows read back from
the files mix with new ones (one type per column, as Parquet needs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rasterflow.workflow.batches import TileBatch, failed_results, pack, with_driver_columns
from rasterflow.workflow.config import load_config
from rasterflow.workflow.records import RunRecords
from rasterflow.workflow.steps import Step


def event_rows(x: int, n_polygons: int | None = 5, checksum: str = "0123456789012345"):
    record = {"step": "rasterize", "z": 13, "x": x, "y": 2, "status": "ok", "start_time": 1.5e9,
              "total_time": 0.25, "path": "p.tif", "n_polygons": n_polygons,
              "checksum": checksum,
              "summary": [{"stat": "s", "bounds": [1.0, 2.0, 3.0, 4.0], "min": 0.0, "max": 1.0,
                           "path": "p.tif", "z": 13, "x": x, "y": 2, "n_nonempty": 3}]}  # fmt: skip
    return pack([record], [0])


def test_flush_cut_short_loses_no_committed_row(make_config):
    config = load_config(make_config())
    records = RunRecords(config)
    records.open()
    results = event_rows(1)
    records.add(with_driver_columns(results.events, "r", 1, np.ones(1)), results.summary)
    records.close()  # committed
    # The driver was killed while writing its next flush: a part without its commit.
    cut = records.files.parts / f"{records.writer.seq:010d}-e-rasterize-13.arrow"
    cut.write_bytes(b"ARROW1 cut short")
    again = RunRecords(config)
    found = again.open()  # folds the committed flush in, drops the cut one
    assert not cut.exists()
    assert [t.to_pylist() for t in found.events("rasterize", 13, ["status"])] == [
        [{"x": 1, "y": 2, "status": "ok"}]
    ]
    results = event_rows(3)
    again.add(with_driver_columns(results.events, "r2", 1, np.ones(1)), results.summary)
    again.finish()
    frame = pd.read_csv(config.filename_rasterization_events)
    assert sorted(zip(frame["x"], frame["run_id"], strict=True)) == [(1, "r"), (3, "r2")]


def test_records_round_trip_through_the_files(make_config):
    """A rerun mixes rows read back from the files with new ones: types must agree."""
    config = load_config(make_config())
    first = RunRecords(config)
    first.open()
    results = event_rows(1)
    first.add(with_driver_columns(results.events, "r", 1, np.ones(1)), results.summary)
    first.finish()
    second = RunRecords(config)
    found = second.open()
    (chunk,) = found.events("rasterize", 13, ["checksum"])
    assert chunk["checksum"].to_pylist() == [0x0123456789012345]
    results = event_rows(3, n_polygons=None)
    second.add(with_driver_columns(results.events, "r", 1, np.ones(1)), results.summary)
    lost = failed_results(Step.PARENT, TileBatch(12, np.array([0]), np.array([1])),
                          ["batch lost: WorkerLost"], [None])  # fmt: skip
    second.add(with_driver_columns(lost.events, "r", 3, np.zeros(1)))
    second.finish()
    summary = pd.read_parquet(Path(config.filename_rasters_summary).with_suffix(".parquet"))
    assert summary["bounds"].map(list).tolist() == [[1.0, 3.0, 2.0, 4.0]] * 2  # PDG's order
    text = Path(config.filename_rasterization_events).read_text()
    assert "5.0" not in text and "0123456789012345" in text
    events = pd.read_csv(config.filename_rasterization_events, dtype={"checksum": str})
    assert events["step"].tolist() == ["rasterize", "rasterize", "parent"]
    assert events["attempt"].tolist() == [1, 1, 3]
