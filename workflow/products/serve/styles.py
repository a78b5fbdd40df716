"""How a served tile is coloured: the config's palette, range and nodata, or a request's.

A `TileStyle` holds exactly what the batch renderer (`workflow/tasks.py`, `_webtile_tile`)
passes to `webtile.colorize`: the palette's lookup table, the value range, `nodata_val` and
the parsed `nodata_color`. With no query parameters the style is the config's, and the range
is the level's (`<filename_config>__updated.json`, as the PNGs were coloured), so a served
tile is pixel for pixel the pre-rendered PNG.

Query parameters override them:
- `palette=viridis` (a colormap name, or one colour), `palette=#000,#fff` (a CSS colour
  list; commas inside `rgb(...)` do not split it) or `palette=#000&palette=#fff` (repeated);
- `range=LO,HI`: both finite, LO <= HI, used at every level.
Anything else is a `ParameterError` naming the parameter (HTTP 400).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rasterflow.rasterize_core import palette as palettes
from rasterflow.rasterize_core.errors import ParameterError
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.products.viewer_data import current_ranges
from rasterflow.workflow.value_ranges import Ranges, level_ranges

TILE_PARAMETERS = ("palette", "range")
MAX_PALETTE_COLOURS = 64  # a request's palette: each new one is interpolated (a few ms)
PaletteKey = str | tuple[str, ...]  # a colormap name or a colour list, hashable


@dataclass(frozen=True)
class TileStyle:
    """The arguments of `webtile.colorize` for one statistic at one level, and a digest of
    them (part of the ETag: another palette or range is another tile)."""

    band: int  # 1-based band of the GeoTIFF
    lut: np.ndarray
    val_range: tuple[float, float]
    nodata_val: float | None
    nodata_rgba: tuple[int, int, int, int]
    digest: str


# -- query parameters ----------------------------------------------------------------
def split_colours(text: str) -> list[str]:
    """`#000,rgb(0, 0, 0),red` -> three colours: commas inside parentheses do not split."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts


def parse_palette(values: list[str]) -> PaletteKey | None:
    """The `palette` parameter(s) -> one string (a colormap name or one colour, as in a
    config) or a tuple of colours; None when absent. ParameterError if it does not parse."""
    if not values:
        return None
    colours = [c for value in values for c in split_colours(value)]
    if len(colours) > MAX_PALETTE_COLOURS:
        raise ParameterError(f"palette: {len(colours)} colours; at most {MAX_PALETTE_COLOURS}")
    key: PaletteKey = colours[0] if len(colours) == 1 else tuple(colours)
    lut_for(key)  # raises ParameterError with the palette module's own reason
    return key


@lru_cache(maxsize=256)
def lut_for(key: PaletteKey) -> np.ndarray:
    """The 256-colour lookup table of a palette key (cached: built once per palette)."""
    try:
        return palettes.build_lut(list(key) if isinstance(key, tuple) else key)
    except ValueError as err:
        raise ParameterError(f"palette: {err}") from None


def parse_range(text: str | None) -> tuple[float, float] | None:
    """`range=LO,HI` -> (lo, hi); None when absent."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        hint = "write two numbers, LO,HI (e.g. range=0,0.5)"
        raise ParameterError(f"range={text!r}: {hint}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ParameterError(f"range={text!r}: both ends must be finite numbers")
    if hi < lo:
        raise ParameterError(f"range={text!r} is reversed: write LO,HI with LO <= HI")
    return (lo, hi)


def check_parameters(names, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ParameterError(f"unknown parameter {', '.join(unknown)}; this address takes "
                             f"{', '.join(allowed) or 'none'}")  # fmt: skip


# -- the config's ranges, reloaded when the run rewrites them ----------------------------
class RangeBook:
    """Per level and statistic, the range the PNGs were (or would have been) coloured with.

    Read from `__updated.json` (else the summary) and read again when either file changes,
    so a rerun's new ranges are served without a restart; one `stat` call per request."""

    def __init__(self, config: RasterflowConfig):
        self.config = config
        self._sources = [config.updated_config_path(), Path(config.filename_rasters_summary)]
        self._signature: tuple | None = None
        self._ranges: Ranges = {}

    def _current_signature(self) -> tuple:
        marks: list[tuple[int, int, int] | None] = []
        for path in self._sources:
            try:
                info = os.stat(path)
                marks.append((info.st_mtime_ns, info.st_size, info.st_ino))
            except OSError:
                marks.append(None)
        return tuple(marks)

    def at(self, z: int) -> dict[str, tuple[float, float]]:
        signature = self._current_signature()
        if signature != self._signature:
            self._ranges, self._signature = current_ranges(self.config), signature
        if z in self._ranges:
            return self._ranges[z]
        # a level with no range yet (a run in progress): the config's, ends filled as PDG's
        return level_ranges(self.config, z, {})


# -- a statistic's style ---------------------------------------------------------------
class StyleBook:
    """`TileStyle`s per (statistic, level, palette, range): the config's defaults resolved
    once, lookup tables cached, the level's range from the `RangeBook`."""

    def __init__(self, config: RasterflowConfig):
        self.config = config
        self.ranges = RangeBook(config)
        self._stats = {stat.name: (index, stat) for index, stat in
                       enumerate(config.statistics, start=1)}  # fmt: skip
        self._nodata = {stat.name: palettes.parse_color(stat.nodata_color)
                        for stat in config.statistics}  # fmt: skip

    def knows(self, stat: str) -> bool:
        return stat in self._stats

    def style(self, stat: str, z: int, palette: PaletteKey | None = None,
              val_range: tuple[float, float] | None = None) -> TileStyle:  # fmt: skip
        band, spec = self._stats[stat]
        key = palette if palette is not None else _config_palette_key(spec.palette)
        lut = lut_for(key)
        level_range = val_range if val_range is not None else self.ranges.at(z)[stat]
        nodata_rgba = self._nodata[stat]
        identity = repr((stat, band, key, tuple(map(float, level_range)), spec.nodata_val,
                         nodata_rgba))  # fmt: skip
        digest = hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()
        return TileStyle(band, lut, level_range, spec.nodata_val, nodata_rgba, digest)


def _config_palette_key(palette: list[str] | str) -> PaletteKey:
    return palette if isinstance(palette, str) else tuple(palette)
