"""Bad staged tiles fail alone with the file and the reason; odd but valid ones are read."""

import os

import numpy as np
import pytest
import shapely
from pyproj import CRS

from rasterflow.rasterize_core.errors import TileInputError
from rasterflow.rasterize_core.read import StagedColumns, read_staged_tile
from rasterflow.rasterize_core.tiles import Tile

CRS84 = CRS.from_user_input("OGC:CRS84")
TILE = Tile(13, 1418, 908)
SQUARE = shapely.box(-148.83, 70.03, -148.8299, 70.0301)


def test_reads_only_needed_columns_and_stored_centroids(write_staged):
    path = write_staged(TILE, [SQUARE], {"staging_centroid_x": [1.5], "staging_centroid_y": [2.5],
                                         "Width": [3.0], "Other": ["x"]})  # fmt: skip
    tile = read_staged_tile(path, StagedColumns(properties=("Width",)), CRS84)
    assert list(tile.properties) == ["Width"] and tile.properties["Width"].tolist() == [3.0]
    assert (tile.centroid_x[0], tile.centroid_y[0]) == (1.5, 2.5)


def test_centroid_computed_when_not_stored(write_staged):
    tile = read_staged_tile(write_staged(TILE, [SQUARE]), StagedColumns(), CRS84)
    assert tile.centroid_x[0] == pytest.approx(SQUARE.centroid.x)


def test_empty_layer_is_an_empty_tile(write_staged):
    path = write_staged(TILE, [], {"staging_centroid_x": np.array([], float)})
    assert len(read_staged_tile(path, StagedColumns(), CRS84)) == 0


def test_multipolygon_layer(write_staged):
    multi = shapely.MultiPolygon([SQUARE, shapely.box(-148.82, 70.03, -148.819, 70.031)])
    tile = read_staged_tile(write_staged(TILE, [multi, SQUARE]), StagedColumns(), CRS84)
    assert shapely.get_type_id(tile.geometries).tolist() == [6, 6]  # promoted, as GPKG does


def test_duplicates_dropped_or_noted(write_staged):
    path = write_staged(TILE, [SQUARE, SQUARE], {"staging_duplicated": [False, True]})
    tile = read_staged_tile(path, StagedColumns(duplicated="staging_duplicated"), CRS84)
    assert len(tile) == 1 and not tile.notes
    plain = write_staged(Tile(13, 1418, 909), [SQUARE])
    tile = read_staged_tile(plain, StagedColumns(duplicated="staging_duplicated"), CRS84)
    assert len(tile) == 1 and "no rows treated as duplicates" in tile.notes[0]


def expect_failure(path, reason, columns=None):
    with pytest.raises(TileInputError) as caught:
        read_staged_tile(path, columns or StagedColumns(), CRS84)
    assert caught.value.path == str(path) and reason in caught.value.reason
    return caught.value


def test_zero_byte_file(tmp_path):
    path = tmp_path / "1.gpkg"
    path.touch()
    expect_failure(path, "zero-byte file")


def test_corrupt_file(tmp_path):
    path = tmp_path / "1.gpkg"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(2000))
    expect_failure(path, "not a readable vector file")


def test_missing_property_column(write_staged):
    expect_failure(write_staged(TILE, [SQUARE]), "missing property column(s) needed by a "
                   "statistic: ['Width']", StagedColumns(properties=("Width",)))  # fmt: skip


def test_wrong_crs(write_staged):
    path = write_staged(TILE, [shapely.box(500000, 7800000, 500100, 7800100)], crs="EPSG:32606")
    expect_failure(path, "is not the tile grid's CRS")


def test_non_polygon_layer(write_staged):
    expect_failure(write_staged(TILE, [shapely.Point(-148.83, 70.03)]), "non-polygon geometries")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(write_staged):
    path = write_staged(TILE, [SQUARE])
    path.chmod(0)
    expect_failure(path, "not readable")
