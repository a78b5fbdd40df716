"""The offline map page of the shared demo run, read without a browser: nothing loaded from
outside, beside the tiles, and the data it embeds (layers, ranges, outlines, grid). The browser
draws it in tests/system/test_browser.py."""

from __future__ import annotations

import html.parser
import json
import re
from pathlib import Path

import pytest

from rasterflow.workflow.layout import VIEWER_NAME
from rasterflow.workflow.products.viewer import page_data
from rasterflow.workflow.products.viewer_data import existing_tiles


@pytest.fixture
def demo(demo_run):
    """The shared demo run's config: its products (the map page) are published."""
    return demo_run.config


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


def test_page_data_marks_levels_too_big_for_outlines(demo, monkeypatch):
    import rasterflow.workflow.products.viewer as view

    monkeypatch.setattr(view, "OUTLINES_PER_LEVEL", 2)
    data = page_data(demo, {}, existing_tiles(demo))
    assert set(data["outlines"]) == {"9", "10"}  # one tile each; the others have 4 or 6
    assert any("z13" in note for note in data["notes"])
