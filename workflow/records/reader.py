"""Reading the latest rows of one group (a step at a zoom, or a zoom's summary), a chunk
at a time: the files at PDG's names, less the rows that committed journal parts replace,
then those parts. So `status` sees a run in progress, and resume sees what a killed run
finished. Fingerprints and checksums come back as uint64 (0: none) whichever file they
were in."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rasterflow.workflow.records import export
from rasterflow.workflow.records.parts import SUMMARY_GROUP, Part, committed_parts, read_part
from rasterflow.workflow.records.store import (
    EVENTS,
    SUMMARY,
    BaseFile,
    Group,
    RecordFiles,
    _isin,
    _replaced_keys,
    group_order,
    tile_keys,
)

HASHES = ("fingerprint", "checksum")


class RecordsReader:
    """The run's records as they stand, journal included."""

    def __init__(self, config, with_parts: bool = True):
        self.files = RecordFiles.of(config)
        self.bases = {kind: BaseFile(self.files.csv(kind), kind, config.tms_id)
                      for kind in (EVENTS, SUMMARY)}  # fmt: skip
        self.parts: dict[str, dict[Group, list[Part]]] = {
            EVENTS: defaultdict(list),
            SUMMARY: defaultdict(list),
        }
        if with_parts:
            after = min(base.merged_through for base in self.bases.values())
            for part in committed_parts(self.files.parts, after):
                if part.seq > self.bases[part.kind].merged_through:
                    self.parts[part.kind][part.name, part.z].append(part)
        self._groups: dict[str, set[Group]] = {}

    @property
    def has_events(self) -> bool:
        return self.bases[EVENTS].exists or bool(self.parts[EVENTS])

    def groups(self, kind: str) -> list[Group]:
        if kind not in self._groups:
            self._groups[kind] = self.bases[kind].groups() | set(self.parts[kind])
        return sorted(self._groups[kind], key=group_order)

    def events(self, step: str, z: int, columns: list[str]) -> Iterator[pa.Table]:
        """The latest event rows of (step, z): these columns (`x`, `y` always read)."""
        return self._rows(EVENTS, (str(step), z), columns)

    def summary(self, z: int, columns: list[str]) -> Iterator[pa.Table]:
        return self._rows(SUMMARY, (SUMMARY_GROUP, z), columns)

    def _rows(self, kind: str, group: Group, columns: list[str]) -> Iterator[pa.Table]:
        wanted = list(dict.fromkeys(["x", "y", *columns]))
        parts = self.parts[kind].get(group, [])
        replaced = _replaced_keys(parts) if parts else None
        base = self.bases[kind]
        if group in base.groups():
            for chunk in base.read_group(group, wanted):
                if replaced is not None:
                    keep = ~_isin(tile_keys(chunk["x"].to_numpy(), chunk["y"].to_numpy()),
                                  replaced)  # fmt: skip
                    chunk = chunk.filter(pa.array(keep))
                yield _hashes_as_numbers(chunk)
        for part in parts:
            yield read_part(part.path, wanted)


def _hashes_as_numbers(chunk: pa.Table) -> pa.Table:
    for name in HASHES:
        if name in chunk.column_names:
            index = chunk.schema.get_field_index(name)
            chunk = chunk.set_column(index, name, pa.array(export.parse_hex16(chunk[name]),
                                                           pa.uint64()))  # fmt: skip
    return chunk


def column(chunk: pa.Table, name: str, fill=None) -> np.ndarray:
    """A column as numpy (nulls as `fill`, or as None in an object array)."""
    values = chunk[name]
    if fill is not None:
        values = values.fill_null(fill)
    return values.to_numpy(zero_copy_only=False)


def matches(chunk: pa.Table, name: str, value: str) -> np.ndarray:
    """Rows whose text column equals `value` (a null never does), compared in Arrow: no
    Python string per row."""
    return pc.equal(chunk[name], value).fill_null(False).to_numpy(zero_copy_only=False)
