"""Progress per step and level: a live bar on a terminal, log lines otherwise.

Cluster logs are files, not terminals: there a line every few seconds (and at
each level's end) keeps them readable instead of filling them with redraws.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

log = logging.getLogger("rasterflow")


@dataclass
class Counter:
    total: int
    done: int = 0
    failed: int = 0
    started: float = 0.0
    last_line: float = 0.0


class RunProgress:
    """Counts per (step, z); `live=None` picks a bar when stderr is a terminal."""

    def __init__(self, live: bool | None = None, every_s: float = 10.0):
        self.live = sys.stderr.isatty() if live is None else live
        self.every_s = every_s
        self.counters: dict[tuple[str, int], Counter] = {}
        self._bar = Progress(
            TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7} tiles/s"), TextColumn("[red]{task.fields[failed]}"),
            TimeRemainingColumn(),
        ) if self.live else None  # fmt: skip
        self._tasks: dict[tuple[str, int], int] = {}

    def __enter__(self) -> RunProgress:
        if self._bar:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar:
            self._bar.stop()

    def add_total(self, step: str, z: int, n: int) -> None:
        key = (step, z)
        counter = self.counters.setdefault(key, Counter(0, started=time.time()))
        counter.total += n
        if self._bar is None:
            return
        if key not in self._tasks:
            self._tasks[key] = self._bar.add_task(f"{step} z{z}", total=0, rate="", failed="")
        self._bar.update(self._tasks[key], total=counter.total)

    def advance(self, step: str, z: int, done: int, failed: int) -> None:
        counter = self.counters[(step, z)]
        counter.done += done
        counter.failed += failed
        now = time.time()
        rate = counter.done / max(now - counter.started, 1e-9)
        if self._bar is not None:
            failed_text = f"{counter.failed} failed" if counter.failed else ""
            self._bar.update(self._tasks[(step, z)], completed=counter.done,
                             rate=f"{rate:.1f}", failed=failed_text)  # fmt: skip
        elif counter.done >= counter.total or now - counter.last_line >= self.every_s:
            counter.last_line = now
            log.info("%s z%d: %d/%d tiles, %.1f tiles/s, %d failed", step, z, counter.done,
                     counter.total, rate, counter.failed)  # fmt: skip
