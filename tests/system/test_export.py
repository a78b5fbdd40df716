"""`rasterflow export`, from the command line, against a real run of the synthetic sample.

Truth: `rasterio.merge.merge` of the same level's GeoTIFFs over the same bounds, and
rio-cogeo's validator.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import rasterio
from rasterio.merge import merge
from rio_cogeo.cogeo import cog_validate

from rasterflow.rasterize_core.tiles import Tile, xy_bounds
from rasterflow.workflow.config import load_config
from rasterflow.workflow.layout import geotiff_path
from rasterflow.workflow.products.viewer_data import geotiff_tiles
from tests.helpers.served import RASTERFLOW, served_runs


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    return served_runs(tmp_path_factory.getbasetemp() / "served-runs").with_png


def export(config_path, out, *args) -> subprocess.CompletedProcess:
    return subprocess.run([RASTERFLOW, "export", str(config_path), str(out), *map(str, args)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def merged(config, z: int, bounds, indexes) -> np.ndarray:
    """rasterio's mosaic of the level's GeoTIFFs over `bounds` (NaN where none)."""
    paths = [geotiff_path(config, Tile(z, x, y)) for x, y in sorted(geotiff_tiles(config)[z])]
    datasets = [rasterio.open(path) for path in paths]
    try:
        data, _ = merge(datasets, bounds=bounds, nodata=np.nan, indexes=indexes,
                        dtype="float64")  # fmt: skip
    finally:
        for dataset in datasets:
            dataset.close()
    return data


def sample_extent(config, z: int):
    tiles = geotiff_tiles(config)[z]
    boxes = [xy_bounds(config.tms_id, Tile(z, x, y)) for x, y in tiles]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip


def test_export_equals_the_rasterio_mosaic_and_is_a_cog(config_path, tmp_path):
    config = load_config(config_path)
    west, south, east, north = sample_extent(config, 13)
    # a box past the tiles on the west (no data there: NaN) and inside them on the east
    box = (west - 0.01, south + 0.003, east - 0.0071, north - 0.0005)
    out = tmp_path / "area.tif"
    done = export(config_path, out, "--bbox", *box)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout and "at z13" in done.stdout
    valid, errors, _ = cog_validate(str(out))
    assert valid, errors
    with rasterio.open(out) as dataset:
        assert dataset.descriptions == tuple(config.stat_names)
        assert dataset.dtypes == ("float32",) * 3 and np.isnan(dataset.nodata)
        assert dataset.crs == rasterio.open(geotiff_path(
            config, Tile(13, *sorted(geotiff_tiles(config)[13])[0]))).crs  # fmt: skip
        exported = dataset.read(out_dtype="float64")
        bounds = tuple(dataset.bounds)
        assert dataset.overviews(1)  # 1 000+ pixels wide: overviews for zoomed-out reads
    px = 180 / 2**13 / 256
    assert bounds[0] <= box[0] < bounds[0] + px and bounds[2] - px < box[2] <= bounds[2]
    truth = merged(config, 13, bounds, [1, 2, 3])
    assert exported.shape == truth.shape
    assert np.array_equal(exported, truth, equal_nan=True)
    assert np.isnan(exported[:, :, :10]).all()  # west of the tiles
    assert np.nansum(exported[0]) > 100  # and the polygons are there


def test_stats_level_and_grid_box(config_path, tmp_path):
    config = load_config(config_path)
    box = sample_extent(config, 11)
    out = tmp_path / "z11.tif"
    done = export(config_path, out, "--bbox", *box, "--bbox-crs", "grid", "--z", 11,
                  "--stats", "mean_width,iwp_count")  # fmt: skip
    assert done.returncode == 0, done.stderr
    with rasterio.open(out) as dataset:
        assert dataset.descriptions == ("mean_width", "iwp_count")
        assert tuple(dataset.bounds) == pytest.approx(box, abs=1e-12)
        exported = dataset.read(out_dtype="float64")
    assert np.array_equal(exported, merged(config, 11, box, [3, 1]), equal_nan=True)


def test_default_level_is_the_finest_under_the_limit(config_path, tmp_path):
    config = load_config(config_path)
    box = sample_extent(config, 13)  # 3 x 2 tiles at z13: 768 x 512 px
    out = tmp_path / "limited.tif"
    done = export(config_path, out, "--bbox", *box, "--max-pixels", 768 * 512 // 4)
    assert done.returncode == 0, done.stderr
    with rasterio.open(out) as dataset:
        assert (dataset.width, dataset.height) == (384, 256)  # z12
        assert np.array_equal(
            dataset.read(out_dtype="float64"),
            merged(config, 12, tuple(dataset.bounds), [1, 2, 3]),
            equal_nan=True,
        )


@pytest.mark.parametrize("args, words", [
    (["--bbox", 1, 0, 0, 1], "W < E"),
    (["--bbox", 0, 0, 200, 1], "-180..180"),
    (["--bbox", -149, 70, -148, 71, "--z", 13, "--max-pixels", 1000], "over the limit"),
    (["--bbox", -149, 70, -148, 71, "--stats", "nope"], "nope"),
    (["--bbox", -149, 70, -148, 71, "--z", 5], "levels 10 to 13"),
])  # fmt: skip
def test_bad_arguments_exit_2_with_a_message(config_path, tmp_path, args, words):
    done = export(config_path, tmp_path / "x.tif", *args)
    assert done.returncode == 2 and words in done.stderr, done.stderr
    assert not (tmp_path / "x.tif").exists() and not list(tmp_path.iterdir())
