"""The PDG config loads unchanged; every bad key is named with its path and a hint."""

import json

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from rasterflow.rasterize_core.errors import ConfigError
from rasterflow.workflow.cli import main
from rasterflow.workflow.config import load_config, parse_config

PDG_CONFIG = {  # as PDG's workflow repository writes them, with keys only staging uses
    "deduplicate_method": None, "deduplicate_clip_to_footprint": False,
    "dir_input": "/data/input/", "ext_input": ".gpkg", "dir_staged": "/data/staged/",
    "dir_geotiff": "/data/geotiff/", "dir_web_tiles": "/data/web_tiles/",
    "filename_staging_summary": "/data/staging_summary.csv",
    "filename_rasterization_events": "/data/raster_events.csv",
    "filename_rasters_summary": "/data/raster_summary.csv",
    "simplify_tolerance": 0.1, "tms_id": "WGS1984Quad", "z_range": [0, 15],
    "geometricError": 57, "z_coord": 0, "deduplicate_keep_rules": [["Date", "larger"]],
    "statistics": [{
        "name": "iwp_coverage", "weight_by": "area", "property": "area_per_pixel_area",
        "aggregation_method": "sum", "resampling_method": "average", "val_range": [0, 1],
        "palette": ["#f8ff1f1A", "#f8ff1f"], "nodata_val": 0, "nodata_color": "#ffffff00",
        "z_config": {"0": {"val_range": [0, 0.5]}},
    }],
}  # fmt: skip


def problems_of(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return caught.value.problems


def test_pdg_config_loads_unchanged():
    config = parse_config(PDG_CONFIG)
    assert config.tms_id == "WGS1984Quad"
    assert config.z_range == (0, 15)
    assert config.statistics[0].val_range_at(0) == (0, 0.5)
    assert config.statistics[0].val_range_at(5) == (0, 1)


def test_defaults_are_pdgs():
    # pdgworkflow's ConfigManager.defaults (../shared/data/pdg-configs/derived/)
    config = parse_config({})
    assert config.stat_names == ["polygon_count", "coverage"]
    assert config.tile_size == (256, 256) and config.z_range == (0, 13)
    assert config.tms_id == "WGS1984Quad"
    assert str(config.filename_rasterization_events) == "rasterization_events.csv"
    count, coverage = config.statistics
    assert count.val_range == (0, None) and coverage.val_range == (0, 1)
    assert count.nodata_val == 0 and count.nodata_color == "#ffffff00"
    assert count.palette == ["#FFFFFF", "#000000"]  # pdgraster's Palette default


def test_config_is_frozen():
    config = parse_config({})
    with pytest.raises(ValidationError, match="frozen"):
        config.z_range = (1, 2)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"z_rnage": [0, 3]}, "z_rnage: unknown key; did you mean `z_range`?"),
        ({"z_range": [5, 2]}, "z_range [5, 2] is reversed"),
        ({"z_range": [0, 40]}, "outside WGS1984Quad's zooms"),  # PDG's default grid
        ({"tms_id": "WorldCRS84Qaud"}, "did you mean `WorldCRS84Quad`?"),
        ({"tile_size": "big"}, "tile_size: Input should be a valid tuple"),
        ({"z_range": [0]}, "z_range[1]: item missing"),
    ],
)
def test_top_level_errors_name_the_key(change, expected):
    problems = problems_of(change)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "stat_change, expected",
    [
        (
            {"aggregation_method": "average"},
            "statistics[1].aggregation_method: aggregation 'average' is not",
        ),
        ({"resampling_method": "smooth"}, "statistics[1].resampling_method: unknown resampling"),
        ({"palette": ["#12345G"]}, "statistics[1].palette: palette item [0]: colour '#12345G'"),
        ({"nodata_color": "nocolour"}, "statistics[1].nodata_color: colour 'nocolour'"),
        ({"propery": "x"}, "statistics[1].propery: unknown key; did you mean `property`?"),
        ({"property": "centroids_per_pixel"}, "needs weight_by count"),
        ({"palette": 5}, "statistics[1].palette: palette must be a list of CSS colours or a"),
        (
            {"z_config": {"3": {"val_rnge": [0, 1]}}},
            "statistics[1].z_config[3].val_rnge: unknown key; did you mean `val_range`?",
        ),
        ({"weight_by": "length"}, "statistics[1].weight_by: Input should be 'count' or 'area'"),
    ],
)
def test_statistic_errors_name_the_path(stat_change, expected):
    good = {"name": "a", "weight_by": "count", "property": "centroids_per_pixel"}
    bad = {"name": "b", "weight_by": "area", "property": "area_per_pixel_area"} | stat_change
    problems = problems_of({"statistics": [good, bad]})
    assert any(expected in p for p in problems), problems


def test_keyword_with_wrong_weight():
    stat = {"name": "a", "weight_by": "count", "property": "area_within_pixel"}
    assert any("needs weight_by area" in p for p in problems_of({"statistics": [stat]}))


def test_area_weighted_median_is_rejected():
    stat = {"name": "a", "weight_by": "area", "property": "Width", "aggregation_method": "median"}
    assert any("'median' is not available" in p for p in problems_of({"statistics": [stat]}))


def test_interpolating_resampling_warns_and_loads():
    stat = {"name": "a", "weight_by": "area", "property": "area_per_pixel_area",
            "resampling_method": "bilinear"}  # fmt: skip
    with pytest.warns(UserWarning, match="computed as 'average'"):
        parse_config({"statistics": [stat]})


def test_cli_exits_2_naming_the_key(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"z_range": [0, 3], "statisitcs": []}))
    result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 2
    assert "statisitcs: unknown key; did you mean `statistics`?" in result.output


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not readable JSON"):
        load_config(broken)
