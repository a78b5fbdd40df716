"""Debian's headless Chromium on the offline map page: load it, screenshot it, and the screen
the web tiles should give, composited where the grid puts them (independent of the page)."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rasterflow.rasterize_core.tiles import Tile, xy_bounds
from rasterflow.workflow.layout import VIEWER_NAME, webtile_path
from rasterflow.workflow.products.viewer_data import existing_tiles

BACKGROUND = (0xF4, 0xF3, 0xEF)  # #map background in workflow/static/viewer.css
WINDOW = (1000, 700)
# Where the controls sit at WINDOW: zoom + title (top left), layers (top right),
# legend (bottom right), scale (bottom left). The map is compared everywhere else.
CONTROLS = [(0, 0, 330, 150), (820, 0, 1000, 130), (680, 480, 1000, 700), (0, 640, 140, 700)]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


needs_chromium = pytest.mark.skipif(
    chromium() is None,
    reason="Chromium not installed (`make system-deps`: apt-get install chromium)",
)


def browse(url: str, profile: Path, screenshot: Path | None = None, window=WINDOW) -> str:
    """Load `url` in headless Chromium; write a screenshot or return the DOM after scripts ran."""
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
        f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}",
        "--virtual-time-budget=8000",
    ]  # fmt: skip
    command += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    done = subprocess.run(command + [url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    if screenshot:
        assert screenshot.exists(), done.stderr[-2000:]
    return done.stdout


def page_url(config, view: str) -> str:
    return (Path(config.dir_web_tiles) / VIEWER_NAME).resolve().as_uri() + "#" + view


def screen_image(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(np.int16)


def expected_screen(config, stat: str, z: int, center_lonlat, window=WINDOW) -> np.ndarray:
    """The tiles of `stat` at zoom z composited over the background where the grid puts
    them, for a map of `window` pixels centred on `center_lonlat` at map zoom z."""
    height, width = config.tile_size
    left, bottom, right, top = xy_bounds(config.tms_id, Tile(0, 0, 0))
    scale_x, scale_y = width / (right - left) * 2**z, height / (top - bottom) * 2**z
    lon, lat = center_lonlat
    # Leaflet: pixel origin = round(project(center) - size / 2), Math.round (half up)
    origin_x = math.floor((lon - left) * scale_x - window[0] / 2 + 0.5)
    origin_y = math.floor((top - lat) * scale_y - window[1] / 2 + 0.5)
    canvas = np.empty((window[1], window[0], 3), dtype=np.float64)
    canvas[:] = BACKGROUND
    for x, y in existing_tiles(config, [stat]).get(z, ()):
        with Image.open(webtile_path(config, Tile(z, x, y), stat)) as image:
            rgba = np.asarray(image.convert("RGBA")).astype(np.float64)
        col, row = x * width - origin_x, y * height - origin_y
        c0, r0 = max(col, 0), max(row, 0)
        c1, r1 = min(col + width, window[0]), min(row + height, window[1])
        if c0 >= c1 or r0 >= r1:
            continue
        tile = rgba[r0 - row : r1 - row, c0 - col : c1 - col]
        alpha = tile[..., 3:] / 255.0
        canvas[r0:r1, c0:c1] = tile[..., :3] * alpha + canvas[r0:r1, c0:c1] * (1 - alpha)
    return np.rint(canvas).astype(np.int16)


def map_mask(window=WINDOW) -> np.ndarray:
    mask = np.ones((window[1], window[0]), dtype=bool)
    for c0, r0, c1, r1 in CONTROLS:
        mask[r0:r1, c0:c1] = False
    return mask


def assert_drawn_as_expected(shot: np.ndarray, expected: np.ndarray, min_coloured: int) -> None:
    """Coloured pixels where the tiles have colour, background where they have none."""
    mask = map_mask((shot.shape[1], shot.shape[0]))
    coloured = (np.abs(expected - np.array(BACKGROUND)).max(axis=2) > 0) & mask
    empty = ~coloured & mask
    difference = np.abs(shot - expected).max(axis=2)
    assert coloured.sum() >= min_coloured, "the view holds too few data pixels to test"
    assert empty.sum() > 10_000, "the view holds too few empty pixels to test"
    # data: the tile's colour (blending and rounding may differ by a few levels)
    assert np.percentile(difference[coloured], 99) <= 3, difference[coloured].max()
    assert (np.abs(shot - np.array(BACKGROUND)).max(axis=2)[coloured] > 0).mean() > 0.99
    # no data: the background, exactly
    assert (difference[empty] <= 1).all(), np.argwhere((difference > 1) & empty)[:10]
