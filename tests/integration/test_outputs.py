"""Outputs that GIS tools open: Cloud-Optimized GeoTIFFs, WMTS capabilities, quick-looks.

COGs are checked by rio-cogeo's validator (the rules of GDAL's
validate_cloud_optimized_geotiff: IFD first, tiles after it in order, the
`LAYOUT=COG` ghost header). The WMTS document is checked for the structure QGIS
reads (layers, their style, format, tile matrix set link and resource URL
template; the tile matrix set with every matrix's scale, corner, tile and matrix
size), then opened by GDAL's own WMTS client, which must read the same pixels
as the web tiles.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.windows import from_bounds

from rasterflow.rasterize_core.tiles import Tile, get_tms, xy_bounds
from rasterflow.workflow.layout import WMTS_NAME, quicklook_path, webtile_path
from rasterflow.workflow.products.viewer import write_products
from rasterflow.workflow.products.viewer_data import existing_tiles
from rasterflow.workflow.products.wmts import write_wmts
from tests.helpers.web_tiles import wmts_tag as q

cogeo = pytest.importorskip("rio_cogeo.cogeo", reason="rio-cogeo validates COGs (test extra)")


@pytest.fixture
def cog_run(demo_run):
    """The shared demo run (tests/conftest.py): `cog: true`, its products published."""
    return demo_run.config


# -- Cloud-Optimized GeoTIFFs ---------------------------------------------------------
def test_every_geotiff_of_a_cog_run_is_a_valid_cog(cog_run):
    paths = sorted(Path(cog_run.dir_geotiff).rglob("*.tif"))
    assert len(paths) == 16  # 6 + 4 + 4 + 1 + 1
    for path in paths:
        valid, errors, warnings = cogeo.cog_validate(str(path), strict=True)
        assert valid and not errors and not warnings, (path, errors, warnings)
        with rasterio.open(path) as dataset:
            assert dataset.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert dataset.descriptions == tuple(cog_run.stat_names)
            assert np.isnan(dataset.nodata) and dataset.crs is not None
            assert dataset.block_shapes[0] == (256, 256)


# -- WMTS capabilities ----------------------------------------------------------------------
def test_wmts_has_what_qgis_reads(cog_run):
    path = write_wmts(cog_run)
    assert path == Path(cog_run.dir_web_tiles) / WMTS_NAME  # beside the {stat}/ folders
    root = ET.parse(path).getroot()
    assert root.tag == q("wmts:Capabilities") and root.get("version") == "1.0.0"
    contents = root.find(q("wmts:Contents"))
    sets = {s.findtext(q("ows:Identifier")): s for s in contents.findall(q("wmts:TileMatrixSet"))}
    assert set(sets) == {"WorldCRS84Quad"}
    layers = contents.findall(q("wmts:Layer"))
    assert [layer.findtext(q("ows:Identifier")) for layer in layers] == cog_run.stat_names
    tiles = existing_tiles(cog_run)
    for layer in layers:
        stat = layer.findtext(q("ows:Identifier"))
        assert layer.findtext(q("ows:Title")) == stat
        style = layer.find(q("wmts:Style"))
        assert style.get("isDefault") == "true" and style.findtext(q("ows:Identifier"))
        assert layer.findtext(q("wmts:Format")) == "image/png"
        box = layer.find(q("ows:WGS84BoundingBox"))
        west, south = map(float, box.findtext(q("ows:LowerCorner")).split())
        east, north = map(float, box.findtext(q("ows:UpperCorner")).split())
        assert -149.1 < west < east < -148.7 and 69.9 < south < north < 70.4
        link = layer.find(q("wmts:TileMatrixSetLink"))
        assert link.findtext(q("wmts:TileMatrixSet")) in sets
        limits = {
            e.findtext(q("wmts:TileMatrix")): e for e in link.iter(q("wmts:TileMatrixLimits"))
        }
        assert sorted(map(int, limits)) == sorted(tiles)
        for z, level in tiles.items():
            entry = limits[str(z)]
            assert int(entry.findtext(q("wmts:MinTileCol"))) == min(x for x, _ in level)
            assert int(entry.findtext(q("wmts:MaxTileRow"))) == max(y for _, y in level)
        url = layer.find(q("wmts:ResourceURL"))
        assert url.get("resourceType") == "tile" and url.get("format") == "image/png"
        template = url.get("template")
        assert all(key in template for key in ("{TileMatrix}", "{TileCol}", "{TileRow}"))
        z = max(tiles)
        x, y = min(tiles[z])
        filled = template.format(TileMatrix=z, TileCol=x, TileRow=y)
        assert filled.startswith("file://")
        assert (
            Path(filled.removeprefix("file://"))
            == webtile_path(cog_run, Tile(z, x, y), stat).resolve()
        )
    matrix_set = sets["WorldCRS84Quad"]
    assert matrix_set.findtext(q("ows:SupportedCRS")) == "urn:ogc:def:crs:OGC:1.3:CRS84"
    matrices = matrix_set.findall(q("wmts:TileMatrix"))
    assert [m.findtext(q("ows:Identifier")) for m in matrices] == [str(z) for z in range(14)]
    tms = get_tms("WorldCRS84Quad")
    for z, matrix in enumerate(matrices):
        assert float(matrix.findtext(q("wmts:ScaleDenominator"))) == pytest.approx(
            tms.matrix(z).scaleDenominator, rel=1e-12
        )
        assert matrix.findtext(q("wmts:TopLeftCorner")).split() == ["-180.0", "90.0"]
        assert (
            matrix.findtext(q("wmts:TileWidth")) == matrix.findtext(q("wmts:TileHeight")) == "256"
        )
        assert int(matrix.findtext(q("wmts:MatrixWidth"))) == 2 ** (z + 1)  # 2x1 tiles at z0
        assert int(matrix.findtext(q("wmts:MatrixHeight"))) == 2**z


def test_gdal_reads_the_web_tiles_through_the_wmts_document(cog_run):
    """GDAL's WMTS client (what QGIS's GDAL-based tools use): the same pixels as the PNGs."""
    path = write_wmts(cog_run)
    tiles = existing_tiles(cog_run)
    z = max(tiles)
    for stat in ("iwp_coverage", "mean_width"):
        with rasterio.open(f"WMTS:{path},layer={stat}") as dataset:
            assert dataset.crs.to_string() in ("OGC:CRS84", "EPSG:4326")
            for x, y in sorted(tiles[z])[:3]:
                window = from_bounds(*xy_bounds(cog_run.tms_id, Tile(z, x, y)), dataset.transform)
                pixels = dataset.read(window=window.round_offsets().round_lengths())
                with Image.open(webtile_path(cog_run, Tile(z, x, y), stat)) as image:
                    png = np.asarray(image.convert("RGBA")).transpose(2, 0, 1)
                np.testing.assert_array_equal(pixels, png)


# -- quick-looks ------------------------------------------------------------------------------
def test_quicklook_per_level_and_statistic(cog_run):
    """The run's workers made them, a level as soon as its web tiles were done."""
    made = sorted((Path(cog_run.dir_web_tiles) / "quicklooks").iterdir())
    assert len(made) == 5 * len(cog_run.stat_names)
    for stat in cog_run.stat_names:
        for z, tiles in existing_tiles(cog_run, [stat]).items():
            path = quicklook_path(cog_run, stat, z)
            assert path in made and path.parent.parent == Path(cog_run.dir_web_tiles)
            with Image.open(path) as image:
                ql = np.asarray(image.convert("RGBA"))
            xs, ys = [x for x, _ in tiles], [y for _, y in tiles]
            columns, rows = max(xs) - min(xs) + 1, max(ys) - min(ys) + 1
            assert max(ql.shape[:2]) <= 512
            assert ql.shape[1] * rows == ql.shape[0] * columns  # the level's aspect, whole tiles
            assert ql[..., 3].any()


def test_quicklook_is_the_level_mosaicked(cog_run):
    """z12: 2x2 tiles of 256 px fit 512 px unshrunk: the quick-look is the tiles, placed."""
    tiles = existing_tiles(cog_run, ["iwp_coverage"])[12]
    x0, y0 = min(x for x, _ in tiles), min(y for _, y in tiles)
    with Image.open(quicklook_path(cog_run, "iwp_coverage", 12)) as image:
        ql = np.asarray(image.convert("RGBA"))
    assert ql.shape == (512, 512, 4)
    for x, y in tiles:
        with Image.open(webtile_path(cog_run, Tile(12, x, y), "iwp_coverage")) as image:
            tile = np.asarray(image.convert("RGBA"))
        block = ql[(y - y0) * 256 : (y - y0 + 1) * 256, (x - x0) * 256 : (x - x0 + 1) * 256]
        np.testing.assert_array_equal(block, tile)


# -- all products -------------------------------------------------------------------------------
def test_run_products_sit_beside_the_tiles(cog_run):
    paths = write_products(cog_run, {})
    names = {p.name for p in paths}
    assert {"viewer.html", WMTS_NAME} <= names
    web = Path(cog_run.dir_web_tiles)
    assert all(p.parent == web or p.parent == web / "quicklooks" for p in paths)
    for stat in cog_run.stat_names:  # nothing but the tiles under a statistic's folder
        files = [p for p in (web / stat).rglob("*") if p.is_file()]
        assert all(re.fullmatch(r"\d+/\d+/\d+\.png", "/".join(p.parts[-3:])) for p in files)
