"""What crosses a task boundary, both ways columnar: the tiles of a batch going out
(`TileBatch`: a zoom and two integer arrays), and their outcomes coming back
(`TileResults`: the batch's event rows and summary rows as Arrow tables).

The driver appends a batch's tables to the journal as they are and reads a few whole
columns from them (status, checksum, the band minima and maxima); it never builds a dict
per tile or row. A worker turns its per-tile records (`steps.TileRecord`) into these
tables once per batch (`pack`), about 0.1 ms for 64 tiles.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.steps import (
    BAND_STATS,
    BOUNDS,
    DRIVER_EVENT,
    SUMMARY_PART,
    TASK_EVENT,
    Status,
    TileRecord,
)

TASK_EVENT_SCHEMA = pa.schema([pa.field(c.name, c.type) for c in TASK_EVENT])


class TileBatch(NamedTuple):
    z: int
    x: np.ndarray
    y: np.ndarray

    def tiles(self) -> list[Tile]:
        return [Tile(self.z, x, y) for x, y in zip(self.x.tolist(), self.y.tolist(), strict=True)]


@dataclass
class TileResults:
    """A batch's outcomes: one event row per tile worked on (a parent without children, or
    a web tile without a GeoTIFF, has none), and the summary rows of its ok GeoTIFFs."""

    events: pa.Table  # TASK_EVENT_SCHEMA
    summary: pa.Table  # SUMMARY_PART
    positions: np.ndarray  # each event row's tile: its index in the batch sent
    notes: tuple[str, ...] = ()

    def ok(self) -> np.ndarray:
        return np.asarray(self.events["status"].to_numpy(zero_copy_only=False) == Status.OK)

    def checksums(self) -> np.ndarray:
        return self.events["checksum"].fill_null(0).to_numpy()


def pack(records: Sequence[TileRecord], positions: Sequence[int]) -> TileResults:
    """Per-tile records (as `workflow.tasks` makes them) -> columnar results."""
    columns: dict[str, list] = {c.name: [r.get(c.name) for r in records] for c in TASK_EVENT}
    columns["checksum"] = [int(str(c), 16) if c else 0 for c in columns["checksum"]]
    events = pa.table(columns, schema=TASK_EVENT_SCHEMA)
    rows = [row for r in records if r.get("status") == Status.OK for row in r.get("summary", ())]
    summary = pa.table(_summary_columns(rows), schema=SUMMARY_PART)
    notes = tuple(sorted({note for r in records for note in r.get("notes", ())}))
    return TileResults(events, summary, np.asarray(positions, dtype=np.int64), notes)


def _summary_columns(rows: list[dict]) -> dict[str, list]:
    """`band_summary` rows; its `bounds` (left, bottom, right, top) as PDG's four columns."""
    names = ("stat", "z", "x", "y", *BAND_STATS, "n_nonempty", "path")
    columns = {name: [row.get(name) for row in rows] for name in names}
    corners = [row["bounds"] for row in rows]
    for name, at in zip(BOUNDS, (0, 2, 1, 3), strict=True):
        columns[name] = [float(c[at]) for c in corners]
    return columns


def with_driver_columns(events: pa.Table, run_id: str, attempt: int,
                        fingerprints: np.ndarray) -> pa.Table:  # fmt: skip
    """The event rows as the journal holds them (`steps.EVENT_PART`)."""
    n = len(events)
    added = {"run_id": pa.array([run_id] * n, pa.string()),
             "attempt": pa.array(np.full(n, attempt, dtype=np.int64)),
             "fingerprint": pa.array(np.asarray(fingerprints, dtype=np.uint64))}  # fmt: skip
    for column in DRIVER_EVENT:
        events = events.append_column(pa.field(column.name, column.type), added[column.name])
    return events


def failed_results(step: str, batch: TileBatch, errors: Sequence[str],
                   paths: Sequence[str | None]) -> TileResults:  # fmt: skip
    """Failed rows for every tile of a batch the driver fails itself (a batch lost with its
    worker; a z-max tile outside the grid)."""
    records: list[TileRecord] = [
        {"step": step, "z": batch.z, "x": x, "y": y, "status": Status.FAILED, "error": error,
         "path": path}
        for x, y, error, path in zip(batch.x.tolist(), batch.y.tolist(), errors, paths,
                                     strict=True)
    ]  # fmt: skip
    return pack(records, range(len(records)))


# -- across Parsl -----------------------------------------------------------------------------
def pack_call(app: str, *args) -> bytes:
    return pickle.dumps((app, args), protocol=pickle.HIGHEST_PROTOCOL)


def unpacked(results: TileResults | bytes) -> TileResults:
    return pickle.loads(results) if isinstance(results, bytes) else results
