"""The event log and the raster summary: journaled by the driver alone, from what tasks return.

Workers never append to a shared file. A run folds what a killed run left into the files
at PDG's names (`open`), journals its own rows as Arrow parts while it goes (`add`), and
at its end folds those into the files again, CSV and Parquet, by streaming: on a worker
(`write_files`, while the driver holds the lock) or in the driver (`finish`).
Readers (`RecordsReader`) see the files plus any committed parts, one group of rows at a
time: exactly one row per (step, z, x, y) and per (stat, z, x, y), the latest.
"""

from __future__ import annotations

import pyarrow as pa

from rasterflow.workflow.records.parts import (
    PartWriter,
    committed_parts,
    last_seq,
    use_system_allocator,
)
from rasterflow.workflow.records.reader import RecordsReader, column, matches
from rasterflow.workflow.records.store import RecordFiles, merge

__all__ = ["RecordsReader", "RunRecords", "column", "matches", "write_files"]


def write_files(config) -> None:
    """Fold the run's committed journal into the CSV and Parquet files at PDG's names (by
    streaming: `store.merge`). The run that holds the output's lock calls it, after its last
    flush, in its own process or on a worker."""
    merge(RecordFiles.of(config), write_csv=True)


class RunRecords:
    """The writing side of one run's records (the run holds the output's lock)."""

    def __init__(self, config, flush_s: float = 5.0):
        use_system_allocator()  # the driver's process: a peak that does not grow with rows
        self.config = config
        self.files = RecordFiles.of(config)
        self.flush_s = flush_s
        self.writer: PartWriter | None = None

    def open(self) -> RecordsReader:
        """Fold in what a killed run left (and convert older files); then this run's journal
        starts. Returns a reader of the records as this run found them."""
        through = merge(self.files, write_csv=False)
        first = max(through, last_seq(self.files.parts)) + 1
        self.writer = PartWriter(self.files.parts, first, self.flush_s)
        return RecordsReader(self.config, with_parts=False)

    def add(self, events: pa.Table, summary: pa.Table | None = None,
            group: tuple[str, int] | None = None) -> None:  # fmt: skip
        assert self.writer is not None, "open() first"
        self.writer.add(events, summary, group)

    def flush_if_due(self) -> None:
        if self.writer is not None and self.writer.due():
            self.writer.flush()

    def close(self) -> None:
        """Commit what is buffered (a run that stops early: the next run folds it in)."""
        if self.writer is not None:
            self.writer.flush()

    def finish(self) -> None:
        """Fold this run's journal into the CSV and Parquet files at PDG's names."""
        self.close()
        write_files(self.config)

    @property
    def journal_left(self) -> bool:
        """Committed parts not folded into the files yet."""
        return bool(committed_parts(self.files.parts))

    @property
    def journal_written(self) -> bool:
        return self.writer is not None and self.writer.written > 0
