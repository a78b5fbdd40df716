"""The offline map page, drawn by a real browser (Debian's headless Chromium).

The browser tests take a screenshot of the page at a view set in its URL and
compare it, pixel by pixel, with the web tiles composited where the grid puts
them: coloured pixels where the data are, the page's background where there
are none. They are skipped (with the reason) where Chromium is not installed:
`make system-deps` installs it, as CI does.
"""

from __future__ import annotations

import html.parser
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rasterflow.rasterize_core.tiles import Tile, xy_bounds
from rasterflow.workflow.config import load_config, parse_config
from rasterflow.workflow.demo.synthetic import make_sample
from rasterflow.workflow.layout import VIEWER_NAME, webtile_path
from rasterflow.workflow.products.viewer import (
    ViewerError,
    map_grid,
    page_data,
    tile_url_template,
    write_viewer,
)
from rasterflow.workflow.products.viewer_data import existing_tiles
from rasterflow.workflow.run import run_workflow

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


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's synthetic sample, run through the whole pipeline, with its map page."""
    root = tmp_path_factory.mktemp("view-demo")
    sample = make_sample(root)
    config = load_config(sample.config_path)
    report = run_workflow(config, live_progress=False)
    assert report.exit_code == 0
    write_viewer(config)
    return config


def synthetic_tiles(root: Path, tile_size: int, tiles: dict[Tile, tuple], structure=None):
    """A config over hand-made web tiles: each a solid colour, its right half transparent."""
    raw = {"dir_staged": str(root / "staged"), "dir_geotiff": str(root / "geotiff"),
           "dir_web_tiles": str(root / "web"), "filename_config": str(root / "config.json"),
           "filename_rasterization_events": str(root / "events.csv"),
           "filename_rasters_summary": str(root / "summary.csv"),
           "tms_id": "WorldCRS84Quad", "z_range": [0, 2], "tile_size": [tile_size, tile_size],
           "statistics": [{"name": "cover", "weight_by": "area",
                           "property": "area_per_pixel_area", "val_range": [0, 1]}]}  # fmt: skip
    if structure:
        raw["tile_path_structure"] = structure
    config = parse_config(raw)
    for tile, colour in tiles.items():
        rgba = np.zeros((tile_size, tile_size, 4), dtype=np.uint8)
        rgba[:, : tile_size // 2] = colour
        path = webtile_path(config, tile, "cover")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgba).save(path)
    return config


# -- the page, without a browser ----------------------------------------------------------
class _Elements(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def embedded_data(config) -> dict:
    text = (Path(config.dir_web_tiles) / VIEWER_NAME).read_text()
    match = re.search(
        r'<script id="rasterflow-data" type="application/json">(.*?)</script>', text, re.S
    )
    return json.loads(match.group(1))


def test_page_loads_nothing_from_outside(demo):
    text = (Path(demo.dir_web_tiles) / VIEWER_NAME).read_text()
    parser = _Elements()
    parser.feed(text)
    for tag, attrs in parser.tags:
        assert not (tag in ("script", "img", "iframe") and attrs.get("src")), (tag, attrs)
        assert tag != "link", (tag, attrs)
    assert "@import" not in text and not re.search(r"url\(\s*['\"]?(https?:)?//", text)
    assert "Leaflet 1.9.4" in text and "BSD 2-Clause License" in text  # vendored, with its license


def test_page_sits_beside_the_tiles_not_inside(demo):
    page = Path(demo.dir_web_tiles) / VIEWER_NAME
    assert page.exists()
    for stat in demo.stat_names:  # nothing but z/x/y.png under a statistic's folder
        for path in (Path(demo.dir_web_tiles) / stat).rglob("*"):
            assert path.is_dir() or re.fullmatch(r"\d+/\d+/\d+\.png",
                                                 "/".join(path.parts[-3:])), path  # fmt: skip


def test_page_data(demo):
    data = embedded_data(demo)
    tiles = existing_tiles(demo)
    assert [layer["name"] for layer in data["layers"]] == demo.stat_names
    updated = json.loads(demo.updated_config_path().read_text())
    for layer, stat in zip(data["layers"], updated["statistics"], strict=True):
        ranges = {z: entry["val_range"] for z, entry in stat["z_config"].items()}
        assert layer["ranges"] == ranges  # the ranges the tiles were coloured with
        assert len(layer["colors"]) > 2 and layer["colors"][0].startswith("rgba(")
        z, (x, y) = max(tiles), min(tiles[max(tiles)])
        url = layer["url"].format(z=z, x=x, y=y)
        assert (Path(demo.dir_web_tiles) / url).exists()  # relative to the page
    for z, level in tiles.items():  # outlines: one feature per existing tile
        features = data["outlines"][str(z)]["features"]
        assert sorted((f["properties"]["x"], f["properties"]["y"]) for f in features) == sorted(
            level
        )
        assert sorted(data["known"][str(z)]) == sorted(f"{x}/{y}" for x, y in level)
    assert data["grid"] == {"code": "rasterflow:WorldCRS84Quad", "projection": "lonlat",
                            "origin": [-180.0, 90.0], "extent0": [180.0, 180.0],
                            "tile_size": [256, 256]}  # fmt: skip


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
    with pytest.raises(Exception, match="no web tiles"):
        write_viewer(config)


# -- in the browser ------------------------------------------------------------------------
@needs_chromium
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


@needs_chromium
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


@needs_chromium
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


@needs_chromium
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


def test_page_data_marks_levels_too_big_for_outlines(demo, monkeypatch):
    import rasterflow.workflow.products.viewer as view

    monkeypatch.setattr(view, "OUTLINES_PER_LEVEL", 2)
    data = page_data(demo, {}, existing_tiles(demo))
    assert set(data["outlines"]) == {"9", "10"}  # one tile each; the others have 4 or 6
    assert any("z13" in note for note in data["notes"])
