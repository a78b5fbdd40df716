"""The map page as `rasterflow serve` answers it, drawn by headless Chromium, and the first
look of the offline page.

Truth: screenshots compared pixel by pixel with the pre-rendered PNGs (or tiles coloured by
the core functions) composited where the grid puts them (tests/helpers/browser.py).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import rasterio

from rasterflow.rasterize_core import palette, webtile
from rasterflow.rasterize_core.tiles import Tile, xy_bounds
from rasterflow.workflow.config import load_config
from rasterflow.workflow.layout import VIEWER_NAME, geotiff_path
from rasterflow.workflow.products.viewer_data import geotiff_tiles
from tests.helpers.browser import (
    BACKGROUND,
    WINDOW,
    assert_drawn_as_expected,
    browse,
    expected_screen,
    needs_chromium,
    screen_image,
)
from tests.helpers.served import Server, served_runs

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return served_runs(tmp_path_factory.getbasetemp() / "served-runs")


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    """The run without PNGs: every tile the page draws is coloured by the server."""
    with Server(runs.no_png, tmp_path_factory.mktemp("viewer-log") / "serve.log") as running:
        yield running


def centre_of(config, z: int) -> tuple[float, float]:
    """The middle of the sample at z, 3/4 pixel off a pixel corner (Leaflet rounds the
    view's corner to whole pixels; this rounds the same way for any viewport)."""
    boxes = [xy_bounds(config.tms_id, Tile(z, x, y)) for x, y in geotiff_tiles(config)[z]]
    lon = (min(b[0] for b in boxes) + max(b[2] for b in boxes)) / 2
    lat = (min(b[1] for b in boxes) + max(b[3] for b in boxes)) / 2
    per_degree = 256 / 180 * 2**z
    x = (math.floor((lon + 180) * per_degree) + 0.75) / per_degree - 180
    y = 90 - (math.floor((90 - lat) * per_degree) + 0.75) / per_degree
    return (round(x, 6), round(y, 6))


def composite(config, z: int, center, tile_rgba) -> np.ndarray:
    """The screen the tiles `tile_rgba(tile)` give at zoom z around `center`."""
    height, width = config.tile_size
    left, bottom, right, top = xy_bounds(config.tms_id, Tile(0, 0, 0))
    origin_x = math.floor((center[0] - left) * width / (right - left) * 2**z - WINDOW[0] / 2 + 0.5)
    origin_y = math.floor((top - center[1]) * height / (top - bottom) * 2**z - WINDOW[1] / 2 + 0.5)
    canvas = np.empty((WINDOW[1], WINDOW[0], 3), dtype=np.float64)
    canvas[:] = BACKGROUND
    for x, y in geotiff_tiles(config)[z]:
        rgba = tile_rgba(Tile(z, x, y)).astype(np.float64)
        col, row = x * width - origin_x, y * height - origin_y
        c0, r0 = max(col, 0), max(row, 0)
        c1, r1 = min(col + width, WINDOW[0]), min(row + height, WINDOW[1])
        if c0 < c1 and r0 < r1:
            part = rgba[r0 - row : r1 - row, c0 - col : c1 - col]
            alpha = part[..., 3:] / 255.0
            canvas[r0:r1, c0:c1] = part[..., :3] * alpha + canvas[r0:r1, c0:c1] * (1 - alpha)
    return np.rint(canvas).astype(np.int16)


def test_served_page_draws_the_served_tiles(runs, server, tmp_path):
    """The run without PNGs, through the server, looks exactly as the PNGs of the same run
    with web tiles would: coverage at z13."""
    with_png = load_config(runs.with_png)
    center = centre_of(with_png, 13)
    view = f"map=13/{center[1]}/{center[0]}&layers=iwp_coverage&outlines=0"
    shot = tmp_path / "served.png"
    browse(f"{server.url}/#{view}", tmp_path / "profile", shot)
    expected = expected_screen(with_png, "iwp_coverage", 13, center)
    assert_drawn_as_expected(screen_image(shot), expected, min_coloured=50_000)


def test_page_recolours_a_layer_live(runs, server, tmp_path):
    """Palette and range set through the page (from its URL, as its controls set them): the
    screen is the tiles coloured by the core functions with that palette and range."""
    config = load_config(runs.no_png)
    center = centre_of(config, 13)
    view = (f"map=13/{center[1]}/{center[0]}&layers=mean_width&outlines=0"
            f"&palette.mean_width=magma&range.mean_width=5,20")  # fmt: skip
    shot = tmp_path / "recoloured.png"
    browse(f"{server.url}/#{view}", tmp_path / "profile", shot)
    spec = config.statistics[2]

    def magma(tile: Tile) -> np.ndarray:
        with rasterio.open(geotiff_path(config, tile)) as dataset:
            band = dataset.read(3, out_dtype="float64")
        return webtile.colorize(band, (5, 20), palette.build_lut("magma"), spec.nodata_val,
                                palette.parse_color(spec.nodata_color))  # fmt: skip

    assert_drawn_as_expected(screen_image(shot), composite(config, 13, center, magma),
                             min_coloured=100_000)  # fmt: skip


def test_served_legend_has_the_controls(server, tmp_path):
    dom = browse(f"{server.url}/#layers=iwp_count,mean_width&palette.mean_width=viridis"
                 f"&range.mean_width=0,12.5", tmp_path / "profile")  # fmt: skip
    items = dict(re.findall(r'<div class="rf-legend-item" data-stat="([^"]+)">(.*?)</table>',
                            dom, re.S))  # fmt: skip
    assert list(items) == ["iwp_count", "mean_width"]
    assert all('class="rf-style"' in body and "rf-palette-pick" in body for body in items.values())
    mean_width = items["mean_width"]
    assert '<span class="rf-lo">0</span>' in mean_width  # the range set, at every level
    assert '<span class="rf-hi">12.5+</span>' in mean_width


def test_offline_page_opens_on_the_layer_that_shows(runs, tmp_path):
    """The first look (the demo's page with no view in its URL): the layer that stands out on
    the page (mean width, viridis), not the pale-yellow count, over the sample's extent."""
    config = load_config(runs.with_png)
    dom = browse((config.dir_web_tiles / VIEWER_NAME).resolve().as_uri(), tmp_path / "profile")
    shown = re.findall(r'<div class="rf-legend-item" data-stat="([^"]+)">', dom)
    assert shown == ["mean_width"]
    zoom = int(re.search(r"zoom (\d+)", dom).group(1))
    assert config.z_max - 1 <= zoom <= config.z_max  # the sample fills the screen
