"""A z-max tile's record (DESIGN §9): skips counted by reason, `strict` failing the tile,
errors naming the file and the problem, the library's words kept in `detail`.

The batch function runs in this process (no Parsl): what it returns is what the driver
folds into the event log.
"""

from __future__ import annotations

import numpy as np
import rasterio
import shapely

from rasterflow.rasterize_core.read import StagedColumns
from rasterflow.rasterize_core.tiles import Tile, xy_bounds
from rasterflow.workflow import tasks
from rasterflow.workflow.batches import TileBatch
from rasterflow.workflow.config import load_config
from rasterflow.workflow.run import RunReport
from tests.helpers.configs import IWP_STATISTICS, write_config
from tests.helpers.odd_rows import TileFrame, write_raw_gpkg
from tests.helpers.truth import centroid_histogram, exact_coverage

TMS = "WorldCRS84Quad"
TILE = Tile(13, 1418, 908)
FRAME = TileFrame(xy_bounds(TMS, TILE))
MEAN_AREA = {"name": "mean_area", "weight_by": "count", "property": "Area",
             "aggregation_method": "mean", "resampling_method": "average"}  # fmt: skip


def stage(tmp_path, odd: list[str], **columns):
    """A staged tile of 30 good polygons then the named odd rows; (config, path, good)."""
    good = FRAME.good_polygons(30)
    odd_rows = FRAME.odd_rows()
    blobs = [shapely.to_wkb(g) for g in good] + [odd_rows[name][0] for name in odd]
    path = tmp_path / "staged" / TMS / "13/1418/908.gpkg"
    write_raw_gpkg(path, blobs, {"Area": np.arange(len(blobs), dtype=float)} | columns)
    return path, good


def config_of(tmp_path, **overrides):
    return load_config(write_config(tmp_path, z_range=[13, 13], tile_size=[64, 64], **overrides))


def rasterize(config, path) -> dict:
    """The tile's event row as the batch returns it to the driver."""
    batch = TileBatch(TILE.z, np.array([TILE.x]), np.array([TILE.y]))
    (record,) = tasks.rasterize_batch(batch, [str(path)], config).events.to_pylist()
    return record


def test_odd_rows_are_skipped_and_counted_and_the_tile_is_exact(tmp_path):
    path, good = stage(tmp_path, ["empty polygon", "NaN vertex", "null", "unclosed ring",
                                  "empty collection", "point"])  # fmt: skip
    config = config_of(tmp_path)
    record = rasterize(config, path)
    assert record["status"] == "ok", record
    assert record["skipped"] == "1 null, 2 empty, 1 non-finite, 1 unclosed ring, 1 point"
    assert record["n_polygons"] == len(good)
    with rasterio.open(record["path"]) as dataset:
        count, coverage = dataset.read().astype(float)
    bounds = xy_bounds(TMS, TILE)
    np.testing.assert_array_equal(count, centroid_histogram(np.array(good), bounds, (64, 64)))
    np.testing.assert_allclose(coverage, exact_coverage(good, bounds, (64, 64)), atol=1e-6)


def test_a_clean_tile_says_nothing_was_skipped(tmp_path):
    path, _ = stage(tmp_path, [])
    assert rasterize(config_of(tmp_path), path)["skipped"] == ""


def test_strict_fails_the_tile_naming_file_reasons_and_fids(tmp_path):
    path, good = stage(tmp_path, ["empty polygon", "line", "empty polygon"])
    record = rasterize(config_of(tmp_path, strict=True), path)
    first = len(good) + 1
    assert record["status"] == "failed" and record["path"] == str(path)
    assert record["error"] == (
        f"{path}: rows that cannot contribute, and strict is set: 2 empty (fid {first}, "
        f"{first + 2}), 1 line (fid {first + 1})"
    )


def test_text_where_a_statistic_needs_numbers_fails_naming_the_column(tmp_path):
    path, good = stage(tmp_path, [], Area=["12.0 m2"] + ["3"] * 29)
    record = rasterize(config_of(tmp_path, statistics=[*IWP_STATISTICS, MEAN_AREA]), path)
    assert record["status"] == "failed"
    assert record["error"] == (f"{path}: property 'Area' holds text ('12.0 m2', fid 1) in layer "
                               "'908'; a numeric column is needed for 'mean'")  # fmt: skip


def test_an_unexpected_error_names_the_file_and_our_frame_and_keeps_the_traceback(
    tmp_path, monkeypatch
):
    path, _ = stage(tmp_path, [], Area=["12.0 m2"] * 30)
    config = config_of(tmp_path, statistics=[*IWP_STATISTICS, MEAN_AREA])
    # Without the read-time check, pandas meets the text inside the statistics.
    monkeypatch.setattr(tasks, "staged_columns", lambda c: StagedColumns(properties=("Area",)))
    record = rasterize(config, path)
    assert record["status"] == "failed" and record["path"] == str(path)
    assert record["error"].startswith(f"{path}: unexpected TypeError in statistics.py:")
    assert "(_count_band): " in record["error"]
    assert record["detail"].startswith("Traceback (most recent call last):")
    assert "pandas" in record["detail"] and record["detail"].rstrip().endswith(
        record["error"].rpartition("(_count_band): ")[2]
    )


def test_run_report_sums_this_runs_skips():
    report = RunReport("r", None, None, None, 0.0, skipped={"empty": 3, "non-finite": 1},
                       skipped_tiles=2)  # fmt: skip
    assert report.skipped_line() == "skipped rows: 3 empty, 1 non-finite in 2 tiles"
    assert RunReport("r", None, None, None, 0.0).skipped_line() == ""
