"""The parts of `rasterflow serve` and `rasterflow export` that need no server or run:
query parameters, styles and their ranges, the page's first layer, the export's pixel box."""

from __future__ import annotations

import json
import os

import pytest

from rasterflow.rasterize_core import palette as palettes
from rasterflow.rasterize_core.errors import ParameterError
from rasterflow.workflow.config import parse_config
from rasterflow.workflow.demo.synthetic import IWP_STATISTICS, demo_config
from rasterflow.workflow.products.export import choose_level, grid_box, level_area
from rasterflow.workflow.products.serve.launch import is_loopback
from rasterflow.workflow.products.serve.styles import (
    StyleBook,
    check_parameters,
    lut_for,
    parse_palette,
    parse_range,
    split_colours,
)
from rasterflow.workflow.products.viewer_data import default_layer


# -- query parameters ---------------------------------------------------------------------
def test_colour_lists_split_outside_parentheses():
    assert split_colours("#000, rgb(1, 2, 3),red") == ["#000", "rgb(1, 2, 3)", "red"]
    assert split_colours("hsl(120 50% 50% / 0.5)") == ["hsl(120 50% 50% / 0.5)"]


def test_palette_parameter_forms():
    assert parse_palette([]) is None
    assert parse_palette(["viridis"]) == "viridis"
    assert parse_palette(["magma_r"]) == "magma_r"
    assert parse_palette(["#000,#fff"]) == ("#000", "#fff")
    assert parse_palette(["#000", "#fff"]) == ("#000", "#fff")  # repeated
    assert parse_palette(["red"]) == "red"  # one colour, as a config may write it
    assert (lut_for("red") == palettes.build_lut(["red"])).all()


@pytest.mark.parametrize("values, words", [
    (["virdis"], "known colormaps are"),
    (["#000,notacolour"], "notacolour"),
    (["#000,"], "empty"),
    (["#000"] * 65, "65 colours; at most 64"),
])  # fmt: skip
def test_bad_palettes_say_why(values, words):
    with pytest.raises(ParameterError, match=words):
        parse_palette(values)


def test_range_parameter():
    assert parse_range(None) is None
    assert parse_range("0,0.5") == (0.0, 0.5)
    assert parse_range("-1e3,2") == (-1000.0, 2.0)
    assert parse_range("3,3") == (3.0, 3.0)
    for text, words in (
        ("1", "two numbers"),
        ("a,b", "two numbers"),
        ("5,1", "reversed"),
        ("nan,1", "finite"),
        ("0,inf", "finite"),
        ("1,2,3", "two numbers"),
    ):
        with pytest.raises(ParameterError, match=words):
            parse_range(text)


def test_unknown_parameters_are_named():
    check_parameters(["palette"], ("palette", "range"))
    with pytest.raises(ParameterError, match="unknown parameter pallete; .* palette, range"):
        check_parameters(["pallete"], ("palette", "range"))


# -- styles: the config's, the level's range from __updated.json, or the request's ------------
def _config(tmp_path, **extra):
    raw = {"filename_config": str(tmp_path / "config.json"), "z_range": [10, 13],
           "dir_geotiff": str(tmp_path / "geotiff"),
           "filename_rasters_summary": str(tmp_path / "summary.csv"),
           "statistics": IWP_STATISTICS} | extra  # fmt: skip
    return parse_config(raw)


def _write_ranges(config, ranges: dict[int, dict[str, list]]) -> None:
    stats = [{"name": stat.name, "z_config": {str(z): {"val_range": by_stat[stat.name]}
                                              for z, by_stat in ranges.items()}}
             for stat in config.statistics]  # fmt: skip
    config.updated_config_path().write_text(json.dumps({"statistics": stats}))


def test_style_defaults_are_the_config_and_the_levels_range(tmp_path):
    config = _config(tmp_path)
    _write_ranges(config, {13: {"iwp_count": [0, 3], "iwp_coverage": [0, 1]},
                           12: {"iwp_count": [0, 9], "iwp_coverage": [0, 1]}})  # fmt: skip
    book = StyleBook(config)
    style = book.style("iwp_count", 12)
    assert style.band == 1 and style.val_range == (0.0, 9.0)
    assert (style.lut == palettes.build_lut(["#f8ff1f1A", "#f8ff1f"])).all()
    assert style.nodata_val == 0 and style.nodata_rgba == (255, 255, 255, 0)
    assert book.style("iwp_coverage", 13).band == 2
    other = book.style("iwp_count", 12, "viridis", (0.0, 0.5))
    assert other.val_range == (0.0, 0.5) and (other.lut == palettes.build_lut("viridis")).all()
    assert len({style.digest, other.digest, book.style("iwp_count", 13).digest}) == 3


def test_ranges_are_read_again_when_the_run_rewrites_them(tmp_path):
    config = _config(tmp_path)
    _write_ranges(config, {13: {"iwp_count": [0, 3], "iwp_coverage": [0, 1]}})
    book = StyleBook(config)
    assert book.style("iwp_count", 13).val_range == (0, 3)
    _write_ranges(config, {13: {"iwp_count": [0, 7], "iwp_coverage": [0, 1]}})
    os.utime(config.updated_config_path(), ns=(1, 10**18))  # a new mtime, even on coarse clocks
    assert book.style("iwp_count", 13).val_range == (0, 7)


def test_a_level_without_a_range_yet_takes_the_configs(tmp_path):
    """A run still going: its level's range is not written yet; the config's ends, the
    open one filled as `level_ranges` fills it with no summary (lo + 1)."""
    config = _config(tmp_path)
    _write_ranges(config, {13: {"iwp_count": [0, 3], "iwp_coverage": [0, 1]}})
    book = StyleBook(config)
    assert book.style("iwp_count", 10).val_range == (0.0, 1.0)
    assert book.style("iwp_coverage", 10).val_range == (0.0, 1.0)


# -- the first look -----------------------------------------------------------------------------
def test_first_layer_is_the_one_that_stands_out(tmp_path):
    demo = parse_config(demo_config(tmp_path, "WorldCRS84Quad", (9, 13)))
    assert default_layer(demo) == "mean_width"  # viridis, not the pale-yellow count
    assert default_layer(_config(tmp_path)) == "iwp_coverage"


def test_loopback_addresses():
    assert all(map(is_loopback, ["127.0.0.1", "localhost", "::1", "127.0.0.2"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.4", "example.org"]))


# -- export: the box on a level's pixel grid, by hand ----------------------------------------
PX13 = 180 / 2**13 / 256  # WorldCRS84Quad z13: a tile is 180 / 2^13 degrees, 256 pixels


def test_box_snaps_outward_to_whole_pixels(tmp_path):
    config = _config(tmp_path)
    box = (-180 + 1000.3 * PX13, 90 - 2999.5 * PX13, -180 + 1499.2 * PX13, 90 - 2000 * PX13)
    area = level_area(config, box, 13)
    assert (area.col0, area.col1, area.row0, area.row1) == (1000, 1500, 2000, 3000)
    assert (area.width, area.height, area.pixels) == (500, 1000, 500_000)
    coarser = level_area(config, box, 12)  # half the pixels each way, snapped outward
    assert (coarser.col0, coarser.col1, coarser.row0, coarser.row1) == (500, 750, 1000, 1500)


def test_box_is_clipped_to_the_grid(tmp_path):
    config = _config(tmp_path)
    area = level_area(config, (179.9, -95, 185, -89.9), 10)
    columns = 2 * 2**10 * 256
    assert area.col1 == columns and area.row1 == 2**10 * 256
    with pytest.raises(ParameterError, match="outside"):
        level_area(config, (190, 0, 200, 1), 10)


def test_level_is_the_finest_under_the_limit(tmp_path):
    config = _config(tmp_path)
    box = (-180, 90 - 1024 * PX13, -180 + 1024 * PX13, 90)  # 1024 x 1024 px at z13
    assert choose_level(config, box, None, 1024 * 1024).z == 13
    assert choose_level(config, box, None, 1024 * 1024 - 1).z == 12  # 512 x 512
    assert choose_level(config, box, None, 128 * 128).z == 10
    with pytest.raises(ParameterError, match=r"z13 gives 1024 x 1024 = 1,048,576 .*z12 fits"):
        choose_level(config, box, 13, 1000_000)
    with pytest.raises(ParameterError, match="even at z10"):
        choose_level(config, box, None, 100)
    with pytest.raises(ParameterError, match="levels 10 to 13"):
        choose_level(config, box, 14, 10**9)


def test_bad_boxes(tmp_path):
    config = _config(tmp_path)
    for bbox, words in (((1, 0, 0, 1), "W < E"), ((0, 0, 1, float("nan")), "finite"),
                        ((0, 0, 200, 1), "-180..180")):  # fmt: skip
        with pytest.raises(ParameterError, match=words):
            grid_box(config, bbox, "lonlat")
    assert grid_box(config, (0, 0, 200, 1), "grid") == (0, 0, 200, 1)
