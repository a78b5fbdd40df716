"""What a rerun must redo: each step's fingerprint against the row it left, by whole levels.

A step's fingerprint hashes its output version, the config parts it depends on and its
inputs: the staged file (size, mtime) for a z-max tile, the children's output checksums
for a parent, the GeoTIFF's checksum and the level's value ranges for web tiles. A tile
is skipped when its last row is `ok` with the same fingerprint and its output files exist;
so a new palette redoes only web tiles, and a parent is rebuilt exactly when one of its
children changed or went missing. A GeoTIFF rewritten by this run (its file was deleted,
say) has its web tiles redone too, even when the new bytes equal the old.

Everything here works on a level's arrays (in the plan's order): fingerprints are 64-bit
hashes computed for a whole batch at once (splitmix64 over the columns, seeded by a
sha256 of the config parts), a level's rows are read a chunk at a time into a few arrays
(`LevelRows`, 18 bytes a tile), and files are checked for existence only for tiles whose
row says they are done.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.layout import geotiff_path, webtile_path
from rasterflow.workflow.plan import Level, path_template
from rasterflow.workflow.records import RecordsReader, column, matches
from rasterflow.workflow.steps import Status, Step

# A staged file is known by its tile, size and mtime (not its folder: a staged tree moved
# with its mtimes, as `cp -p` or `rsync -t` keep them, is the same input).
RASTER_KEYS = ("tms_id", "tile_size", "prop_centroid_x", "prop_centroid_y", "prop_duplicated",
               "deduplicate_at", "cog", "ext_staged")  # fmt: skip
STAT_RASTER_KEYS = ("name", "weight_by", "property", "aggregation_method")
STAT_PARENT_KEYS = ("resampling_method",)
STAT_WEB_KEYS = ("palette", "nodata_val", "nodata_color")
# What each step writes for the same input and config, by version: a change to rasterflow
# that alters those bytes bumps its step's, so that a rerun after the upgrade redoes that
# step (and what is built from it) instead of keeping what an older rasterflow wrote. Not
# the package's version: a release that changes no output redoes nothing of a 10^7-tile run.
OUTPUT_VERSIONS = {Step.RASTERIZE: 1, Step.PARENT: 1, Step.WEBTILE: 1}
_GOLDEN, _M1, _M2 = (np.uint64(v) for v in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9,
                                             0x94D049BB133111EB))  # fmt: skip


def digest(*parts: object) -> int:
    """A 64-bit seed from JSON-able parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def config_seeds(config: RasterflowConfig) -> dict[Step, int]:
    """A seed per step from its output version and the config parts it depends on."""
    dumped = config.model_dump(mode="json")
    stats = dumped["statistics"]
    versions = OUTPUT_VERSIONS
    raster = digest(versions[Step.RASTERIZE], {k: dumped.get(k) for k in RASTER_KEYS},
                    [{k: s[k] for k in STAT_RASTER_KEYS} for s in stats])  # fmt: skip
    parent = digest(raster, versions[Step.PARENT],
                    [{k: s[k] for k in STAT_PARENT_KEYS} for s in stats])  # fmt: skip
    # Not the output folders: a moved run finds its files where the config now says (and
    # redoes what is not there).
    web = digest(versions[Step.WEBTILE], [{k: s[k] for k in STAT_WEB_KEYS} for s in stats],
                 dumped["tile_path_structure"])  # fmt: skip
    return {Step.RASTERIZE: raster, Step.PARENT: parent, Step.WEBTILE: web}


def hash_columns(seed: int, *columns: np.ndarray) -> np.ndarray:
    """One 64-bit hash per row of the columns (splitmix64 steps); never 0 (0: none)."""
    n = len(columns[0]) if columns else 0
    h = np.full(n, seed, dtype=np.uint64)
    for values in columns:
        h ^= np.asarray(values).astype(np.uint64) + _GOLDEN
        h ^= h >> np.uint64(30)
        h *= _M1
        h ^= h >> np.uint64(27)
        h *= _M2
        h ^= h >> np.uint64(31)
    h[h == 0] = 1
    return h


def web_seed(seed: int, ranges: dict | None) -> int:
    """The web tiles' seed at one level: their config parts and the level's value ranges."""
    return digest(seed, sorted((ranges or {}).items()))


# -- a level's rows as the run found them --------------------------------------------------
@dataclass
class LevelRows:
    """One step's rows at one level, by the level's tile index (zeros where no row)."""

    ok: np.ndarray  # bool
    failed: np.ndarray  # bool
    fingerprint: np.ndarray  # uint64
    checksum: np.ndarray  # uint64: the output's, where the row is ok (0 otherwise)

    @classmethod
    def empty(cls, n: int) -> LevelRows:
        return cls(np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, np.uint64),
                   np.zeros(n, np.uint64))  # fmt: skip

    @classmethod
    def read(cls, reader: RecordsReader | None, step: Step, level: Level) -> LevelRows:
        rows = cls.empty(len(level))
        if reader is None:
            return rows
        for chunk in reader.events(step, level.z, ["status", "fingerprint", "checksum"]):
            index, found = level.find(column(chunk, "x"), column(chunk, "y"))
            index = index[found]
            ok = matches(chunk, "status", Status.OK)[found]
            rows.ok[index] = ok
            rows.failed[index] = matches(chunk, "status", Status.FAILED)[found]
            rows.fingerprint[index] = column(chunk, "fingerprint", 0)[found]
            rows.checksum[index] = np.where(ok, column(chunk, "checksum", 0)[found], 0)
        return rows

    def same(self, index: np.ndarray, fingerprints: np.ndarray) -> np.ndarray:
        """Rows that are ok with these fingerprints (the outputs still to be checked)."""
        return self.ok[index] & (self.fingerprint[index] == fingerprints)


# -- fingerprints of a batch ------------------------------------------------------------------
def rasterize_fingerprints(seed: int, level: Level, sizes: np.ndarray, mtimes: np.ndarray,
                           index: np.ndarray) -> np.ndarray:  # fmt: skip
    return hash_columns(seed, level.x[index], level.y[index], sizes[index], mtimes[index])


def parent_fingerprints(seed: int, level: Level, index: np.ndarray, child: Level,
                        child_checksums: np.ndarray) -> np.ndarray:  # fmt: skip
    """From the children's checksums now (0: missing or failed), in `Tile.children` order."""
    where, found = level.children_index(child, index)
    sums = np.where(found, child_checksums[where], np.uint64(0))
    return hash_columns(seed, *sums.T)


def webtile_fingerprints(seed: int, checksums: np.ndarray) -> np.ndarray:
    return hash_columns(seed, checksums)


# -- outputs on disk --------------------------------------------------------------------------
class Outputs:
    """Whether a tile's files exist, by path templates (no Path object per tile)."""

    def __init__(self, config: RasterflowConfig):
        self.geotiff = path_template(lambda tile: geotiff_path(config, tile))
        self.pngs = [path_template(lambda tile, s=name: webtile_path(config, tile, s))
                     for name in config.stat_names]  # fmt: skip

    def geotiffs_exist(self, z: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _exist(self.geotiff, z, x, y)

    def pngs_exist(self, z: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        found = np.ones(len(x), dtype=bool)
        for template in self.pngs:
            found &= _exist(template, z, x, y)
        return found


def _exist(template: str, z: int, x: np.ndarray, y: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """A stat per file, a chunk of tiles at a time (their numbers as Python ints only then)."""
    exists, found = os.path.exists, np.zeros(len(x), dtype=bool)
    for start in range(0, len(x), chunk):
        pairs = zip(x[start : start + chunk].tolist(), y[start : start + chunk].tolist(),
                    strict=True)  # fmt: skip
        found[start : start + chunk] = [exists(template.format(z=z, x=a, y=b)) for a, b in pairs]
    return found


def needs_work(rows: LevelRows, level: Level, index: np.ndarray, fingerprints: np.ndarray,
               exists, overwrite: bool, stale: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Which of the level's tiles at `index` need work: all of them with `overwrite`; else
    those without an ok row of these fingerprints (or marked `stale`, by level index), and
    those whose output `exists(z, x, y)` does not find (checked only where a row says done)."""
    if overwrite:
        return np.ones(len(index), dtype=bool)
    done = rows.same(index, fingerprints)
    if stale is not None:
        done &= ~stale[index]
    if done.any():
        at = index[done]
        done[done] = exists(level.z, level.x[at], level.y[at])
    return ~done
