"""The offline map page, drawn by a real browser (Debian's headless Chromium).

The browser tests take a screenshot of the page at a view set in its URL and
compare it, pixel by pixel, with the web tiles composited where the grid puts
them: coloured pixels where the data are, the page's background where there
are none. They are skipped (with the reason) where Chromium is not installed:
`make system-deps` installs it, as CI does.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.products.viewer import write_viewer
from rasterflow.workflow.products.viewer_data import existing_tiles
from tests.helpers.browser import (
    BACKGROUND,
    WINDOW,
    assert_drawn_as_expected,
    browse,
    expected_screen,
    needs_chromium,
    page_url,
    screen_image,
)
from tests.helpers.web_tiles import synthetic_tiles

pytestmark = needs_chromium


@pytest.fixture
def demo(demo_run):
    """The shared demo run's config: its map page is published."""
    return demo_run.config


def test_browser_draws_the_demo_tiles_where_they_are(demo, tmp_path):
    """Zoom 12, the coverage layer, no outlines: the screenshot is the tiles, placed."""
    tiles = existing_tiles(demo)[12]
    west, south, east, north = _lonlat_box(demo, 12, tiles)
    center = _off_half_pixel(((west + east) / 2, (south + north) / 2), 12)
    view = f"map=12/{center[1]}/{center[0]}&layers=iwp_coverage&outlines=0"
    shot_path = tmp_path / "shot.png"
    browse(page_url(demo, view), tmp_path / "profile", shot_path)
    shot = screen_image(shot_path)
    expected = expected_screen(demo, "iwp_coverage", 12, center)
    assert_drawn_as_expected(shot, expected, min_coloured=50_000)


def _off_half_pixel(lonlat, z, tile_px=256):
    """A centre 3/4 pixel past a pixel corner at zoom z (WorldCRS84Quad), written with 6
    decimals: Leaflet rounds the view's corner (centre - half the map's size) to whole
    pixels, and this rounds the same way whether the browser's viewport has an even or
    an odd number of pixels."""
    per_degree = tile_px / 180 * 2**z
    x = (math.floor((lonlat[0] + 180) * per_degree) + 0.75) / per_degree - 180
    y = 90 - (math.floor((90 - lonlat[1]) * per_degree) + 0.75) / per_degree
    return (round(x, 6), round(y, 6))


@pytest.mark.parametrize("tile_size", [256, 128])
def test_browser_places_tiles_on_the_world_grid(tmp_path, tile_size):
    """WorldCRS84Quad: two tiles at z0, 4x2 at z1; tiles land in their hemisphere-quarters,
    at 256 and 128 pixels; where no tile exists the page draws nothing."""
    colours = {Tile(1, 0, 0): (220, 30, 30, 255), Tile(1, 3, 1): (30, 60, 220, 255),
               Tile(1, 2, 0): (20, 160, 60, 180)}  # fmt: skip
    config = synthetic_tiles(tmp_path, tile_size, colours)
    write_viewer(config)
    shot_path = tmp_path / "world.png"
    center = _off_half_pixel((0.0, 0.0), 1, tile_size)
    view = f"map=1/{center[1]}/{center[0]}&layers=cover&outlines=0"
    browse(page_url(config, view), tmp_path / "profile", shot_path)
    shot = screen_image(shot_path)
    expected = expected_screen(config, "cover", 1, center)
    assert_drawn_as_expected(shot, expected, min_coloured=tile_size * tile_size // 2)
    # and, independently of the compositing above: tile (1, 3, 1) is the south-east quarter
    quarter = tile_size  # one z1 tile, in pixels, at map zoom 1
    row, col = WINDOW[1] // 2 + quarter // 2, WINDOW[0] // 2 + quarter + quarter // 4
    assert tuple(shot[row, col]) == (30, 60, 220)


def test_browser_draws_outlines_of_existing_tiles(tmp_path):
    config = synthetic_tiles(tmp_path, 256, {Tile(1, 1, 1): (0, 0, 0, 0)})
    write_viewer(config)
    shot_path = tmp_path / "outlines.png"
    browse(page_url(config, "map=1/0/0&layers=&outlines=1"), tmp_path / "profile", shot_path)
    shot = screen_image(shot_path)
    darker = np.abs(shot - np.array(BACKGROUND)).max(axis=2) > 20
    # tile (1, 1, 1) spans x 244..500, y 350..606 on screen: its edges are drawn
    x0, x1, y0, y1 = WINDOW[0] // 2 - 256, WINDOW[0] // 2, WINDOW[1] // 2, WINDOW[1] // 2 + 256
    assert darker[y0 + 128, x0 - 1 : x0 + 2].any() and darker[y0 + 128, x1 - 2 : x1 + 1].any()
    assert darker[y0 - 1 : y0 + 2, x0 + 128].any() and darker[y1 - 2 : y1 + 1, x0 + 128].any()
    assert not darker[y0 + 10 : y1 - 10, x0 + 10 : x1 - 10].any()  # inside: nothing
    assert not darker[y0 + 10 : y1 - 10, x1 + 10 : x1 + 200].any()  # beside: no tile, no line


def test_browser_legend_shows_palette_and_range_per_level(demo, tmp_path):
    updated = json.loads(demo.updated_config_path().read_text())
    count = next(s for s in updated["statistics"] if s["name"] == "iwp_count")
    dom = browse(page_url(demo, "map=11/70.0/-148.8&layers=iwp_count,mean_width&outlines=1"),
                 tmp_path / "profile")  # fmt: skip
    items = re.findall(r'<div class="rf-legend-item" data-stat="([^"]+)">(.*?)</table>', dom, re.S)
    assert [name for name, _ in items] == ["iwp_count", "mean_width"]  # the layers shown
    body = dict(items)["iwp_count"]
    lo, hi = count["z_config"]["11"]["val_range"]
    assert (
        f'<span class="rf-lo">{lo:g}</span>' in body
        and f'<span class="rf-hi">{hi:g}+</span>' in body
    )
    assert "linear-gradient" in body and "z11" in body
    assert len(re.findall(r'<tr[^>]*data-z="\d+"', body)) == len(count["z_config"])  # every level
    assert "zoom 11" in dom  # the title box follows the map


def _lonlat_box(config, z, tiles):
    from rasterflow.workflow.products.viewer_data import lonlat_bounds

    boxes = [lonlat_bounds(config, Tile(z, x, y)) for x, y in tiles]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip
