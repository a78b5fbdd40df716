"""The whole local pipeline on real Parsl (htex_local), checked against exact geometry.

Synthetic tiles the code has never seen (holes, multipolygons, overlaps, a
bow-tie, edge-crossers stored in every tile they touch), and the four real
IWP tiles: counts are conserved at every level, coverage matches shapely at
every pixel of every level, empty pixels are exactly 0, one `ok` row per tile
and step, and a second run changes nothing.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from PIL import Image

from rasterflow.rasterize_core.tiles import Tile, xy_bounds
from rasterflow.workflow.config import load_config
from rasterflow.workflow.demo.synthetic import make_sample
from rasterflow.workflow.run import run_workflow
from tests.helpers.configs import IWP_STATISTICS
from tests.helpers.paths import THREADS_SITE
from tests.helpers.pyramid_truth import check_against_geometry, tiffs_by_level
from tests.helpers.real_data import REAL_DATA, REAL_POLYGONS


def check_events(config, n_tiles_per_step: dict[str, int]) -> pd.DataFrame:
    events = pd.read_csv(config.filename_rasterization_events)
    assert (events["status"] == "ok").all(), events[events["status"] != "ok"]
    assert not events.duplicated(["step", "z", "x", "y"]).any()
    assert events.groupby("step").size().to_dict() == n_tiles_per_step
    parquet = pd.read_parquet(Path(config.filename_rasterization_events).with_suffix(".parquet"))
    key = ["step", "z", "x", "y", "status", "checksum", "path"]
    pd.testing.assert_frame_equal(events[key], parquet[key], check_dtype=False)
    return events


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    sample = make_sample(tmp_path_factory.mktemp("synthetic"), z_range=(10, 13), tiles=(3, 2),
                         cells_per_tile=20, seed=11)  # fmt: skip
    config = load_config(sample.config_path)
    report = run_workflow(config, site=THREADS_SITE, live_progress=False)
    return sample, config, report


def test_synthetic_run_is_exact(synthetic_run):
    sample, config, report = synthetic_run
    assert report.exit_code == 0 and not report.failures
    polygons = sample.polygons.geometry.to_numpy()
    assert any(p.geom_type == "MultiPolygon" for p in polygons)
    assert any(len(p.interiors) for p in polygons if p.geom_type == "Polygon")
    assert any(not p.is_valid for p in polygons)  # the bow-tie
    check_against_geometry(config, polygons, len(polygons), full=True)  # shapely at every level


def test_synthetic_records(synthetic_run):
    sample, config, _ = synthetic_run
    levels = tiffs_by_level(Path(config.dir_geotiff), config.tms_id)
    n_tiles = sum(len(paths) for paths in levels.values())
    check_events(config, {"parent": n_tiles - len(sample.tiles), "rasterize": len(sample.tiles),
                          "webtile": n_tiles})  # fmt: skip
    summary = pd.read_csv(config.filename_rasters_summary)
    assert list(summary.columns[:12]) == ["stat", "bounds", "min", "max", "mean", "median", "std",
                                          "var", "sum", "path", "tile", "z"]  # fmt: skip
    assert len(summary) == n_tiles * len(config.statistics)
    assert not summary.duplicated(["stat", "z", "x", "y"]).any()
    pngs = glob.glob(str(Path(config.dir_web_tiles) / "*" / config.tms_id / "*" / "*" / "*.png"))
    assert len(pngs) == n_tiles * len(config.statistics)


def test_webtile_colours(synthetic_run):
    """A fully covered pixel gets the palette's last colour, an empty one the nodata colour."""
    sample, config, _ = synthetic_run
    tile = sample.tiles[0]
    with rasterio.open(
        Path(config.dir_geotiff) / config.tms_id / f"{tile.z}/{tile.x}/{tile.y}.tif"
    ) as ds:
        coverage = ds.read(2)
    png = (
        Path(config.dir_web_tiles)
        / "iwp_coverage"
        / config.tms_id
        / f"{tile.z}/{tile.x}/{tile.y}.png"
    )
    rgba = np.asarray(Image.open(png))
    assert rgba.shape == (256, 256, 4)
    full, empty = np.argwhere(coverage >= 1.0)[0], np.argwhere(coverage == 0)[0]
    # the last entry, 255/256 of the way to "#ffcc00" (as pdgraster paints it), val_range [0, 1]
    assert tuple(rgba[tuple(full)]) == (255, 202, 0, 254)
    assert rgba[tuple(empty)][3] == 0  # nodata_val 0 -> transparent


def test_updated_config_has_level_ranges(synthetic_run):
    _, config, _ = synthetic_run
    updated = json.loads(config.updated_config_path().read_text())
    summary = pd.read_csv(config.filename_rasters_summary)
    for z in range(config.z_min, config.z_max + 1):
        count_range = updated["statistics"][0]["z_config"][str(z)]["val_range"]
        level = summary[(summary["stat"] == "iwp_count") & (summary["z"] == z)]
        assert count_range == [0, level["max"].max()]  # configured [0, None]: max filled


def test_second_run_changes_nothing(synthetic_run):
    _, config, first = synthetic_run
    before = pd.read_csv(config.filename_rasterization_events)
    stamps = {p: p.stat().st_mtime_ns for p in Path(config.dir_geotiff).rglob("*.tif")}
    second = run_workflow(config, site=THREADS_SITE, live_progress=False)
    assert second.exit_code == 0 and second.done == {"rasterize": 0, "parent": 0, "webtile": 0}
    pd.testing.assert_frame_equal(before, pd.read_csv(config.filename_rasterization_events))
    assert stamps == {p: p.stat().st_mtime_ns for p in Path(config.dir_geotiff).rglob("*.tif")}


def real_polygons() -> np.ndarray:
    """The unique polygons of the four real tiles (edge-crossers are stored in each)."""
    frames = [pyogrio.read_dataframe(p) for p in REAL_DATA.rglob("*.gpkg")]
    frame = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True))
    return frame.drop_duplicates("staging_identifier").geometry.to_numpy()


@pytest.mark.real_data
def test_real_tiles_z0_to_13(tmp_path, make_config):
    config = load_config(make_config(dir_staged=str(REAL_DATA), z_range=[0, 13],
                                     statistics=IWP_STATISTICS))  # fmt: skip
    report = run_workflow(config, site=THREADS_SITE, live_progress=False)
    assert report.exit_code == 0
    polygons = real_polygons()
    assert len(polygons) == REAL_POLYGONS
    levels = tiffs_by_level(Path(config.dir_geotiff), config.tms_id)
    assert sum(len(paths) for paths in levels.values()) == 17
    assert len(list(Path(config.dir_web_tiles).glob("*/WorldCRS84Quad/*/*/*.png"))) == 34
    check_against_geometry(config, polygons, REAL_POLYGONS)
    events = check_events(config, {"parent": 13, "rasterize": 4, "webtile": 17})
    own = events[events["step"] == "rasterize"].set_index(["x", "y"])["n_polygons"].to_dict()
    assert own == {(1418, 908): 3308, (1418, 909): 3913, (1419, 908): 3130, (1419, 909): 3930}
    again = run_workflow(config, site=THREADS_SITE, live_progress=False)
    assert sum(again.done.values()) == 0
    pd.testing.assert_frame_equal(events, pd.read_csv(config.filename_rasterization_events))


def test_bow_tie_is_repaired_not_failed(write_staged, make_config, tmp_path):
    tile = Tile(13, 1418, 908)
    left, bottom, right, top = xy_bounds("WorldCRS84Quad", tile)
    w, h = right - left, top - bottom
    corners = [(0.1, 0.1), (0.5, 0.5), (0.5, 0.1), (0.1, 0.5)]  # crossing edges: a bow-tie
    bow = shapely.Polygon([(left + a * w, bottom + b * h) for a, b in corners])
    write_staged(tile, [bow])
    config = load_config(make_config(z_range=[12, 13]))
    assert run_workflow(config, site=THREADS_SITE, live_progress=False).exit_code == 0
    with rasterio.open(Path(config.dir_geotiff) / "WorldCRS84Quad/13/1418/908.tif") as dataset:
        coverage = dataset.read(2).astype(float)
    pixel_area = (w / 256) * (h / 256)
    assert coverage.sum() * pixel_area == pytest.approx(shapely.make_valid(bow).area, rel=1e-6)
