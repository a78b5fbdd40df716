"""Quick-looks: one small PNG per level and statistic, the level's web tiles mosaicked.

`{dir_web_tiles}/quicklooks/{stat}_z{z}.png` (beside the `{stat}/` folders): the
bounding box of the level's tiles, each tile shrunk to the same whole number of
pixels so the image fits `max_side` (tiles keep their grid alignment; a tile
is at least one pixel). Shrinking averages colours with their alpha, as Pillow
does for RGBA, so sparse pixels fade instead of vanishing or darkening.
Levels too large for a quick-look (more than `max_tiles` tiles or more than
`max_side` tiles across) are skipped with a log line: a coarser level shows them.

A worker makes a level's quick-looks once its web tiles are done (the driver sends the
task, `write_level`): the run has nothing of them left to do after its last tile.
`write_quicklooks` makes those still missing (outputs of an older version), in the driver,
one thread per core (Pillow decodes, shrinks and encodes in C without the GIL). PNG
compression is fast (level 1: 4 % larger than `optimize`, 6x faster, for images of at
most 512 px).
"""

from __future__ import annotations

import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from rasterflow.rasterize_core.atomic import atomic_write_bytes
from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.layout import quicklook_path, webtile_path, webtiles_on_disk

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

MAX_SIDE = 512  # pixels on the long side, at most
MAX_TILES = 20_000  # tiles read for one quick-look, at most
COMPRESS_LEVEL = 1  # zlib level of the quick-look PNGs


def mosaic(
    config: RasterflowConfig, stat: str, z: int, tiles: set[tuple[int, int]], max_side: int
) -> Image.Image:
    """The level's tiles of `stat` on one transparent RGBA canvas, shrunk to fit."""
    from PIL import Image  # here: the driver imports this module for its limits only

    x0, x1 = min(x for x, _ in tiles), max(x for x, _ in tiles)
    y0, y1 = min(y for _, y in tiles), max(y for _, y in tiles)
    height, width = config.tile_size
    across = max((x1 - x0 + 1) * width, (y1 - y0 + 1) * height)
    shrink = max(1, -(-across // max_side))  # a whole factor: tiles stay aligned
    tile_w, tile_h = max(1, width // shrink), max(1, height // shrink)
    canvas = Image.new("RGBA", ((x1 - x0 + 1) * tile_w, (y1 - y0 + 1) * tile_h), (0, 0, 0, 0))
    for x, y in sorted(tiles):
        path = webtile_path(config, Tile(z, x, y), stat)
        try:
            with Image.open(path) as image:
                tile = image if image.mode == "RGBA" else image.convert("RGBA")
                if tile.size != (tile_w, tile_h):
                    tile = tile.resize((tile_w, tile_h), Image.Resampling.BOX)
                canvas.paste(tile, ((x - x0) * tile_w, (y - y0) * tile_h))
        except OSError as err:
            log.warning("quick-look %s z%d: %s unreadable (%s)", stat, z, path, err)
    return canvas


def write_level(config: RasterflowConfig, z: int) -> list[str]:
    """The quick-looks of level z, one per statistic with web tiles there (a worker's
    task); return their paths."""
    paths = []
    for stat in config.stat_names:
        tiles = webtiles_on_disk(config, stat, z)
        if fits(stat, z, tiles):
            paths.append(str(_write_quicklook(config, stat, z, tiles, MAX_SIDE)))
    return paths


def write_quicklooks(
    config: RasterflowConfig,
    found: dict[str, dict[int, set]],
    max_side: int = MAX_SIDE,
    max_tiles: int = MAX_TILES,
    missing_only: bool = False,
) -> list[Path]:
    """A quick-look per level and statistic of `found` (statistic -> z -> web tiles on
    disk), or only those not on disk yet; return the paths of all of them."""
    levels = [(stat, z, tiles) for stat in config.stat_names
              for z, tiles in sorted(found.get(stat, {}).items())
              if fits(stat, z, tiles, max_side, max_tiles)]  # fmt: skip
    paths = [quicklook_path(config, stat, z) for stat, z, _ in levels]
    todo = [level for level, path in zip(levels, paths, strict=True)
            if not (missing_only and path.exists())]  # fmt: skip
    if todo:
        with ThreadPoolExecutor(min(len(todo), os.cpu_count() or 1)) as pool:
            for job in [pool.submit(_write_quicklook, config, stat, z, tiles, max_side)
                        for stat, z, tiles in todo]:  # fmt: skip
                job.result()
    return paths


def fits(stat: str, z: int, tiles: set[tuple[int, int]], max_side: int = MAX_SIDE,
         max_tiles: int = MAX_TILES) -> bool:  # fmt: skip
    """A level small enough for a quick-look (else a coarser level shows its tiles)."""
    if not tiles:
        return False
    xs = [x for x, _ in tiles]
    ys = [y for _, y in tiles]
    span = max(max(xs) - min(xs), max(ys) - min(ys)) + 1
    if len(tiles) > max_tiles or span > max_side:
        log.info("quick-look %s z%d skipped: %d tiles, %d across (a coarser level shows "
                 "them)", stat, z, len(tiles), span)  # fmt: skip
        return False
    return True


def _write_quicklook(
    config: RasterflowConfig, stat: str, z: int, tiles: set[tuple[int, int]], max_side: int
) -> Path:
    buffer = io.BytesIO()
    mosaic(config, stat, z, tiles, max_side).save(buffer, format="PNG",
                                                  compress_level=COMPRESS_LEVEL)  # fmt: skip
    path = quicklook_path(config, stat, z)
    atomic_write_bytes(path, buffer.getvalue())
    return path
