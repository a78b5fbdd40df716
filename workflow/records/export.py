"""Rows as the files at PDG's names hold them: journal rows -> file rows, older files ->
file rows, file rows -> CSV text. Everything here works on whole Arrow columns.

CSV text is built by Arrow's compute kernels (a few µs per 1,000 rows; pandas' `to_csv`
takes ~9 µs a row, most of a large run's end). Numbers read back the same as pandas
would write them: floats keep a `.0` and a two-digit exponent (`1551.0`, `2.5e-07`); only
where Arrow picks another notation for the same shortest digits (`0.00001` for pandas'
`1e-05`) does the text differ, never the value. Text with a comma, quote or line break is
quoted, as pandas does.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rasterflow.rasterize_core.tiles import Tile, xy_bounds
from rasterflow.workflow.steps import BOUNDS, EVENT_FILE, SUMMARY_FILE, Step

FORMAT_KEY = b"rasterflow.format"  # Parquet metadata: files in this module's format
FORMAT = b"2"
MERGED_KEY = b"rasterflow.merged_through"  # the last journal part folded into the file

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789", dtype=np.uint8)] = np.arange(10)
_NIBBLE[np.frombuffer(b"abcdef", dtype=np.uint8)] = np.arange(10, 16)
_NIBBLE[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16)
_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)


# -- 64-bit hashes as 16 hex digits ------------------------------------------------------------
def hex16(values: np.ndarray) -> pa.Array:
    """uint64 -> 16 lower-case hex digits; 0 (no value) -> null."""
    values = np.asarray(values, dtype=np.uint64)
    digits = _HEX[((values[:, None] >> _SHIFTS) & np.uint64(15)).astype(np.intp)]
    text = pa.array(np.ascontiguousarray(digits).view("S16").ravel(), type=pa.binary())
    return pc.if_else(pa.array(values == 0), pa.scalar(None, pa.string()),
                      text.cast(pa.string()))  # fmt: skip


def parse_hex16(column) -> np.ndarray:
    """16 hex digits -> uint64; anything else (null, `-`, an old 8-digit value) -> 0."""
    column = _array(column).cast(pa.string())
    if not len(column):
        return np.zeros(0, dtype=np.uint64)
    text = pc.fill_null(column, "")
    ok = pc.equal(pc.utf8_length(text), 16).to_numpy(zero_copy_only=False)
    regular = pc.if_else(pa.array(ok), text, "0" * 16)
    raw = np.frombuffer(regular.buffers()[2], dtype=np.uint8)
    start = _value_offsets(regular)[0]
    nibbles = _NIBBLE[raw[start : start + 16 * len(text)]].reshape(-1, 16)
    ok &= (nibbles < 16).all(axis=1)
    values = (nibbles.astype(np.uint64) << _SHIFTS).sum(axis=1, dtype=np.uint64)
    return np.where(ok, values, np.uint64(0))


def _value_offsets(text: pa.Array) -> np.ndarray:
    """Where each value of a string array starts in its data buffer (and where it ends)."""
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)
    return offsets[text.offset : text.offset + len(text) + 1]


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


# -- journal rows -> file rows ---------------------------------------------------------------
def tile_names(z, x, y) -> pa.Array:
    """PDG's `tile` column, `Tile(x=1524, y=910, z=13)`, for whole columns."""
    parts = [pa.scalar("Tile(x="), _text(x), pa.scalar(", y="), _text(y), pa.scalar(", z="),
             _text(z), pa.scalar(")")]  # fmt: skip
    return pc.binary_join_element_wise(*parts, "")


def _text(column) -> pa.Array:
    return pc.cast(column, pa.string())


def events_to_file(part: pa.Table) -> pa.Table:
    """Journal event rows (`steps.EVENT_PART`) -> rows of the event file (`EVENT_FILE`)."""
    columns = _pdg_columns(part, part["start_time"], part["total_time"])
    columns["fingerprint"] = hex16(_array(part["fingerprint"]).to_numpy())
    columns["checksum"] = hex16(_array(part["checksum"]).to_numpy())
    return _table(EVENT_FILE, columns, part)


def _pdg_columns(rows: pa.Table, start, total) -> dict:
    """PDG's event columns that follow from the others."""
    steps = pc.cast(rows["step"], pa.string())
    ids = pc.binary_join_element_wise(rows["run_id"], steps, _text(rows["z"]), _text(rows["x"]),
                                      _text(rows["y"]), "/")  # fmt: skip
    types = pa.nulls(len(rows), pa.string())
    for step in Step:
        types = pc.if_else(pc.equal(steps, step.value), step.pdg_type, types)
    return {"id": ids, "type": types, "start_time": start, "total_time": total,
            "end_time": pc.add(start, pc.fill_null(total, 0.0)),
            "raster_summary": pa.nulls(len(rows), pa.string()),
            "tile": tile_names(rows["z"], rows["x"], rows["y"])}  # fmt: skip


def summary_to_file(part: pa.Table) -> pa.Table:
    """Journal summary rows (`steps.SUMMARY_PART`) -> rows of the summary file."""
    corners = np.column_stack([_array(part[name]).to_numpy(zero_copy_only=False)
                               for name in BOUNDS])  # fmt: skip
    columns = {"bounds": _bounds_lists(corners),
               "tile": tile_names(part["z"], part["x"], part["y"])}  # fmt: skip
    return _table(SUMMARY_FILE, columns, part)


def _bounds_lists(corners: np.ndarray) -> pa.Array:
    offsets = pa.array(np.arange(0, 4 * len(corners) + 1, 4, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(corners.ravel(), pa.float64()))


def _table(schema: pa.Schema, columns: dict, source: pa.Table) -> pa.Table:
    """`schema`'s columns: from `columns`, else the same name in `source`, else nulls."""
    arrays = []
    for field in schema:
        if field.name in columns:
            value = columns[field.name]
        elif field.name in source.column_names:
            value = source[field.name]
        else:
            value = pa.nulls(len(source), field.type)
        arrays.append(value if value.type == field.type else pc.cast(value, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


# -- older files -> file rows -----------------------------------------------------------------
def events_from_table(table: pa.Table) -> pa.Table:
    """Event rows of any file this project wrote: this format, or the one before it
    (`started_at` ISO text and `duration_s` where PDG's `start_time`/`total_time` are now)."""
    if "type" in table.column_names and "start_time" in table.column_names:
        return _table(EVENT_FILE, {}, table)
    n = len(table)
    started_at = table["started_at"] if "started_at" in table.column_names else pa.nulls(n)
    import pandas as pd  # only for files of the format before this one

    when = pd.to_datetime(pd.Series(_text(started_at).to_pylist(), dtype=object), utc=True,
                          format="ISO8601", errors="coerce")  # fmt: skip
    nanoseconds = when.to_numpy("datetime64[ns]").astype("int64")
    seconds = nanoseconds // 10**9 + (nanoseconds % 10**9) / 1e9  # as datetime.timestamp()
    start = pa.array(seconds, mask=when.isna().to_numpy())
    duration = table["duration_s"] if "duration_s" in table.column_names else pa.nulls(n)
    columns = _pdg_columns(table, start, pc.cast(duration, pa.float64()))
    return _table(EVENT_FILE, columns, table)  # old fingerprints and checksums kept as text


def summary_from_table(table: pa.Table, tms_id: str) -> pa.Table:
    """Summary rows of any file: `bounds` and `tile` made again from z/x/y (the format before
    this one wrote bounds as left, bottom, right, top; a CSV holds them as text)."""
    z, x, y = (_array(table[name]).to_numpy(zero_copy_only=False) for name in ("z", "x", "y"))
    corners = np.array([xy_bounds(tms_id, Tile(int(a), int(b), int(c)))
                        for a, b, c in zip(z, x, y, strict=True)]).reshape(-1, 4)  # fmt: skip
    pdg_order = corners[:, [0, 2, 1, 3]]  # (left, bottom, right, top) -> PDG's
    columns = {"bounds": _bounds_lists(pdg_order), "tile": tile_names(table["z"], table["x"],
                                                                      table["y"])}  # fmt: skip
    return _table(
        SUMMARY_FILE,
        columns,
        table.drop_columns([c for c in ("bounds", "tile") if c in table.column_names]),
    )


# -- CSV text -------------------------------------------------------------------------------------
def csv_header(schema: pa.Schema) -> bytes:
    return (",".join(schema.names) + "\n").encode()


def csv_rows(table: pa.Table) -> memoryview | bytes:
    """The rows of `table` as CSV lines, pandas-like (see the module's docstring)."""
    if not len(table):
        return b""
    fields = [_csv_field(_array(table[name]), name) for name in table.column_names]
    lines = pc.binary_join_element_wise(*fields, ",")
    lines = pc.binary_join_element_wise(lines, pa.scalar(""), "\n")  # each line + "\n"
    lines = _array(lines)
    offsets = _value_offsets(lines)
    start, end = offsets[0], offsets[-1]
    return memoryview(lines.buffers()[2])[start:end]


# Text that never needs quoting (hex digits), and text that always does (PDG's tile repr).
_PLAIN, _ALWAYS_QUOTED = frozenset({"fingerprint", "checksum"}), frozenset({"tile"})
_SPECIAL = '[,"\r\n]'


def _csv_field(column: pa.Array, name: str = "") -> pa.Array:
    kind = column.type
    if pa.types.is_floating(kind):
        return pc.fill_null(_float_text(column), "")
    if pa.types.is_list(kind):
        return _quote_all(_bounds_text(column))
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return pc.fill_null(pc.cast(column, pa.string()), "")
    text = pc.cast(column, pa.string())
    if text.null_count == len(text):
        return pa.array(np.full(len(text), ""), pa.string())
    if name in _PLAIN:
        return pc.fill_null(text, "")
    if name in _ALWAYS_QUOTED:
        return pc.fill_null(_quote_all(text), "")
    return _quoted(pc.fill_null(text, ""))


def _float_text(column: pa.Array) -> pa.Array:
    """Shortest round-trip digits (Arrow's), laid out as Python prints floats where Arrow
    differs: `1551` -> `1551.0`, `2.5e-7` -> `2.5e-07`; NaN -> null (an empty field)."""
    values = column.to_numpy(zero_copy_only=False)
    text = pc.cast(column, pa.string())
    with np.errstate(invalid="ignore"):
        size = np.abs(values)
        whole = np.isfinite(values) & (values == np.floor(values)) & (size < 1e15)
        exponent = np.isfinite(values) & (((size < 1e-4) & (values != 0)) | (size >= 1e15))
    if whole.any():
        text = pc.if_else(pa.array(whole), pc.binary_join_element_wise(text, ".0", ""), text)
    if exponent.any():  # few: the regex is slow
        text = pc.if_else(pa.array(exponent), pc.replace_substring_regex(
            text, r"e([-+])(\d)$", r"e\10\2"), text)  # fmt: skip
    nan = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), bool)
    return pc.if_else(pa.array(nan), pa.scalar(None, pa.string()), text) if nan.any() else text


def _bounds_text(column: pa.Array) -> pa.Array:
    """[minx, maxx, miny, maxy] as Python prints a list of floats."""
    flat = _float_text(pc.list_flatten(column))
    corners = [pc.take(flat, pa.array(np.arange(i, len(flat), 4))) for i in range(4)]
    if len(flat) != 4 * len(column):  # a null or short list: no text for that row
        return pa.array([None if v is None else str(v) for v in column.to_pylist()],
                        pa.string())  # fmt: skip
    text = pc.binary_join_element_wise(*corners, ", ")
    return pc.binary_join_element_wise("[", text, "]", "")


def _quoted(text: pa.Array) -> pa.Array:
    """Text with a comma, quote or line break quoted, as pandas does. A column of few
    distinct values (steps, statuses, statistic names) is looked at value by value."""
    if len(text) > 64:
        encoded = pc.dictionary_encode(text)
        if len(encoded.dictionary) * 4 < len(text):
            return pc.take(_quoted(encoded.dictionary), encoded.indices)
    special = pc.match_substring_regex(text, _SPECIAL)
    if not pc.any(special).as_py():
        return text
    return pc.if_else(special, _quote_all(text), text)


def _quote_all(text: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
