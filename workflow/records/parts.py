"""The journal: what a run has finished, as Arrow files written while it goes.

Rows from finished batches are buffered and written every `flush_s` seconds (sooner at a
run's start; or every `flush_rows` rows), one part file per group of rows (events: per step
and zoom; summary: per zoom), then one empty `{seq}.done` file that commits the flush.
Parts are Arrow IPC files, uncompressed: about 1 ms to write, where Parquet or LZ4 took
4-6 ms; flushes come with the run's duration, not its rows, so they must cost little. Each
file is written
under a temporary name and renamed into place, so a driver killed at any moment leaves
committed flushes whole and at most one uncommitted flush, which readers ignore: the
tiles it held (at most `flush_s` seconds of work) are redone by the next run, to the
same bytes. There is no flush per row (the JSON-lines journal before this one flushed
each row), and nothing of a flushed row stays in the driver's memory.

A part is named `{seq:010d}-e-{step}-{z}.arrow` or `{seq:010d}-s-all-{z}.arrow`;
sequence numbers only grow, and the files at PDG's names record the last one folded into
them (`export.MERGED_KEY`), so a part is read only if it is newer than that.
"""

from __future__ import annotations

import ctypes
import os
import re
import time
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from rasterflow.rasterize_core.atomic import atomic_path, is_temp_file
from rasterflow.workflow.steps import EVENT_PART, SUMMARY_PART

PART_NAME = re.compile(r"^(\d{10})-([es])-(\w+)-(\d+)\.arrow$")
DONE_NAME = re.compile(r"^(\d{10})\.done$")
SUMMARY_GROUP = "all"  # summary parts hold every statistic of their zoom


def _glibc():
    """glibc, for `malloc_trim` (None elsewhere: musl, macOS)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _glibc()


@dataclass(frozen=True)
class Part:
    seq: int
    kind: str  # "e" (events) or "s" (summary)
    name: str  # the step, or SUMMARY_GROUP
    z: int
    path: Path


def use_system_allocator() -> None:
    """Arrow's buffers in the driver from the C library's malloc, not mimalloc. mimalloc
    keeps freed pages per thread (Arrow's own threads among them) and, chunk after chunk,
    the driver's peak grew with the rows: a merge peaked 39 MB over its start for 3,000
    z-max tiles and 62 MB for 24,000; with malloc and `release_memory`, 20 and 31 MB."""
    if _LIBC is not None and pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def release_memory() -> None:
    """Give back to the system what the driver freed (after a chunk, a flush): Arrow's
    pool's unused pages and the free pages of every malloc heap (`malloc_trim`), Parsl's
    threads' included, which unpickle each batch's results."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def committed_parts(folder: Path, after: int = -1) -> list[Part]:
    """Parts of committed flushes newer than `after`, oldest first."""
    if not folder.is_dir():
        return []
    names = os.listdir(folder)
    done = {int(m.group(1)) for m in map(DONE_NAME.match, names) if m}
    parts = []
    for name in names:
        match = PART_NAME.match(name)
        if match and int(match.group(1)) in done and int(match.group(1)) > after:
            seq, kind, group, z = match.groups()
            parts.append(Part(int(seq), kind, group, int(z), folder / name))
    return sorted(parts, key=lambda part: (part.seq, part.path.name))


def last_seq(folder: Path) -> int:
    """The highest sequence number of any file in the folder (-1 if none)."""
    if not folder.is_dir():
        return -1
    seqs = [int(m.group(1)) for name in os.listdir(folder)
            for m in (PART_NAME.match(name) or DONE_NAME.match(name),) if m]  # fmt: skip
    return max(seqs, default=-1)


def remove_parts(folder: Path, through: int) -> None:
    """Delete parts and commits up to `through`, flushes never committed, temp files; then
    the folder if it is empty."""
    if not folder.is_dir():
        return
    done = {int(m.group(1)) for m in map(DONE_NAME.match, os.listdir(folder)) if m}
    names = sorted(os.listdir(folder), key=lambda n: n.endswith(".done"))  # commits last
    for name in names:
        match = PART_NAME.match(name) or DONE_NAME.match(name)
        old = match and (int(match.group(1)) <= through or int(match.group(1)) not in done)
        if old or is_temp_file(name):
            (folder / name).unlink(missing_ok=True)
    with suppress(OSError):  # not empty: a newer run's parts
        folder.rmdir()


class PartWriter:
    """Buffers finished rows and writes them as committed parts when due."""

    def __init__(self, folder: Path, first_seq: int, flush_s: float = 5.0,
                 flush_rows: int = 20_000):  # fmt: skip
        self.folder = folder
        self.seq = first_seq
        self.flush_s = flush_s
        self.flush_rows = flush_rows
        self.written = 0  # flushes committed
        self._events: dict[tuple[str, int], list[pa.Table]] = defaultdict(list)
        self._summary: dict[int, list[pa.Table]] = defaultdict(list)
        self._rows = 0
        self._since = self._started = time.monotonic()

    def add(self, events: pa.Table, summary: pa.Table | None = None,
            group: tuple[str, int] | None = None) -> None:  # fmt: skip
        """Rows of `EVENT_PART` and `SUMMARY_PART`; written at the next due flush. `group`:
        the (step, z) every row is of, when the caller knows (a batch's rows are)."""
        if group is not None:
            self._events[group].append(events)
            if summary is not None and len(summary):
                self._summary[group[1]].append(summary)
        else:
            for (step, z), rows in _groups(events, ("step", "z")):
                self._events[step, z].append(rows)
            if summary is not None:
                for (z,), rows in _groups(summary, ("z",)):
                    self._summary[z].append(rows)
        self._rows += len(events) + (len(summary) if summary is not None else 0)
        if self.due():
            self.flush()

    def due(self) -> bool:
        """Rows waiting, and enough of them or for long enough. The wait grows with the
        run, from 0.2 s to `flush_s` (a tenth of the run so far): a short run journals its
        rows at once (status sees them, a kill loses little), a long one pays for few
        flushes (~40 in its first minute, then one per `flush_s`)."""
        now = time.monotonic()
        wait = min(self.flush_s, max(0.2, (now - self._started) / 10))
        return self._rows > 0 and (self._rows >= self.flush_rows or now - self._since >= wait)

    def flush(self) -> None:
        """Write the buffered rows as one committed flush."""
        self._since = time.monotonic()
        if not self._rows:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        seq = self.seq
        for (step, z), tables in self._events.items():
            _write(self.folder / f"{seq:010d}-e-{step}-{z}.arrow", tables, EVENT_PART)
        for z, tables in self._summary.items():
            _write(self.folder / f"{seq:010d}-s-{SUMMARY_GROUP}-{z}.arrow", tables,
                   SUMMARY_PART)  # fmt: skip
        with atomic_path(self.folder / f"{seq:010d}.done") as temporary:
            temporary.touch()
        self._events.clear()
        self._summary.clear()
        self._rows = 0
        self.seq += 1
        self.written += 1
        release_memory()


def _write(path: Path, tables: list[pa.Table], schema: pa.Schema) -> None:
    with (
        atomic_path(path) as temporary,
        pa.OSFile(str(temporary), "wb") as sink,
        pa.ipc.new_file(sink, schema) as writer,
    ):
        writer.write_table(pa.concat_tables(tables).cast(schema))


def _groups(table: pa.Table, keys: tuple[str, ...]) -> list[tuple[tuple, pa.Table]]:
    """(key values, rows) per distinct key: one group for the usual one-batch table."""
    if not len(table):
        return []
    combos = table.select(list(keys)).group_by(list(keys)).aggregate([]).to_pylist()
    if len(combos) == 1:
        return [(tuple(combos[0][key] for key in keys), table)]
    groups = []
    for combo in combos:
        masks = [pc.equal(table[key], combo[key]) for key in keys]
        mask = masks[0] if len(masks) == 1 else pc.and_(*masks)
        groups.append((tuple(combo[key] for key in keys), table.filter(mask)))
    return groups


def read_part(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A part's rows (these columns)."""
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    return table if columns is None else table.select(columns)


def part_rows(path: Path) -> int:
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
