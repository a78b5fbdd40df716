"""The driver: wrap the apps with `python_app`, feed batches level by level
through a bounded window of futures, and fold what finishes into the records.

A parent batch is submitted once the child batches that made its children are
done, so its tiles can be checked against what those children became (resume),
and a failed child batch only leaves its tiles missing instead of cancelling
every parent above it, as a failed Parsl dependency would. Web tiles of a level
go once the whole level is done: its value ranges come from its summaries.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field

from parsl import python_app

from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow import tasks
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.lock import HEARTBEAT_S
from rasterflow.workflow.plan import Batch, Plan
from rasterflow.workflow.progress import RunProgress
from rasterflow.workflow.records import RunRecords
from rasterflow.workflow.resume import Fingerprints
from rasterflow.workflow.value_ranges import RANGE_COLUMNS, Ranges, level_ranges

log = logging.getLogger(__name__)


@dataclass
class Submitted:
    step: str
    batch: Batch
    tiles: list[Tile]
    fingerprints: dict[Tile, str]
    whole: Submitted | None = None  # the lost batch this tile was split from
    tries_before: int = 0  # tries that batch took
    pieces_left: int = 0  # of a split batch: tiles not back yet


@dataclass
class Driver:
    config: RasterflowConfig
    plan: Plan
    records: RunRecords
    fingerprints: Fingerprints
    run_id: str
    progress: RunProgress
    window: int
    heartbeat: Callable[[], None] = lambda: None
    watch: Callable[[], None] = lambda: None  # raises if Parsl can no longer finish anything
    ranges: Ranges = field(default_factory=dict)
    notes: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._rasterize = python_app(tasks.rasterize_batch)
        self._parents = python_app(tasks.parents_batch)
        self._webtiles = python_app(tasks.webtiles_batch)
        self._batches = {b.id: b for level in self.plan.batches.values() for b in level}
        self._waiting_on = {b.id: set(b.depends_on) for b in self._batches.values()}
        self._dependents: dict[int, list[int]] = {}
        for batch in self._batches.values():
            for dep in batch.depends_on:
                self._dependents.setdefault(dep, []).append(batch.id)
        self._level_left = {z: len(batches) for z, batches in self.plan.batches.items()}
        self._urgent: deque[Submitted] = deque()  # parents and web tiles: keep levels moving
        self._fresh: deque[Submitted] = deque()  # z-max batches
        self._outstanding: dict[Future, Submitted] = {}

    def run(self) -> None:
        for batch in self.plan.batches[self.plan.z_max]:
            self._prepare("rasterize", batch)
        self._close_empty_levels()
        last_beat = time.time()
        while self._urgent or self._fresh or self._outstanding:
            self._fill_window()
            finished, _ = wait(list(self._outstanding), timeout=5, return_when=FIRST_COMPLETED)
            for future in finished:
                self._collect(future, self._outstanding.pop(future))
            self.watch()
            if time.time() - last_beat > HEARTBEAT_S:
                self.heartbeat()
                last_beat = time.time()

    # -- submitting ---------------------------------------------------------
    def _prepare(self, step: str, batch: Batch) -> None:
        """Queue the batch's tiles that need work; a batch with none is done at once."""
        todo = self.fingerprints.todo(step, batch.tiles, self.ranges.get(batch.z))
        self.progress.add_total(step, batch.z, len(batch.tiles))
        self.progress.skip(step, batch.z, len(batch.tiles) - len(todo))
        if not todo:
            self._finish(step, batch)
            return
        queue = self._fresh if step == "rasterize" else self._urgent
        queue.append(Submitted(step, batch, list(todo), todo))

    def _fill_window(self) -> None:
        while len(self._outstanding) < self.window and (self._urgent or self._fresh):
            item = (self._urgent or self._fresh).popleft()
            self._outstanding[self._submit(item)] = item

    def _submit(self, item: Submitted) -> Future:
        if item.step == "rasterize":
            sources = [self.plan.sources[t] for t in item.tiles]
            return self._rasterize(item.tiles, sources, self.config)
        if item.step == "parent":
            return self._parents(item.tiles, self.config)
        return self._webtiles(item.tiles, self.config, self.ranges[item.batch.z])

    # -- collecting ---------------------------------------------------------
    def _collect(self, future: Future, item: Submitted) -> None:
        attempt = item.tries_before + _attempt(future)
        try:
            results = future.result()
        except Exception as err:  # the whole batch was lost, after Parsl's retries
            if len(item.tiles) > 1:
                self._split(item, attempt, err)
                return
            results = [self._lost(item.step, tile, err) for tile in item.tiles]
        failed = 0
        for result in results:
            tile = Tile(result["z"], result["x"], result["y"])
            event = self._event(result, attempt, item.fingerprints.get(tile))
            self.records.add(event, result.get("summary", ()))
            self.notes.update(result.get("notes", ()))
            failed += event["status"] == "failed"
        self.progress.advance(item.step, item.batch.z, len(item.tiles), failed)
        if item.whole is not None:
            item.whole.pieces_left -= 1
            if item.whole.pieces_left:
                return
        self._finish(item.step, item.batch)

    def _split(self, item: Submitted, attempt: int, err: Exception) -> None:
        """Run a lost batch's tiles one by one: a tile that kills its worker (a crash in a
        library, memory) then fails alone instead of taking its whole batch with it."""
        reason = f"{type(err).__name__}: {err}"
        log.warning("a %s batch of %d tiles at z%d was lost (%s); running its tiles one by one",
                    item.step, len(item.tiles), item.batch.z, reason)  # fmt: skip
        item.pieces_left = len(item.tiles)
        for tile in item.tiles:
            own = {tile: item.fingerprints[tile]} if tile in item.fingerprints else {}
            self._urgent.append(Submitted(item.step, item.batch, [tile], own, item, attempt))

    def _lost(self, step: str, tile: Tile, err: Exception) -> dict:
        path = self.plan.sources.get(tile) if step == "rasterize" else None
        return {"step": step, "z": tile.z, "x": tile.x, "y": tile.y, "status": "failed",
                "error": f"batch lost: {type(err).__name__}: {err}", "path": path,
                "started_at": None, "duration_s": None, "host": None, "summary": []}  # fmt: skip

    def _event(self, result: dict, attempt: int, fingerprint: str | None) -> dict:
        keep = {k: v for k, v in result.items() if k not in ("summary", "notes")}
        return {"run_id": self.run_id, "attempt": attempt, "n_polygons": None,
                "fingerprint": fingerprint, "checksum": None, "path": None, **keep}  # fmt: skip

    def _finish(self, step: str, batch: Batch) -> None:
        if step == "webtile":
            return
        for parent_id in self._dependents.get(batch.id, ()):
            waiting = self._waiting_on[parent_id]
            waiting.discard(batch.id)
            if not waiting:
                self._prepare("parent", self._batches[parent_id])
        self._level_left[batch.z] -= 1
        if self._level_left[batch.z] == 0:
            self._start_webtiles(batch.z)

    def _start_webtiles(self, z: int) -> None:
        self.ranges[z] = level_ranges(self.config, z, self.records.level_summary(z, RANGE_COLUMNS))
        tiles = self.plan.levels[z]
        size = max(1, len(self.plan.batches[z][0].tiles)) if self.plan.batches[z] else 1
        for start in range(0, len(tiles), size):
            chunk = tuple(tiles[start : start + size])
            self._prepare("webtile", Batch(-1, z, chunk))

    def _close_empty_levels(self) -> None:
        """A level with no batch at all (nothing staged under it) is done from the start."""
        for z, left in sorted(self._level_left.items(), reverse=True):
            if left == 0 and z not in self.ranges:
                self._start_webtiles(z)


def _attempt(future: Future) -> int:
    record = getattr(future, "task_record", None) or {}
    return int(record.get("try_id", 0)) + 1
