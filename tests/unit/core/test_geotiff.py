"""GeoTIFF writing: any tile size gives a valid COG (rio-cogeo's validator), byte-identical on
rewrite, holding the values exactly; plain GeoTIFFs are not COGs."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from rasterflow.rasterize_core.geotiff import write_geotiff
from rasterflow.rasterize_core.tiles import Tile, tms_crs_wkt, xy_bounds

cogeo = pytest.importorskip("rio_cogeo.cogeo", reason="rio-cogeo validates COGs (test extra)")


@pytest.mark.parametrize("shape", [(256, 256), (128, 128), (100, 100), (1024, 1024)])
def test_cog_writer(tmp_path, shape):
    """Any tile size gives a valid COG (overviews above 512 px), byte-identical on rewrite,
    holding the values exactly."""
    rng = np.random.default_rng(1)
    data = rng.random((2, *shape))
    data[0, :5] = np.nan
    bounds = xy_bounds("WorldCRS84Quad", Tile(13, 100, 100))
    path = tmp_path / "tile.tif"
    write_geotiff(path, data, bounds, tms_crs_wkt("WorldCRS84Quad"), ["a", "b"], cog=True)
    first = path.read_bytes()
    assert cogeo.cog_validate(str(path), strict=True)[0]
    write_geotiff(path, data, bounds, tms_crs_wkt("WorldCRS84Quad"), ["a", "b"], cog=True)
    assert path.read_bytes() == first
    with rasterio.open(path) as dataset:
        np.testing.assert_array_equal(dataset.read(), data.astype("float32"))
        assert bool(dataset.overviews(1)) == (max(shape) > 512)


def test_plain_geotiffs_are_not_cogs(tmp_path):
    path = tmp_path / "tile.tif"
    data = np.ones((1, 256, 256))
    write_geotiff(path, data, xy_bounds("WorldCRS84Quad", Tile(3, 1, 1)),
                  tms_crs_wkt("WorldCRS84Quad"), ["a"], cog=False)  # fmt: skip
    with rasterio.open(path) as dataset:
        assert "LAYOUT" not in dataset.tags(ns="IMAGE_STRUCTURE")
