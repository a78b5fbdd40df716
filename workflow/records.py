"""The event log and the raster summary, folded by the driver from task records.

Workers never append to a shared file: tasks return small records, and the
driver alone keeps one row per (step, z, x, y) and one per (stat, z, x, y).
While a run goes, rows are appended to a journal (JSON lines, flushed) so a
killed driver loses nothing; at the end the CSV (PDG's file names) and the
Parquet beside it are rewritten whole, atomically, and the journal removed.
"""

from __future__ import annotations

import json
import marshal
import operator
import os
import pickle
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pandas as pd

from rasterflow.rasterize_core.atomic import atomic_path
from rasterflow.workflow.config import RasterflowConfig

EVENT_COLUMNS = [
    "run_id", "step", "z", "x", "y", "status", "attempt", "started_at", "duration_s",
    "n_polygons", "path", "host", "error", "fingerprint", "checksum",
]  # fmt: skip
# PDG's columns first, so their tools keep reading the summary.
SUMMARY_COLUMNS = [
    "stat", "bounds", "min", "max", "mean", "median", "std", "var", "sum", "path", "tile", "z",
    "x", "y", "n_nonempty",
]  # fmt: skip
EVENT_KEY = ("step", "z", "x", "y")
SUMMARY_KEY = ("stat", "z", "x", "y")

# Read back as the driver made them: a hex checksum of digits only is no number, a count
# column with gaps no float, and `bounds` a list again (a string beside the new rows' lists
# would break the Parquet file and be written back quoted).
TEXT_COLUMNS = ("run_id", "step", "status", "started_at", "path", "host", "error",
                "fingerprint", "checksum", "stat", "tile", "bounds")  # fmt: skip
COUNT_COLUMNS = ("z", "x", "y", "attempt", "n_polygons", "n_nonempty")
READ_TYPES = dict.fromkeys(TEXT_COLUMNS, str) | dict.fromkeys(COUNT_COLUMNS, "Int64")
# Text kept once in memory, rows holding its number: the same few values in millions of
# rows (not the fingerprint or the checksum: one per tile).
INTERNED = frozenset(("run_id", "status", "host", "error"))
_ALL = object()


class RunRecords:
    """The latest event per (step, z, x, y) and summary row per (stat, z, x, y)."""

    def __init__(self, config: RasterflowConfig):
        self.events_csv = Path(config.filename_rasterization_events)
        self.summary_csv = Path(config.filename_rasters_summary)
        self.journal = self.events_csv.with_name(self.events_csv.name + ".journal.jsonl")
        strings = _Strings()  # shared: a run id or a folder is in both files
        self.events = Rows(EVENT_COLUMNS, EVENT_KEY, strings)
        self.summary = Rows(SUMMARY_COLUMNS, SUMMARY_KEY, strings)
        self._journal_handle = None

    # -- loading -------------------------------------------------------------
    def load(self) -> RunRecords:
        """Rows of earlier runs: the CSV files, then any journal a killed run left."""
        for row in _read_csv(self.events_csv, EVENT_COLUMNS):
            self.events.put(row)
        for row in _read_csv(self.summary_csv, SUMMARY_COLUMNS):
            self.summary.put(row)
        for kind, row in _read_journal(self.journal):
            self._apply(kind, row)
        return self

    # -- folding -------------------------------------------------------------
    def add(self, event: dict, summary_rows: Iterable[dict] = ()) -> None:
        """Record one tile's outcome (replacing its earlier rows) and journal it."""
        rows = [("event", event)]
        if event["status"] == "ok":
            rows += [("summary", row) for row in summary_rows]
        for kind, row in rows:
            self._apply(kind, row)
        self._journal(rows)

    def _apply(self, kind: str, row: dict) -> None:
        (self.events if kind == "event" else self.summary).put(row)

    def _journal(self, rows: list[tuple[str, dict]]) -> None:
        if self._journal_handle is None:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            self._journal_handle = open(self.journal, "a", encoding="utf-8")  # noqa: SIM115
            if not _ends_with_newline(self.journal):
                self._journal_handle.write("\n")  # a line cut by a kill would swallow ours
        lines = "".join(json.dumps([kind, row], default=str) + "\n" for kind, row in rows)
        self._journal_handle.write(lines)
        self._journal_handle.flush()

    # -- queries -------------------------------------------------------------
    def event(self, step: str, z: int, x: int, y: int) -> dict | None:
        return self.events.get((step, z, x, y))

    def level_summary(self, z: int, columns: list[str] = SUMMARY_COLUMNS) -> pd.DataFrame:
        """Level z's summary rows; ask for the columns you need: a million tiles' rows
        rebuilt whole would take GBs for a moment."""
        return pd.DataFrame(list(self.summary.tuples(z, columns)), columns=columns)

    # -- writing -------------------------------------------------------------
    def write(self) -> None:
        """Rewrite CSV + Parquet whole, atomically; then drop the journal."""
        for rows, csv_path in ((self.events, self.events_csv), (self.summary, self.summary_csv)):
            frame = _frame(rows.tuples(), rows.columns, list(rows.key))  # one frame at a time
            with atomic_path(csv_path) as temporary:
                frame.to_csv(temporary, index=False)
            with atomic_path(csv_path.with_suffix(".parquet")) as temporary:
                frame.to_parquet(temporary, index=False)
            del frame
        self.close()
        if self.journal.exists():
            self.journal.unlink()

    def close(self) -> None:
        if self._journal_handle is not None:
            self._journal_handle.close()
            self._journal_handle = None


class Rows(Mapping):
    """One file's rows by (name, z, x, y), name being the step or the stat: a read-only
    mapping to dicts, each built when asked for.

    A million z-max tiles make ~2.7 million rows of each kind; as dicts they took ~5.7 KB
    per z-max tile. Here one dict per level (the index `level_summary` reads) maps a tile's
    x and y, packed into one int, to one marshalled blob of all its rows: per row its name
    and other columns, repeated text as numbers into a shared table, a path as interned
    folders and file names, PDG's `tile` column left out when it names the key.
    """

    def __init__(self, columns: list[str], key: tuple[str, ...], strings: _Strings):
        self.columns = columns
        self.key = key
        self._values = [c for c in columns if c not in key]
        self._merged = list(key) + self._values  # a stored row's order: name id, then values
        codecs = [self._codec(c) for c in self._values]
        self._packers = [codec and codec[0] for codec in codecs]
        self._unpackers = [None] * len(key) + [codec and codec[1] for codec in codecs]
        self._order = self._positions(columns)
        self._strings = strings
        self._levels: dict = {}
        self._count = 0

    def put(self, row: dict) -> None:
        name, z, x, y = (row[c] for c in self.key)
        level, packed = self._levels.setdefault(z, {}), _pack(x, y)
        where = (z, *_unpack(packed))
        new = [self._strings.id(name)]
        for column, pack in zip(self._values, self._packers, strict=True):
            value = row.get(column)
            new.append(value if pack is None else pack(value, where))
        rows = list(_load(level[packed])) if packed in level else []
        at = next((i for i, old in enumerate(rows) if old[0] == new[0]), len(rows))
        self._count += at == len(rows)
        rows[at : at + 1] = [tuple(new)]  # a replaced row keeps its place, as in a dict
        level[packed] = _dump(tuple(rows))

    def tuples(self, z=_ALL, columns: list[str] | None = None) -> Iterator[tuple]:
        """Rows as tuples of `columns` (default: all, in order): all rows, or level z's."""
        order = self._positions(columns) if columns else self._order
        for level_z, level in self._levels.items():
            if z is _ALL or level_z == z:
                for packed, blob in level.items():
                    for stored in _load(blob):
                        yield self._tuple((level_z, *_unpack(packed)), stored, order)

    # -- the mapping -----------------------------------------------------------
    def __getitem__(self, key: tuple) -> dict:
        where, stored = self._find(key)
        if stored is None:
            raise KeyError(key)
        return dict(zip(self.columns, self._tuple(where, stored, self._order), strict=True))

    def __iter__(self) -> Iterator[tuple]:
        for z, level in self._levels.items():
            for packed, blob in level.items():
                for stored in _load(blob):
                    yield (self._strings.values[stored[0]], z, *_unpack(packed))

    def __len__(self) -> int:
        return self._count

    # -- encoding --------------------------------------------------------------
    def _find(self, key) -> tuple[tuple, tuple | None]:
        """(z, x, y) as stored, and the stored row (None if there is none)."""
        try:
            name, z, x, y = key
            packed = _pack(x, y)
            blob = self._levels.get(z, {}).get(packed)
        except (TypeError, ValueError):
            return (), None
        names = self._strings.values
        rows = _load(blob) if blob is not None else ()
        return (z, *_unpack(packed)), next((r for r in rows if names[r[0]] == name), None)

    def _positions(self, columns: list[str]) -> list[tuple]:
        """Per column: its place in a stored row (key first) and its unpacker."""
        return [(i, self._unpackers[i]) for i in map(self._merged.index, columns)]

    def _tuple(self, where: tuple, stored: tuple, order: list[tuple]) -> tuple:
        raw = (self._strings.values[stored[0]], *where, *stored[1:])
        return tuple([raw[i] if out is None else out(raw[i], where) for i, out in order])

    # -- how a column is stored, if not as it is: (pack, unpack), each (value, where) ----
    def _codec(self, column: str) -> tuple | None:
        if column in INTERNED:
            return self._text_in, self._text_out
        return {"path": (self._path_in, self._path_out), "tile": (_tile_in, _tile_out)}.get(column)

    def _text_in(self, value, where: tuple):  # a number, or a 1-tuple for no text (None)
        return self._strings.id(value) if type(value) is str else (value,)

    def _text_out(self, value, where: tuple):
        return self._strings.values[value] if type(value) is int else value[0]

    def _path_in(self, value, where: tuple):  # `a/b.png;a/c.png` for web tiles
        if type(value) is not str:
            return value
        parts = (part.rpartition("/") for part in value.split(";"))
        return tuple(v for head, s, name in parts for v in (self._strings.id(head + s), name))

    def _path_out(self, value, where: tuple):
        if type(value) is not tuple:
            return value
        pairs = zip(value[::2], value[1::2], strict=True)
        return ";".join(self._strings.values[head] + name for head, name in pairs)


class _Strings:
    """Each repeated text once; rows hold its number."""

    def __init__(self):
        self.values: list[str] = []
        self._ids: dict[str, int] = {}

    def id(self, text: str) -> int:
        found = self._ids.get(text)
        if found is None:
            found = self._ids[text] = len(self.values)
            self.values.append(text)
        return found


def _dump(rows: tuple) -> bytes:
    """marshal if it gives the rows back as they are (it would write a numpy float as
    bytes); else pickle, which keeps any type."""
    try:
        blob = marshal.dumps(rows)
        if marshal.loads(blob) == rows:
            return blob
    except ValueError:
        pass
    return pickle.dumps(rows, protocol=5)


def _load(blob: bytes) -> tuple:
    return pickle.loads(blob) if blob[0] == 0x80 else marshal.loads(blob)


def _tile_in(value, where: tuple):  # PDG's `tile` column names the key: left out then
    return ... if value == _tile_name(*where) else value


def _tile_out(value, where: tuple):
    return _tile_name(*where) if value is ... else value


def _tile_name(z, x, y) -> str:
    return f"Tile(x={x}, y={y}, z={z})"


def _pack(x, y):
    """x and y as one int (32 bytes, a tuple of them 112); a tuple if they do not fit."""
    try:
        x, y = operator.index(x), operator.index(y)
    except TypeError:
        return (x, y)
    return x << 32 | y if 0 <= x < 1 << 32 and 0 <= y < 1 << 32 else (x, y)


def _unpack(packed) -> tuple:
    return divmod(packed, 1 << 32) if isinstance(packed, int) else packed


def _frame(rows: Iterable[tuple], columns: list[str], order: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=columns)
    if frame.empty:
        return frame
    for column in set(COUNT_COLUMNS) & set(columns):  # 3308, not 3308.0 beside a gap
        frame[column] = frame[column].astype("Int64")
    rank = {"rasterize": 0, "parent": 1, "webtile": 2}
    keys = [frame[c].map(rank) if c == "step" and c in frame else frame[c] for c in order]
    frame = frame.assign(**{f"_k{i}": k for i, k in enumerate(keys)})
    sort_by = [f"_k{i}" for i in range(len(keys))]
    return frame.sort_values(sort_by).drop(columns=sort_by).reset_index(drop=True)


def _read_csv(path: Path, columns: list[str]) -> Iterator[dict]:
    """Rows a chunk at a time: a million tiles' rows as dicts at once would take GBs."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with pd.read_csv(path, dtype=READ_TYPES, chunksize=100_000) as chunks:
        for frame in chunks:
            frame = frame.reindex(columns=columns)
            frame = frame.astype(object).where(frame.notna(), None)
            for row in frame.to_dict("records"):
                if isinstance(row.get("bounds"), str):
                    row["bounds"] = json.loads(row["bounds"])
                yield row


def _read_journal(path: Path) -> Iterator[tuple[str, dict]]:
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                kind, row = json.loads(line)
            except (ValueError, TypeError):
                continue  # the last line of a killed driver may be cut short
            yield kind, row


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
