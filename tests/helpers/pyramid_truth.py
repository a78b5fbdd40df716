"""A run's GeoTIFF pyramid checked against exact geometry.

Shapely gives the truth at z-max (area per pixel, centroids per pixel). Each parent level's
truth is derived here, in plain numpy, from the level below: a parent pixel is the 2x2 block of
its children's pixels, so its count is their sum and its coverage their mean (pixels of one
level have equal areas in the grid's CRS). That is exact, and much cheaper than asking shapely
again at every level; `full=True` asks shapely at every level anyway.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import rasterio

from rasterflow.rasterize_core.tiles import Tile, xy_bounds

from .truth import centroid_histogram, exact_coverage


def tiffs_by_level(root: Path, tms_id: str) -> dict[int, list[Path]]:
    levels: dict[int, list[Path]] = {}
    for path in glob.glob(str(root / tms_id / "*" / "*" / "*.tif")):
        z, x, y = (int(p) for p in Path(path).with_suffix("").parts[-3:])
        levels.setdefault(z, []).append(Path(path))
    return levels


def tile_of(path: Path) -> Tile:
    return Tile(*(int(p) for p in path.with_suffix("").parts[-3:]))


def halve(children: dict[Tile, np.ndarray], parent: Tile, shape, reduce) -> np.ndarray:
    """The parent's pixels from its four children (a missing child is all 0)."""
    h, w = shape
    block = np.zeros((2 * h, 2 * w))
    for child, band in children.items():
        if child.parent() == parent:
            row, col = child.y - 2 * parent.y, child.x - 2 * parent.x
            block[row * h : (row + 1) * h, col * w : (col + 1) * w] = band
    return reduce(block.reshape(h, 2, w, 2), axis=(1, 3))


def check_against_geometry(config, polygons: np.ndarray, n_polygons: int, full=False) -> None:
    """Every level: count conserved, coverage exact per pixel, empty pixels exactly 0."""
    levels = tiffs_by_level(Path(config.dir_geotiff), config.tms_id)
    assert sorted(levels) == list(range(config.z_min, config.z_max + 1))
    counts: dict[Tile, np.ndarray] = {}
    covers: dict[Tile, np.ndarray] = {}
    for z in range(config.z_max, config.z_min - 1, -1):
        level_counts, level_covers, total = {}, {}, 0.0
        for path in levels[z]:
            tile = tile_of(path)
            with rasterio.open(path) as dataset:
                count, coverage = dataset.read(1), dataset.read(2)
                assert dataset.descriptions[:2] == ("iwp_count", "iwp_coverage")
                assert dataset.crs is not None and dataset.nodata != dataset.nodata  # NaN
            if z == config.z_max or full:
                bounds = xy_bounds(config.tms_id, tile)
                true_cover = exact_coverage(polygons, bounds, count.shape)
                true_count = centroid_histogram(polygons, bounds, count.shape)
            else:
                true_cover = halve(covers, tile, count.shape, np.mean)
                true_count = halve(counts, tile, count.shape, np.sum)
            np.testing.assert_allclose(coverage, true_cover, atol=1e-6, rtol=0)
            assert (coverage[true_cover == 0] == 0).all()
            assert (count == true_count).all()
            assert (coverage >= 0).all() and (count >= 0).all()
            level_counts[tile], level_covers[tile] = true_count, true_cover
            total += count.sum()
        assert total == n_polygons
        counts, covers = level_counts, level_covers
