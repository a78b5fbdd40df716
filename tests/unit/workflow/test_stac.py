"""STAC pieces without a run: the vendored schemas do reject a bad item, offline, and tile
footprints in lon/lat (bounds, traced, split at the antimeridian, widened at the pole)."""

from __future__ import annotations

import pystac
import pytest
import shapely
from pyproj import Transformer

from rasterflow.rasterize_core.tiles import Tile, tms_crs, xy_bounds
from rasterflow.workflow.products.stac_items import footprint


def test_offline_validator_rejects_a_broken_item(offline_validator, tmp_path):
    """The vendored schemas do bite: a wrong proj:shape fails, offline."""
    item = pystac.Item("bad", shapely.geometry.mapping(shapely.box(0, 0, 1, 1)), [0, 0, 1, 1],
                       pystac.utils.str_to_datetime("2026-01-01T00:00:00Z"), {})  # fmt: skip
    item.stac_extensions.append("https://stac-extensions.github.io/projection/v2.0.0/schema.json")
    item.properties["proj:shape"] = [256]
    with pytest.raises(pystac.STACValidationError):
        item.validate()


def test_footprints_in_lon_lat():
    """Geographic tiles are their bounds; polar tiles are traced, split or widened."""
    bounds = xy_bounds("WGS1984Quad", Tile(5, 63, 31))  # at lon 180, lat -90
    geometry, bbox = footprint("WGS1984Quad", bounds)
    assert bbox == list(bounds) and shapely.geometry.shape(geometry).equals(shapely.box(*bounds))
    # Touching the North Pole: every longitude, up to 90°N.
    _, bbox = footprint("UPSArcticWGS84Quad", xy_bounds("UPSArcticWGS84Quad", Tile(13, 4095, 4095)))
    assert bbox[0] == -180 and bbox[2] == 180 and bbox[3] == 90 and bbox[1] > 89.9
    # Crossing the antimeridian (the 180° meridian runs up from the pole): two parts.
    geometry, bbox = footprint("UPSArcticWGS84Quad", xy_bounds("UPSArcticWGS84Quad", Tile(3, 4, 1)))
    assert bbox[0] > bbox[2] and geometry["type"] == "MultiPolygon"
    # An ordinary polar tile: its traced outline holds the tile's centre.
    tile = xy_bounds("UPSArcticWGS84Quad", Tile(9, 100, 300))
    geometry, bbox = footprint("UPSArcticWGS84Quad", tile)
    centre = _to_lonlat("UPSArcticWGS84Quad", (tile[0] + tile[2]) / 2, (tile[1] + tile[3]) / 2)
    assert shapely.geometry.shape(geometry).contains(shapely.Point(centre))
    assert bbox[0] < centre[0] < bbox[2] and bbox[1] < centre[1] < bbox[3]


def _to_lonlat(tms_id: str, x: float, y: float) -> tuple[float, float]:
    return Transformer.from_crs(tms_crs(tms_id), "OGC:CRS84", always_xy=True).transform(x, y)
