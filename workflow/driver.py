"""The driver: feed batches level by level through a bounded window of futures, and fold
what finishes into the journal, the level's checksums and its value ranges.

A parent batch is prepared once the child batches that made its children are done, so
its tiles can be checked against what those children became (resume), and a failed
child batch only leaves its tiles missing instead of cancelling every parent above it,
as a failed Parsl dependency would. Web tiles of a level go once the whole level is
done: its value ranges come from its summaries, folded as its batches finished.

What the driver holds does not grow with the rows: the plan's arrays, per level in
progress a few arrays (`LevelState`, ~20 bytes a tile), the window of futures and the
journal's buffer (Parsl's finished tasks are freed as it goes: `parsl_session`). At the
end a worker turns the journal into the files at PDG's names (`finish_records`). The
apps come from `launch`, called at the first batch that has work: a rerun with nothing to
do never starts Parsl.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rasterflow.rasterize_core.errors import TileInputError
from rasterflow.workflow import quicklook
from rasterflow.workflow.apps import run_packed, run_packed_once
from rasterflow.workflow.batches import (
    TileBatch,
    TileResults,
    failed_results,
    pack_call,
    unpacked,
    with_driver_columns,
)
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.lock import HEARTBEAT_S
from rasterflow.workflow.parsl_session import try_count
from rasterflow.workflow.plan import MAX_BATCH_TILES, WEB_BATCH_FACTOR, Plan
from rasterflow.workflow.progress import RunProgress
from rasterflow.workflow.records import RecordsReader, RunRecords, column
from rasterflow.workflow.resume import (
    LevelRows,
    Outputs,
    config_seeds,
    needs_work,
    parent_fingerprints,
    rasterize_fingerprints,
    web_seed,
    webtile_fingerprints,
)
from rasterflow.workflow.steps import Step
from rasterflow.workflow.value_ranges import (
    RANGE_COLUMNS,
    Observed,
    Ranges,
    fill_stats,
    fold,
    level_ranges,
)

log = logging.getLogger(__name__)


class Apps(Protocol):
    """The apps: three batch apps, each returning a future of `TileResults`; a level's
    quick-looks; the records' files at the end."""

    def rasterize(self, batch: TileBatch, sources: list[str], config) -> Future: ...
    def parents(self, batch: TileBatch, config) -> Future: ...
    def webtiles(self, batch: TileBatch, config, ranges: dict) -> Future: ...
    def quicklooks(self, z: int, config) -> Future: ...
    def records(self, config) -> Future: ...


class ParslApps:
    """The batch apps as one Parsl app of a loaded DataFlowKernel, calls and results as
    pickle bytes (`apps.run_packed`). Parsl is imported only here, when a run has work:
    a rerun with nothing to do loads neither Parsl's apps nor the rasterizing libraries."""

    def __init__(self, dfk):
        from parsl import python_app

        self._app = python_app(run_packed, data_flow_kernel=dfk)
        self._once = python_app(run_packed_once, data_flow_kernel=dfk)

    def rasterize(self, batch, sources, config) -> Future:
        return self._app(pack_call("rasterize", batch, sources, config))

    def parents(self, batch, config) -> Future:
        return self._app(pack_call("parents", batch, config))

    def webtiles(self, batch, config, ranges) -> Future:
        return self._app(pack_call("webtiles", batch, config, ranges))

    def quicklooks(self, z, config) -> Future:
        return self._app(pack_call("quicklooks", z, config))

    def records(self, config) -> Future:
        return self._once(pack_call("records", config))


@dataclass
class Submitted:
    step: Step
    z: int
    batch: int  # its batch in the plan's level (-1: web tiles)
    index: np.ndarray  # the tiles, by index in the level
    fingerprints: np.ndarray
    whole: Submitted | None = None  # the lost batch this tile was split from
    tries_before: int = 0  # tries that batch took
    pieces_left: int = 0  # of a split batch: tiles not back yet


@dataclass
class QuickLooks:
    """A level's quick-looks, sent once its web tiles are done (`workflow.quicklook`)."""

    z: int


@dataclass
class LevelState:
    """A level in progress: its raster rows as found, checksums now, what this run wrote."""

    rows: LevelRows
    batches_left: int
    rewritten: np.ndarray  # GeoTIFF written ok by this run
    observed: Observed = field(default_factory=dict)  # this run's summary rows, folded
    waiting: np.ndarray | None = None  # parents: per batch, child batches not done yet


def waits_for_nothing(item: Submitted | QuickLooks) -> bool:
    """Web tiles and quick-looks: no other task waits for them (the driver's `_later`)."""
    return isinstance(item, QuickLooks) or item.step == Step.WEBTILE


@dataclass
class Driver:
    config: RasterflowConfig
    plan: Plan
    records: RunRecords
    found: RecordsReader  # the records as the run found them
    run_id: str
    progress: RunProgress
    window: int
    launch: Callable[[], Apps]  # starts the executor: called at the first batch with work
    heartbeat: Callable[[], None] = lambda: None
    watch: Callable[[], None] = lambda: None  # raises if the executor can finish no more
    overwrite: bool = False  # redo every tile whatever its row says
    ranges: Ranges = field(default_factory=dict)
    notes: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._seeds = config_seeds(self.config)
        self._outputs = Outputs(self.config)
        self._states: dict[int, LevelState] = {}
        # Parents first: the next level waits for them. Web tiles and quick-looks wait for
        # nothing and take at most a quarter of the window, so that a parent batch never
        # queues behind a level's worth of them in the interchange.
        self._urgent: deque[Submitted] = deque()
        self._later: deque[Submitted | QuickLooks] = deque()
        self._later_out = 0  # of them, outstanding
        self._next_top = 0  # the next z-max batch to prepare
        self._outstanding: dict[Future, Submitted | QuickLooks] = {}
        self._web_left: dict[int, int] = {}  # per level: web-tile batches not back yet
        self._apps: Apps | None = None
        self._last_beat = time.time()

    @property
    def started_executor(self) -> bool:
        return self._apps is not None

    def run(self) -> None:
        self._fail_outside_grid()
        self._close_empty_levels()
        while True:
            self._fill_window()
            if not self._outstanding:
                break
            finished, _ = wait(list(self._outstanding), timeout=1.0, return_when=FIRST_COMPLETED)
            for future in finished:
                item = self._outstanding.pop(future)
                self._later_out -= waits_for_nothing(item)
                self._collect(future, item)
            self._tick()

    def finish_records(self) -> None:
        """Fold the run's journal into the files at PDG's names, once every batch is back.
        A run that started workers has one do it: at 10^7 tiles that is minutes of CPU and
        the memory of a chunk's text, which the driver's node (a login node) need not give.
        The driver heartbeats meanwhile. It does the work itself if that task fails, if the
        executor dies meanwhile, or if the worker left the journal as it was (a worker that
        sees another folder: relative paths, another working directory)."""
        self.records.close()
        if self._apps is None:
            self.records.finish()
            return
        try:
            future = self._apps.records(self.config)
            while not wait([future], timeout=1.0).done:
                self._tick()
            future.result()
        except Exception as err:  # the journal is intact: fold it in here
            log.warning("a worker could not write the event log and summary (%s: %s); "
                        "writing them in the driver", type(err).__name__, err)  # fmt: skip
            self.records.finish()
            return
        if self.records.journal_left:
            log.warning("the worker that wrote the event log and summary did not find this "
                        "run's journal; writing them in the driver")  # fmt: skip
            self.records.finish()

    def _tick(self) -> None:
        self.records.flush_if_due()
        if self._apps is not None:
            self.watch()
        if time.time() - self._last_beat > HEARTBEAT_S:
            self.heartbeat()
            self._last_beat = time.time()

    # -- preparing --------------------------------------------------------------------------
    def _fill_window(self) -> None:
        top = self.plan.levels[self.plan.z_max]
        while len(self._outstanding) < self.window:
            if self._urgent:
                self._submit(self._urgent.popleft())
            elif self._later and self._later_out < max(1, self.window // 4):
                self._later_out += 1
                self._submit(self._later.popleft())
            elif self._next_top < top.n_batches:
                self._next_top += 1
                self._prepare(Step.RASTERIZE, self.plan.z_max, self._next_top - 1)
                if self._next_top % 256 == 0:
                    self._tick()  # a long stretch of up-to-date batches
            else:
                return

    def _state(self, z: int) -> LevelState:
        if z not in self._states:
            level = self.plan.levels[z]
            step = self.plan.raster_step(z)
            rows = (LevelRows.empty(len(level)) if self.overwrite
                    else LevelRows.read(self.found, step, level))  # fmt: skip
            state = LevelState(rows, level.n_batches, np.zeros(len(level), bool))
            if level.dep_lo is not None:
                state.waiting = level.dep_hi - level.dep_lo
            self._states[z] = state
        return self._states[z]

    def _prepare(self, step: Step, z: int, b: int) -> None:
        """Queue the batch's tiles that need work; a batch with none is done at once."""
        level, state = self.plan.levels[z], self._state(z)
        lo, hi = level.batch(b)
        index = np.arange(lo, hi)
        if step == Step.RASTERIZE:
            fingerprints = rasterize_fingerprints(self._seeds[step], level, self.plan.sizes,
                                                  self.plan.mtimes, index)  # fmt: skip
        else:
            child = self.plan.levels[z + 1]
            fingerprints = parent_fingerprints(self._seeds[step], level, index, child,
                                               self._state(z + 1).rows.checksum)  # fmt: skip
        todo = needs_work(
            state.rows, level, index, fingerprints, self._outputs.geotiffs_exist, self.overwrite
        )
        self.progress.add_total(step, z, len(index))
        self.progress.skip(step, z, len(index) - int(todo.sum()))
        if not todo.any():
            self._finish(step, z, b)
            return
        item = Submitted(step, z, b, index[todo], fingerprints[todo])
        if step == Step.RASTERIZE:
            self._submit(item)
        else:
            self._urgent.append(item)

    def _submit(self, item: Submitted | QuickLooks) -> None:
        if self._apps is None:
            self._apps = self.launch()
        if isinstance(item, QuickLooks):
            self._outstanding[self._apps.quicklooks(item.z, self.config)] = item
            return
        level = self.plan.levels[item.z]
        batch = TileBatch(item.z, level.x[item.index], level.y[item.index])
        if item.step == Step.RASTERIZE:
            pairs = zip(batch.x.tolist(), batch.y.tolist(), strict=True)
            sources = [self.plan.source(item.z, x, y) for x, y in pairs]
            future = self._apps.rasterize(batch, sources, self.config)
        elif item.step == Step.PARENT:
            future = self._apps.parents(batch, self.config)
        else:
            future = self._apps.webtiles(batch, self.config, self.ranges[item.z])
        self._outstanding[future] = item

    # -- collecting -------------------------------------------------------------------------
    def _collect(self, future: Future, item: Submitted | QuickLooks) -> None:
        if isinstance(item, QuickLooks):
            try:
                future.result()
            except Exception as err:  # a product, not a tile: the run's outcome stands
                self.notes.add(f"quick-looks of z{item.z} not written: {type(err).__name__}: "
                               f"{err}")  # fmt: skip
            return
        attempt = item.tries_before + try_count(future)
        try:
            results = unpacked(future.result())
        except Exception as err:  # the whole batch was lost, after Parsl's retries
            if len(item.index) > 1:
                self._split(item, attempt, err)
                return
            results = self._lost(item, err)
        failed = self._record(item, results, attempt)
        self.progress.advance(item.step, item.z, len(item.index), failed)
        if item.whole is not None:
            item.whole.pieces_left -= 1
            if item.whole.pieces_left:
                return
        self._finish(item.step, item.z, item.batch)

    def _record(self, item: Submitted, results: TileResults, attempt: int) -> int:
        """Journal a batch's rows; update the level's checksums and folded ranges."""
        positions = results.positions
        events = with_driver_columns(results.events, self.run_id, attempt,
                                     item.fingerprints[positions])  # fmt: skip
        self.records.add(events, results.summary, group=(str(item.step), item.z))
        self.notes.update(results.notes)
        ok = results.ok()
        if item.step != Step.WEBTILE:
            state = self._state(item.z)
            index = item.index[positions]
            state.rows.checksum[index] = np.where(ok, results.checksums(), np.uint64(0))
            state.rewritten[index] |= ok
            names = fill_stats(self.config, item.z)
            if names and len(results.summary):
                summary = results.summary
                fold(state.observed, column(summary, "stat"), column(summary, "min", np.nan),
                     column(summary, "max", np.nan), names)  # fmt: skip
        return int(np.count_nonzero(~ok))

    def _split(self, item: Submitted, attempt: int, err: Exception) -> None:
        """Run a lost batch's tiles one by one: a tile that kills its worker (a crash in a
        library, memory) then fails alone instead of taking its whole batch with it."""
        reason = f"{type(err).__name__}: {err}"
        log.warning("a %s batch of %d tiles at z%d was lost (%s); running its tiles one by one",
                    item.step, len(item.index), item.z, reason)  # fmt: skip
        item.pieces_left = len(item.index)
        for at in range(len(item.index)):
            piece = Submitted(item.step, item.z, item.batch, item.index[at : at + 1],
                              item.fingerprints[at : at + 1], item, attempt)  # fmt: skip
            (self._later if waits_for_nothing(piece) else self._urgent).append(piece)

    def _lost(self, item: Submitted, err: Exception) -> TileResults:
        level = self.plan.levels[item.z]
        batch = TileBatch(item.z, level.x[item.index], level.y[item.index])
        paths = [self.plan.source(item.z, int(x), int(y)) if item.step == Step.RASTERIZE
                 else None for x, y in zip(batch.x, batch.y, strict=True)]  # fmt: skip
        return failed_results(item.step, batch, [f"batch lost: {type(err).__name__}: {err}"]
                              * len(paths), paths)  # fmt: skip

    def _fail_outside_grid(self) -> None:
        """z-max tiles outside the grid fail without a worker: the driver knows why."""
        plan = self.plan
        for tile in plan.invalid:
            path = plan.source(*tile)
            error = str(TileInputError(path, f"tile {tile.z}/{tile.x}/{tile.y} is outside "
                                             f"{self.config.tms_id}"))  # fmt: skip
            batch = TileBatch(tile.z, np.array([tile.x]), np.array([tile.y]))
            results = failed_results(Step.RASTERIZE, batch, [error], [path])
            self.records.add(with_driver_columns(results.events, self.run_id, 1, np.zeros(1)))
        if plan.invalid:
            self.progress.add_total(Step.RASTERIZE, plan.z_max, len(plan.invalid))
            self.progress.skip(Step.RASTERIZE, plan.z_max, 0)
            self.progress.advance(Step.RASTERIZE, plan.z_max, len(plan.invalid),
                                  len(plan.invalid))  # fmt: skip

    # -- levels -----------------------------------------------------------------------------
    def _finish(self, step: Step, z: int, b: int) -> None:
        if step == Step.WEBTILE:
            self._web_left[z] -= 1
            if self._web_left[z] == 0 and len(self.plan.levels[z]) <= quicklook.MAX_TILES:
                # This run drew some of its web tiles. First in line: the level's others
                # are still in the page cache, and no task waits for it at the end.
                self._later.appendleft(QuickLooks(z))
            return
        state = self._state(z)
        above = self.plan.levels.get(z - 1)
        if above is not None and above.n_batches:
            waiting, dep_lo, dep_hi = self._state(z - 1).waiting, above.dep_lo, above.dep_hi
            assert waiting is not None and dep_lo is not None and dep_hi is not None
            first = int(np.searchsorted(dep_hi, b, side="right"))
            last = int(np.searchsorted(dep_lo, b, side="right"))
            for p in range(first, last):
                waiting[p] -= 1
                if waiting[p] == 0:
                    self._prepare(Step.PARENT, z - 1, p)
        state.batches_left -= 1
        if state.batches_left == 0:
            self._close_level(z)

    def _close_level(self, z: int) -> None:
        """The level is done: its value ranges are known; render its PNGs (unless
        `web_tiles` is off: then the ranges alone go to `__updated.json`)."""
        state = self._state(z)
        level = self.plan.levels[z]
        observed = dict(state.observed)
        names = fill_stats(self.config, z)
        if names:
            self._fold_found(z, state, observed, names)
        self.ranges[z] = level_ranges(self.config, z, observed)
        if self.config.web_tiles and len(level):
            self._prepare_webtiles(z, state)
        del self._states[z]  # every parent batch above was prepared with its checksums

    def _fold_found(self, z: int, state: LevelState, observed: Observed, names) -> None:
        """Fold the summary rows found at z, less those of tiles this run rewrote."""
        level = self.plan.levels[z]
        for chunk in self.found.summary(z, RANGE_COLUMNS):
            index, found = level.find(column(chunk, "x"), column(chunk, "y"))
            keep = ~(found & state.rewritten[index])
            fold(observed, column(chunk, "stat")[keep], column(chunk, "min", np.nan)[keep],
                 column(chunk, "max", np.nan)[keep], names)  # fmt: skip

    def _prepare_webtiles(self, z: int, state: LevelState) -> None:
        level = self.plan.levels[z]
        index = np.arange(len(level))
        seed = web_seed(self._seeds[Step.WEBTILE], self.ranges[z])
        fingerprints = webtile_fingerprints(seed, state.rows.checksum)
        rows = (LevelRows.empty(len(level)) if self.overwrite
                else LevelRows.read(self.found, Step.WEBTILE, level))  # fmt: skip
        todo = needs_work(
            rows,
            level,
            index,
            fingerprints,
            self._outputs.pngs_exist,
            self.overwrite,
            stale=state.rewritten,
        )
        self.progress.add_total(Step.WEBTILE, z, len(level))
        self.progress.skip(Step.WEBTILE, z, len(level) - int(todo.sum()))
        chosen = np.flatnonzero(todo)
        size = web_batch_size(len(chosen), self.plan.batch_tiles, self.window)
        self._web_left[z] = -(-len(chosen) // size)
        for start in range(0, len(chosen), size):
            part = chosen[start : start + size]
            self._later.append(Submitted(Step.WEBTILE, z, -1, part, fingerprints[part]))

    def _close_empty_levels(self) -> None:
        """A level with no batch at all (nothing valid staged under it) is done at once."""
        for z in sorted(self.plan.levels, reverse=True):
            if self.plan.levels[z].n_batches == 0 and z not in self.ranges:
                self._close_level(z)


def web_batch_size(n: int, batch_tiles: int, window: int) -> int:
    """Web tiles per task: up to `WEB_BATCH_FACTOR` raster batches' worth, but a level's
    few tiles still spread over the whole window of workers."""
    most = WEB_BATCH_FACTOR * (batch_tiles or MAX_BATCH_TILES)
    return max(1, min(most, -(-n // max(1, window))))
