"""The map page without a run: URL templates, the grids it can draw, and no page without tiles."""

from __future__ import annotations

import pytest

from rasterflow.rasterize_core.errors import RasterflowError
from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.config import parse_config
from rasterflow.workflow.products.viewer import (
    ViewerError,
    map_grid,
    tile_url_template,
    write_viewer,
)
from rasterflow.workflow.products.viewer_data import existing_tiles
from tests.helpers.web_tiles import synthetic_tiles


def test_url_template_follows_tile_path_structure(tmp_path):
    config = synthetic_tiles(tmp_path, 256, {Tile(1, 0, 0): (255, 0, 0, 255)},
                             structure=["tms", "style", "z", "x", "y"])  # fmt: skip
    assert tile_url_template(config, "cover") == "WorldCRS84Quad/cover/{z}/{x}/{y}.png"
    assert existing_tiles(config) == {1: {(0, 0)}}


def test_map_grids(tmp_path):
    base = {"statistics": [{"name": "n", "weight_by": "count", "property": "centroids_per_pixel"}]}
    mercator = map_grid(
        parse_config({**base, "tms_id": "WebMercatorQuad", "tile_size": [128, 128]})
    )
    assert mercator.projection == "mercator" and mercator.tile_size == (128, 128)
    assert mercator.origin[0] == pytest.approx(-20037508.342789244)
    assert mercator.extent0[0] == pytest.approx(2 * 20037508.342789244)
    with pytest.raises(ViewerError, match="EuropeanETRS89_LAEAQuad"):
        map_grid(parse_config({**base, "tms_id": "EuropeanETRS89_LAEAQuad", "z_range": [0, 5]}))


def test_page_needs_web_tiles(tmp_path):
    config = synthetic_tiles(tmp_path, 256, {})
    with pytest.raises(RasterflowError, match="no web tiles"):
        write_viewer(config)
