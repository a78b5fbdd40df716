"""Odd rows (DESIGN §9): skipped with a reason, never costing the good rows of a tile.

Odd geometries are written into real GeoPackages as raw WKB (GEOS itself refuses to build
an unclosed ring), read back with `read_staged_tile`, and the statistics are compared with
shapely's exact truth over the usable rows only.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyogrio
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import CRS

from rasterflow.rasterize_core import odd_rows
from rasterflow.rasterize_core.errors import TileInputError
from rasterflow.rasterize_core.odd_rows import decode_rows
from rasterflow.rasterize_core.read import StagedColumns, read_staged_tile, staged_from_table
from rasterflow.rasterize_core.skips import SKIP_REASONS, parse_skipped, skipped_text
from rasterflow.rasterize_core.statistics import (
    Grid,
    StatSpec,
    _area_weighted,
    compute_bands,
    needs_numbers,
)
from rasterflow.rasterize_core.tiles import Tile, xy_bounds
from tests.helpers.odd_rows import NAN, TileFrame, write_raw_gpkg
from tests.helpers.truth import centroid_histogram, exact_coverage

CRS84 = CRS.from_user_input("OGC:CRS84")
TILE = Tile(13, 1418, 908)
BOUNDS = xy_bounds("WorldCRS84Quad", TILE)
GRID = Grid(BOUNDS, (32, 32))
COUNT = StatSpec("count", "centroids_per_pixel", "sum")
COVERAGE = StatSpec("area", "area_per_pixel_area", "sum")


FRAME = TileFrame(BOUNDS)
at, box, ring = FRAME.at, FRAME.box, FRAME.ring
good_polygons = FRAME.good_polygons
ODD_ROWS = FRAME.odd_rows()
SQUARE = ((0.1, 0.1), (0.2, 0.1), (0.2, 0.2), (0.1, 0.2))


def centroid_count(polygons) -> np.ndarray:
    """Truth of the count band: polygons per pixel holding their centroid."""
    if not len(polygons):
        return np.zeros(GRID.shape)
    return centroid_histogram(np.asarray(polygons, dtype=object), BOUNDS, GRID.shape)


# -- each odd row alone ------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(ODD_ROWS))
def test_each_odd_row_is_skipped_with_its_reason(case):
    blob, reason = ODD_ROWS[case]
    good = box(0.5, 0.5)
    geoms, reasons = decode_rows(np.array([shapely.to_wkb(good), blob, None], dtype=object))
    assert reasons.tolist() == ["", reason, "null"]
    assert geoms[0].equals(good) and geoms[1] is None and geoms[2] is None


def test_every_reason_is_documented_and_used():
    assert {reason for _, reason in ODD_ROWS.values()} == set(SKIP_REASONS)


def test_collection_contributes_its_polygons_only():
    parts = [box(0.1, 0.1), shapely.LineString(ring(*SQUARE)), shapely.Point(at(0.9, 0.9)),
             shapely.MultiPolygon([box(0.5, 0.5), box(0.7, 0.7)]),
             shapely.from_wkt("POLYGON EMPTY")]  # fmt: skip
    collection = shapely.GeometryCollection(parts)
    geoms, reasons = decode_rows(np.array([shapely.to_wkb(collection)], dtype=object))
    assert reasons is None or reasons.tolist() == [""]
    expected = shapely.MultiPolygon([box(0.1, 0.1), box(0.5, 0.5), box(0.7, 0.7)])
    assert geoms[0].geom_type == "MultiPolygon" and geoms[0].equals(expected)


def test_invalid_and_degenerate_polygons_are_kept_for_repair():
    bow_tie = shapely.Polygon(ring((0.1, 0.1), (0.3, 0.3), (0.3, 0.1), (0.1, 0.3)))
    flat = shapely.Polygon(ring((0.1, 0.1), (0.2, 0.1), (0.3, 0.1), (0.1, 0.1)))  # zero area
    short_hole = shapely.Polygon(ring(*SQUARE, SQUARE[0]), [ring((0.15, 0.15), (0.16, 0.15))
                                                            + ring((0.15, 0.15))])  # fmt: skip
    # A NaN height: x and y are all that is used.
    z = shapely.Polygon([(*at(0.4, 0.4), NAN), (*at(0.5, 0.4), 1.0), (*at(0.5, 0.5), 2.0)])
    geoms, reasons = decode_rows(shapely.to_wkb([bow_tie, flat, short_hole, z]))
    assert reasons is None or (reasons == "").all()
    assert all(a.equals_exact(b, 0) for a, b in zip(geoms[:2], [bow_tie, flat], strict=True))


def test_clean_tile_takes_the_fast_path(monkeypatch):
    def refuse(*_):
        raise AssertionError("a clean tile must not be decoded row by row")

    monkeypatch.setattr(odd_rows, "_why_refused", refuse)
    monkeypatch.setattr(odd_rows, "_check_closely", refuse)
    wkb = shapely.to_wkb(np.array(good_polygons(200), dtype=object))
    geoms, reasons = decode_rows(wkb)
    assert reasons is None and len(geoms) == 200


def test_skip_text_round_trip():
    skips = {"empty": (3, 8), "non-finite": (12,)}
    assert skipped_text(skips) == "2 empty, 1 non-finite"
    assert skipped_text(skips, rows_named=1) == "2 empty (fid 3, ...), 1 non-finite (fid 12)"
    assert parse_skipped("2 empty, 1 non-finite, 3 too few points") == {
        "empty": 2, "non-finite": 1, "too few points": 3}  # fmt: skip
    assert parse_skipped(skipped_text(skips, rows_named=5)) == {"empty": 2, "non-finite": 1}
    assert parse_skipped("") == {} and parse_skipped(None) == {}


# -- a whole GeoPackage: good rows plus every odd one ----------------------------------------
def test_tile_of_good_and_odd_rows_is_exact_over_the_good_ones(tmp_path):
    good = good_polygons(40)
    odd = list(ODD_ROWS.values())
    blobs = [shapely.to_wkb(g) for g in good] + [blob for blob, _ in odd]
    width = np.arange(len(blobs), dtype=float)
    path = write_raw_gpkg(tmp_path / "13/1418/908.gpkg", blobs, {"Width": width})
    tile = read_staged_tile(path, StagedColumns(properties=("Width",)), CRS84)

    assert len(tile) == len(good)
    assert tile.properties["Width"].tolist() == width[: len(good)].tolist()  # rows aligned
    expected = {}
    for fid, (_, reason) in enumerate(odd, len(good) + 1):
        expected.setdefault(reason, []).append(fid)
    assert tile.skipped == {r: tuple(expected[r]) for r in SKIP_REASONS if r in expected}
    assert tile.skipped_text() == ", ".join(
        f"{len(expected[r])} {r}" for r in SKIP_REASONS if r in expected
    )
    bands = compute_bands(tile, [COUNT, COVERAGE], GRID)
    np.testing.assert_array_equal(bands[0], centroid_count(good))
    np.testing.assert_allclose(bands[1], exact_coverage(good, BOUNDS, GRID.shape), atol=1e-9)


def test_missing_stored_centroids_are_computed_per_row(tmp_path):
    good = [box(0.1, 0.1), box(0.5, 0.5), box(0.8, 0.2)]
    stored_x = [1.0, np.nan, 3.0]
    stored_y = [10.0, 20.0, np.inf]
    stored = {"staging_centroid_x": stored_x, "staging_centroid_y": stored_y}
    path = write_raw_gpkg(tmp_path / "1.gpkg", shapely.to_wkb(good).tolist(), stored)
    tile = read_staged_tile(path, StagedColumns(), CRS84)
    assert tile.centroid_x[0] == 1.0 and tile.centroid_y[0] == 10.0  # staging's kept
    for i in (1, 2):
        assert (tile.centroid_x[i], tile.centroid_y[i]) == pytest.approx(
            (good[i].centroid.x, good[i].centroid.y), abs=1e-12
        )


# -- text where numbers are needed ------------------------------------------------------------
def test_text_in_a_numeric_property_names_column_value_row_layer_and_file(tmp_path):
    blobs = shapely.to_wkb([box(0.1, 0.1)] * 3).tolist()
    path = write_raw_gpkg(tmp_path / "13/1613/950.gpkg", blobs, {"Area": [None, "12.0 m2", "3"]})
    with pytest.raises(TileInputError) as caught:
        read_staged_tile(path, StagedColumns(properties=("Area",), numeric=(("Area", "mean"),)),
                         CRS84)  # fmt: skip
    assert caught.value.path == str(path)
    assert caught.value.reason == ("property 'Area' holds text ('12.0 m2', fid 2) in layer "
                                   "'950'; a numeric column is needed for 'mean'")  # fmt: skip
    assert str(caught.value).startswith(f"{path}: property 'Area'")


@pytest.mark.parametrize(
    ("spec", "needed"),
    [(StatSpec("count", "Class", "first"), False), (StatSpec("count", "Class", "last"), False),
     (StatSpec("count", "Class", "nunique"), False), (StatSpec("count", "Class", "count"), False),
     (StatSpec("count", "Class", "mean"), True), (StatSpec("count", "Class", "min"), True),
     (StatSpec("area", "Class", "count"), True), (StatSpec("area", "Class", "max"), True),
     (COUNT, False), (COVERAGE, False)],
)  # fmt: skip
def test_which_statistics_need_numbers(spec, needed):
    assert needs_numbers(spec) is needed


def test_count_statistics_that_work_on_text_do(tmp_path):
    polygons = [box(0.1, 0.1, 0.01), box(0.1, 0.1, 0.011), box(0.6, 0.6, 0.01)]
    blobs = shapely.to_wkb(polygons).tolist()
    path = write_raw_gpkg(tmp_path / "1.gpkg", blobs, {"Class": ["a", "b", "a"]})
    tile = read_staged_tile(path, StagedColumns(properties=("Class",)), CRS84)
    specs = [StatSpec("count", "Class", "nunique"), StatSpec("count", "Class", "count")]
    nunique, count = compute_bands(tile, specs, GRID)
    assert nunique.sum() == 3 and count.sum() == 3 and nunique.max() == 2


def test_unknown_area_aggregation_is_an_error_not_max():
    with pytest.raises(ValueError, match="'median' is not one of the area-weighted ones"):
        _area_weighted("median", np.array([0]), np.array([1.0]), np.array([2.0]), 4)


# -- what already worked stays so ------------------------------------------------------------
def test_polygon_z_and_second_layer(tmp_path):
    path = tmp_path / "1.gpkg"
    z = shapely.Polygon([(*at(0.1, 0.1), 5.0), (*at(0.3, 0.1), 5.0), (*at(0.3, 0.3), 6.0)])
    first = gpd.GeoDataFrame(geometry=[z], crs="OGC:CRS84")
    pyogrio.write_dataframe(first, path, layer="first")
    other = gpd.GeoDataFrame(geometry=[box(0.5, 0.5), box(0.6, 0.6)], crs="OGC:CRS84")
    pyogrio.write_dataframe(other, path, layer="second")
    with pytest.warns(UserWarning, match="More than one layer"):
        tile = read_staged_tile(path, StagedColumns(), CRS84)
    assert len(tile) == 1 and not tile.skipped and shapely.has_z(tile.geometries[0])
    band = compute_bands(tile, [COVERAGE], GRID)[0]
    np.testing.assert_allclose(band, exact_coverage([shapely.force_2d(z)], BOUNDS, GRID.shape),
                               atol=1e-9)  # fmt: skip


def test_huge_polygon_and_many_polygons(tmp_path):
    angles = np.linspace(0, 2 * np.pi, 300_000, endpoint=False)
    radius = 0.3 + 0.1 * np.sin(angles * 40)  # a star of 300,000 vertices: simple, wavy
    huge = shapely.Polygon(np.column_stack(at(0.5 + radius * np.cos(angles),
                                              0.5 + radius * np.sin(angles))))  # fmt: skip
    a, b = np.random.default_rng(1).uniform(0, 0.99, (2, 120_000))
    many = shapely.box(*at(a, b), *at(a + 0.001, b + 0.001))
    path = tmp_path / "1.gpkg"
    pyogrio.write_dataframe(gpd.GeoDataFrame(geometry=[huge, *many], crs="OGC:CRS84"), path)
    tile = read_staged_tile(path, StagedColumns(), CRS84)
    assert len(tile) == 120_001 and not tile.skipped
    count, coverage = compute_bands(tile, [COUNT, COVERAGE], GRID)
    assert count.sum() == 120_001
    pixel_area = np.prod(GRID.pixel_size)
    expected_area = huge.area + shapely.area(many).sum()
    assert coverage.sum() * pixel_area == pytest.approx(expected_area, rel=1e-9)


def test_shapefile_renamed_and_truncated_file_fail_with_gdal_words_in_detail(tmp_path):
    frame = gpd.GeoDataFrame(geometry=[box(0.1, 0.1)], crs="OGC:CRS84")
    pyogrio.write_dataframe(frame, tmp_path / "a.shp")
    renamed = tmp_path / "renamed.gpkg"
    renamed.write_bytes((tmp_path / "a.shp").read_bytes())
    truncated = write_raw_gpkg(tmp_path / "cut.gpkg", shapely.to_wkb(good_polygons(300)).tolist())
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    for path in (renamed, truncated):
        with pytest.raises(TileInputError) as caught:
            read_staged_tile(path, StagedColumns(), CRS84)
        assert caught.value.reason.startswith("not a readable vector file: ")
        assert caught.value.detail and "pyogrio.errors." in caught.value.detail


def test_permission_error_without_strerror(tmp_path, monkeypatch):
    path = write_raw_gpkg(tmp_path / "1.gpkg", [shapely.to_wkb(box(0.1, 0.1))])

    def refuse(*_, **__):
        raise PermissionError()  # strerror None, as some filesystems raise it

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(TileInputError, match="not readable: permission denied"):
        read_staged_tile(path, StagedColumns(), CRS84)


def test_layer_of_points_or_no_geometry_is_a_tile_error(tmp_path):
    points = gpd.GeoDataFrame(geometry=[shapely.Point(at(0.5, 0.5))], crs="OGC:CRS84")
    pyogrio.write_dataframe(points, tmp_path / "p.gpkg")
    with pytest.raises(TileInputError, match="non-polygon geometries in layer 'p': its type is "
                                             "Point"):  # fmt: skip
        read_staged_tile(tmp_path / "p.gpkg", StagedColumns(), CRS84)


# -- the property: good rows are never lost ---------------------------------------------------
GOOD = good_polygons(30, seed=8)
ODD_BLOBS = [blob for blob, _ in ODD_ROWS.values()]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keep=st.lists(st.booleans(), min_size=len(GOOD), max_size=len(GOOD)),
    odd=st.lists(st.integers(0, len(ODD_BLOBS) - 1), max_size=25),
    order=st.randoms(use_true_random=False),
    stored=st.booleans(),
)
def test_good_rows_are_never_lost(keep, odd, order, stored):
    """Any mix of good rows and odd ones, in any order, with or without staging centroids:
    the bands equal the truth of the good rows alone, and every odd row is counted."""
    good = [g for g, k in zip(GOOD, keep, strict=True) if k]
    rows = [(shapely.to_wkb(g), g) for g in good] + [(ODD_BLOBS[i], None) for i in odd]
    order.shuffle(rows)
    columns = {"geom": pa.array([wkb for wkb, _ in rows], pa.binary())}
    if stored:  # staging's centroids, NaN on the odd rows as a broken staging might leave
        centroids = [g.centroid if g is not None else None for _, g in rows]
        columns["staging_centroid_x"] = [c.x if c else np.nan for c in centroids]
        columns["staging_centroid_y"] = [c.y if c else np.nan for c in centroids]
    tile = staged_from_table("t.gpkg", pa.table(columns), "geom", StagedColumns())
    assert len(tile) == len(good)
    assert sum(map(len, tile.skipped.values())) == len(odd)
    count, coverage = compute_bands(tile, [COUNT, COVERAGE], GRID)
    np.testing.assert_array_equal(count, centroid_count(good))
    np.testing.assert_allclose(coverage, exact_coverage(good, BOUNDS, GRID.shape), atol=1e-9)
