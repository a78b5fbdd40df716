"""Every statistic of DESIGN §2 against truth computed independently with shapely and pandas."""

import numpy as np
import pytest
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rasterflow.rasterize_core.read import StagedTile
from rasterflow.rasterize_core.statistics import Grid, StatSpec, compute_bands
from tests.helpers.truth import exact_coverage, pixel_boxes

GRID = Grid((10.0, 20.0, 10.8, 20.4), (4, 8))  # 0.1 x 0.1 pixels


def staged(polygons, centroids=None, **properties) -> StagedTile:
    polygons = np.array(polygons, dtype=object)
    if centroids is None:
        points = shapely.centroid(polygons)
        centroids = np.column_stack([shapely.get_x(points), shapely.get_y(points)])
    centroids = np.asarray(centroids, dtype=float)
    props = {k: np.asarray(v) for k, v in properties.items()}
    return StagedTile(polygons, centroids[:, 0], centroids[:, 1], props)


def truth_pixel_of(x, y, grid=GRID):
    """Pixel of a point by brute force: the box that contains it (half-open)."""
    boxes = pixel_boxes(grid.bounds, grid.shape).ravel()
    for index, box in enumerate(boxes):
        x0, y0, x1, y1 = box.bounds
        if x0 <= x < x1 and y0 < y <= y1:
            return index
    return None


def band(tile, spec, grid=GRID):
    return compute_bands(tile, [spec], grid)[0]


POLYGONS = [
    shapely.box(10.02, 20.02, 10.13, 20.09),
    shapely.box(10.05, 20.05, 10.24, 20.14),  # overlaps the first
    shapely.Polygon([(10.4, 20.1), (10.7, 20.12), (10.5, 20.35)]),
    shapely.box(10.6, 20.3, 10.95, 20.55),  # crosses the tile's right and top edges
]
WIDTH = [2.0, 4.0, 10.0, 7.0]


def test_count_by_centroid_only_own_polygons():
    tile = staged(POLYGONS)
    counts = band(tile, StatSpec("count", "centroids_per_pixel", "sum"))
    expected = np.zeros(GRID.shape[0] * GRID.shape[1])
    for x, y in zip(tile.centroid_x, tile.centroid_y, strict=True):
        index = truth_pixel_of(x, y)
        if index is not None:
            expected[index] += 1
    assert counts.ravel().tolist() == expected.tolist()
    assert counts.sum() == 3  # the edge-crosser's centroid (10.775, 20.425) is in another tile


def test_stored_staging_centroids_are_used():
    tile = staged([POLYGONS[0]], centroids=[(10.75, 20.05)])  # staging's point, not geometry's
    counts = band(tile, StatSpec("count", "centroids_per_pixel", "sum"))
    assert counts[3, 7] == 1 and counts.sum() == 1


# The values [3, 1, 4, 1, 5] in staged order, aggregated by hand: std and var are the sample's
# (n - 1), as PDG's pandas gives them: squared deviations from 2.8 sum to 12.8, / 4 = 3.2.
BY_HAND = {"sum": 14.0, "mean": 2.8, "max": 5.0, "min": 1.0, "count": 5.0, "median": 3.0,
           "first": 3.0, "last": 5.0, "nunique": 4.0, "var": 3.2, "std": 3.2**0.5}  # fmt: skip


@pytest.mark.parametrize("aggregation", sorted(BY_HAND))
def test_count_weighted_property_by_hand(aggregation):
    polygons = [shapely.box(10.01 + 0.01 * i, 20.01, 10.03 + 0.01 * i, 20.03) for i in range(5)]
    values = [3.0, 1.0, 4.0, 1.0, 5.0]
    tile = staged(polygons, Width=values)
    result = band(tile, StatSpec("count", "Width", aggregation))
    assert result[3, 0] == pytest.approx(BY_HAND[aggregation], rel=1e-12)  # all five centroids
    empty = result.copy()
    empty[3, 0] = 0
    if aggregation in ("sum", "count", "nunique"):
        assert not empty.any()
    else:
        assert np.isnan(np.delete(result.ravel(), 3 * 8)).all()


def test_coverage_and_area_within_pixel_match_shapely():
    tile = staged(POLYGONS)
    truth = exact_coverage(POLYGONS, GRID.bounds, GRID.shape)
    coverage = band(tile, StatSpec("area", "area_per_pixel_area", "sum"))
    area = band(tile, StatSpec("area", "area_within_pixel", "sum"))
    np.testing.assert_allclose(coverage, truth, atol=1e-9, rtol=0)
    np.testing.assert_allclose(area, truth * 0.01, atol=1e-11, rtol=0)
    assert (coverage[truth == 0] == 0).all()


def test_overlapping_polygons_add():
    twice = [shapely.box(10.1, 20.1, 10.2, 20.2)] * 2
    coverage = band(staged(twice), StatSpec("area", "area_per_pixel_area", "sum"))
    assert coverage[2, 1] == pytest.approx(2.0, abs=1e-12)
    assert np.count_nonzero(coverage) == 1


def area_truth(polygons, values, grid=GRID):
    """Per pixel: list of (fraction, value) from shapely."""
    boxes = pixel_boxes(grid.bounds, grid.shape).ravel()
    cells = [[] for _ in boxes]
    for polygon, value in zip(polygons, values, strict=True):
        for index, box in enumerate(boxes):
            fraction = shapely.intersection(polygon, box).area / box.area
            if fraction > 1e-12:  # pixel edges from linspace are off by ~1e-16
                cells[index].append((fraction, value))
    return cells


@pytest.mark.parametrize("aggregation", ["sum", "mean", "min", "max", "count"])
def test_area_weighted_property(aggregation):
    tile = staged(POLYGONS, Width=WIDTH)
    result = band(tile, StatSpec("area", "Width", aggregation)).ravel()
    for index, cell in enumerate(area_truth(POLYGONS, WIDTH)):
        f = np.array([c[0] for c in cell])
        v = np.array([c[1] for c in cell])
        expected = {
            "sum": (f * v).sum(),
            "mean": (f * v).sum() / f.sum() if cell else np.nan,
            "min": v.min() if cell else np.nan,
            "max": v.max() if cell else np.nan,
            "count": float(len(cell)),
        }[aggregation]
        assert result[index] == pytest.approx(expected, abs=1e-9, nan_ok=True), index


def test_polygon_with_hole_and_multipolygon():
    outer = shapely.box(10.0, 20.0, 10.4, 20.4)
    hole = shapely.box(10.1, 20.1, 10.3, 20.3)
    ring = shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])
    multi = shapely.MultiPolygon([shapely.box(10.5, 20.0, 10.55, 20.05),
                                  shapely.box(10.65, 20.3, 10.8, 20.4)])  # fmt: skip
    tile = staged([ring, multi])
    coverage = band(tile, StatSpec("area", "area_per_pixel_area", "sum"))
    np.testing.assert_allclose(coverage, exact_coverage([ring, multi], GRID.bounds, GRID.shape),
                               atol=1e-9)  # fmt: skip
    assert coverage.sum() * 0.01 == pytest.approx(ring.area + multi.area, abs=1e-12)


def test_empty_tile_gives_zero_and_nan():
    tile = staged([], centroids=np.empty((0, 2)), Width=np.array([]))
    specs = [
        StatSpec("count", "centroids_per_pixel", "sum"),
        StatSpec("area", "area_per_pixel_area", "sum"),
        StatSpec("area", "Width", "mean"),
    ]
    bands = compute_bands(tile, specs, GRID)
    assert (bands[0] == 0).all() and (bands[1] == 0).all() and np.isnan(bands[2]).all()


@st.composite
def random_boxes(draw):
    n = draw(st.integers(1, 6))
    boxes = []
    for _ in range(n):
        x0 = draw(st.floats(9.9, 10.8))
        y0 = draw(st.floats(19.9, 20.4))
        boxes.append(shapely.box(x0, y0, x0 + draw(st.floats(0.001, 0.3)),
                                 y0 + draw(st.floats(0.001, 0.3))))  # fmt: skip
    return boxes


@settings(max_examples=40, deadline=None)
@given(random_boxes())
@example([shapely.box(10.1, 20.1, 10.2, 20.2)])  # exactly one pixel
@example([shapely.box(9.0, 19.0, 12.0, 21.0)])  # covers the whole grid
def test_coverage_property(boxes):
    tile = staged(boxes)
    coverage = band(tile, StatSpec("area", "area_per_pixel_area", "sum"))
    truth = exact_coverage(boxes, GRID.bounds, GRID.shape)
    np.testing.assert_allclose(coverage, truth, atol=1e-9, rtol=0)
    assert (coverage >= 0).all() and (coverage[truth == 0] == 0).all()
