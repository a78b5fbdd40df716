"""WMTS 1.0.0 capabilities for the web tiles, so QGIS (or GDAL, ArcGIS) adds them as layers.

`{dir_web_tiles}/WMTSCapabilities.xml` (PDG's name, beside the `{stat}/` folders):

- one `Layer` per statistic: Identifier and Title (the statistic's name), a default
  `Style`, `Format` image/png, the WGS84 bounding box of its tiles, a
  `TileMatrixSetLink` with `TileMatrixSetLimits` (the rows and columns that hold
  tiles, per level), and a RESTful `ResourceURL` template with `{TileMatrix}`,
  `{TileCol}` and `{TileRow}` placed as `tile_path_structure` says;
- one `TileMatrixSet` from morecantile's definition of the config's TMS: its CRS
  as a URN, and a `TileMatrix` per level 0..z_max (ScaleDenominator,
  TopLeftCorner in the CRS's axis order, TileWidth/Height, MatrixWidth/Height).
  Tile sizes are the config's: 128-pixel tiles get twice the scale denominator
  of the TMS's 256-pixel ones, as their pixels are twice as big.

Tiles are addressed by URL: `base_url` (a web server's address for the
`dir_web_tiles` folder) or, by default, the folder's own `file://` URL, which
QGIS and GDAL read from disk.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from rasterflow.rasterize_core.atomic import atomic_write_bytes
from rasterflow.rasterize_core.tiles import Tile, get_tms
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.layout import WMTS_NAME, tile_template, wmts_path
from rasterflow.workflow.products.viewer_data import TilesByStat, lonlat_bounds, tiles_by_stat

NS = {
    "wmts": "http://www.opengis.net/wmts/1.0",
    "ows": "http://www.opengis.net/ows/1.1",
    "xlink": "http://www.w3.org/1999/xlink",
}
for _prefix, _uri in (("", NS["wmts"]), ("ows", NS["ows"]), ("xlink", NS["xlink"])):
    ET.register_namespace(_prefix, _uri)
CRS_URL = re.compile(r"/def/crs/(?P<authority>[^/]+)/(?P<version>[^/]+)/(?P<code>[^/]+)/?$")


def crs_urn(srs: str) -> str:
    """`http://www.opengis.net/def/crs/EPSG/0/3857` -> `urn:ogc:def:crs:EPSG::3857`."""
    match = CRS_URL.search(srs)
    if not match:
        return srs
    version = "" if match["version"] == "0" else match["version"]
    return f"urn:ogc:def:crs:{match['authority']}:{version}:{match['code']}"


PathTemplate = Callable[[RasterflowConfig, str, str, str, str], str]  # (config, stat, z, x, y)


def resource_template(
    config: RasterflowConfig, stat: str, base_url: str, path_template: PathTemplate = tile_template
) -> str:
    """The tile URL template of a statistic, `{TileMatrix}/{TileCol}/{TileRow}` in place."""
    path = path_template(config, stat, "{TileMatrix}", "{TileCol}", "{TileRow}")
    return f"{base_url.rstrip('/')}/{path}"


def capabilities(
    config: RasterflowConfig,
    base_url: str | None = None,
    found: TilesByStat | None = None,
    path_template: PathTemplate = tile_template,
) -> ET.Element:
    """The capabilities document for the web tiles on disk (`found`: as tiles_by_stat).

    `rasterflow serve` passes its own address, the tiles its GeoTIFFs hold and its tile
    paths (`tiles/{stat}/{tms}/{z}/{x}/{y}.png`)."""
    found = found if found is not None else tiles_by_stat(config)
    base_url = base_url or Path(config.dir_web_tiles).resolve().as_uri()
    root = ET.Element(_q("wmts", "Capabilities"), {"version": "1.0.0"})
    service = _sub(root, "ows", "ServiceIdentification")
    _sub(service, "ows", "Title", f"rasterflow web tiles: {Path(config.filename_config).stem}")
    _sub(service, "ows", "ServiceType", "OGC WMTS")
    _sub(service, "ows", "ServiceTypeVersion", "1.0.0")
    contents = _sub(root, "wmts", "Contents")
    for stat in config.statistics:
        tiles = found.get(stat.name)
        if tiles:
            _layer(contents, config, stat, tiles, resource_template(config, stat.name, base_url,
                                                                    path_template))  # fmt: skip
    _tile_matrix_set(contents, config)
    _sub(
        root, "wmts", "ServiceMetadataURL", attrib={_q("xlink", "href"): f"{base_url}/{WMTS_NAME}"}
    )
    return root


def _layer(contents, config: RasterflowConfig, stat, tiles: dict[int, set], url: str) -> None:
    layer = _sub(contents, "wmts", "Layer")
    _sub(layer, "ows", "Title", stat.name)
    _sub(layer, "ows", "Abstract",
         f"{stat.aggregation_method} of {stat.property}, weighted by {stat.weight_by}")  # fmt: skip
    west, south, east, north = _wgs84_box(config, tiles)
    box = _sub(layer, "ows", "WGS84BoundingBox", attrib={"crs": "urn:ogc:def:crs:OGC:2:84"})
    _sub(box, "ows", "LowerCorner", f"{west!r} {south!r}")
    _sub(box, "ows", "UpperCorner", f"{east!r} {north!r}")
    _sub(layer, "ows", "Identifier", stat.name)
    style = _sub(layer, "wmts", "Style", attrib={"isDefault": "true"})
    _sub(style, "ows", "Title", "default")
    _sub(style, "ows", "Identifier", "default")
    _sub(layer, "wmts", "Format", "image/png")
    link = _sub(layer, "wmts", "TileMatrixSetLink")
    _sub(link, "wmts", "TileMatrixSet", config.tms_id)
    limits = _sub(link, "wmts", "TileMatrixSetLimits")
    for z, level in sorted(tiles.items()):
        entry = _sub(limits, "wmts", "TileMatrixLimits")
        _sub(entry, "wmts", "TileMatrix", str(z))
        _sub(entry, "wmts", "MinTileRow", str(min(y for _, y in level)))
        _sub(entry, "wmts", "MaxTileRow", str(max(y for _, y in level)))
        _sub(entry, "wmts", "MinTileCol", str(min(x for x, _ in level)))
        _sub(entry, "wmts", "MaxTileCol", str(max(x for x, _ in level)))
    _sub(layer, "wmts", "ResourceURL", attrib={
        "format": "image/png", "resourceType": "tile",
        "template": url,
    })  # fmt: skip


def _wgs84_box(config: RasterflowConfig, tiles: dict[int, set]) -> tuple[float, ...]:
    z = min(tiles)
    boxes = [lonlat_bounds(config, Tile(z, x, y)) for x, y in tiles[z]]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip


def _tile_matrix_set(contents, config: RasterflowConfig) -> None:
    tms = get_tms(config.tms_id)
    height, width = config.tile_size
    matrix_set = _sub(contents, "wmts", "TileMatrixSet")
    _sub(matrix_set, "ows", "Title", tms.title or config.tms_id)
    _sub(matrix_set, "ows", "Identifier", config.tms_id)
    _sub(matrix_set, "ows", "SupportedCRS", crs_urn(tms.crs.srs))
    for z in range(0, config.z_max + 1):
        matrix = tms.matrix(z)
        entry = _sub(matrix_set, "wmts", "TileMatrix")
        _sub(entry, "ows", "Identifier", str(z))
        # Pixels of a `width`-pixel tile are tileWidth / width times the TMS's own.
        scale = matrix.scaleDenominator * matrix.tileWidth / width
        _sub(entry, "wmts", "ScaleDenominator", repr(float(scale)))
        first, second = matrix.pointOfOrigin  # in the CRS's axis order, as WMTS wants
        _sub(entry, "wmts", "TopLeftCorner", f"{float(first)!r} {float(second)!r}")
        _sub(entry, "wmts", "TileWidth", str(width))
        _sub(entry, "wmts", "TileHeight", str(height))
        _sub(entry, "wmts", "MatrixWidth", str(matrix.matrixWidth))
        _sub(entry, "wmts", "MatrixHeight", str(matrix.matrixHeight))


def capabilities_xml(root: ET.Element) -> bytes:
    """The document as UTF-8 bytes, indented, with its XML declaration."""
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_wmts(
    config: RasterflowConfig, base_url: str | None = None, found: TilesByStat | None = None
) -> Path:
    """Write `{dir_web_tiles}/WMTSCapabilities.xml`; return its path."""
    path = wmts_path(config)
    atomic_write_bytes(path, capabilities_xml(capabilities(config, base_url, found)))
    return path


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def _sub(parent, prefix: str, name: str, text: str | None = None, attrib=None) -> ET.Element:
    element = ET.SubElement(parent, _q(prefix, name), attrib or {})
    if text is not None:
        element.text = text
    return element
