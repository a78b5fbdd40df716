"""What the map page, the WMTS capabilities and the quick-looks draw from.

- the web tiles on disk, per statistic and level (one scan of the folders);
- their lon/lat bounds, extent and outlines;
- the value ranges the tiles were coloured with (the `__updated.json` config,
  else the summary), and a legend's colour stops.
"""

from __future__ import annotations

import json

from rasterflow.rasterize_core import palette
from rasterflow.rasterize_core.tiles import Tile, get_tms
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.layout import geotiffs_on_disk, webtiles_on_disk
from rasterflow.workflow.value_ranges import Ranges

PAGE_BACKGROUND = (0xF4, 0xF3, 0xEF)  # the map's background (static/viewer.css #map)
LEGEND_STOPS = 33  # colour stops of a legend's gradient (of the palette's 256)
TilesByStat = dict[str, dict[int, set]]  # statistic -> z -> {(x, y)} of the web tiles on disk


# -- what exists on disk --------------------------------------------------------
def tiles_by_stat(config: RasterflowConfig) -> TilesByStat:
    """Per statistic, per level: (x, y) of its web tiles on disk (one scan of the folders)."""
    found: TilesByStat = {}
    for stat in config.stat_names:
        levels = {z: webtiles_on_disk(config, stat, z)
                  for z in range(config.z_min, config.z_max + 1)}  # fmt: skip
        found[stat] = {z: tiles for z, tiles in levels.items() if tiles}
    return found


def existing_tiles(
    config: RasterflowConfig, stats: list[str] | None = None, found: TilesByStat | None = None
) -> dict[int, set]:
    """(x, y) of the web tiles on disk per level, for any of `stats` (default: all)."""
    found = found if found is not None else tiles_by_stat(config)
    union: dict[int, set] = {}
    for stat in stats or config.stat_names:
        for z, tiles in found.get(stat, {}).items():
            union.setdefault(z, set()).update(tiles)
    return union


def geotiff_tiles(config: RasterflowConfig) -> dict[int, set]:
    """(x, y) of the GeoTIFFs on disk per level (what `rasterflow serve` draws from)."""
    levels = {z: geotiffs_on_disk(config, z) for z in range(config.z_min, config.z_max + 1)}
    return {z: tiles for z, tiles in levels.items() if tiles}


# -- where they are, in lon/lat ---------------------------------------------------
def lonlat_bounds(config: RasterflowConfig, tile: Tile) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a tile in degrees."""
    import morecantile

    b = get_tms(config.tms_id).bounds(morecantile.Tile(tile.x, tile.y, tile.z))
    return (b.left, b.bottom, b.right, b.top)


def extent_of(config: RasterflowConfig, tiles: dict[int, set]) -> tuple | None:
    """(west, south, east, north) in degrees of the tiles at their finest level."""
    if not tiles:
        return None
    z = max(tiles)
    xs = [x for x, _ in tiles[z]]
    ys = [y for _, y in tiles[z]]
    west, _, _, north = lonlat_bounds(config, Tile(z, min(xs), min(ys)))
    _, south, east, _ = lonlat_bounds(config, Tile(z, max(xs), max(ys)))
    return (west, south, east, north)


def outline_geojson(config: RasterflowConfig, z: int, tiles) -> dict:
    """A FeatureCollection of the tiles' outlines (lon/lat), each with its z, x, y."""
    features = []
    for x, y in tiles:
        west, south, east, north = lonlat_bounds(config, Tile(z, x, y))
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        features.append({"type": "Feature", "properties": {"z": z, "x": x, "y": y},
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


# -- value ranges and legends -------------------------------------------------------
def current_ranges(config: RasterflowConfig) -> Ranges:
    """The ranges the web tiles were coloured with: `__updated.json`, else the summary."""
    written = updated_config_ranges(config)
    if written:
        return written
    from rasterflow.workflow.records import RecordsReader, column
    from rasterflow.workflow.value_ranges import RANGE_COLUMNS, fold, level_ranges

    reader = RecordsReader(config)
    ranges: Ranges = {}
    for z in range(config.z_min, config.z_max + 1):
        observed: dict = {}
        for chunk in reader.summary(z, RANGE_COLUMNS):  # a level's rows, a chunk at a time
            fold(observed, column(chunk, "stat"), column(chunk, "min", float("nan")),
                 column(chunk, "max", float("nan")))  # fmt: skip
        ranges[z] = level_ranges(config, z, observed)
    return ranges


def updated_config_ranges(config: RasterflowConfig) -> Ranges:
    """Per level, the ranges in `__updated.json` (both ends set); {} when it cannot be read."""
    path = config.updated_config_path()
    try:
        updated = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    ranges: Ranges = {}
    for stat in updated.get("statistics", []):
        for z, entry in (stat.get("z_config") or {}).items():
            val_range = (entry or {}).get("val_range")
            if val_range and None not in val_range and stat.get("name") in config.stat_names:
                ranges.setdefault(int(z), {})[stat["name"]] = (float(val_range[0]),
                                                               float(val_range[1]))  # fmt: skip
    return ranges


def legend_colors(stat) -> list[str]:
    """CSS colours of evenly spaced entries of the palette's 256-colour table."""
    return palette_colors(stat.palette)


def palette_colors(colours: list[str] | str) -> list[str]:
    """CSS colours of evenly spaced entries of a palette's 256-colour table."""
    return [css_color(rgba) for rgba in _legend_stops(palette.build_lut(colours))]


def _legend_stops(lut) -> list:
    picks = [round(i * (len(lut) - 1) / (LEGEND_STOPS - 1)) for i in range(LEGEND_STOPS)]
    return [lut[i] for i in picks]


def default_layer(config: RasterflowConfig) -> str:
    """The statistic a new user sees first: the one whose palette stands out most from the
    map's pale background (mean WCAG contrast of its legend colours, alpha composited over
    the page). A pale-yellow count layer on a pale page is the first look this replaces."""
    scores = {}
    for stat in config.statistics:
        stops = _legend_stops(palette.build_lut(stat.palette))
        scores[stat.name] = sum(_contrast(rgba, PAGE_BACKGROUND) for rgba in stops) / len(stops)
    return max(config.stat_names, key=lambda name: scores[name])  # first of equals wins


def _contrast(rgba, background) -> float:
    alpha = rgba[3] / 255
    over = [c * alpha + b * (1 - alpha) for c, b in zip(rgba[:3], background, strict=True)]
    lighter, darker = sorted((_luminance(over), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(rgb) -> float:
    """WCAG relative luminance of an sRGB colour (0..255 channels)."""
    linear = [(c / 255 / 12.92) if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4
              for c in rgb]  # fmt: skip
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def css_color(rgba) -> str:
    r, g, b, a = (int(v) for v in rgba)
    return f"rgba({r},{g},{b},{a / 255:.3f})"
