"""Tile arithmetic on any quadtree morecantile grid, against morecantile itself: bounds x-first
whatever the CRS's axis order, parents the exact union of their children, point lookups, and the
grids the pyramid refuses."""

from __future__ import annotations

import random

import morecantile
import numpy as np
import pytest
from pyproj import CRS, Transformer

from rasterflow.rasterize_core.tiles import (
    Tile,
    edge_shift_px,
    get_tms,
    grid_problem,
    matrix_size,
    tile_at,
    tiles_touching,
    tms_crs,
    xy_bounds,
)
from rasterflow.workflow.demo.synthetic import grid_bounds

GRIDS = ["WorldCRS84Quad", "WGS1984Quad", "WebMercatorQuad", "UPSArcticWGS84Quad"]


@pytest.mark.parametrize("tms_id", ["WorldCRS84Quad", "WGS1984Quad"])
def test_geographic_bounds_are_lon_first_whatever_the_axis_order(tms_id):
    """EPSG:4326 is lat/lon in its authority order, but tile bounds are x = lon first."""
    assert matrix_size(tms_id, 0) == (2, 1)
    assert xy_bounds(tms_id, Tile(0, 0, 0)) == (-180.0, -90.0, 0.0, 90.0)
    assert xy_bounds(tms_id, Tile(0, 1, 0)) == (0.0, -90.0, 180.0, 90.0)
    assert tile_at(tms_id, 13, -148.84, 70.03) == Tile(13, 1418, 908)


@pytest.mark.parametrize("tms_id", GRIDS)
def test_bounds_match_morecantile_within_its_rounding(tms_id):
    """Our levels halve the top one exactly; the registry's rounded cell sizes stay close."""
    tms, rng = get_tms(tms_id), random.Random(1)
    for z in range(tms.minzoom, 18):
        columns, rows = matrix_size(tms_id, z)
        cell = tms.matrix(z).cellSize
        for _ in range(20):
            x, y = rng.randrange(columns), rng.randrange(rows)
            ours = xy_bounds(tms_id, Tile(z, x, y))
            theirs = tms.xy_bounds(morecantile.Tile(x, y, z))
            assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) <= 0.01 * cell
    if tms_id in ("WorldCRS84Quad", "WebMercatorQuad"):  # exact registries: bit for bit
        for z in range(14):
            assert xy_bounds(tms_id, Tile(z, 3, 1)) == tuple(tms.xy_bounds(3, 1, z))


@pytest.mark.parametrize("tms_id", GRIDS)
def test_parent_is_exactly_the_union_of_its_children(tms_id):
    rng = random.Random(2)
    for z in range(get_tms(tms_id).minzoom, 18):
        columns, rows = matrix_size(tms_id, z)
        parent = Tile(z, rng.randrange(columns), rng.randrange(rows))
        boxes = np.array([xy_bounds(tms_id, child) for child in parent.children()])
        union = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
        assert union == xy_bounds(tms_id, parent)
        top_left = boxes[0]
        assert (top_left[2], top_left[1]) == (boxes[3][0], boxes[3][3])  # shared corner


@pytest.mark.parametrize("tms_id", GRIDS)
def test_tile_at_agrees_with_morecantile_and_with_the_bounds(tms_id):
    tms, rng = get_tms(tms_id), random.Random(3)
    to_lonlat = Transformer.from_crs(tms_crs(tms_id), "OGC:CRS84", always_xy=True)
    z = 9
    columns, rows = matrix_size(tms_id, z)
    for _ in range(200):
        tile = Tile(z, rng.randrange(columns), rng.randrange(rows))
        left, bottom, right, top = xy_bounds(tms_id, tile)
        # Half-open like pixels: the left and top edges belong to the tile.
        assert tile_at(tms_id, z, left, top) == tile
        assert tile_at(tms_id, z, right, top).x == tile.x + 1
        assert tile_at(tms_id, z, left, bottom).y == tile.y + 1
        x = left + rng.uniform(0.01, 0.99) * (right - left)
        y = bottom + rng.uniform(0.01, 0.99) * (top - bottom)
        assert tile_at(tms_id, z, x, y) == tile
        lon, lat = to_lonlat.transform(x, y)
        if abs(lat) < 89.9:  # morecantile goes through lon/lat
            found = tms.tile(lon, lat, z)
            assert (found.x, found.y) == (tile.x, tile.y)


def test_tiles_touching_is_clamped_to_the_grid():
    left, bottom, right, top = grid_bounds("WorldCRS84Quad", 3)
    assert tiles_touching("WorldCRS84Quad", 3, (170.0, 80.0, 190.0, 95.0)) == [Tile(3, 15, 0)]
    assert tiles_touching("WorldCRS84Quad", 3, (left, bottom, right, top))[-1] == Tile(3, 15, 7)
    west, south, _, _ = grid_bounds("UPSArcticWGS84Quad", 4)
    beyond = (west - 1e6, south - 1e6, west + 1, south + 1)  # the outer corner, and past it
    assert tiles_touching("UPSArcticWGS84Quad", 4, beyond) == [Tile(4, 0, 15)]


def test_grid_problem_names_what_the_pyramid_cannot_do():
    for tms_id in GRIDS + ["EuropeanETRS89_LAEAQuad", "WorldMercatorWGS84Quad"]:
        assert grid_problem(tms_id, (get_tms(tms_id).minzoom, 15)) is None, tms_id
    assert "variable matrix widths" in grid_problem("GNOSISGlobalGrid", (0, 3))
    assert "not a quadtree" in grid_problem("CanadianNAD83_LCC", (0, 3))
    assert grid_problem("UPSArcticWGS84Quad", (10, 17)) is None
    assert "off an exact quadtree" in grid_problem("UPSArcticWGS84Quad", (10, 18))
    assert edge_shift_px("UPSArcticWGS84Quad", 13) < 1e-3


@pytest.mark.parametrize(
    ("tms_id", "authority"),
    [("WorldCRS84Quad", ("OGC", "CRS84")), ("WGS1984Quad", ("EPSG", "4326")),
     ("WebMercatorQuad", ("EPSG", "3857")), ("UPSArcticWGS84Quad", ("EPSG", "5041"))],
)  # fmt: skip
def test_tms_crs_is_the_registrys_crs(tms_id, authority):
    crs = tms_crs(tms_id)
    assert crs.to_authority() == authority
    assert crs == CRS.from_wkt(get_tms(tms_id).crs.to_wkt())  # morecantile's public WKT
    assert tms_crs(tms_id) is crs  # built once
