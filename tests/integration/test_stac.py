"""The STAC catalog of a run: opens with pystac, lists every output, validates offline.

Validation never touches the network: pystac ships the STAC 1.1 core and GeoJSON
schemas, tests/data/stac-schemas holds the two extension schemas the catalog
declares, and the validator fails on any schema it would have to fetch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import morecantile
import pystac
import pytest
import rasterio
from pystac.validation import validate_all_dict

from rasterflow.workflow.config import load_config
from rasterflow.workflow.demo.synthetic import make_sample
from rasterflow.workflow.products.stac import WEB_MAP_LINKS, write_stac
from rasterflow.workflow.run import run_workflow
from tests.helpers.paths import THREADS_SITE

WMTS = """<?xml version="1.0" encoding="UTF-8"?>
<Capabilities xmlns="http://www.opengis.net/wmts/1.0" xmlns:ows="http://www.opengis.net/ows/1.1">
  <Contents><Layer><ows:Identifier>iwp_coverage</ows:Identifier></Layer></Contents>
</Capabilities>
"""


@pytest.fixture(scope="module")
def polar_run(tmp_path_factory):
    """A polar run (UPSArcticWGS84Quad, four z13 tiles around the pole) with its catalog."""
    sample = make_sample(tmp_path_factory.mktemp("stac"), tms_id="UPSArcticWGS84Quad",
                         z_range=(11, 13), tiles=(2, 2), cells_per_tile=8, seed=3,
                         origin=(-135.0, 89.99))  # fmt: skip
    config = load_config(sample.config_path)
    assert run_workflow(config, site=THREADS_SITE, live_progress=False).exit_code == 0
    (Path(config.dir_web_tiles) / "WMTSCapabilities.xml").write_text(WMTS)
    return config, write_stac(config)


def outputs(config, pattern: str) -> set[Path]:
    root = Path(config.dir_geotiff if pattern == "*.tif" else config.dir_web_tiles)
    return {p.resolve() for p in root.rglob(pattern) if "quicklooks" not in p.parts}


def test_catalog_lists_every_output(polar_run):
    config, path = polar_run
    assert path == Path(config.dir_geotiff).parent / "stac" / "collection.json"
    collection = pystac.Collection.from_file(str(path))
    items = list(collection.get_items(recursive=True))
    data = {Path(item.assets["data"].get_absolute_href()) for item in items}
    assert data == outputs(config, "*.tif") and len(items) == len(data)
    pngs = {Path(a.get_absolute_href()) for i in items for a in i.assets.values()
            if a.media_type == pystac.MediaType.PNG}  # fmt: skip
    assert pngs == outputs(config, "*.png")
    assert [child.id for child in collection.get_children()] == ["z11", "z12", "z13"]
    for key in ("rasters_summary", "rasterization_events", "config_updated"):
        assert Path(collection.assets[key].get_absolute_href()).exists()


def test_catalog_validates_offline(polar_run, offline_validator):
    _, path = polar_run
    collection = pystac.Collection.from_file(str(path))
    collection.validate_all()  # the loaded objects, children and items
    validate_all_dict(json.loads(path.read_text()), str(path))  # and the files as written
    assert {"https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            WEB_MAP_LINKS} <= offline_validator.used  # fmt: skip


def test_catalog_is_self_contained_and_moves(polar_run, tmp_path):
    config, path = polar_run
    for document in path.parent.rglob("*.json"):
        for href in _hrefs(json.loads(document.read_text())):
            assert not href.startswith(("/", "http", "file:")), (document, href)
    moved = tmp_path / "moved"
    shutil.copytree(Path(config.dir_geotiff).parent, moved)
    collection = pystac.Collection.from_file(str(moved / "stac" / "collection.json"))
    for item in collection.get_items(recursive=True):
        assert all(Path(a.get_absolute_href()).is_file() for a in item.assets.values())


def _hrefs(node) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "href"] + [
            h for v in node.values() for h in _hrefs(v)
        ]
    return [h for v in node for h in _hrefs(v)] if isinstance(node, list) else []


def test_bands_describe_the_statistics(polar_run):
    config, path = polar_run
    collection = pystac.Collection.from_file(str(path))
    bands = collection.item_assets["data"].to_dict()["bands"]
    assert [b["name"] for b in bands] == config.stat_names
    assert [b.get("unit") for b in bands] == ["count", "1", None]  # mean_width: Width's unit
    assert all(b["description"] and b["nodata"] == "nan" for b in bands)
    assert collection.summaries.to_dict()["proj:code"] == ["EPSG:5041"]
    item = next(collection.get_items(recursive=True))
    with rasterio.open(item.assets["data"].get_absolute_href()) as dataset:
        count = dataset.read(1)
        assert item.properties["proj:shape"] == [dataset.height, dataset.width]
        assert item.properties["proj:transform"] == pytest.approx(list(dataset.transform)[:6])
        dtype = dataset.dtypes[0]
    first = item.assets["data"].extra_fields["bands"][0]
    assert first["data_type"] == dtype
    assert first["statistics"]["maximum"] == count.max()
    assert first["statistics"]["mean"] == pytest.approx(count.mean())


def test_links_to_web_tiles_wmts_and_the_grid(polar_run):
    config, path = polar_run
    collection = pystac.Collection.from_file(str(path))
    xyz = {link.title.split()[0]: link for link in collection.get_links("xyz")}
    assert sorted(xyz) == sorted(config.stat_names)
    item = next(collection.get_items(recursive=True))
    z, x, y = (item.properties[k] for k in ("tile_matrix", "tile_col", "tile_row"))
    for link in xyz.values():
        assert link.extra_fields["tile_matrix_set"] == "UPSArcticWGS84Quad"
        tile = (path.parent / link.href.format(z=z, x=x, y=y)).resolve()
        assert tile.is_file()
    ranges = xyz["iwp_coverage"].extra_fields["val_range_by_zoom"]
    assert ranges == {str(z): [0.0, 1.0] for z in range(11, 14)}
    (wmts,) = collection.get_links("wmts")
    assert wmts.extra_fields["wmts:layer"] == ["iwp_coverage"]
    assert (path.parent / wmts.href).resolve().is_file()
    (scheme,) = collection.get_links("http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme")
    grid = morecantile.TileMatrixSet.model_validate_json((path.parent / scheme.href).read_text())
    assert grid.id == "UPSArcticWGS84Quad"


def test_rewriting_the_catalog_is_repeatable(polar_run):
    config, path = polar_run
    before = {p: p.read_bytes() for p in path.parent.rglob("*.json")}
    ranges = {z: {"iwp_count": (0.0, 9.0)} for z in range(11, 14)}
    write_stac(config, ranges)  # driver ranges win over the updated config's
    links = json.loads(path.read_text())["links"]
    xyz = [link for link in links if link["rel"] == "xyz"]
    count = next(link for link in xyz if link["title"].startswith("iwp_count"))
    assert count["val_range_by_zoom"]["13"] == [0.0, 9.0]
    write_stac(config)
    assert {p: p.read_bytes() for p in path.parent.rglob("*.json")} == before
    leftovers = [p.name for p in path.parent.parent.iterdir() if p.name.startswith(".stac")]
    assert leftovers == []
