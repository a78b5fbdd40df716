"""What a run does: the z-max tiles, every level's parents, and the batches, as arrays.

Tiles are kept in Z-order (Morton) so that a contiguous chunk is a compact
spatial block at every level: the children of a run of parents are a run of
children, so each parent batch depends only on the few child batches next to it.
z-max chunks are cut by input bytes (staged tiles range from 100 KB to 15 MB),
parent and web-tile chunks by count.

A level holds numpy arrays (x, y, Morton keys, batch cuts): about 40 bytes per
z-max tile with its parents, where a dict of Tile -> path took about 500. A staged
file's path is not stored: it follows from z/x/y (`staged_path`); only a file whose
name is not the plain number (`007.gpkg`) is kept, in `Staged.odd_paths`.
"""

from __future__ import annotations

import math
import os
import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rasterflow.rasterize_core.errors import RasterflowError
from rasterflow.rasterize_core.tiles import Tile, get_tms, matrix_size
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.steps import Step

TILE_NAME = re.compile(r"^(\d+)$")

# Tiles per task at most: a second or two of work (11 ms a real z-max tile), well within
# Parsl's task rate; Parsl's own cost per task (~1-2 ms of the driver's CPU) is then a few
# µs per tile. Small runs cut smaller batches by bytes (`default_batch_bytes`).
MAX_BATCH_TILES = 128
WEB_BATCH_FACTOR = 4  # a tile's PNGs cost about a quarter of its GeoTIFF: 4x the tiles


# -- Morton keys -------------------------------------------------------------------------
def _spread(values: np.ndarray) -> np.ndarray:
    """The bits of 32-bit values moved to the even bits of 64 (magic-number interleave)."""
    v = np.asarray(values).astype(np.uint64) & np.uint64(0xFFFFFFFF)
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF),
                        (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333),
                        (1, 0x5555555555555555)):  # fmt: skip
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def morton_keys(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`tiles.morton_key` for arrays of x and y (0 <= x, y < 2^32): x bits even, y odd."""
    return _spread(x) | (_spread(y) << np.uint64(1))


# -- a level ---------------------------------------------------------------------------------
@dataclass
class Level:
    """One zoom's tiles in Morton order, cut into batches: batch b is [cuts[b], cuts[b+1])."""

    z: int
    x: np.ndarray
    y: np.ndarray
    keys: np.ndarray  # ascending
    cuts: np.ndarray
    # Parents only: batch b waits for the child level's batches [dep_lo[b], dep_hi[b]).
    dep_lo: np.ndarray | None = None
    dep_hi: np.ndarray | None = None

    @classmethod
    def of_tiles(cls, z: int, x, y, batch_tiles: int = MAX_BATCH_TILES) -> Level:
        """A level of these tiles (any order, distinct), Morton-sorted, cut by count."""
        keys = morton_keys(x, y)
        order = np.argsort(keys, kind="stable")
        n = len(keys)
        return cls(z, np.asarray(x, np.int32)[order], np.asarray(y, np.int32)[order],
                   keys[order], np.append(np.arange(0, n, batch_tiles), n))  # fmt: skip

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def n_batches(self) -> int:
        return len(self.cuts) - 1

    def batch(self, b: int) -> tuple[int, int]:
        return int(self.cuts[b]), int(self.cuts[b + 1])

    def tiles(self, index: np.ndarray | slice | None = None) -> list[Tile]:
        pick = slice(None) if index is None else index
        return [Tile(self.z, x, y) for x, y in zip(self.x[pick].tolist(),
                                                   self.y[pick].tolist(), strict=True)]  # fmt: skip

    def find(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of each (x, y) in this level, and whether it is there at all."""
        keys = morton_keys(x, y)
        index = np.searchsorted(self.keys, keys)
        inside = index < len(self.keys)
        found = np.zeros(len(keys), dtype=bool)
        found[inside] = self.keys[index[inside]] == keys[inside]
        return np.where(found, index, 0), found

    def children_index(self, child: Level, index: np.ndarray | slice = slice(None)
                       ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """(n, 4) index into `child` of the children of these tiles (in `Tile.children`
        order: a child's key is its parent's shifted by 2, plus 0-3), and whether each child
        is in that level."""
        corner = np.array([0, 1, 2, 3], dtype=np.uint64)
        keys = (self.keys[index][:, None] << np.uint64(2)) | corner
        index = np.searchsorted(child.keys, keys.ravel())
        inside = index < len(child.keys)
        found = np.zeros(index.shape, dtype=bool)
        found[inside] = child.keys[index[inside]] == keys.ravel()[inside]
        return np.where(found, index, 0).reshape(-1, 4), found.reshape(-1, 4)


# -- staged tiles ----------------------------------------------------------------------------
@dataclass
class Staged:
    """z-max tiles to run, as arrays: the files' sizes and mtimes (-1 when missing)."""

    template: str  # the staged path with {z}, {x}, {y}
    z: np.ndarray
    x: np.ndarray
    y: np.ndarray
    size: np.ndarray
    mtime: np.ndarray
    odd_paths: dict[tuple[int, int, int], str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)

    def path(self, z: int, x: int, y: int) -> str:
        return self.odd_paths.get((z, x, y)) or self.template.format(z=z, x=x, y=y)


SENTINELS = (3141592653, 2718281828, 1618033988)  # z, x, y in a sample path


def path_template(path_of_tile) -> str:
    """`path_of_tile(Tile)` as a format string with {z}, {x}, {y} (so millions of paths are
    formatted, not built as Path objects)."""
    text = str(path_of_tile(Tile(*SENTINELS))).replace("{", "{{").replace("}", "}}")
    for name, value in zip("zxy", SENTINELS, strict=True):
        text = text.replace(str(value), "{" + name + "}")
    return text


def staged_path(config: RasterflowConfig, tile: Tile) -> Path:
    """Where staging writes a tile: `{dir_staged}/{tms}/{z}/{x}/{y}{ext_staged}`."""
    return Path(config.dir_staged, config.tms_id, str(tile.z), str(tile.x),
                f"{tile.y}{config.ext_staged}")  # fmt: skip


def list_staged(config: RasterflowConfig) -> Staged:
    """z-max tiles in `{dir_staged}/{tms}/{z}/{x}/{y}{ext}`; anything else there is ignored."""
    level_dir = Path(config.dir_staged) / config.tms_id / str(config.z_max)
    template = path_template(lambda tile: staged_path(config, tile))
    # x, y as 4 bytes, sizes and mtimes as 8 (a list would take 36 an entry)
    columns = (array("i"), array("i"), array("q"), array("q"))
    odd: dict[tuple[int, int, int], str] = {}
    if level_dir.is_dir():
        for column in os.scandir(level_dir):
            if column.is_dir() and TILE_NAME.match(column.name):
                _scan_column(column, config, columns, odd)
    xs, ys, sizes, mtimes = (np.frombuffer(c, dtype=np.int32 if c.typecode == "i" else np.int64)
                             for c in columns)  # fmt: skip
    return Staged(template, np.full(len(xs), config.z_max, dtype=np.int32), xs, ys, sizes,
                  mtimes, odd)  # fmt: skip


def _scan_column(column: os.DirEntry, config: RasterflowConfig, columns, odd) -> None:
    """One x column's tiles: 10^7 of them pass here, so a few string tests each."""
    xs, ys, sizes, mtimes = columns
    x, ext = int(column.name), config.ext_staged
    plain_x = column.name == str(x)
    for entry in os.scandir(column.path):
        name = entry.name
        stem = name[: -len(ext)] if ext and name.endswith(ext) else ""
        if not stem.isdecimal():  # what TILE_NAME matches
            continue
        try:
            info = entry.stat()
        except OSError:
            continue  # gone since the listing
        y = int(stem)
        xs.append(x)
        ys.append(y)
        sizes.append(info.st_size)
        mtimes.append(info.st_mtime_ns)
        if not plain_x or stem != str(y):  # `007.gpkg`: keep its path
            odd[(config.z_max, x, y)] = entry.path


def read_tile_list(path: str | os.PathLike[str], config: RasterflowConfig) -> Staged:
    """A subset to run: one `z/x/y` (or a staged path ending so) per line."""
    tiles = []
    for line in Path(path).read_text().splitlines():
        parts = re.findall(r"\d+", line.strip().removesuffix(config.ext_staged))
        if len(parts) >= 3:
            tiles.append(tuple(int(p) for p in parts[-3:]))
    z, x, y = (np.array(c, dtype=np.int64) for c in zip(*tiles, strict=True)) if tiles else (
        np.zeros(0, dtype=np.int64),) * 3  # fmt: skip
    template = path_template(lambda tile: staged_path(config, tile))
    stamps = [_stamp(template.format(z=a, x=b, y=c)) for a, b, c in tiles]
    sizes = np.array([s for s, _ in stamps], dtype=np.int64)
    mtimes = np.array([m for _, m in stamps], dtype=np.int64)
    return Staged(template, z, x, y, sizes, mtimes)


def _stamp(path: str) -> tuple[int, int]:
    try:
        info = os.stat(path)
    except OSError:
        return -1, -1  # missing or unreadable: the task reports it
    return info.st_size, info.st_mtime_ns


def staged_sources(
    config: RasterflowConfig, tiles_file: str | os.PathLike[str] | None = None
) -> Staged:
    """The z-max tiles to run: all staged ones, or those a tile list names."""
    staged = read_tile_list(tiles_file, config) if tiles_file else list_staged(config)
    if not len(staged):
        where = tiles_file or Path(config.dir_staged) / config.tms_id / str(config.z_max)
        raise RasterflowError(
            f"no staged tiles found in {where} (pattern {{x}}/{{y}}{config.ext_staged})"
        )
    return staged


# -- the plan ---------------------------------------------------------------------------------
@dataclass
class Plan:
    z_max: int
    z_min: int
    levels: dict[int, Level]  # z_max first, then down to z_min
    source_template: str  # the staged path with {z}, {x}, {y}
    odd_paths: dict[tuple[int, int, int], str] = field(default_factory=dict)
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # z-max, bytes
    mtimes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (-1: missing)
    invalid: list[Tile] = field(default_factory=list)  # z-max tiles outside the grid
    batch_bytes: int = 0  # the limits the z-max batches were cut by
    batch_tiles: int = 0

    def raster_step(self, z: int) -> Step:
        """The step that writes a GeoTIFF at zoom z."""
        return Step.raster(z, self.z_max)

    def level_size(self, z: int) -> int:
        """Tiles a step works on at z (at z-max, those outside the grid too: they fail)."""
        return len(self.levels[z]) + (len(self.invalid) if z == self.z_max else 0)

    @property
    def n_tiles(self) -> int:
        return sum(self.level_size(z) for z in self.levels)

    def source(self, z: int, x: int, y: int) -> str:
        return self.odd_paths.get((z, x, y)) or self.source_template.format(z=z, x=x, y=y)


def plan_run(config: RasterflowConfig, staged: Staged, workers: int) -> Plan:
    """The plan `run` executes: z-max batches sized by bytes for `workers`."""
    total = int(np.maximum(staged.size, 0).sum())
    return make_plan(config, staged, default_batch_bytes(total, workers), MAX_BATCH_TILES)


def make_plan(config: RasterflowConfig, staged: Staged, batch_bytes: int,
              batch_tiles: int) -> Plan:  # fmt: skip
    """Levels and batches from the z-max tiles and their sizes in bytes."""
    outside = _outside_grid(config.tms_id, config.z_max, staged.z, staged.x, staged.y)
    invalid = list(dict.fromkeys(Tile(*t) for t in zip(
        staged.z[outside].tolist(), staged.x[outside].tolist(), staged.y[outside].tolist(),
        strict=True)))  # fmt: skip
    valid = np.flatnonzero(~outside)
    keys = morton_keys(staged.x[valid], staged.y[valid])
    sort = np.argsort(keys, kind="stable")
    distinct = np.ones(len(sort), dtype=bool)  # a tile list may name a tile twice: first wins
    distinct[1:] = keys[sort][1:] != keys[sort][:-1]
    sort = sort[distinct]
    order = valid[sort]
    sizes = staged.size[order]
    top = Level(config.z_max, staged.x[order].astype(np.int32), staged.y[order].astype(np.int32),
                keys[sort], _byte_cuts(np.maximum(sizes, 0), batch_bytes, batch_tiles))  # fmt: skip
    levels = {config.z_max: top}
    for z in range(config.z_max - 1, config.z_min - 1, -1):
        levels[z] = _parent_level(levels[z + 1], batch_tiles)
    return Plan(config.z_max, config.z_min, levels, staged.template, staged.odd_paths, sizes,
                staged.mtime[order], invalid, batch_bytes, batch_tiles)  # fmt: skip


def _outside_grid(tms_id: str, z_max: int, z, x, y) -> np.ndarray:
    """Per tile: not at z_max, or outside the tile matrix there (`tile_in_grid`, vectorised)."""
    tms = get_tms(tms_id)
    if not tms.minzoom <= z_max <= tms.maxzoom:
        return np.ones(len(x), dtype=bool)
    width, height = matrix_size(tms_id, z_max)
    return (z != z_max) | (x < 0) | (x >= width) | (y < 0) | (y >= height)


def _byte_cuts(sizes: np.ndarray, limit: int, max_tiles: int) -> np.ndarray:
    """Greedy batches in order: a batch takes tiles while their bytes fit in `limit` (its
    first tile always), up to `max_tiles`."""
    total = np.concatenate([[0], np.cumsum(sizes)])
    cuts, start, n = [0], 0, len(sizes)
    while start < n:
        end = int(np.searchsorted(total, total[start] + limit, side="right")) - 1
        start = min(max(end, start + 1), start + max_tiles, n)
        cuts.append(start)
    return np.array(cuts, dtype=np.int64)


def _parent_level(child: Level, batch_tiles: int) -> Level:
    """The parents of `child`'s tiles (its Morton order, a key shifted by 2, stays sorted),
    in batches of `batch_tiles`, each waiting for the child batches holding its children."""
    parent_keys = child.keys >> np.uint64(2)
    first = np.ones(len(parent_keys), dtype=bool)
    first[1:] = parent_keys[1:] != parent_keys[:-1]
    keys = parent_keys[first]
    level = Level(child.z - 1, child.x[first] // 2, child.y[first] // 2, keys,
                  np.append(np.arange(0, len(keys), batch_tiles), len(keys)))  # fmt: skip
    lo_keys = keys[level.cuts[:-1]] << np.uint64(2)
    hi_keys = (keys[level.cuts[1:] - 1] << np.uint64(2)) | np.uint64(3)
    lo = np.searchsorted(child.keys, lo_keys, side="left")
    hi = np.searchsorted(child.keys, hi_keys, side="right")
    level.dep_lo = np.searchsorted(child.cuts, lo, side="right") - 1
    level.dep_hi = np.searchsorted(child.cuts, hi, side="left")
    return level


def default_batch_bytes(total_bytes: int, workers: int) -> int:
    """About four batches per worker (so none idles at the end), between 1 and 128 MB (a
    real staged tile takes ~7 ms a MB: a full batch is about a second of work)."""
    share = math.ceil(total_bytes / max(1, 4 * workers))
    return min(max(share, 1 << 20), 128 << 20)
