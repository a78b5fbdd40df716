"""Staged tile -> polygons, centroids and the property columns the statistics need.

`read_staged_tile` is the thin file wrapper; `staged_from_table` is the pure part.
Reading only the needed columns through Arrow (`pyogrio.read_arrow` +
`shapely.from_wkb`) is about 3x faster than a GeoDataFrame `read_file`.

Here, once, a tile's rows are checked (DESIGN §9): rows that cannot contribute are left
out and counted by reason (`odd_rows`), a missing staging centroid is computed for its row
alone, and a problem of the whole tile (unreadable file, wrong CRS, a missing column, text
where a statistic needs numbers) raises TileInputError naming the file, the layer, the
column or the row (its fid).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from rasterflow.rasterize_core.errors import TileInputError
from rasterflow.rasterize_core.odd_rows import count_skips, decode_rows
from rasterflow.rasterize_core.skips import skipped_text


@dataclass(frozen=True)
class StagedColumns:
    """Names of the staging columns (PDG's `prop_*` keys) and the properties needed."""

    centroid_x: str = "staging_centroid_x"
    centroid_y: str = "staging_centroid_y"
    duplicated: str | None = None  # drop rows flagged here, when deduplicating
    properties: tuple[str, ...] = ()
    # (property, aggregation) pairs whose statistic does arithmetic: they need numbers.
    numeric: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StagedTile:
    geometries: np.ndarray  # shapely Polygon / MultiPolygon, one per usable row
    centroid_x: np.ndarray  # float64, staging's centroid where stored, else computed
    centroid_y: np.ndarray
    properties: dict[str, np.ndarray] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # non-fatal remarks for the driver to report once
    # Rows left out, {reason: their fids} (`odd_rows.SKIP_REASONS`); row numbers from 0
    # where the table has no fid column.
    skipped: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.geometries)

    def skipped_text(self, rows_named: int = 0) -> str:
        """What was skipped, e.g. `2 empty, 1 non-finite`; "" when nothing was."""
        return skipped_text(self.skipped, rows_named)


# GDAL's names of layer geometry types that hold no polygon at all.
_NOT_POLYGONS = re.compile(r"^(Multi)?(Point|LineString)( Z| M| ZM)?$", re.IGNORECASE)


def read_staged_tile(path: str | Path, columns: StagedColumns, crs: CRS) -> StagedTile:
    """Read one staged GeoPackage; raise TileInputError naming the file and the reason."""
    path = str(path)
    _check_file(path)
    try:
        meta, table = pyogrio.read_arrow(path, columns=_wanted_columns(columns), return_fids=True)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as err:
        raise TileInputError(
            path, f"not a readable vector file: {_first_line(err)}", _detail(err)
        ) from None
    _check_crs(path, meta.get("crs"), crs)
    geometry = meta.get("geometry_name") or "wkb_geometry"
    if geometry not in table.column_names:
        raise TileInputError(path, f"layer has no geometry column ({_layer_of(path)!r} "
                                   "holds attributes only)")  # fmt: skip
    if _NOT_POLYGONS.match(meta.get("geometry_type") or ""):
        raise TileInputError(path, f"non-polygon geometries in layer {_layer_of(path)!r}: its "
                                   f"type is {meta['geometry_type']}, a staged tile holds "
                                   "polygons")  # fmt: skip
    return staged_from_table(path, table, geometry, columns, meta.get("fid_column"),
                             lambda: _layer_of(path))  # fmt: skip


def _check_file(path: str) -> None:
    """Name what GDAL would report vaguely (permissions) or not at all (a FIFO blocks it)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise TileInputError(path, "not a regular file")
        if info.st_size == 0:
            raise TileInputError(path, "zero-byte file")
        with open(path, "rb") as handle:
            handle.read(1)
    except FileNotFoundError:
        raise TileInputError(path, "file not found") from None
    except PermissionError as err:
        why = (err.strerror or "permission denied").lower()  # strerror may be None
        raise TileInputError(path, f"not readable: {why}", _detail(err)) from None


def staged_from_table(
    path: str,
    table: pa.Table,
    geometry_column: str,
    columns: StagedColumns,
    fid_column: str | None = None,
    layer_name: Callable[[], str | None] = lambda: None,
) -> StagedTile:
    """Arrow table of a staged layer -> StagedTile (pure: `path` and `layer_name`, called
    only to word an error, name the file and the layer)."""
    missing = [name for name in columns.properties if name not in table.column_names]
    if missing:
        where = _in_layer(layer_name)
        raise TileInputError(
            path, f"missing property column(s) needed by a statistic: {missing}{where}"
        )
    notes: list[str] = []
    keep = _rows_to_keep(table, columns, notes)
    if keep is not None:
        table = table.filter(pa.array(keep))
    _check_numeric(path, table, columns, fid_column, layer_name)
    wkb = table.column(geometry_column).to_numpy(zero_copy_only=False)
    geometries, reasons = decode_rows(wkb)
    skipped = {} if reasons is None else count_skips(reasons, _fids(table, fid_column))
    if skipped:  # the kernel and the statistics see the usable rows only
        usable = reasons == ""
        table, geometries = table.filter(pa.array(usable)), geometries[usable]
    cx, cy = _centroids(table, geometries, columns)
    properties = {name: _column_values(table, name) for name in columns.properties}
    return StagedTile(geometries, cx, cy, properties, tuple(notes), skipped)


def _wanted_columns(columns: StagedColumns) -> list[str]:
    names = [columns.centroid_x, columns.centroid_y, *columns.properties]
    if columns.duplicated:
        names.append(columns.duplicated)
    return list(dict.fromkeys(names))


def _rows_to_keep(table: pa.Table, columns: StagedColumns, notes: list[str]) -> np.ndarray | None:
    if not columns.duplicated:
        return None
    if columns.duplicated not in table.column_names:
        notes.append(
            f"deduplicate_at includes 'raster' but column {columns.duplicated!r} is absent: "
            "no rows treated as duplicates"
        )
        return None
    flags = table.column(columns.duplicated).to_numpy(zero_copy_only=False)
    return ~np.asarray(flags, dtype=bool)


def _fids(table: pa.Table, fid_column: str | None) -> np.ndarray:
    """Each row's fid (GDAL's feature id: what a user sees in QGIS or ogrinfo), else its
    row number."""
    if fid_column and fid_column in table.column_names:
        return table.column(fid_column).to_numpy(zero_copy_only=False)
    return np.arange(table.num_rows)


def _centroids(
    table: pa.Table, geometries: np.ndarray, columns: StagedColumns
) -> tuple[np.ndarray, np.ndarray]:
    """Staging's centroids; computed from the geometry only for the rows that lack one
    (NULL, NaN or infinite), or for every row where the columns are absent."""
    names = table.column_names
    if columns.centroid_x in names and columns.centroid_y in names:
        cx = _column_values(table, columns.centroid_x).astype("float64")
        cy = _column_values(table, columns.centroid_y).astype("float64")
    else:
        cx = cy = np.full(len(geometries), np.nan)
    lacking = ~(np.isfinite(cx) & np.isfinite(cy))
    if lacking.any():
        centroids = shapely.centroid(geometries[lacking])
        cx, cy = cx.copy(), cy.copy()
        cx[lacking], cy[lacking] = shapely.get_x(centroids), shapely.get_y(centroids)
    return cx, cy


def _column_values(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if _numeric(column.type):
        return column.cast(pa.float64()).fill_null(np.nan).to_numpy()
    return column.to_numpy(zero_copy_only=False)


_NUMERIC_TYPES = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean,
                  pa.types.is_decimal, pa.types.is_null)  # fmt: skip
_TEXT_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)


def _numeric(kind: pa.DataType) -> bool:
    """Arithmetic works on it: numbers, booleans, or a column that holds only NULLs."""
    return any(is_type(kind) for is_type in _NUMERIC_TYPES)


def _check_numeric(
    path: str, table: pa.Table, columns: StagedColumns, fid_column: str | None, layer_name
) -> None:
    """A statistic that does arithmetic on a property needs numbers: text (or dates...)
    there fails the tile with the column, a value, its row and the aggregation."""
    for name, aggregation in columns.numeric:
        column = table.column(name)
        if _numeric(column.type):
            continue
        text = any(is_type(column.type) for is_type in _TEXT_TYPES)
        kind = "text" if text else f"{column.type} values"
        values, fids = column.to_numpy(zero_copy_only=False), _fids(table, fid_column)
        present = np.flatnonzero(pd.notna(values))
        example = f" ({values[present[0]]!r}, fid {fids[present[0]]})" if len(present) else ""
        needed = f"a numeric column is needed for {aggregation!r}"
        where = _in_layer(layer_name)
        raise TileInputError(path, f"property {name!r} holds {kind}{example}{where}; {needed}")


def _check_crs(path: str, found: str | None, expected: CRS) -> None:
    if not found:
        return  # staging writes a CRS; a bare layer is taken to be in the grid's
    try:
        crs = CRS.from_user_input(found)
    except CRSError as err:
        raise TileInputError(path, "its CRS is not one PROJ understands", _detail(err)) from None
    if not crs.equals(expected, ignore_axis_order=True):
        raise TileInputError(
            path, f"CRS {crs.to_string()} is not the tile grid's CRS {expected.to_string()}"
        )


def _layer_of(path: str) -> str | None:
    """The layer read (the first): only to word an error, as finding it opens the file."""
    try:
        return str(pyogrio.list_layers(path)[0][0])
    except Exception:  # naming is best effort: the error being worded matters more
        return None


def _in_layer(layer_name: Callable[[], str | None]) -> str:
    layer = layer_name()
    return f" in layer {layer!r}" if layer else ""


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _detail(err: BaseException) -> str:
    """The library's own words, kept for the event row's `detail`."""
    return f"{type(err).__module__}.{type(err).__qualname__}: {err}"
