"""The files at PDG's names: which one holds the rows, reading a group of rows, and folding
a run's journal parts into them by streaming.

Each file's Parquet twin is the store: written a group at a time (events: per step and
zoom, finest first; summary: per zoom), so a reader that wants one zoom's rows reads only
its row groups, found by their min/max statistics. The CSV is written beside it from the
same chunks. Neither is ever built as one frame of every row: a merge holds one chunk
(`ROW_GROUP_ROWS`) and the keys of the rows that replace older ones.

Where the Parquet is missing, older than the CSV, or of the format before this one, the
rows are read from whichever file there is, converted (`export`), and held in memory; the
next run writes the Parquet store again.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from rasterflow.rasterize_core.atomic import atomic_path
from rasterflow.workflow.layout import events_csv, journal_path, summary_csv
from rasterflow.workflow.records import export
from rasterflow.workflow.records.parts import (
    SUMMARY_GROUP,
    Part,
    committed_parts,
    read_part,
    release_memory,
    remove_parts,
)
from rasterflow.workflow.steps import EVENT_FILE, SUMMARY_FILE, Step

EVENTS, SUMMARY = "e", "s"
SCHEMAS = {EVENTS: EVENT_FILE, SUMMARY: SUMMARY_FILE}
ROW_GROUP_ROWS = 4_096  # rows a merge holds at once (~1.2 MB), and a Parquet row group
CSV_KEY = b"rasterflow.csv"  # b"1" when the CSV beside it was written from the same rows
Group = tuple[str, int]  # (step, z) for events, (SUMMARY_GROUP, z) for the summary


def group_order(group: Group) -> tuple:
    """Events: rasterize, parent, webtile, each finest zoom first; the summary by zoom."""
    name, z = group
    rank = Step(name).rank if name in Step.__members__.values() else len(Step)
    return rank, -z, name


def tile_keys(x, y) -> np.ndarray:
    """x and y packed into one uint64 per row (for membership tests)."""
    x = np.asarray(x).astype(np.uint64)
    return (x << np.uint64(32)) | np.asarray(y).astype(np.uint64)


@dataclass(frozen=True)
class RecordFiles:
    events_csv: Path
    summary_csv: Path
    parts: Path  # the journal folder, beside the event log
    tms_id: str

    @classmethod
    def of(cls, config) -> RecordFiles:
        return cls(events_csv(config), summary_csv(config), journal_path(config),
                   config.tms_id)  # fmt: skip

    def csv(self, kind: str) -> Path:
        return self.events_csv if kind == EVENTS else self.summary_csv

    def exist(self) -> bool:
        """Any record of an earlier run: the event log (CSV or Parquet) or a journal."""
        return (self.events_csv.exists() or self.events_csv.with_suffix(".parquet").exists()
                or (self.parts.is_dir() and any(self.parts.iterdir())))  # fmt: skip


class BaseFile:
    """The rows of one kind in the files at PDG's names."""

    def __init__(self, csv: Path, kind: str, tms_id: str):
        self.csv, self.kind, self.tms_id = csv, kind, tms_id
        self.parquet = csv.with_suffix(".parquet")
        self.merged_through, self.csv_fresh = -1, False
        self._file: pq.ParquetFile | None = None
        self._table: pa.Table | None = None  # rows held in memory (not the Parquet store)
        self._groups: set[Group] | None = None
        metadata = _metadata(self.parquet)
        if metadata.get(export.FORMAT_KEY) == export.FORMAT and not _newer(csv, self.parquet):
            self._file = pq.ParquetFile(self.parquet, pre_buffer=False)
            self.merged_through = int(metadata.get(export.MERGED_KEY, b"-1"))
            self.csv_fresh = metadata.get(CSV_KEY) == b"1" and csv.exists()

    @property
    def is_store(self) -> bool:
        """The rows are in the Parquet store of this format (else converted in memory)."""
        return self._file is not None

    @property
    def exists(self) -> bool:
        return self.is_store or _has_rows(self.csv) or self.parquet.exists()

    def groups(self) -> set[Group]:
        """The (name, z) groups the file holds rows of."""
        if self._groups is None:
            self._groups = self._find_groups() if self.exists else set()
        return self._groups

    def _find_groups(self) -> set[Group]:
        if self._file is None:
            return _groups_in(self._held(), self.kind)
        ranges = self._row_group_ranges()
        if all(low is not None and low == high for low, high in ranges):
            return {low for low, _ in ranges}
        found: set[Group] = set()  # a row group of several groups: look at the rows
        for chunk in self.read_all(self._key_columns()):
            found |= _groups_in(chunk, self.kind)
        return found

    def read_group(self, group: Group, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """The rows of one group, a chunk at a time (file format, these columns)."""
        needed = None if columns is None else list(dict.fromkeys(columns + self._key_columns()))
        if self._file is None:
            chunks: Iterator[pa.Table] = iter([self._held()])
        else:
            chunks = self._row_groups(self._row_groups_of(group), needed)
        for chunk in chunks:
            rows = chunk.filter(self._mask(chunk, group))
            if len(rows):
                yield rows if columns is None else rows.select(columns)

    def _row_groups(self, indices, columns: list[str] | None) -> Iterator[pa.Table]:
        """Row groups one at a time (`ROW_GROUP_ROWS` rows at most), on this thread, the
        allocator's pages given back after each: memory stays flat however many there are."""
        assert self._file is not None
        for index in indices:
            yield self._file.read_row_group(index, columns=columns, use_threads=False)
            release_memory()

    def read_all(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        if self._file is None:
            yield self._held() if columns is None else self._held().select(columns)
            return
        yield from self._row_groups(range(self._file.metadata.num_row_groups), columns)

    # -- where a group's rows are ----------------------------------------------------------
    def _key_columns(self) -> list[str]:
        return ["step", "z"] if self.kind == EVENTS else ["z"]

    def _mask(self, chunk: pa.Table, group: Group):
        same_z = pc.equal(chunk["z"], group[1])
        return same_z if self.kind == SUMMARY else pc.and_(same_z, pc.equal(chunk["step"],
                                                                             group[0]))  # fmt: skip

    def _row_group_ranges(self) -> list[tuple]:
        """Per row group: ((name min, z min), (name max, z max)), or (None, None) unknown."""
        assert self._file is not None
        metadata = self._file.metadata
        names = metadata.schema.names
        ranges: list[tuple] = []
        for index in range(metadata.num_row_groups):
            row_group = metadata.row_group(index)
            z = row_group.column(names.index("z")).statistics
            step = (row_group.column(names.index("step")).statistics if self.kind == EVENTS
                    else None)  # fmt: skip
            if z is None or not z.has_min_max or (step is not None and not step.has_min_max):
                ranges.append((None, None))
                continue
            low = step.min if step is not None else SUMMARY_GROUP
            high = step.max if step is not None else SUMMARY_GROUP
            ranges.append(((low, z.min), (high, z.max)))
        return ranges

    def _row_groups_of(self, group: Group) -> list[int]:
        name, z = group
        return [i for i, (low, high) in enumerate(self._row_group_ranges())
                if low is None or (low[0] <= name <= high[0]
                                   and low[1] <= z <= high[1])]  # fmt: skip

    def _held(self) -> pa.Table:
        """Rows of a CSV or an older Parquet, converted to this format, kept in memory."""
        if self._table is None:
            self._table = self._convert(self._read_any())
        return self._table

    def _read_any(self) -> pa.Table | None:
        if _has_rows(self.csv) and not (self.parquet.exists() and _newer(self.parquet, self.csv)):
            return pacsv.read_csv(self.csv, convert_options=pacsv.ConvertOptions(
                column_types=_csv_types(self.kind), strings_can_be_null=True))  # fmt: skip
        if self.parquet.exists():
            return pq.read_table(self.parquet)
        return None

    def _convert(self, table: pa.Table | None) -> pa.Table:
        if table is None:
            return SCHEMAS[self.kind].empty_table()
        if self.kind == EVENTS:
            return export.events_from_table(table)
        return export.summary_from_table(table, self.tms_id)


def _groups_in(table: pa.Table, kind: str) -> set[Group]:
    names = table["step"] if kind == EVENTS else pa.repeat(SUMMARY_GROUP, len(table))
    pairs = pa.table({"n": names, "z": table["z"]}).group_by(["n", "z"]).aggregate([])
    return {(row["n"], row["z"]) for row in pairs.to_pylist()}


def _csv_types(kind: str) -> dict[str, pa.DataType]:
    """Read text as text (a checksum of digits is no number), counts as counts."""
    types = {f.name: f.type for f in SCHEMAS[kind] if not pa.types.is_list(f.type)}
    return types | {"bounds": pa.string(), "started_at": pa.string(), "duration_s": pa.float64()}


def _metadata(path: Path) -> dict:
    try:
        return pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return {}


def _newer(path: Path, than: Path) -> bool:
    try:
        return path.stat().st_mtime_ns > than.stat().st_mtime_ns
    except OSError:
        return False


def _has_rows(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


# -- folding the journal in ------------------------------------------------------------------
def merge(files: RecordFiles, write_csv: bool) -> int:
    """Fold the committed journal parts into the files (and convert older files); with
    `write_csv`, also write the CSVs. Returns the last part folded in."""
    bases = {kind: BaseFile(files.csv(kind), kind, files.tms_id) for kind in (EVENTS, SUMMARY)}
    after = min(base.merged_through for base in bases.values())
    parts = committed_parts(files.parts, after)
    # Past every part either file holds: the next run's parts must be newer than both.
    through = max([*(base.merged_through for base in bases.values()), *(p.seq for p in parts)])
    for kind, base in bases.items():
        own = [p for p in parts if p.kind == kind and p.seq > base.merged_through]
        stale_csv = write_csv and not base.csv_fresh
        if own or not base.is_store or stale_csv:
            _rewrite(base, own, through, write_csv)
    remove_parts(files.parts, through)
    return through


def _rewrite(base: BaseFile, parts: list[Part], through: int, write_csv: bool) -> None:
    by_group: dict[Group, list[Part]] = defaultdict(list)
    for part in parts:
        by_group[part.name, part.z].append(part)
    base_groups = base.groups()
    replaced = {group: _replaced_keys(by_group[group]) for group in by_group
                if group in base_groups}  # fmt: skip
    to_file = export.events_to_file if base.kind == EVENTS else export.summary_to_file
    schema = SCHEMAS[base.kind].with_metadata({
        export.FORMAT_KEY: export.FORMAT, export.MERGED_KEY: str(through).encode(),
        CSV_KEY: b"1" if write_csv else b"0"})  # fmt: skip
    with _Writer(base.parquet, base.csv if write_csv else None, schema) as writer:
        for group in sorted(base_groups | set(by_group), key=group_order):
            if group in base_groups:
                for chunk in base.read_group(group):
                    if group in replaced:
                        keys = tile_keys(chunk["x"].to_numpy(), chunk["y"].to_numpy())
                        chunk = chunk.filter(pa.array(~_isin(keys, replaced[group])))
                    writer.write(chunk)
            for part in by_group.get(group, ()):
                writer.write(to_file(read_part(part.path)))  # written a row group at a time
                release_memory()
            writer.end_group()
            release_memory()


def _replaced_keys(parts: list[Part]) -> np.ndarray:
    """Sorted keys of the tiles these parts hold rows for (they replace the older rows)."""
    keys = [tile_keys(t["x"].to_numpy(), t["y"].to_numpy())
            for t in (read_part(p.path, ["x", "y"]) for p in parts)]  # fmt: skip
    return np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.uint64)


def _isin(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    index = np.searchsorted(sorted_keys, keys)
    found = index < len(sorted_keys)
    found[found] = sorted_keys[index[found]] == keys[found]
    return found


class _Writer:
    """Parquet (and CSV) of the same rows, under temporary names until all is written;
    then the CSV is renamed into place before the Parquet, so the Parquet is never the
    older of the two (readers take it only then)."""

    def __init__(self, parquet: Path, csv: Path | None, schema: pa.Schema):
        self.parquet, self.csv, self.schema = parquet, csv, schema
        self._pending: list[pa.Table] = []
        self._rows = 0

    def __enter__(self) -> _Writer:
        self._stack = ExitStack().__enter__()
        self._parquet_tmp = self._stack.enter_context(atomic_path(self.parquet))
        self._csv_tmp = self._stack.enter_context(atomic_path(self.csv)) if self.csv else None
        self._pq = pq.ParquetWriter(self._parquet_tmp, self.schema, compression="zstd")
        self._text = open(self._csv_tmp, "wb") if self._csv_tmp else None  # noqa: SIM115
        if self._text:
            self._text.write(export.csv_header(self.schema))
        return self

    def write(self, rows: pa.Table) -> None:
        at = 0
        while at < len(rows):  # row groups of ROW_GROUP_ROWS rows at most
            take = min(len(rows) - at, ROW_GROUP_ROWS - self._rows)
            self._pending.append(rows.slice(at, take))
            self._rows, at = self._rows + take, at + take
            if self._rows >= ROW_GROUP_ROWS:
                self.end_group()

    def end_group(self) -> None:
        """Write what is pending as one row group (a row group never spans two groups)."""
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        if table.schema.equals(self.schema, check_metadata=False):
            table = table.replace_schema_metadata(self.schema.metadata)
        else:
            table = table.cast(self.schema)
        self._pending, self._rows = [], 0
        self._pq.write_table(table, row_group_size=len(table))
        if self._text:
            self._text.write(export.csv_rows(table))

    def __exit__(self, *exc) -> None:
        try:
            if not exc[0]:
                self.end_group()
        finally:
            self._pq.close()
            if self._text:
                self._text.close()
            self._stack.__exit__(*exc)  # renames: the CSV (entered last) first
        if not exc[0]:
            os.utime(self.parquet)  # never older than the CSV renamed before it
