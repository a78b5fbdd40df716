"""PDG JSON config -> frozen, validated models, before anything runs.

The same keys and meanings as PDG's staging/raster/workflow tools, so an
existing config runs unchanged. Keys only those tools use are accepted and
ignored; any other key is an error with its path and a "did you mean" hint.
"""

from __future__ import annotations

import builtins
import difflib
import json
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rasterflow.rasterize_core import palette as palettes
from rasterflow.rasterize_core.errors import ConfigError
from rasterflow.rasterize_core.pyramid import INTERPOLATING, RESAMPLING_METHODS
from rasterflow.rasterize_core.statistics import (
    AREA_AGGREGATIONS,
    AREA_KEYWORDS,
    COUNT_AGGREGATIONS,
    COUNT_KEYWORDS,
)
from rasterflow.rasterize_core.tiles import available_tms, get_tms, grid_problem

# Keys that PDG's staging, 3D-tiles and workflow tools read: accepted, unused here.
IGNORED_KEYS = frozenset(
    {
        "enable_3dtiles", "enable_raster", "enable_web_tiles", "enable_staging",
        "generate_wmtsCapabilities", "title", "doi", "simplify_tolerance", "input_crs",
        "version", "geometricError", "z_coord", "dir_input", "dir_3dtiles", "dir_footprints",
        "dir_output", "ext_input", "ext_footprints", "filename_staging_summary",
        "deduplicate_keep_rules", "deduplicate_overlap_tolerance", "deduplicate_overlap_both",
        "deduplicate_centroid_tolerance", "deduplicate_distance_crs",
        "deduplicate_clip_to_footprint", "dir_web_tiles_3d", "tile_size_3d",
    }
)  # fmt: skip

FROZEN = ConfigDict(extra="forbid", frozen=True)
ValRange = tuple[float | None, float | None]


class ZConfig(BaseModel):
    model_config = FROZEN
    val_range: ValRange | None = None


class Statistic(BaseModel):
    model_config = FROZEN

    name: str = Field(min_length=1)
    weight_by: Literal["count", "area"]
    property: str = Field(min_length=1)
    aggregation_method: str = "sum"
    resampling_method: str = "average"
    val_range: ValRange = (None, None)
    z_config: dict[int, ZConfig] = Field(default_factory=dict)
    palette: list[str] | str = Field(default_factory=lambda: ["#ffffff", "#000000"])
    nodata_val: float | None = 0
    nodata_color: str = "#ffffff00"

    @field_validator("palette", mode="before")
    @classmethod
    def _palette_parses(cls, value: Any) -> Any:
        problem = palettes.is_valid_palette(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("nodata_color")
    @classmethod
    def _nodata_color_parses(cls, value: str) -> str:
        palettes.parse_color(value)
        return value

    @field_validator("resampling_method")
    @classmethod
    def _known_resampling(cls, value: str) -> str:
        if value not in RESAMPLING_METHODS:
            raise ValueError(f"unknown resampling {value!r}; one of {sorted(RESAMPLING_METHODS)}")
        if value in INTERPOLATING:
            warnings.warn(
                f"resampling {value!r} has nothing to interpolate in an aligned 2x2 "
                "reduction: computed as 'average'",
                stacklevel=2,
            )
        return value

    @model_validator(mode="after")
    def _property_fits_weight(self) -> Statistic:
        keywords = AREA_KEYWORDS if self.weight_by == "area" else COUNT_KEYWORDS
        wrong = COUNT_KEYWORDS if self.weight_by == "area" else AREA_KEYWORDS
        if self.property in wrong:
            raise ValueError(
                f"property {self.property!r} needs weight_by "
                f"{'count' if self.weight_by == 'area' else 'area'}"
            )
        allowed = keywords.get(self.property)
        if allowed is None:
            allowed = AREA_AGGREGATIONS if self.weight_by == "area" else COUNT_AGGREGATIONS
        if self.aggregation_method not in allowed:
            raise ValueError(
                f"aggregation {self.aggregation_method!r} is not available for property "
                f"{self.property!r} with weight_by {self.weight_by}; one of {sorted(allowed)}"
            )
        return self

    def val_range_at(self, z: int) -> ValRange:
        """The configured range at zoom z: z_config first, else the general one."""
        override = self.z_config.get(z)
        if override is not None and override.val_range is not None:
            return override.val_range
        return self.val_range

    @builtins.property  # the field `property` shadows the builtin here
    def needed_column(self) -> str | None:
        if self.property in AREA_KEYWORDS or self.property in COUNT_KEYWORDS:
            return None
        return self.property


class RasterflowConfig(BaseModel):
    model_config = FROZEN

    dir_staged: Path = Path("staged")
    dir_geotiff: Path = Path("geotiff")
    dir_web_tiles: Path = Path("web_tiles")
    ext_staged: str = ".gpkg"
    ext_web_tiles: Literal[".png"] = ".png"
    filename_rasterization_events: Path = Path("rasterization_events.csv")
    filename_rasters_summary: Path = Path("rasters_summary.csv")
    filename_config: Path = Path("config.json")
    tms_id: str = "WorldCRS84Quad"
    tile_path_structure: tuple[str, ...] = ("style", "tms", "z", "x", "y")
    z_range: tuple[int, int] = (0, 13)
    tile_size: tuple[int, int] = (256, 256)
    statistics: tuple[Statistic, ...] = Field(default_factory=lambda: DEFAULT_STATISTICS)
    prop_centroid_x: str = "staging_centroid_x"
    prop_centroid_y: str = "staging_centroid_y"
    prop_area: str = "staging_area"
    prop_tile: str = "staging_tile"
    prop_centroid_tile: str = "staging_centroid_tile"
    prop_filename: str = "staging_filename"
    prop_identifier: str = "staging_identifier"
    prop_centroid_within_tile: str = "staging_centroid_within_tile"
    prop_duplicated: str = "staging_duplicated"
    deduplicate_at: tuple[str, ...] | None = None
    deduplicate_method: Literal["neighbor", "footprints"] | None = None
    overwrite: bool = False
    cog: bool = False  # Cloud-Optimized GeoTIFFs
    stac: bool = False  # a STAC catalog of the outputs, beside dir_geotiff

    @field_validator("tms_id")
    @classmethod
    def _known_tms(cls, value: str) -> str:
        if value not in available_tms():
            hint = difflib.get_close_matches(value, available_tms(), n=1)
            more = f"; did you mean {hint[0]!r}?" if hint else f"; one of {available_tms()}"
            raise ValueError(f"unknown TMS {value!r}{more}")
        return value

    @field_validator("tile_path_structure")
    @classmethod
    def _path_parts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if sorted(value) != sorted(("style", "tms", "z", "x", "y")) or value[-3:] != (
            "z",
            "x",
            "y",
        ):
            raise ValueError("must order style, tms, z, x, y, ending with z, x, y")
        return value

    @field_validator("tile_size")
    @classmethod
    def _tile_size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not all(16 <= side <= 4096 for side in value):
            raise ValueError("each side must be between 16 and 4096 pixels")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> RasterflowConfig:
        tms = get_tms(self.tms_id)
        z_min, z_max = self.z_range
        if z_min > z_max:
            raise ValueError(f"z_range {list(self.z_range)} is reversed: write [min, max]")
        if z_min < tms.minzoom or z_max > tms.maxzoom:
            raise ValueError(
                f"z_range {list(self.z_range)} is outside {self.tms_id}'s "
                f"zooms [{tms.minzoom}, {tms.maxzoom}]"
            )
        problem = grid_problem(self.tms_id, self.z_range)
        if problem:
            raise ValueError(problem)
        names = [stat.name for stat in self.statistics]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"statistics need unique names, at least one: {names}")
        return self

    @property
    def deduplicate(self) -> bool:
        return bool(self.deduplicate_at) and "raster" in self.deduplicate_at

    @property
    def z_min(self) -> int:
        return self.z_range[0]

    @property
    def z_max(self) -> int:
        return self.z_range[1]

    @property
    def stat_names(self) -> list[str]:
        return [stat.name for stat in self.statistics]

    def updated_config_path(self) -> Path:
        path = self.filename_config
        return path.with_name(f"{path.stem}__updated{path.suffix or '.json'}")


DEFAULT_STATISTICS = (
    Statistic(
        name="polygon_count", weight_by="count", property="centroids_per_pixel",
        aggregation_method="sum", resampling_method="sum", val_range=(0, None),
    ),
    Statistic(
        name="coverage", weight_by="area", property="area_per_pixel_area",
        aggregation_method="sum", resampling_method="average", val_range=(0, 1),
    ),
)  # fmt: skip


def load_config(path: str | Path) -> RasterflowConfig:
    """Read and validate a PDG config file; raise ConfigError naming every bad key."""
    raw = read_config_json(path)
    raw.setdefault("filename_config", str(path))
    return parse_config(raw, str(path))


def read_config_json(path: str | Path) -> dict[str, Any]:
    """The config file's JSON object, unvalidated; ConfigError if it cannot be one."""
    source = str(path)
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(source, [f"not readable JSON: {err}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, ["top level must be a JSON object"])
    return raw


def parse_config(raw: dict[str, Any], source: str = "<config>") -> RasterflowConfig:
    """Validate a config dict (PDG keys); raise ConfigError with key paths and hints."""
    used = {key: value for key, value in raw.items() if key not in IGNORED_KEYS}
    try:
        return RasterflowConfig.model_validate(used)
    except ValidationError as err:
        raise ConfigError(source, [describe_error(e, used) for e in err.errors()]) from None


def describe_error(error: dict[str, Any], raw: dict[str, Any]) -> str:
    """One line for one pydantic error: `statistics[1].property: problem (hint)`."""
    loc = [part for part in error["loc"] if not _is_union_tag(part)]
    path = format_key_path(loc)
    if error["type"] == "extra_forbidden":
        siblings = _known_keys_at(loc[:-1], raw)
        hint = difflib.get_close_matches(str(loc[-1]), siblings, n=1)
        suffix = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"{path}: unknown key{suffix}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{path}: {message}" if path else message


def format_key_path(loc: list[Any]) -> str:
    """`statistics[1].z_config[13].val_range`: list indexes and z levels in brackets."""
    text = ""
    for part in loc:
        indexed = isinstance(part, int) or str(part).isdigit()
        text += f"[{part}]" if indexed else (f".{part}" if text else str(part))
    return text


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and part in {"list[str]", "str"}


def _known_keys_at(loc: list[Any], raw: dict[str, Any]) -> list[str]:
    """Key names valid at `loc` (top level, a statistic, or a z_config entry)."""
    fields = {
        "statistics": Statistic.model_fields,
        "z_config": ZConfig.model_fields,
    }
    named = [part for part in loc if isinstance(part, str) and part in fields]
    if not named:
        return list(RasterflowConfig.model_fields) + sorted(IGNORED_KEYS)
    return list(fields[named[-1]])
