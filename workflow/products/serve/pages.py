"""The map page and the WMTS capabilities, as `rasterflow serve` answers them.

The same page as `rasterflow view` writes (`products/viewer.py`, `static/viewer.js`), in
server mode: tiles from the server's `tiles/...` addresses (relative, so a reverse proxy
may mount the server under any path), the tiles that exist listed from the GeoTIFFs (no
PNG need exist), and the server's palette and point queries behind the page's controls.
"""

from __future__ import annotations

from functools import partial

from rasterflow.rasterize_core import palette
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.products.viewer import page_data, render_page
from rasterflow.workflow.products.viewer_data import current_ranges, geotiff_tiles
from rasterflow.workflow.products.wmts import PathTemplate, capabilities, capabilities_xml


def server_page(config: RasterflowConfig, path_template: PathTemplate) -> bytes:
    """The viewer's HTML, its tile URLs from `path_template` (config, stat, z, x, y)."""
    server = {"point": "point", "palette": "palette", "colormaps": palette.known_colormaps()}
    tile_url = partial(_leaflet_url, path_template)
    data = page_data(config, current_ranges(config), geotiff_tiles(config), tile_url, server)
    return render_page(data).encode("utf-8")


def _leaflet_url(path_template: PathTemplate, config: RasterflowConfig, stat: str) -> str:
    return path_template(config, stat, "{z}", "{x}", "{y}")


def server_wmts(config: RasterflowConfig, base_url: str, path_template: PathTemplate) -> bytes:
    """WMTS capabilities whose tile URLs are this server's, for the GeoTIFFs on disk."""
    tiles = geotiff_tiles(config)
    found = {stat: tiles for stat in config.stat_names}
    return capabilities_xml(capabilities(config, base_url, found, path_template))
