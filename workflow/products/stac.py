"""A STAC catalog of a run's outputs: one Collection, one Catalog per zoom, one Item per tile.

One Item per GeoTIFF tile, not per level: a tile is the unit a client searches,
reads and mosaics (each has its own footprint, `proj:transform` and band
statistics), stac-geoparquet, pgstac and titiler mosaics expect one file per
Item, and a level Item would need every tile of the level as an asset in one
JSON document (millions at z-max in a pan-Arctic run). The zoom levels are the
children of the Collection, so a client can still walk one level.

Self-contained: every href is relative, the catalog sits beside the outputs
(`{dir_geotiff}/../stac/collection.json`) and moves with them. Bands use STAC 1.1
common metadata (`bands` with `description`, `unit`, `nodata`, `data_type`,
`statistics`); the Items are built in `rasterflow.workflow.products.stac_items`. The web tiles
and any WMTS document are linked with the web-map-links extension, and the
grid's OGC TileMatrixSet definition is written beside the Collection, as
non-WebMercator tiles need it to be placed.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pystac
from pystac.extensions.projection import ProjectionExtension

from rasterflow.rasterize_core.errors import RasterflowError
from rasterflow.rasterize_core.tiles import Tile, get_tms
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.layout import geotiff_path, stac_dir, tile_template
from rasterflow.workflow.products.stac_items import (
    COG,
    GEOTIFF,
    CatalogContext,
    LevelRanges,
    band_metadata,
    crs_code,
    tile_item,
)
from rasterflow.workflow.products.viewer_data import updated_config_ranges
from rasterflow.workflow.value_ranges import Ranges

WEB_MAP_LINKS = "https://stac-extensions.github.io/web-map-links/v1.2.0/schema.json"
TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"


def write_stac(config: RasterflowConfig, ranges: Ranges | None = None) -> Path:
    """Write the catalog of every GeoTIFF (and its PNGs) on disk; return collection.json.

    `ranges` are the per-level value ranges the web tiles were drawn with (the
    driver's); levels missing from it are read from the updated config.
    """
    tiles = output_tiles(config)
    if not tiles:
        raise RasterflowError(f"no GeoTIFFs under {Path(config.dir_geotiff) / config.tms_id}")
    context = CatalogContext.load(config, _fill_ranges(config, ranges or {}, tiles))
    collection = _collection(context, tiles)
    final = stac_dir(config)
    # Built beside the final folder (same depth, so the same relative hrefs), without a
    # suffix in its name: pystac would take `.tmp` for a file.
    temporary = final.with_name(f".{final.name}-{os.getpid()}-tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    collection.normalize_hrefs(str(temporary), strategy=_layout())
    collection.make_all_asset_hrefs_relative()  # the items'
    collection.make_asset_hrefs_relative()  # the collection's own (summary, events, config)
    collection.save(pystac.CatalogType.SELF_CONTAINED)
    grid = get_tms(config.tms_id).model_dump_json(exclude_none=True, by_alias=True, indent=2)
    (temporary / f"{config.tms_id}.json").write_text(grid)
    _swap_in(temporary, final)
    return final / "collection.json"


def output_tiles(config: RasterflowConfig) -> dict[int, list[Tile]]:
    """The GeoTIFFs on disk, per level, within z_range (what the catalog lists)."""
    tiles: dict[int, list[Tile]] = {}
    for z in range(config.z_min, config.z_max + 1):
        probe = geotiff_path(config, Tile(z, 0, 0))
        for path in sorted(probe.parent.parent.glob(f"*/*{probe.suffix}")):
            if path.parent.name.isdigit() and path.stem.isdigit():
                tiles.setdefault(z, []).append(Tile(z, int(path.parent.name), int(path.stem)))
    return {z: sorted(level) for z, level in tiles.items()}


def _fill_ranges(config: RasterflowConfig, ranges: Ranges, tiles: dict) -> LevelRanges:
    """Every listed level's ranges: the driver's, else the updated config's, else the config's."""
    updated = updated_config_ranges(config)
    filled: LevelRanges = {}
    for z in tiles:
        filled[z] = {}
        for stat in config.statistics:
            known = ranges.get(z, {}).get(stat.name)
            written = updated.get(z, {}).get(stat.name)
            lo, hi = known or written or stat.val_range_at(z)
            filled[z][stat.name] = (lo, hi)
    return filled


# -- the Collection -------------------------------------------------------------
def _collection(context: CatalogContext, tiles: dict[int, list[Tile]]) -> pystac.Collection:
    config = context.config
    items = {z: [tile_item(context, tile) for tile in level] for z, level in tiles.items()}
    times = [item.datetime for level in items.values() for item in level if item.datetime]
    stats = ", ".join(config.stat_names)
    collection = pystac.Collection(
        id=f"rasterflow-{config.tms_id}",
        title=f"{stats} on {config.tms_id}, zooms {min(tiles)}-{max(tiles)}",
        description=(
            f"Rasterized polygon statistics ({stats}), one GeoTIFF band each, as a tile "
            f"pyramid on the {config.tms_id} tile matrix set ({context.crs.name}). "
            "Count bands place each polygon in the pixel of its centroid; area bands are "
            "exact polygon/pixel intersections in the grid's CRS."
        ),
        extent=pystac.Extent(
            # The coarsest tiles cover the rest. (STAC 1.1 allows one box, or three or more.)
            pystac.SpatialExtent([_union_bbox([i.bbox for i in items[min(items)] if i.bbox])]),
            pystac.TemporalExtent([[min(times), max(times)]]),
        ),
        license="other",
        keywords=["rasterflow", config.tms_id, *config.stat_names],
        summaries=pystac.Summaries({"proj:code": [crs_code(context.crs)]}),
        stac_extensions=[ProjectionExtension.get_schema_uri(), WEB_MAP_LINKS],
    )
    collection.item_assets = _item_assets(context)
    for link in _web_links(context):
        collection.add_link(link)
    for key, asset in _run_assets(config).items():
        collection.add_asset(key, asset)
    for z, level_items in items.items():
        level = pystac.Catalog(id=f"z{z}", description=f"{config.tms_id} zoom {z}: "
                               f"{len(level_items)} GeoTIFF tiles", title=f"Zoom {z}")  # fmt: skip
        collection.add_child(level)
        for item in level_items:
            level.add_item(item)
            item.set_collection(collection)
    return collection


ItemAssets = dict[str, pystac.ItemAssetDefinition | dict]  # pystac's type of item_assets


def _item_assets(context: CatalogContext) -> ItemAssets:
    config = context.config
    bands = [band_metadata(stat, context, None) for stat in config.statistics]
    assets: ItemAssets = {"data": pystac.ItemAssetDefinition.create(
        title="Statistics GeoTIFF", description="One band per statistic, NaN as nodata",
        media_type=COG if config.cog else GEOTIFF, roles=["data"],
        extra_fields={"bands": bands})}  # fmt: skip
    for stat in config.statistics:
        assets[f"{stat.name}_png"] = pystac.ItemAssetDefinition.create(
            title=f"{stat.name} web tile", description=f"RGBA rendering of {stat.name}",
            media_type=pystac.MediaType.PNG, roles=["visual"],
        )  # fmt: skip
    return assets


def _web_links(context: CatalogContext) -> list[pystac.Link]:
    """xyz templates per statistic, WMTS documents found beside them, the TileMatrixSet."""
    config, stac = context.config, stac_dir(context.config)
    links = []
    for stat in config.statistics:
        template = Path(config.dir_web_tiles, tile_template(config, stat.name, "{z}", "{x}", "{y}"))
        by_zoom = {str(z): list(r[stat.name]) for z, r in sorted(context.ranges.items())}
        links.append(pystac.Link(
            "xyz", _relative(template, stac), pystac.MediaType.PNG,
            title=f"{stat.name} web tiles ({config.tms_id} tile matrix set)",
            extra_fields={"tile_matrix_set": config.tms_id, "val_range_by_zoom": by_zoom},
        ))  # fmt: skip
    for document in _wmts_documents(config):
        links.append(pystac.Link(
            "wmts", _relative(document, stac), "application/xml", title="WMTS capabilities",
            extra_fields={"wmts:layer": _wmts_layers(document) or config.stat_names},
        ))  # fmt: skip
    links.append(pystac.Link(
        TILING_SCHEME, f"./{config.tms_id}.json", pystac.MediaType.JSON,
        title=f"OGC TileMatrixSet {config.tms_id}",
    ))  # fmt: skip
    return links


def _wmts_documents(config: RasterflowConfig) -> list[Path]:
    """WMTS capabilities beside the style folders (the design keeps them out of those)."""
    root = Path(config.dir_web_tiles)
    return sorted(p for p in root.glob("*.xml") if "wmts" in p.name.lower())


def _wmts_layers(document: Path) -> list[str]:
    try:
        tree = ET.parse(document)
    except (ET.ParseError, OSError):
        return []
    layers = [e for e in tree.iter() if e.tag.rsplit("}", 1)[-1] == "Layer"]
    names = []
    for layer in layers:
        for child in layer:
            if child.tag.rsplit("}", 1)[-1] == "Identifier" and child.text:
                names.append(child.text.strip())
                break
    return names


def _run_assets(config: RasterflowConfig) -> dict[str, pystac.Asset]:
    """The run's records: summary, event log (CSV and Parquet) and the updated config."""
    candidates = {
        "rasters_summary": (Path(config.filename_rasters_summary), "text/csv"),
        "rasters_summary_parquet": (
            Path(config.filename_rasters_summary).with_suffix(".parquet"),
            "application/vnd.apache.parquet",
        ),
        "rasterization_events": (Path(config.filename_rasterization_events), "text/csv"),
        "rasterization_events_parquet": (
            Path(config.filename_rasterization_events).with_suffix(".parquet"),
            "application/vnd.apache.parquet",
        ),
        "config_updated": (config.updated_config_path(), pystac.MediaType.JSON),
    }
    return {
        key: pystac.Asset(
            str(path.resolve()), title=key.replace("_", " "), media_type=kind, roles=["metadata"]
        )  # fmt: skip
        for key, (path, kind) in candidates.items()
        if path.exists()
    }


def _union_bbox(boxes: list[list[float]]) -> list[float]:
    """Union of lon/lat bboxes; a set crossing the antimeridian spans all longitudes."""
    south, north = min(b[1] for b in boxes), max(b[3] for b in boxes)
    if any(b[0] > b[2] for b in boxes):
        return [-180.0, south, 180.0, north]
    return [min(b[0] for b in boxes), south, max(b[2] for b in boxes), north]


# -- files ----------------------------------------------------------------------
def _layout() -> pystac.layout.CustomLayoutStrategy:
    """stac/collection.json, stac/z{z}/catalog.json, stac/z{z}/{x}/{y}.json."""

    def item_href(item: pystac.Item, parent_dir: str) -> str:
        return f"{parent_dir}/{item.properties['tile_col']}/{item.properties['tile_row']}.json"

    return pystac.layout.CustomLayoutStrategy(item_func=item_href)


def _relative(target: str | Path, start: Path) -> str:
    return Path(os.path.relpath(Path(target).resolve(), start.resolve())).as_posix()


def _swap_in(temporary: Path, final: Path) -> None:
    """Replace the old catalog folder by the new one (a reader sees one or the other)."""
    old = final.with_name(f".{final.name}-{os.getpid()}-old")
    if final.exists():
        final.rename(old)
    temporary.rename(final)
    shutil.rmtree(old, ignore_errors=True)
