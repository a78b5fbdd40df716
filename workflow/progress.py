"""Progress per step and level: live bars on a terminal, a few log lines otherwise.

For each (step, level): tiles done / total, tiles per second, ETA, failures so
far. Tiles a rerun skips (up to date) count toward the total at once but not
toward the rate, so a resumed run shows its real speed and an honest ETA.

Cluster logs are files, not terminals: there, a line per level when it ends,
and while it runs at most one line every `every_s` seconds for a level that
moved, so logs stay readable instead of filling with redraws.

The driver reports work in two calls: `add_total(step, z, n)` when a batch of n
tiles is prepared, then at once `advance(step, z, k, 0)` with the k of them that
are up to date (skipped); later `advance(step, z, n, failed)` when the batch's
work comes back. Totals grow as batches are prepared; `expect(plan)` sets them
from the plan at the start, so a level's ETA and its end are known early.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from rasterflow.workflow.steps import Step

log = logging.getLogger(__name__)
STEP_ORDER = {str(step): step.rank for step in Step}


@dataclass
class Counter:
    total: int = 0  # tiles of this step and level known so far
    expected: int = 0  # from the plan (0: unknown)
    done: int = 0  # worked on in this run, ok or failed
    skipped: int = 0  # up to date, not redone
    failed: int = 0
    started: float | None = None  # first time a tile of it needed work
    finished: float | None = None
    last_line: float = 0.0
    logged_done: int = -1  # done + skipped at the last log line

    @property
    def known_total(self) -> int:
        return max(self.total, self.expected)

    @property
    def counted(self) -> int:
        return self.done + self.skipped

    @property
    def complete(self) -> bool:
        return self.known_total > 0 and self.counted >= self.known_total

    def rate(self, now: float) -> float | None:
        """Tiles worked per second (skipped tiles left out); None before any."""
        if self.started is None or self.done == 0:
            return None
        return self.done / max((self.finished or now) - self.started, 1e-3)

    def eta(self, now: float) -> float | None:
        rate = self.rate(now)
        left = self.known_total - self.counted
        if left <= 0:
            return 0.0
        return left / rate if rate else None


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    if seconds < 9.95:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}" if rate >= 1 else f"{rate:.2f}"


class RunProgress:
    """Counts per (step, z); `live=None` shows bars only when stderr is a terminal."""

    def __init__(self, live: bool | None = None, every_s: float = 15.0, console=None):
        self.live = sys.stderr.isatty() if live is None else live
        self.every_s = every_s
        self.counters: dict[tuple[str, int], Counter] = {}
        self._bar = Progress(
            TextColumn("{task.description:<13}"), BarColumn(bar_width=30), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8} tiles/s"), TextColumn("{task.fields[eta]:>10}"),
            TextColumn("{task.fields[skipped]}"), TextColumn("[red]{task.fields[failed]}"),
            console=console,
        ) if self.live else None  # fmt: skip
        self._tasks: dict[tuple[str, int], TaskID] = {}

    def __enter__(self) -> RunProgress:
        if self._bar:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar:
            self._bar.stop()
            return
        now = time.time()
        for key, counter in self._ordered():  # levels a stopped run left unfinished
            if not counter.complete and counter.counted:
                log.info("%s: stopped at %s", _name(key), self.describe(counter, now))

    # -- what the driver calls -------------------------------------------------------
    def expect(self, plan) -> None:
        """Totals from the plan: each level's tiles for rasterize (z-max), parent, webtile."""
        keys = [(plan.raster_step(z), z) for z in plan.levels]
        keys += [(Step.WEBTILE, z) for z in plan.levels]
        for step, z in sorted(keys, key=lambda key: (STEP_ORDER[key[0]], -key[1])):
            counter = self._counter(step, z)
            counter.expected = plan.level_size(z)
            self._show(step, z, counter, time.time())

    def add_total(self, step: str, z: int, n: int) -> None:
        counter = self._counter(step, z)
        counter.total += n
        self._show(step, z, counter, time.time())

    def skip(self, step: str, z: int, n: int) -> None:
        """`n` tiles of a prepared batch are up to date."""
        counter = self._counter(step, z)
        counter.skipped += n
        now = time.time()
        if counter.started is None and counter.counted < counter.known_total:
            counter.started = counter.last_line = now  # the rest is work from now on
        self._update(step, z, counter, now)

    def advance(self, step: str, z: int, done: int, failed: int) -> None:
        counter = self._counter(step, z)
        counter.done += done
        counter.failed += failed
        self._update(step, z, counter, time.time())

    # -- showing -----------------------------------------------------------------------
    def _counter(self, step: str, z: int) -> Counter:
        return self.counters.setdefault((str(step), z), Counter())

    def _update(self, step: str, z: int, counter: Counter, now: float) -> None:
        if counter.complete and counter.finished is None:
            counter.finished = now
        self._show(step, z, counter, now)
        if self._bar is not None:
            return
        moved = counter.counted != counter.logged_done
        if counter.complete and moved:
            self._log(step, z, counter, now, ended=True)
        elif moved and counter.done and now - counter.last_line >= self.every_s:
            self._log(step, z, counter, now, ended=False)

    def _log(self, step: str, z: int, counter: Counter, now: float, ended: bool) -> None:
        counter.last_line, counter.logged_done = now, counter.counted
        log.info("%s%s %s", _name((step, z)), " done:" if ended else ":",
                 self.describe(counter, now, ended))  # fmt: skip

    @staticmethod
    def describe(counter: Counter, now: float, ended: bool = False) -> str:
        """`120/400 tiles (35 up to date), 3.2 tiles/s, ETA 1m27s, 2 failed`."""
        if counter.done == 0 and counter.complete:
            return f"{_tiles(counter.known_total)}, all up to date"
        text = f"{counter.counted}/{counter.known_total} tiles"
        if counter.skipped:
            text += f" ({counter.skipped} up to date)"
        rate = counter.rate(now)
        if rate is not None:
            text += f", {format_rate(rate)} tiles/s"
        if ended and counter.started is not None:
            text += f" in {format_duration((counter.finished or now) - counter.started)}"
        elif not ended:
            text += f", ETA {format_duration(counter.eta(now))}"
        if counter.failed:
            text += f", {counter.failed} failed"
        return text

    def _show(self, step: str, z: int, counter: Counter, now: float) -> None:
        if self._bar is None:
            return
        key = (step, z)
        fields: dict[str, Any] = {
            "rate": format_rate(counter.rate(now)),
            "eta": _eta_or_elapsed(counter, now),
            "skipped": f"{counter.skipped} up to date" if counter.skipped else "",
            "failed": f"{counter.failed} failed" if counter.failed else "",
        }
        if key not in self._tasks:
            self._tasks[key] = self._bar.add_task(_name(key), total=counter.known_total, **fields)
        self._bar.update(self._tasks[key], total=counter.known_total, completed=counter.counted,
                         **fields)  # fmt: skip

    def _ordered(self):
        return sorted(
            self.counters.items(), key=lambda kv: (STEP_ORDER.get(kv[0][0], 9), -kv[0][1])
        )

    def summary_lines(self) -> list[str]:
        """One line per step and level, in order: for a report at the end of a run."""
        now = time.time()
        return [f"{_name(key)}: {self.describe(counter, now, ended=True)}"
                for key, counter in self._ordered() if counter.known_total]  # fmt: skip


def _name(key: tuple[str, int]) -> str:
    return f"{key[0]} z{key[1]}"


def _tiles(n: int) -> str:
    return f"{n} tile" if n == 1 else f"{n} tiles"


def _eta_or_elapsed(counter: Counter, now: float) -> str:
    if not counter.complete:
        return f"ETA {format_duration(counter.eta(now))}"
    if counter.started is None or counter.done == 0:
        return "up to date"
    return f"in {format_duration((counter.finished or now) - counter.started)}"
