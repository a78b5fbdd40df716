"""The exact-coverage kernel against independent truth: shapely's exact pixel intersections."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import shapely.affinity
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from shapely import MultiPolygon, Polygon

from rasterflow.rasterize_core.coverage import coverage_fraction, coverage_triplets
from tests.helpers.real_data import REAL_DATA
from tests.helpers.truth import pixel_boxes

UNIT_4X4 = ((0.0, 0.0, 4.0, 4.0), (4, 4))
TOL = 1e-9

# ---- truth -------------------------------------------------------------------------------


def truth_per_geom(truth_geoms, bounds, shape):
    """(n, height, width): area(geom ∩ pixel) / area(pixel) by shapely's overlay."""
    boxes = pixel_boxes(bounds, shape).ravel()
    out = np.zeros((len(truth_geoms), *shape))
    for i, geom in enumerate(truth_geoms):
        if geom is not None and not geom.is_empty:
            out[i] = (shapely.area(shapely.intersection(geom, boxes)) / boxes[0].area).reshape(
                shape
            )
    return out


def dense(triplets, n, shape):
    """Triplets → (n, height, width), checking each (geom, pixel) pair appears once."""
    geom, pixel, frac = triplets
    assert geom.dtype == np.int64 and pixel.dtype == np.int64 and frac.dtype == np.float64
    assert len(geom) == len(pixel) == len(frac)
    pairs = geom * (shape[0] * shape[1]) + pixel
    assert len(np.unique(pairs)) == len(pairs), "a (geom, pixel) pair emitted twice"
    assert np.all(frac > 0) and np.all(frac <= 1), "fractions must lie in (0, 1]"
    out = np.zeros((n, shape[0] * shape[1]))
    out[geom, pixel] = frac
    return out.reshape(n, *shape)


def objects(geoms):
    out = np.empty(len(geoms), dtype=object)
    out[:] = list(geoms)
    return out


def assert_exact(geoms, bounds, shape, truth_geoms=None):
    """Kernel output equals shapely's truth per polygon and summed; untouched pixels are 0.0."""
    geoms = objects(geoms)
    truth_geoms = list(geoms) if truth_geoms is None else list(truth_geoms)
    truth = truth_per_geom(truth_geoms, bounds, shape)
    got = dense(coverage_triplets(geoms, bounds, shape), len(geoms), shape)
    np.testing.assert_allclose(got, truth, rtol=0, atol=TOL)
    assert np.all(got[truth == 0] == 0.0), "a pixel with no intersection must be exactly 0"
    total = coverage_fraction(geoms, bounds, shape)
    assert total.shape == tuple(shape) and total.dtype == np.float64
    np.testing.assert_allclose(total, truth.sum(axis=0), rtol=0, atol=TOL * max(1, len(geoms)))
    assert np.all(total[truth.sum(axis=0) == 0] == 0.0)
    return got


# ---- pinned examples -----------------------------------------------------------------------


def test_pixel_aligned_square_is_exactly_one_inside_zero_outside():
    got = assert_exact([shapely.box(1, 1, 3, 2)], *UNIT_4X4)[0]
    expected = np.zeros((4, 4))
    expected[2, 1:3] = 1.0  # y in [1, 2] is row 2 counted from the top
    assert np.array_equal(got, expected)


def test_triangle_on_4x4():
    got = assert_exact([Polygon([(0, 0), (4, 0), (0, 4)])], *UNIT_4X4)[0]
    expected = [[0.5, 0, 0, 0], [1, 0.5, 0, 0], [1, 1, 0.5, 0], [1, 1, 1, 0.5]]
    np.testing.assert_allclose(got, expected, atol=1e-15)


def test_hole_subtracts():
    ring = shapely.box(0, 0, 4, 4).difference(shapely.box(1, 1, 3, 3))
    assert len(ring.interiors) == 1
    got = assert_exact([ring], *UNIT_4X4)[0]
    assert np.all(got[1:3, 1:3] == 0.0) and np.all(got[0] == 1.0)


def test_hole_with_half_pixels():
    poly = Polygon(
        [(0, 0), (4, 0), (4, 4), (0, 4)], holes=[[(0.5, 0.5), (0.5, 3.5), (3.5, 3.5), (3.5, 0.5)]]
    )
    got = assert_exact([poly], *UNIT_4X4)[0]
    assert got[0, 0] == pytest.approx(0.75) and got[0, 1] == pytest.approx(0.5)
    assert got[1, 1] == 0.0


def test_multipolygon_parts_add_into_one_triplet_per_pixel():
    multi = MultiPolygon([shapely.box(0, 0, 1.5, 1), shapely.box(1.5, 0, 2, 0.5)])
    geom, pixel, frac = coverage_triplets(np.array([multi]), *UNIT_4X4)
    assert set(geom) == {0}
    got = dense((geom, pixel, frac), 1, (4, 4))[0]
    assert got[3, 0] == 1.0 and got[3, 1] == pytest.approx(0.75)
    assert_exact([multi], *UNIT_4X4)


def test_overlapping_polygons_add_beyond_one():
    a, b = shapely.box(0, 0, 2, 2), shapely.box(1, 1, 3, 3)
    assert_exact([a, b], *UNIT_4X4)
    total = coverage_fraction(np.array([a, b]), *UNIT_4X4)
    assert total[2, 1] == 2.0 and total[3, 0] == 1.0 and total.max() == 2.0


def test_bow_tie_is_repaired_keeping_both_lobes():
    bow_tie = Polygon([(0, 0), (4, 4), (4, 0), (0, 4)])
    assert not bow_tie.is_valid  # as a ring its signed lobes would cancel
    lobes = MultiPolygon(
        [Polygon([(0, 0), (2, 2), (0, 4)]), Polygon([(4, 0), (2, 2), (4, 4)])]
    )  # built by hand, not by make_valid
    got = assert_exact([bow_tie], *UNIT_4X4, truth_geoms=[lobes])[0]
    assert got.sum() == pytest.approx(8.0)  # two triangles of area 4
    assert got[0, 0] == pytest.approx(0.5) and got[1, 1] == pytest.approx(0.5)


def test_repair_drops_lines_left_by_make_valid():
    spike = Polygon([(0, 0), (2, 0), (2, 1), (3.5, 1), (2, 1), (2, 2), (0, 2), (0, 0)])
    assert shapely.make_valid(spike).geom_type == "GeometryCollection"
    assert_exact([spike], *UNIT_4X4, truth_geoms=[shapely.box(0, 0, 2, 2)])


def test_only_invalid_geometries_go_through_make_valid(monkeypatch):
    seen = []
    real = shapely.make_valid

    def spy(geoms, *args, **kwargs):
        seen.extend(np.atleast_1d(geoms))
        return real(geoms, *args, **kwargs)

    monkeypatch.setattr(shapely, "make_valid", spy)
    bow_tie = Polygon([(0, 0), (4, 4), (4, 0), (0, 4)])
    coverage_triplets(np.array([shapely.box(0, 0, 1, 1), bow_tie]), *UNIT_4X4)
    assert seen == [bow_tie]


def test_ring_orientation_does_not_matter():
    # Both rings counter-clockwise, as careless writers produce: a naive signed sum would add
    # the hole instead of subtracting it.
    poly = Polygon(
        [(0.2, 0.1), (3.7, 0.4), (3.9, 3.8), (0.3, 3.5)],
        holes=[[(1.2, 1.3), (2.6, 1.1), (2.5, 2.7), (1.4, 2.4)]],
    )
    assert poly.exterior.is_ccw and poly.interiors[0].is_ccw
    both_cw = Polygon(poly.exterior.coords[::-1], holes=[poly.interiors[0].coords[::-1]])
    variants = [
        poly,
        both_cw,
        shapely.orient_polygons(poly),
        shapely.orient_polygons(poly, exterior_cw=True),
    ]
    got = [assert_exact([g], *UNIT_4X4, truth_geoms=[poly])[0] for g in variants]
    assert all(np.allclose(g, got[0], rtol=0, atol=1e-12) for g in got)
    assert got[0].sum() == pytest.approx(poly.area)


def test_polygon_crossing_every_grid_edge_counts_only_inside():
    diamond = Polygon([(2, -1.3), (5.6, 2.2), (2.1, 5.2), (-1.7, 1.9)])
    got = assert_exact([diamond], *UNIT_4X4)[0]
    assert got[0, 0] > 0 and got[3, 3] > 0
    big = shapely.box(-10, -10, 10, 10).difference(shapely.box(1.5, 1.5, 2.5, 2.5))
    assert_exact([big], *UNIT_4X4)


@pytest.mark.parametrize(
    "poly",
    [
        shapely.box(-3, 1, -1, 2),  # left
        shapely.box(5, 1, 7, 2),  # right
        shapely.box(1, 4.5, 2, 6),  # above
        shapely.box(1, -6, 2, -0.5),  # below
        shapely.box(-2, -2, 0, 0),  # touches the corner only
        shapely.box(4, 0, 5, 4),  # shares the right edge only
    ],
)
def test_polygon_outside_the_grid_contributes_nothing(poly):
    geom, pixel, frac = coverage_triplets(np.array([poly]), *UNIT_4X4)
    assert len(geom) == len(pixel) == len(frac) == 0
    total = coverage_fraction(np.array([poly]), *UNIT_4X4)
    assert total.dtype == np.float64 and np.array_equal(total, np.zeros((4, 4)))


def test_polygon_touching_pixel_edges_leaves_neighbours_exactly_zero():
    square = shapely.box(1, 1, 2, 2)
    triangle = Polygon([(2, 2), (3, 2), (2, 3)])  # legs on pixel lines, corner on a pixel corner
    for geom in (square, triangle):
        got = assert_exact([geom], *UNIT_4X4)[0]
        assert np.count_nonzero(got) == 1 and np.all(got >= 0)


def test_missing_and_empty_geometries_contribute_nothing_and_keep_indices():
    geoms = np.array([None, Polygon(), shapely.box(0, 0, 1, 1), MultiPolygon()], dtype=object)
    geom, pixel, frac = coverage_triplets(geoms, *UNIT_4X4)
    assert geom.tolist() == [2] and pixel.tolist() == [12] and frac.tolist() == [1.0]
    empty = coverage_triplets(np.array([], dtype=object), *UNIT_4X4)
    assert all(len(a) == 0 for a in empty)
    assert np.array_equal(coverage_fraction(np.array([None]), *UNIT_4X4), np.zeros((4, 4)))


def test_geometry_index_survives_mixed_types_and_repairs():
    geoms = [
        shapely.box(0, 0, 1, 1),
        MultiPolygon([shapely.box(3, 3, 4, 4), shapely.box(0, 3, 1, 4)]),
        None,
        Polygon([(0, 0), (4, 4), (4, 0), (0, 4)]),
        shapely.box(1, 1, 2, 2),
    ]
    truth = [*geoms[:3], shapely.make_valid(geoms[3]), geoms[4]]
    assert_exact(geoms, *UNIT_4X4, truth_geoms=truth)


def test_non_square_pixels_at_real_tile_coordinates():
    bounds, shape = (-148.84, 70.0, -148.84 + 7 * 1.7e-4, 70.0 + 5 * 0.9e-4), (5, 7)
    poly = Polygon([(-148.83985, 70.00005), (-148.8391, 70.0002), (-148.8394, 70.0005)])
    assert_exact([poly, poly.buffer(2e-4, quad_segs=3)], bounds, shape)


# ---- property tests over random polygons -------------------------------------------------

REAL_GRID = ((-148.84, 70.0, -148.84 + 7 * 1.7e-4, 70.0 + 5 * 0.6e-4), (5, 7))


@st.composite
def grids(draw):
    """Small grids, non-square pixels, some at lon/lat of a real tile with tiny pixels."""
    height, width = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    if draw(st.booleans()):
        left, bottom = draw(st.floats(-148.9, -148.7)), draw(st.floats(69.9, 70.1))
        pw, ph = draw(st.floats(1e-4, 2e-4)), draw(st.floats(0.4e-4, 1e-4))
    else:
        # Rounded: subnormal or 1e-300 origins break GEOS itself (the truth), not the kernel.
        left, bottom = (draw(st.floats(-50, 50).map(lambda v: round(v, 6))) for _ in "xy")
        pw, ph = draw(st.floats(0.1, 3)), draw(st.floats(0.1, 3))
    return (left, bottom, left + width * pw, bottom + height * ph), (height, width)


def to_world(points, bounds, shape):
    """Pixel-space points (col, row from the top) → map coordinates."""
    left, bottom, right, top = bounds
    pts = np.asarray(points, dtype=float)
    return np.c_[
        left + pts[:, 0] * (right - left) / shape[1], top - pts[:, 1] * (top - bottom) / shape[0]
    ]


def star(draw, shape, center=None):
    """A star polygon around a centre: always simple; random orientation."""
    n = draw(st.integers(3, 9))
    cx = draw(st.floats(-2, shape[1] + 2)) if center is None else center[0]
    cy = draw(st.floats(-2, shape[0] + 2)) if center is None else center[1]
    angles = np.sort(draw(st.lists(st.floats(0, 2 * np.pi), min_size=n, max_size=n, unique=True)))
    radii = np.array(draw(st.lists(st.floats(0.05, 3), min_size=n, max_size=n)))
    pts = np.c_[cx + radii * np.cos(angles), cy + radii * np.sin(angles)]
    return pts if draw(st.booleans()) else pts[::-1]


@st.composite
def polygons_on(draw, bounds, shape):
    """(input geometry, truth geometry) in map coordinates: stars, hulls, holed discs, multis,
    and scrambled rings that are often self-intersecting (truth: their make_valid repair)."""
    kind = draw(st.sampled_from(["star", "hull", "holed", "multi", "scrambled"]))
    world = lambda pts: to_world(pts, bounds, shape)  # noqa: E731
    if kind == "star":
        poly = Polygon(world(star(draw, shape)))
    elif kind == "hull":
        n = draw(st.integers(3, 8))
        coord = st.tuples(st.floats(-2, shape[1] + 2), st.floats(-2, shape[0] + 2))
        pts = draw(st.lists(coord, min_size=n, max_size=n))
        poly = shapely.convex_hull(shapely.multipoints(world(pts)))
    elif kind == "holed":
        c = np.array([[draw(st.floats(-1, shape[1] + 1)), draw(st.floats(-1, shape[0] + 1))]])
        r = draw(st.floats(0.3, 4))
        inner = draw(st.floats(0.05, 0.9)) * r
        offset = draw(st.floats(-0.09, 0.09)) * r
        disc = shapely.Point(world(c)[0]).buffer(1.0, quad_segs=draw(st.integers(1, 4)))
        hole = shapely.Point(world(c + offset)[0]).buffer(1.0, quad_segs=3)
        # Buffers are round in map units: squash them into pixel units by scaling.
        sx, sy = (bounds[2] - bounds[0]) / shape[1], (bounds[3] - bounds[1]) / shape[0]
        disc = shapely.affinity.scale(disc, r * sx, r * sy)
        hole = shapely.affinity.scale(hole, inner * sx, inner * sy)
        poly = disc.difference(hole)
        if draw(st.booleans()):
            poly = shapely.orient_polygons(poly, exterior_cw=True)
    elif kind == "multi":
        a = star(draw, shape, center=(1.0, 1.0))
        b = star(draw, shape, center=(draw(st.floats(7.1, 9)), draw(st.floats(-1, 4))))
        poly = MultiPolygon([Polygon(world(a)), Polygon(world(b))])  # disjoint: radii < 3
    else:
        n = draw(st.integers(4, 7))
        pts = draw(
            st.lists(
                st.tuples(st.floats(-1, shape[1] + 1), st.floats(-1, shape[0] + 1)),
                min_size=n,
                max_size=n,
            )
        )
        poly = Polygon(world(pts))
        return poly, shapely.make_valid(poly)
    assume(poly.geom_type in ("Polygon", "MultiPolygon") and poly.area > 0 and poly.is_valid)
    return poly, poly


@st.composite
def scenes(draw):
    bounds, shape = draw(grids())
    pairs = draw(st.lists(polygons_on(bounds, shape), min_size=1, max_size=4))
    return [p for p, _ in pairs], [t for _, t in pairs], bounds, shape


PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


@PROPERTY
@given(scenes())
@example(
    (
        [Polygon(to_world([(0.5, 0.5), (6.5, 0.2), (3, 4.8)], *REAL_GRID))],
        [Polygon(to_world([(0.5, 0.5), (6.5, 0.2), (3, 4.8)], *REAL_GRID))],
        *REAL_GRID,
    )
)
@example(
    (
        [Polygon(to_world([(-1, -1), (8, -1), (8, 6), (-1, 6)], *REAL_GRID)).reverse()],
        [Polygon(to_world([(-1, -1), (8, -1), (8, 6), (-1, 6)], *REAL_GRID))],
        *REAL_GRID,
    )
)
@example(
    (
        [Polygon(to_world([(1, 1), (2, 3), (1, 3), (2, 1)], *REAL_GRID))],  # bow-tie
        [shapely.make_valid(Polygon(to_world([(1, 1), (2, 3), (1, 3), (2, 1)], *REAL_GRID)))],
        *REAL_GRID,
    )
)
def test_random_polygons_match_shapely(scene):
    geoms, truth, bounds, shape = scene
    assert_exact(geoms, bounds, shape, truth_geoms=truth)


@PROPERTY
@given(scenes())
def test_coverage_sums_to_area_inside_the_grid(scene):
    """A cheap global check that catches a lost or doubled edge piece anywhere."""
    geoms, truth, bounds, shape = scene
    grid = shapely.box(*bounds)
    pixel_area = grid.area / (shape[0] * shape[1])
    expected = sum(shapely.area(shapely.intersection(t, grid)) for t in truth) / pixel_area
    got = coverage_fraction(objects(geoms), bounds, shape).sum()
    assert got == pytest.approx(expected, abs=TOL * shape[0] * shape[1])


# ---- real staged tile ----------------------------------------------------------------------

REAL_TILE = REAL_DATA / "WorldCRS84Quad/13/1418/908.gpkg"


@pytest.mark.real_data
def test_real_tile_subset_matches_shapely():
    pyogrio = pytest.importorskip("pyogrio")
    from rasterflow.rasterize_core.tiles import Tile, xy_bounds

    geoms = np.asarray(pyogrio.read_dataframe(REAL_TILE).geometry.values, dtype=object)
    bounds, shape = xy_bounds("WorldCRS84Quad", Tile(13, 1418, 908)), (256, 256)
    grid = shapely.box(*bounds)
    edge = shapely.intersects(geoms, grid.exterior)  # polygons crossing the tile edge
    subset = np.r_[np.flatnonzero(edge)[:40], np.arange(0, len(geoms), 25)]
    geom, pixel, frac = coverage_triplets(geoms[subset], bounds, shape)
    boxes = pixel_boxes(bounds, shape).ravel()[pixel]
    truth = shapely.area(shapely.intersection(geoms[subset][geom], boxes)) / boxes[0].area
    np.testing.assert_allclose(frac, truth, rtol=0, atol=TOL)
    # Every pixel the polygons cover is emitted: the fractions add up to the inside area.
    per_geom = np.bincount(geom, weights=frac, minlength=len(subset))
    inside = shapely.area(shapely.intersection(geoms[subset], grid)) / boxes[0].area
    np.testing.assert_allclose(per_geom, inside, rtol=0, atol=1e-9)
