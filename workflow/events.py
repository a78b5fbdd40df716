"""The event log and the raster summary, folded by the driver from task records.

Workers never append to a shared file: tasks return small records, and the
driver alone keeps one row per (step, z, x, y) and one per (stat, z, x, y).
While a run goes, rows are appended to a journal (JSON lines, flushed) so a
killed driver loses nothing; at the end the CSV (PDG's file names) and the
Parquet beside it are rewritten whole, atomically, and the journal removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from rasterize_core.atomic import atomic_path
from workflow.config import RasterflowConfig

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


def event_key(row: dict) -> tuple:
    return tuple(row[k] for k in EVENT_KEY)


def summary_key(row: dict) -> tuple:
    return tuple(row[k] for k in SUMMARY_KEY)


class RunRecords:
    """The latest event per (step, z, x, y) and summary row per (stat, z, x, y)."""

    def __init__(self, config: RasterflowConfig):
        self.events_csv = Path(config.filename_rasterization_events)
        self.summary_csv = Path(config.filename_rasters_summary)
        self.journal = self.events_csv.with_name(self.events_csv.name + ".journal.jsonl")
        self.events: dict[tuple, dict] = {}
        self.summary: dict[tuple, dict] = {}
        self._journal_handle = None

    # -- loading -------------------------------------------------------------
    def load(self) -> RunRecords:
        """Rows of earlier runs: the CSV files, then any journal a killed run left."""
        for row in _read_csv(self.events_csv, EVENT_COLUMNS):
            self.events[event_key(row)] = row
        for row in _read_csv(self.summary_csv, SUMMARY_COLUMNS):
            self.summary[summary_key(row)] = row
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
        if kind == "event":
            self.events[event_key(row)] = row
        else:
            self.summary[summary_key(row)] = row

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

    def level_summary(self, z: int) -> pd.DataFrame:
        rows = [row for key, row in self.summary.items() if key[1] == z]
        return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

    # -- writing -------------------------------------------------------------
    def write(self) -> None:
        """Rewrite CSV + Parquet whole, atomically; then drop the journal."""
        events = _frame(self.events.values(), EVENT_COLUMNS, ["step", "z", "x", "y"])
        summary = _frame(self.summary.values(), SUMMARY_COLUMNS, ["stat", "z", "x", "y"])
        for frame, csv_path in ((events, self.events_csv), (summary, self.summary_csv)):
            with atomic_path(csv_path) as temporary:
                frame.to_csv(temporary, index=False)
            with atomic_path(csv_path.with_suffix(".parquet")) as temporary:
                frame.to_parquet(temporary, index=False)
        self.close()
        if self.journal.exists():
            self.journal.unlink()

    def close(self) -> None:
        if self._journal_handle is not None:
            self._journal_handle.close()
            self._journal_handle = None


def _frame(rows: Iterable[dict], columns: list[str], order: list[str]) -> pd.DataFrame:
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


def _read_csv(path: Path, columns: list[str]) -> list[dict]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    frame = pd.read_csv(path, dtype=READ_TYPES)
    frame = frame.reindex(columns=columns)
    frame = frame.astype(object).where(frame.notna(), None)
    rows = frame.to_dict("records")
    for row in rows:
        if isinstance(row.get("bounds"), str):
            row["bounds"] = json.loads(row["bounds"])
    return rows


def _read_journal(path: Path) -> list[tuple[str, dict]]:
    if not path.exists():
        return []
    entries = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                kind, row = json.loads(line)
            except (ValueError, TypeError):
                continue  # the last line of a killed driver may be cut short
            entries.append((kind, row))
    return entries


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
