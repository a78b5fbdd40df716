"""`rasterflow view`: a self-contained, offline map page beside the web tiles.

One HTML file, `{dir_web_tiles}/viewer.html` (beside the `{stat}/` folders, never
inside them), with Leaflet inlined from the copy vendored in `workflow/static/`,
so it opens from disk with no network. It shows:

- one tile layer per statistic, read from the web tiles by relative URLs built
  from `tile_path_structure`, in the grid's own CRS (WorldCRS84Quad is drawn in
  EPSG:4326 with its 2x1 tiles at z0; WebMercatorQuad in EPSG:3857);
- a legend per visible statistic: its palette and the value range at the level
  on screen (the ranges the tiles were coloured with: the run's, else the
  `__updated.json` config, else the summary);
- a base of tile outlines: GeoJSON of the tiles that exist, per level.

Which tiles exist, their outlines, the ranges and the legend colours are gathered in
`rasterflow.workflow.products.viewer_data`; this module writes the page from them.

The view can be set from the URL: `viewer.html#map=Z/LAT/LON&layers=a,b&outlines=0`
(the page keeps the address in step with the map, so a view can be shared). Without
one, the page opens on the extent of the tiles and the statistic that stands out most
from the page's background (`viewer_data.default_layer`).

`rasterflow serve` draws the same page with `page_data(..., tile_url=, server=)`: tiles
from the server, and controls to recolour a layer live and to query a point.

`write_run_products` writes every product a finished run leaves beside its web
tiles: this page, the WMTS capabilities and the quick-looks.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rasterflow.rasterize_core import palette
from rasterflow.rasterize_core.atomic import atomic_write_bytes
from rasterflow.rasterize_core.errors import RasterflowError
from rasterflow.rasterize_core.tiles import Tile, matrix_size, tms_crs, xy_bounds
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.layout import tile_template, viewer_path
from rasterflow.workflow.products.viewer_data import (
    TilesByStat,
    css_color,
    current_ranges,
    default_layer,
    existing_tiles,
    extent_of,
    legend_colors,
    outline_geojson,
    tiles_by_stat,
)
from rasterflow.workflow.value_ranges import Ranges

log = logging.getLogger(__name__)


OUTLINES_PER_LEVEL = 5000  # tile outlines embedded per level (GeoJSON is ~200 bytes a tile)
KNOWN_TILES = (
    200_000  # tiles listed (coarse levels first) so the page asks only for those that exist
)
ZOOM_OUT_LEVELS = 3  # how far the map zooms out below z_min (tiles shrink, so few of them)
ZOOM_IN_LEVELS = 3  # how far the map zooms in past z_max (pixels grow)
STATIC_DIR = Path(__file__).resolve().parent / "static"  # vendored Leaflet, page template
PLACEHOLDER = re.compile(r"__([A-Z_]+)__")


class ViewerError(RasterflowError):
    """The map page cannot be drawn for this config (an unsupported grid)."""


# -- the grid, as Leaflet needs it ---------------------------------------------
@dataclass(frozen=True)
class MapGrid:
    """A Leaflet CRS for a quadtree TMS: a projection and an affine map to pixels at z0."""

    code: str
    projection: str  # "lonlat" (degrees) or "mercator" (EPSG:3857 metres)
    origin: tuple[float, float]  # top-left corner of tile (0, 0), CRS x/y
    extent0: tuple[float, float]  # a z0 tile's width and height, CRS units
    tile_size: tuple[int, int]  # width, height in pixels (the config's, not the TMS's)

    def as_json(self) -> dict:
        return {"code": self.code, "projection": self.projection, "origin": list(self.origin),
                "extent0": list(self.extent0), "tile_size": list(self.tile_size)}  # fmt: skip


def map_grid(config: RasterflowConfig) -> MapGrid:
    """The Leaflet grid of the config's TMS; ViewerError when Leaflet cannot draw it alone."""
    crs = tms_crs(config.tms_id)
    if crs.is_geographic:
        projection = "lonlat"
    elif crs.to_epsg() == 3857:
        projection = "mercator"
    else:
        raise ViewerError(
            f"the viewer draws geographic (lon/lat) and Web Mercator grids; {config.tms_id} "
            f"is in {crs.name}. The web tiles and the WMTS capabilities still work in QGIS."
        )
    left, bottom, right, top = xy_bounds(config.tms_id, Tile(0, 0, 0))
    width0, height0 = matrix_size(config.tms_id, 0)
    for z in range(config.z_min, config.z_max + 1):  # a quadtree: each level halves the last
        if matrix_size(config.tms_id, z) != (width0 << z, height0 << z):
            raise ViewerError(f"the viewer needs a quadtree grid; {config.tms_id} is not one")
    height, width = config.tile_size
    return MapGrid(f"rasterflow:{config.tms_id}", projection, (left, top),
                   (right - left, top - bottom), (width, height))  # fmt: skip


# -- the page -------------------------------------------------------------------
def tile_url_template(config: RasterflowConfig, stat: str) -> str:
    """Leaflet's `{z}/{x}/{y}` URL of a statistic's tiles, relative to the page."""
    return tile_template(config, stat, "{z}", "{x}", "{y}")


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def page_data(
    config: RasterflowConfig,
    ranges: Ranges,
    tiles: dict[int, set],
    tile_url: Callable[[RasterflowConfig, str], str] = tile_url_template,
    server: dict | None = None,
) -> dict:
    """Everything the page script reads, as JSON-ready values.

    `tile_url` gives a statistic's `{z}/{x}/{y}` URL (default: the web tiles, relative to
    the page); `server` (from `rasterflow serve`: the addresses of its palette and point
    queries, the colormap names) turns on the controls that recolour layers live."""
    grid = map_grid(config)
    extent = extent_of(config, tiles)
    layers = []
    for stat in config.statistics:
        layers.append({
            "name": stat.name,
            "url": tile_url(config, stat.name),
            "palette": stat.palette,
            "what": f"{stat.aggregation_method} of {stat.property} (by {stat.weight_by})",
            "colors": legend_colors(stat),
            "nodata_color": css_color(palette.parse_color(stat.nodata_color)),
            "ranges": {str(z): [_finite(v) for v in by_stat[stat.name]]
                       for z, by_stat in sorted(ranges.items()) if stat.name in by_stat},
        })  # fmt: skip
    known, outlines, notes = {}, {}, []
    budget = KNOWN_TILES
    for z, level in sorted(tiles.items()):
        ordered = sorted(level)
        if len(ordered) <= budget:  # else the page asks for every tile (missing ones: 404)
            known[str(z)] = [f"{x}/{y}" for x, y in ordered]
            budget -= len(ordered)
        if len(ordered) <= OUTLINES_PER_LEVEL:
            outlines[str(z)] = outline_geojson(config, z, ordered)
        else:
            notes.append(f"z{z}: {len(ordered)} tiles, outlines not drawn")
    return {
        "title": _config_name(config),
        "tms_id": config.tms_id,
        "grid": grid.as_json(),
        "z_range": list(config.z_range),
        "zoom": [max(0, config.z_min - ZOOM_OUT_LEVELS), config.z_max + ZOOM_IN_LEVELS],
        "extent": list(extent) if extent else None,
        "layers": layers,
        "default_layer": default_layer(config),
        "server": server,
        "known": known,
        "outlines": outlines,
        "notes": notes,
    }


def _config_name(config: RasterflowConfig) -> str:
    """`demo/config.json`: the config's folder and name, which tell runs apart."""
    path = Path(config.filename_config).resolve()
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def render_page(data: dict) -> str:
    """The HTML page: the template with Leaflet, the viewer's script and the data inlined."""
    static = STATIC_DIR
    license_text = (static / "leaflet" / "LICENSE.txt").read_text(encoding="utf-8")
    parts = {
        "TITLE": html.escape(f"rasterflow: {data['title']} ({data['tms_id']})", quote=False),
        "LEAFLET_LICENSE": license_text.replace("--", "- -"),
        "LEAFLET_CSS": (static / "leaflet" / "leaflet.css").read_text(encoding="utf-8"),
        "LEAFLET_JS": (static / "leaflet" / "leaflet.js").read_text(encoding="utf-8"),
        "VIEWER_CSS": (static / "viewer.css").read_text(encoding="utf-8"),
        "VIEWER_JS": (static / "viewer.js").read_text(encoding="utf-8"),
        "DATA": _script_json(data),
    }
    template = (static / "viewer.html").read_text(encoding="utf-8")
    return PLACEHOLDER.sub(lambda match: parts[match.group(1)], template)


def _script_json(data: dict) -> str:
    """JSON safe inside a <script> element: no `</` can close it early."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def write_viewer(
    config: RasterflowConfig, ranges: Ranges | None = None, found: TilesByStat | None = None
) -> Path:
    """Write `{dir_web_tiles}/viewer.html` for the web tiles on disk; return its path."""
    tiles = _require_web_tiles(config, found)
    data = page_data(config, ranges if ranges else current_ranges(config), tiles)
    path = viewer_path(config)
    atomic_write_bytes(path, render_page(data).encode("utf-8"))
    return path


def _require_web_tiles(config: RasterflowConfig, found: TilesByStat | None) -> dict[int, set]:
    tiles = existing_tiles(config, found=found)
    if not tiles:
        raise RasterflowError(
            f"no web tiles under {config.dir_web_tiles}: run `rasterflow run` first"
        )
    return tiles


# -- every product of a run ---------------------------------------------------------
def write_products(
    config: RasterflowConfig, ranges: Ranges | None = None, base_url: str | None = None
) -> list[Path]:
    """The viewer page, the WMTS capabilities and the quick-looks; return their paths."""
    from rasterflow.workflow.products.wmts import write_wmts
    from rasterflow.workflow.quicklook import write_quicklooks

    if not config.web_tiles:
        raise RasterflowError(
            "web tiles are off (web_tiles: false): `rasterflow serve CONFIG` draws the map, "
            "the WMTS layers and the tiles from the GeoTIFFs"
        )
    found = tiles_by_stat(config)
    _require_web_tiles(config, found)
    paths = []
    try:
        paths.append(write_viewer(config, ranges, found))
    except ViewerError as err:  # the WMTS document and quick-looks still work
        log.warning("map page not written: %s", err)
    paths.append(write_wmts(config, base_url, found))
    return paths + write_quicklooks(config, found, missing_only=True)  # the run made the rest
