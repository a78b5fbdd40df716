"""Where the planned tiles stand, from the records: per step and level, which tiles have an
`ok` or a `failed` row and how many rows a given run wrote; the failed rows themselves,
the slowest tiles, the skipped polygons. One pass over the event rows, a group (a step at
a zoom) at a time, as whole columns: only the rows reported (failures, the slowest) ever
become dicts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from rasterflow.rasterize_core.skips import parse_skipped
from rasterflow.workflow.plan import Plan
from rasterflow.workflow.records import RecordsReader, column, matches
from rasterflow.workflow.steps import Status, Step

ROW_COLUMNS = ["run_id", "step", "z", "x", "y", "status", "attempt", "start_time",
               "total_time", "n_polygons", "path", "host", "error", "skipped",
               "detail"]  # fmt: skip
SCAN_COLUMNS = ["status", "run_id", "skipped", "start_time", "total_time"]


@dataclass
class LevelCount:
    """A step at a level: per tile of the level whether its row is ok, failed."""

    step: Step
    z: int
    ok: np.ndarray
    failed: np.ndarray
    outside_ok: int = 0  # rows of z-max tiles outside the grid (not in the level's arrays)
    outside_failed: int = 0
    by_run: int = 0  # rows the given run wrote

    @property
    def n_ok(self) -> int:
        return int(np.count_nonzero(self.ok)) + self.outside_ok

    @property
    def n_failed(self) -> int:
        return int(np.count_nonzero(self.failed)) + self.outside_failed


@dataclass
class Outcome:
    levels: dict[tuple[str, int], LevelCount] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)  # planned tiles (all, with `everything`)
    slowest: dict[str, list[dict]] = field(default_factory=dict)  # ok rows, by total_time
    skipped: Counter = field(default_factory=Counter)  # by reason, in rows of the given run
    skipped_tiles: int = 0
    unplanned: int = 0  # rows for tiles the plan does not hold
    rows: int = 0
    last_run: str | None = None  # the run of the latest row

    def count(self, what: str) -> dict[str, int]:
        """{step: number of planned tiles whose row is `ok` (or `failed`)}."""
        totals = dict.fromkeys(map(str, Step), 0)
        for level in self.levels.values():
            totals[level.step] += level.n_ok if what == "ok" else level.n_failed
        return totals

    def done(self) -> dict[str, int]:
        totals = dict.fromkeys(map(str, Step), 0)
        for level in self.levels.values():
            totals[level.step] += level.by_run
        return totals


def step_levels(step: Step, plan: Plan) -> list[int]:
    """The levels a step works on, finest first: rasterize z-max, parents below it."""
    levels = sorted(plan.levels, reverse=True)
    if step == Step.RASTERIZE:
        return [plan.z_max]
    return [z for z in levels if z != plan.z_max] if step == Step.PARENT else levels


def outcome(reader: RecordsReader, plan: Plan, run_id: str | None = None, slowest: int = 0,
            everything: bool = False) -> Outcome:  # fmt: skip
    """The latest event rows against the plan. With `everything`, failures of tiles the plan
    no longer holds are listed too."""
    result = Outcome()
    for step in Step:
        for z in step_levels(step, plan):
            n = len(plan.levels[z])
            result.levels[str(step), z] = LevelCount(step, z, np.zeros(n, bool), np.zeros(n, bool))
    scan = _Scan(result, plan, run_id, slowest, everything)
    for group in reader.groups("e"):
        scan.group(reader, *group)
    result.failures.sort(key=lambda r: (_rank(r["step"]), -r["z"], r["x"], r["y"]))
    result.slowest = {str(step): scan.slowest_rows(reader, step) for step in Step}
    result.last_run = scan.last_run
    return result


class _Scan:
    def __init__(self, result: Outcome, plan: Plan, run_id, slowest: int, everything: bool):
        self.result, self.plan, self.run_id = result, plan, run_id
        self.k, self.everything = slowest, everything
        self.top: dict[str, list[tuple[float, int, int, int]]] = {str(s): [] for s in Step}
        self.latest = -np.inf
        self.last_run: str | None = None

    def group(self, reader: RecordsReader, step: str, z: int) -> None:
        count = self.result.levels.get((step, z))
        level = self.plan.levels.get(z) if count is not None else None
        outside = ({(t.x, t.y) for t in self.plan.invalid if t.z == z}
                   if step == Step.RASTERIZE else set())  # fmt: skip
        failed_tiles: set[tuple[int, int]] = set()
        for chunk in reader.events(step, z, SCAN_COLUMNS):
            x, y = column(chunk, "x"), column(chunk, "y")
            found = np.zeros(len(x), bool)
            index = found.astype(np.int64)
            if level is not None:
                index, found = level.find(x, y)
            beyond = _member(x, y, outside) if outside else np.zeros(len(x), bool)
            planned = found | beyond
            ok = matches(chunk, "status", Status.OK)
            failed = matches(chunk, "status", Status.FAILED)
            self.result.rows += len(x)
            self.result.unplanned += int(np.count_nonzero(~planned))
            if count is not None:
                count.ok[index[found]] = ok[found]
                count.failed[index[found]] = failed[found]
                count.outside_ok += int(np.count_nonzero(ok & beyond))
                count.outside_failed += int(np.count_nonzero(failed & beyond))
                self._by_run(chunk, count, planned)
            listed = failed if self.everything else failed & planned
            failed_tiles |= set(zip(x[listed].tolist(), y[listed].tolist(), strict=True))
            self._times(chunk, step, z, ok)
        if failed_tiles:
            self.result.failures += _rows_of(reader, step, z, failed_tiles)

    def _by_run(self, chunk, count: LevelCount, planned: np.ndarray) -> None:
        if self.run_id is None:
            return
        mine = planned & matches(chunk, "run_id", self.run_id)
        count.by_run += int(np.count_nonzero(mine))
        skipped = chunk["skipped"].filter(pa.array(mine)).drop_null().to_pylist()
        for text in filter(None, skipped):
            self.result.skipped.update(parse_skipped(text))
            self.result.skipped_tiles += 1

    def _times(self, chunk, step: str, z: int, ok: np.ndarray) -> None:
        starts = column(chunk, "start_time", np.nan)
        if len(starts) and not np.isnan(starts).all():
            at = int(np.nanargmax(starts))
            if starts[at] > self.latest:
                self.latest, self.last_run = starts[at], chunk["run_id"][at].as_py() or ""
        if not self.k:
            return
        times = np.where(ok, column(chunk, "total_time", np.nan), np.nan)
        best = np.argsort(np.nan_to_num(times, nan=-np.inf))[::-1][: self.k]
        x, y = column(chunk, "x"), column(chunk, "y")
        new = [(float(times[i]), z, int(x[i]), int(y[i])) for i in best if not np.isnan(times[i])]
        found = self.top.setdefault(step, []) + new
        self.top[step] = sorted(found, reverse=True)[: self.k]

    def slowest_rows(self, reader: RecordsReader, step: Step) -> list[dict]:
        rows = []
        for _, z, x, y in self.top[str(step)]:
            rows += _rows_of(reader, str(step), z, {(x, y)})
        return rows


def _rank(step: str) -> int:
    return Step(step).rank if step in set(map(str, Step)) else len(Step)


def _member(x: np.ndarray, y: np.ndarray, tiles: set[tuple[int, int]]) -> np.ndarray:
    return np.array([(a, b) in tiles for a, b in zip(x.tolist(), y.tolist(), strict=True)],
                    dtype=bool)  # fmt: skip


def _rows_of(reader: RecordsReader, step: str, z: int, tiles: set[tuple[int, int]]) -> list[dict]:
    """The whole rows of these tiles (read again for them alone)."""
    rows = []
    columns = [c for c in ROW_COLUMNS if c not in ("x", "y")]
    for chunk in reader.events(step, z, columns):
        pick = _member(column(chunk, "x"), column(chunk, "y"), tiles)
        if pick.any():
            rows += chunk.filter(pick).to_pylist()
    return rows
