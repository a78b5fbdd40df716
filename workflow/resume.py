"""What a rerun must redo: each step's fingerprint against the row it left.

A step's fingerprint hashes the config parts it depends on and its inputs:
the staged file (size, mtime) for a z-max tile, the children's output
checksums for a parent, the GeoTIFF's checksum and the level's value ranges
for web tiles. A tile is skipped when its last row is `ok` with the same
fingerprint and its output files exist; so a new palette redoes only web
tiles, and a parent is rebuilt exactly when one of its children changed or
went missing. A GeoTIFF rewritten by this run (its file was deleted, say) has
its web tiles redone too, even when the new bytes equal the old.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.layout import geotiff_path, webtile_path
from rasterflow.workflow.plan import Plan
from rasterflow.workflow.records import RunRecords

RASTER_KEYS = ("tms_id", "tile_size", "prop_centroid_x", "prop_centroid_y", "prop_duplicated",
               "deduplicate_at", "cog")  # fmt: skip
STAT_RASTER_KEYS = ("name", "weight_by", "property", "aggregation_method")
STAT_PARENT_KEYS = ("resampling_method",)
STAT_WEB_KEYS = ("palette", "nodata_val", "nodata_color")


def digest(*parts: object) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_parts(config: RasterflowConfig) -> dict[str, str]:
    """Digest of the config parts each step depends on."""
    dumped = config.model_dump(mode="json")
    stats = dumped["statistics"]
    raster = digest({k: dumped[k] for k in RASTER_KEYS},
                    [{k: s[k] for k in STAT_RASTER_KEYS} for s in stats])  # fmt: skip
    parent = digest(raster, [{k: s[k] for k in STAT_PARENT_KEYS} for s in stats])
    web = digest([{k: s[k] for k in STAT_WEB_KEYS} for s in stats],
                 dumped["tile_path_structure"], dumped["dir_web_tiles"])  # fmt: skip
    return {"rasterize": raster, "parent": parent, "webtile": web}


@dataclass
class Fingerprints:
    config: RasterflowConfig
    plan: Plan
    records: RunRecords
    overwrite: bool
    run_id: str = ""  # this run: web tiles over a GeoTIFF it rewrote are redone

    def __post_init__(self) -> None:
        self.parts = config_parts(self.config)

    def todo(self, step: str, tiles, ranges: dict | None) -> dict[Tile, str]:
        """The tiles of `tiles` that need `step` now, with their new fingerprints."""
        todo = {}
        for tile in tiles:
            fingerprint = self.fingerprint(step, tile, ranges)
            if self.overwrite or not self._done(step, tile, fingerprint):
                todo[tile] = fingerprint
        return todo

    def fingerprint(self, step: str, tile: Tile, ranges: dict | None) -> str:
        if step == "rasterize":
            return digest(self.parts[step], _stamp(self.plan.sources.get(tile)))
        if step == "parent":
            return digest(self.parts[step], [self._checksum(child) for child in tile.children()])
        return digest(self.parts[step], ranges, self._checksum(tile))

    def _geotiff_row(self, tile: Tile) -> dict | None:
        """The row of the step that writes this tile's GeoTIFF."""
        return self.records.event(self.plan.raster_step(tile.z), *tile)

    def _checksum(self, tile: Tile) -> str:
        row = self._geotiff_row(tile)
        return row["checksum"] if row and row["status"] == "ok" else "-"

    def _rewritten_now(self, tile: Tile) -> bool:
        row = self._geotiff_row(tile)
        return bool(self.run_id) and row is not None and row["run_id"] == self.run_id

    def _done(self, step: str, tile: Tile, fingerprint: str) -> bool:
        row = self.records.event(step, *tile)
        if not row or row["status"] != "ok" or row.get("fingerprint") != fingerprint:
            return False
        if step == "webtile":
            if self._rewritten_now(tile):
                return False  # same bytes maybe, but the PNGs are redone with their source
            return all(webtile_path(self.config, tile, n).exists() for n in self.config.stat_names)
        return geotiff_path(self.config, tile).exists()


def _stamp(path: str | None) -> list:
    try:
        info = os.stat(path)
    except (OSError, TypeError):
        return [path, None]
    return [path, info.st_size, info.st_mtime_ns]
