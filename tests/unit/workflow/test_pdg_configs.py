"""Every real PDG config loads, PDG's defaults and meanings, keys refused with their path.

The configs are the 32 that PDG and its users committed (../shared/data/pdg-configs, sources
in its SOURCES.md); each is loaded unchanged except that the paths rasterflow writes to or
reads from point into a temporary folder.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest

from rasterflow.rasterize_core.errors import ConfigError
from rasterflow.workflow.config import (
    IGNORED_KEYS,
    RasterflowConfig,
    Statistic,
    load_config,
    parse_config,
)
from rasterflow.workflow.pdg_keys import PDG_DEFAULTS, PDG_KEYS, PDG_STATISTIC_KEYS
from rasterflow.workflow.value_ranges import write_updated_config
from tests.helpers.paths import REPO

PDG_CONFIGS = REPO.parent / "shared" / "data" / "pdg-configs"
CONFIG_FILES = sorted(PDG_CONFIGS.glob("*.json")) + sorted(PDG_CONFIGS.glob("derived/*.json"))
REFUSED = {"viz-info__darts_run_config.json": "clip_to_footprint"}
PATH_KEYS = ("dir_staged", "dir_geotiff", "dir_web_tiles", "filename_rasterization_events",
             "filename_rasters_summary", "filename_config")  # fmt: skip
needs_configs = pytest.mark.skipif(
    not PDG_CONFIGS.is_dir(), reason=f"PDG's configs not found at {PDG_CONFIGS}"
)
COUNT = {"name": "n", "weight_by": "count", "property": "centroids_per_pixel"}


def pointed_at(path: Path, folder: Path) -> Path:
    """The config at `path`, its rasterflow paths moved into `folder`; every other key kept."""
    raw = json.loads(path.read_text())
    raw |= {key: str(folder / key) for key in PATH_KEYS}
    copied = folder / path.name
    copied.write_text(json.dumps(raw))
    return copied


def problems_of(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return caught.value.problems


# ---------------------------------------------------------------- PDG's own configs


@needs_configs
def test_there_are_32_configs():
    assert len(CONFIG_FILES) == 32


@needs_configs
@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_pdg_config_loads_but_one(path, tmp_path):
    copied = pointed_at(path, tmp_path)
    if path.name in REFUSED:
        with pytest.raises(ConfigError) as caught:
            load_config(copied)
        assert caught.value.problems == [
            "clip_to_footprint: unknown key; did you mean `deduplicate_clip_to_footprint`?"
        ]
        return
    config = load_config(copied)
    raw = json.loads(copied.read_text())
    assert config.input_mapping() == raw  # every key kept, PDG-only ones too
    assert set(config.ignored_keys()) == set(raw) - set(RasterflowConfig.model_fields)


@needs_configs
def test_pdg_updated_config_loads_with_pdgs_level_ranges(tmp_path):
    # PDG writes [null, max] where only the max was missing: the min is the general one.
    config = load_config(pointed_at(PDG_CONFIGS / "viz-raster__minimal-example_config__updated"
                                    ".json", tmp_path))  # fmt: skip
    count = config.statistics[0]
    assert count.val_range_at(13) == (0, 1.0)
    assert count.val_range_at(0) == (0, 6200.999999976127)


def test_one_line_names_the_ignored_keys(caplog):
    raw = {"enable_stager": False, "dir_staged_local": "/tmp/staged", "deduplicate": None,
           "deduplicate_clip_method": "within", "title": "IWP"}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="rasterflow"):
        config = parse_config(raw, "iwp.json")
    lines = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert lines == ["iwp.json: PDG keys rasterflow does not use, ignored: deduplicate, "
                     "deduplicate_clip_method, dir_staged_local, enable_stager, title"]  # fmt: skip
    assert config.ignored_keys() == sorted(raw)


def test_no_line_without_ignored_keys(caplog):
    with caplog.at_level(logging.INFO, logger="rasterflow"):
        parse_config({"z_range": [0, 3]})
    assert not [r for r in caplog.records if "ignored" in r.getMessage()]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"zrange": [0, 3]}, "zrange: unknown key; did you mean `z_range`?"),
        ({"clip_to_footprint": True}, "did you mean `deduplicate_clip_to_footprint`?"),
        ({"enable_staging": True}, "enable_staging: unknown key; did you mean `enable_stager`?"),
        ({"statistics": [COUNT | {"nodata_value": 0}]},
         "statistics[0].nodata_value: unknown key; did you mean `nodata_val`?"),
    ],
)  # fmt: skip
def test_keys_no_pdg_version_knew_are_refused(raw, expected):
    assert any(expected in p for p in problems_of(raw)), problems_of(raw)


def test_the_six_unread_prop_keys_are_ignored_not_fields():
    unread = {"prop_area", "prop_tile", "prop_centroid_tile", "prop_filename",
              "prop_identifier", "prop_centroid_within_tile"}  # fmt: skip
    assert unread <= IGNORED_KEYS and not unread & set(RasterflowConfig.model_fields)
    config = parse_config({key: "renamed" for key in unread} | {"prop_centroid_x": "cx"})
    assert config.prop_centroid_x == "cx"


def test_rasterflow_reads_only_pdg_keys_besides_its_own():
    own = {"cog", "stac", "web_tiles", "strict"}  # rasterflow's additions to PDG's keys
    assert set(RasterflowConfig.model_fields) - PDG_KEYS == own
    assert set(Statistic.model_fields) == PDG_STATISTIC_KEYS  # a statistic: PDG's keys only


# ---------------------------------------------------------------- defaults and meanings


def test_tms_default_is_pdgs_and_morecantile_has_it():
    config = parse_config({})
    assert config.tms_id == PDG_DEFAULTS["tms_id"] == "WGS1984Quad"


def test_a_statistic_without_nodata_masks_nothing():
    # PDG merges statistics shallowly: omitted nodata_val is None, nodata_color PDG's
    # Palette default (transparent), palette white to black.
    stat = parse_config({"statistics": [COUNT]}).statistics[0]
    assert stat.nodata_val is None and stat.nodata_color == "#ffffff00"
    assert stat.palette == ["#FFFFFF", "#000000"]


def test_default_statistics_keep_pdgs_nodata_zero():
    count, coverage = parse_config({}).statistics
    assert (count.nodata_val, coverage.nodata_val) == (0, 0)
    assert count.resampling_method == "sum" and coverage.resampling_method == "average"


# ---------------------------------------------------------------- refused, with the path


@pytest.mark.parametrize(
    ("stat_change", "expected"),
    [
        ({"val_range": [1, 0]}, "statistics[0].val_range: [1.0, 0.0] is reversed"),
        ({"z_config": {"2": {"val_range": [5, 3]}}},
         "statistics[0].z_config[2].val_range: [5.0, 3.0] is reversed"),
        ({"z_config": {"9": {"val_range": [0, 1]}}},
         "statistics[0].z_config[9]: zoom outside z_range [0, 5]"),
        ({"aggregation_method": "average"},
         "statistics[0].aggregation_method: aggregation 'average' is not available"),
        ({"property": "Area", "weight_by": "area", "aggregation_method": "median"},
         "statistics[0].aggregation_method: aggregation 'median' is not available"),
    ],
)  # fmt: skip
def test_statistic_problems_name_their_path(stat_change, expected):
    problems = problems_of({"z_range": [0, 5], "statistics": [COUNT | stat_change]})
    assert any(expected in p for p in problems), problems


def test_open_ends_are_not_reversed():
    stat = parse_config({"statistics": [COUNT | {"val_range": [5, None]}]}).statistics[0]
    assert stat.val_range == (5, None)


# ---------------------------------------------------------------- __updated.json


def test_updated_config_is_the_input_over_pdgs_defaults(tmp_path):
    raw = {"filename_config": str(tmp_path / "iwp.json"), "z_range": [0, 2],
           "enable_3dtiles": False, "dir_staged_remote": "/scratch/staged",
           "statistics": [COUNT | {"val_range": [0, None], "palette": ["red", "blue"],
                                   "z_config": {"1": {"val_range": [0, 9]}}}]}  # fmt: skip
    config = parse_config(copy.deepcopy(raw))
    write_updated_config(config, {0: {"n": (0.0, 40.0)}, 1: {"n": (0.0, 9.0)},
                                  2: {"n": (0.0, 3.0)}})  # fmt: skip
    updated = json.loads((tmp_path / "iwp__updated.json").read_text())
    for key, value in raw.items():  # every input key, as given (but the filled z_config)
        if key != "statistics":
            assert updated[key] == value, key
    for key, value in PDG_DEFAULTS.items():  # PDG's defaults under it
        if key not in raw:
            assert updated[key] == value, key
    stat = updated["statistics"][0]
    without_levels = {k: v for k, v in raw["statistics"][0].items() if k != "z_config"}
    assert {k: v for k, v in stat.items() if k != "z_config"} == without_levels
    assert stat["z_config"] == {"0": {"val_range": [0.0, 40.0]}, "1": {"val_range": [0.0, 9.0]},
                                "2": {"val_range": [0.0, 3.0]}}  # fmt: skip


def test_updated_config_of_defaults_has_pdgs_statistics(tmp_path):
    config = parse_config({"filename_config": str(tmp_path / "c.json")})
    write_updated_config(config, {13: {"polygon_count": (0.0, 2.0), "coverage": (0.0, 1.0)}})
    updated = json.loads((tmp_path / "c__updated.json").read_text())
    assert [s["name"] for s in updated["statistics"]] == ["polygon_count", "coverage"]
    assert "palette" not in updated["statistics"][0]  # PDG's defaults have none
    assert updated["statistics"][0]["z_config"] == {"13": {"val_range": [0.0, 2.0]}}
    assert updated["tms_id"] == "WGS1984Quad"
    assert set(updated) == set(PDG_DEFAULTS)
