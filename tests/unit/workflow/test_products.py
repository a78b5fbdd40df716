"""Products without a run: WMTS for other tile sizes and a served folder, CRS URNs, quick-looks
that shrink and leave gaps, and `publish` turning what it cannot make into notes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rasterflow.rasterize_core.errors import RasterflowError
from rasterflow.rasterize_core.tiles import get_tms
from rasterflow.workflow.config import parse_config
from rasterflow.workflow.layout import quicklook_path
from rasterflow.workflow.products import publish
from rasterflow.workflow.products.viewer import write_products
from rasterflow.workflow.products.viewer_data import tiles_by_stat
from rasterflow.workflow.products.wmts import capabilities, crs_urn
from rasterflow.workflow.quicklook import write_quicklooks
from rasterflow.workflow.run import RunReport
from tests.helpers.web_tiles import config_over_fake_tiles
from tests.helpers.web_tiles import wmts_tag as q


def test_wmts_for_128_pixel_tiles_and_a_served_folder(tmp_path):
    structure = ["tms", "style", "z", "x", "y"]
    config = config_over_fake_tiles(tmp_path, tile_size=[128, 128], tile_path_structure=structure)
    root = capabilities(config, base_url="https://example.org/pdg/tiles/")
    layer = root.find(q("wmts:Contents/wmts:Layer"))
    template = layer.find(q("wmts:ResourceURL")).get("template")
    assert template == (
        "https://example.org/pdg/tiles/WorldCRS84Quad/n/{TileMatrix}/{TileCol}/{TileRow}.png"
    )
    tms = get_tms("WorldCRS84Quad")
    matrices = root.findall(q("wmts:Contents/wmts:TileMatrixSet/wmts:TileMatrix"))
    assert len(matrices) == 4
    for z, matrix in enumerate(matrices):
        assert matrix.findtext(q("wmts:TileWidth")) == "128"
        # pixels twice the size of the TMS's 256-pixel tiles: twice the scale denominator
        scale = float(matrix.findtext(q("wmts:ScaleDenominator")))
        assert scale == pytest.approx(2 * tms.matrix(z).scaleDenominator, rel=1e-12)


def test_crs_urns():
    assert crs_urn("http://www.opengis.net/def/crs/EPSG/0/3857") == "urn:ogc:def:crs:EPSG::3857"
    assert (
        crs_urn("http://www.opengis.net/def/crs/OGC/1.3/CRS84") == "urn:ogc:def:crs:OGC:1.3:CRS84"
    )


def test_quicklook_shrinks_and_leaves_gaps_transparent(tmp_path):
    config = config_over_fake_tiles(tmp_path)
    paths = write_quicklooks(config, tiles_by_stat(config), max_side=256)
    assert len(paths) == 2
    with Image.open(quicklook_path(config, "n", 3)) as image:
        ql = np.asarray(image.convert("RGBA"))
    assert ql.shape == (128, 256, 4)  # 2x1 tiles shrunk by 2 to fit 256 px
    assert (ql[..., 0] == 200).all() and (ql[..., 3] == 255).all()
    assert write_quicklooks(config, tiles_by_stat(config), max_tiles=1) == []  # too many


def test_products_never_fail_a_run(tmp_path):
    """Nothing to publish (no web tiles, no GeoTIFF for STAC): notes, not a traceback."""
    config = parse_config({"dir_web_tiles": str(tmp_path / "nothing"),
                           "dir_geotiff": str(tmp_path / "none"), "stac": True})  # fmt: skip
    report = RunReport("r", tmp_path, tmp_path, tmp_path / "events.csv", 0.0)
    publish(config, report)
    assert [note.split(" not written: ")[0] for note in report.notes] == [
        "viewer, WMTS and quick-looks", "STAC catalog"]  # fmt: skip
    assert "no web tiles" in report.notes[0] and "no GeoTIFFs" in report.notes[1]
    with pytest.raises(RasterflowError, match="no web tiles"):
        write_products(config)
