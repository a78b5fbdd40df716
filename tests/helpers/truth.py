"""Independent truth per pixel, from shapely and numpy alone (never from rasterflow's kernels)."""

from __future__ import annotations

import numpy as np
import shapely

from rasterflow.rasterize_core.tiles import Tile, xy_bounds


def pixel_boxes(bounds, shape) -> np.ndarray:
    """The (h, w) shapely boxes of a grid over `bounds`, row 0 at the top."""
    left, bottom, right, top = bounds
    h, w = shape
    xs = np.linspace(left, right, w + 1)
    ys = np.linspace(top, bottom, h + 1)
    x0, y0 = np.meshgrid(xs[:-1], ys[:-1])
    x1, y1 = np.meshgrid(xs[1:], ys[1:])
    return shapely.box(x0, y1, x1, y0)


def exact_coverage(polygons, bounds, shape) -> np.ndarray:
    """Σ area(polygon ∩ pixel) / area(pixel), by shapely, over a grid (independent truth)."""
    boxes = pixel_boxes(bounds, shape).ravel()
    polygons = shapely.make_valid(np.asarray(polygons, dtype=object))
    tree = shapely.STRtree(boxes)
    poly_idx, box_idx = tree.query(polygons, predicate="intersects")
    areas = shapely.area(shapely.intersection(polygons[poly_idx], boxes[box_idx]))
    total = np.bincount(box_idx, weights=areas, minlength=boxes.size)
    return (total / shapely.area(boxes)).reshape(shape)


def centroid_histogram(polygons, bounds, shape) -> np.ndarray:
    """Polygons per pixel by centroid, binned by numpy (rows from the top)."""
    centroids = shapely.centroid(shapely.make_valid(polygons))
    left, bottom, right, top = bounds
    counts, _, _ = np.histogram2d(
        shapely.get_y(centroids), shapely.get_x(centroids),
        bins=[np.linspace(bottom, top, shape[0] + 1), np.linspace(left, right, shape[1] + 1)],
    )  # fmt: skip
    return counts[::-1]


def tile_box(tile: Tile, tms_id: str = "WorldCRS84Quad"):
    return shapely.box(*xy_bounds(tms_id, tile))
