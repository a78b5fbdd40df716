"""PDG JSON config -> frozen, validated models, before anything runs.

The same keys, defaults and meanings as PDG's staging/raster/workflow tools, so an
existing config runs unchanged. Keys only those tools use (`pdg_keys.PDG_KEYS`) are
accepted and ignored, and named once at load; any other key is an error with its path
and a "did you mean" hint. The input mapping is kept (`input_mapping`) so that
`__updated.json` can write every key back, as PDG does.
"""

from __future__ import annotations

import builtins
import copy
import difflib
import json
import logging
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

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
from rasterflow.workflow import pdg_keys

log = logging.getLogger(__name__)

FROZEN = ConfigDict(extra="forbid", frozen=True)
ValRange = tuple[float | None, float | None]


def ordered_range(value: ValRange | None) -> ValRange | None:
    """A range whose two ends are set must read [min, max] (PDG would paint it inverted)."""
    if value is not None and None not in value and value[0] > value[1]:  # type: ignore[operator]
        raise ValueError(f"{list(value)} is reversed: write [min, max]")
    return value


class ZConfig(BaseModel):
    model_config = FROZEN
    val_range: ValRange | None = None

    @field_validator("val_range")
    @classmethod
    def _ordered(cls, value: ValRange | None) -> ValRange | None:
        return ordered_range(value)


class Statistic(BaseModel):
    model_config = FROZEN

    name: str = Field(min_length=1)
    weight_by: Literal["count", "area"]
    property: str = Field(min_length=1)
    aggregation_method: str = "sum"
    resampling_method: str = "average"
    val_range: ValRange = (None, None)
    z_config: dict[int, ZConfig] = Field(default_factory=dict)
    palette: list[str] | str = Field(default_factory=lambda: list(pdg_keys.DEFAULT_PALETTE))
    # PDG merges a statistic shallowly: one that omits nodata_val masks no value (None).
    nodata_val: float | None = None
    nodata_color: str = pdg_keys.DEFAULT_NODATA_COLOR

    @field_validator("val_range")
    @classmethod
    def _ordered(cls, value: ValRange) -> ValRange:
        return ordered_range(value)  # type: ignore[return-value]

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

    @field_validator("property")
    @classmethod
    def _property_fits_weight(cls, value: str, info: ValidationInfo) -> str:
        weight = info.data.get("weight_by")
        wrong, needed = (AREA_KEYWORDS, "area") if weight == "count" else (COUNT_KEYWORDS, "count")
        if weight is not None and value in wrong:
            raise ValueError(f"property {value!r} needs weight_by {needed}")
        return value

    @field_validator("aggregation_method")
    @classmethod
    def _known_aggregation(cls, value: str, info: ValidationInfo) -> str:
        weight, prop = info.data.get("weight_by"), info.data.get("property")
        general = AREA_AGGREGATIONS if weight == "area" else COUNT_AGGREGATIONS
        keywords = AREA_KEYWORDS if weight == "area" else COUNT_KEYWORDS
        allowed = keywords.get(prop, general) if prop is not None else general
        if weight is not None and value not in allowed:
            raise ValueError(
                f"aggregation {value!r} is not available for property {prop!r} with "
                f"weight_by {weight}; one of {sorted(allowed)}"
            )
        return value

    def val_range_at(self, z: int) -> ValRange:
        """The configured range at zoom z: z_config first, else the general one; a `None`
        end of a z_config range takes the general range's end (PDG's `sub_general`)."""
        override = self.z_config.get(z)
        if override is None or override.val_range is None:
            return self.val_range
        lo, hi = override.val_range
        return (self.val_range[0] if lo is None else lo, self.val_range[1] if hi is None else hi)

    @builtins.property  # the field `property` shadows the builtin here
    def needed_column(self) -> str | None:
        if self.property in AREA_KEYWORDS or self.property in COUNT_KEYWORDS:
            return None
        return self.property


class RasterflowConfig(BaseModel):
    model_config = FROZEN
    # For "did you mean": PDG's keys that rasterflow accepts and ignores (set below).
    HINT_KEYS: ClassVar[frozenset[str]] = frozenset()

    dir_staged: Path = Path("staged")
    dir_geotiff: Path = Path("geotiff")
    dir_web_tiles: Path = Path("web_tiles")
    ext_staged: str = ".gpkg"
    ext_web_tiles: Literal[".png"] = ".png"
    filename_rasterization_events: Path = Path("rasterization_events.csv")
    filename_rasters_summary: Path = Path("rasters_summary.csv")
    filename_config: Path = Path("config.json")
    tms_id: str = "WGS1984Quad"  # current PDG's default (morecantile has it by that name)
    tile_path_structure: tuple[str, ...] = ("style", "tms", "z", "x", "y")
    z_range: tuple[int, int] = (0, 13)
    tile_size: tuple[int, int] = (256, 256)
    statistics: tuple[Statistic, ...] = Field(default_factory=lambda: DEFAULT_STATISTICS)
    # The staging columns rasterflow reads; PDG's other `prop_*` keys are ignored.
    prop_centroid_x: str = "staging_centroid_x"
    prop_centroid_y: str = "staging_centroid_y"
    prop_duplicated: str = "staging_duplicated"
    deduplicate_at: tuple[str, ...] | None = None
    deduplicate_method: Literal["neighbor", "footprints"] | None = None
    overwrite: bool = False
    cog: bool = False  # Cloud-Optimized GeoTIFFs
    stac: bool = False  # a STAC catalog of the outputs, beside dir_geotiff
    web_tiles: bool = True  # pre-render PNGs; false: `rasterflow serve` colours on the fly
    strict: bool = False  # a tile with odd rows (skipped geometries) fails instead

    # The mapping the config was read from, every key kept (PDG-only ones too).
    _input: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("tms_id")
    @classmethod
    def _known_tms(cls, value: str) -> str:
        if value not in available_tms():
            hint = difflib.get_close_matches(value, available_tms(), n=1)
            more = f"; did you mean `{hint[0]}`?" if hint else f"; one of {available_tms()}"
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
        stray = [f"statistics[{i}].z_config[{z}]" for i, stat in enumerate(self.statistics)
                 for z in sorted(stat.z_config) if not z_min <= z <= z_max]  # fmt: skip
        if stray:
            raise ValueError(f"{', '.join(stray)}: zoom outside z_range {list(self.z_range)}")
        return self

    @property
    def deduplicate(self) -> bool:
        return self.deduplicate_at is not None and "raster" in self.deduplicate_at

    @property
    def z_min(self) -> int:
        return self.z_range[0]

    @property
    def z_max(self) -> int:
        return self.z_range[1]

    @property
    def stat_names(self) -> list[str]:
        return [stat.name for stat in self.statistics]

    def input_mapping(self) -> dict[str, Any]:
        """A copy of the mapping this config was read from (every key, PDG-only ones too);
        for a config built in code, its fields that were set."""
        if self._input:
            return copy.deepcopy(self._input)
        return self.model_dump(mode="json", exclude_unset=True)

    def ignored_keys(self) -> list[str]:
        """The input's PDG keys that rasterflow has no use for."""
        return sorted(key for key in self._input if key in IGNORED_KEYS)

    def updated_config_path(self) -> Path:
        path = self.filename_config
        return path.with_name(f"{path.stem}__updated{path.suffix or '.json'}")


# Accepted and ignored: every key a PDG version knew that is not a field here.
IGNORED_KEYS = pdg_keys.PDG_KEYS - set(RasterflowConfig.model_fields)
RasterflowConfig.HINT_KEYS = IGNORED_KEYS

DEFAULT_STATISTICS: tuple[Statistic, ...] = tuple(
    Statistic.model_validate(s) for s in pdg_keys.DEFAULT_STATISTICS
)


def load_config(path: str | Path) -> RasterflowConfig:
    """Read and validate a PDG config file; raise ConfigError naming every bad key."""
    raw = read_config_json(path)
    raw.setdefault("filename_config", str(path))  # as PDG does for a config read from a file
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
    """Validate a config dict (PDG keys); raise ConfigError with key paths and hints.

    The input's PDG-only keys are named in one log line (the `rasterflow` logger)."""
    used = {key: value for key, value in raw.items() if key not in IGNORED_KEYS}
    try:
        config = RasterflowConfig.model_validate(used)
    except ValidationError as err:
        raise ConfigError.from_validation(source, err, RasterflowConfig) from None
    config._input = copy.deepcopy(raw)
    ignored = config.ignored_keys()
    if ignored:
        log.info("%s: PDG keys rasterflow does not use, ignored: %s", source, ", ".join(ignored))
    return config
