"""Every path a run reads or writes, in one place: tiles, records, lock, products.

Tile paths follow the config's `tile_path_structure` (PDG's order of path parts);
`style` (the statistic) appears only in web-tile paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from rasterflow.rasterize_core.tiles import Tile, tile_path
from rasterflow.workflow.config import RasterflowConfig

VIEWER_NAME = "viewer.html"
WMTS_NAME = "WMTSCapabilities.xml"
QUICKLOOK_DIR = "quicklooks"


def geotiff_path(config: RasterflowConfig, tile: Tile) -> Path:
    structure = tuple(p for p in config.tile_path_structure if p != "style")
    return tile_path(config.dir_geotiff, config.tms_id, tile, ".tif", structure=structure)


def webtile_path(config: RasterflowConfig, tile: Tile, stat: str) -> Path:
    return tile_path(
        config.dir_web_tiles, config.tms_id, tile, config.ext_web_tiles, stat,
        config.tile_path_structure,
    )  # fmt: skip


def webtiles_on_disk(config: RasterflowConfig, stat: str, z: int) -> set[tuple[int, int]]:
    """(x, y) of the web tiles of `stat` at level z on disk (one scan of its folders)."""
    level_dir = webtile_path(config, Tile(z, 0, 0), stat).parent.parent
    return tiles_in(level_dir, config.ext_web_tiles)


def geotiffs_on_disk(config: RasterflowConfig, z: int) -> set[tuple[int, int]]:
    return tiles_in(geotiff_path(config, Tile(z, 0, 0)).parent.parent, ".tif")


def tiles_in(level_dir: Path, ext: str) -> set[tuple[int, int]]:
    """(x, y) of the `{x}/{y}{ext}` files below a level's folder."""
    tiles: set[tuple[int, int]] = set()
    if not level_dir.is_dir():
        return tiles
    for column in os.scandir(level_dir):
        if not (column.is_dir() and column.name.isdigit()):
            continue
        for entry in os.scandir(column.path):
            stem = entry.name.removesuffix(ext)
            if entry.name.endswith(ext) and stem.isdigit():
                tiles.add((int(column.name), int(stem)))
    return tiles


def tile_template(config: RasterflowConfig, stat: str, z: str, x: str, y: str) -> str:
    """A statistic's web-tile path below `dir_web_tiles`, with placeholders for z, x, y
    (`{z}` for Leaflet, `{TileMatrix}` for WMTS), URL-quoted."""
    values = {"style": quote(stat), "tms": quote(config.tms_id), "z": z, "x": x, "y": y}
    return "/".join(values[part] for part in config.tile_path_structure) + config.ext_web_tiles


def events_csv(config: RasterflowConfig) -> Path:
    return Path(config.filename_rasterization_events)


def summary_csv(config: RasterflowConfig) -> Path:
    return Path(config.filename_rasters_summary)


def lock_path(config: RasterflowConfig) -> Path:
    """One run per output: the lock sits beside the event log."""
    events = events_csv(config)
    return events.with_name(events.name + ".lock")


def journal_path(config: RasterflowConfig) -> Path:
    """The folder of a run's journal parts (`workflow.records.parts`), beside the event log."""
    events = events_csv(config)
    return events.with_name(events.name + ".parts")


def state_dir(config: RasterflowConfig) -> Path:
    """`.rasterflow/` beside the event log: Parsl's run info, batch scripts and job logs."""
    return events_csv(config).parent / ".rasterflow"


def runinfo_dir(config: RasterflowConfig) -> Path:
    return state_dir(config) / "runinfo"


def jobs_dir(config: RasterflowConfig) -> Path:
    return state_dir(config) / "jobs"


def viewer_path(config: RasterflowConfig) -> Path:
    return Path(config.dir_web_tiles) / VIEWER_NAME


def wmts_path(config: RasterflowConfig) -> Path:
    return Path(config.dir_web_tiles) / WMTS_NAME


def quicklook_path(config: RasterflowConfig, stat: str, z: int) -> Path:
    return Path(config.dir_web_tiles) / QUICKLOOK_DIR / f"{stat}_z{z}.png"


def stac_dir(config: RasterflowConfig) -> Path:
    return Path(config.dir_geotiff).parent / "stac"
