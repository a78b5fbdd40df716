"""`rasterflow status`: where a run stands, from its event log (also while it runs).

Per step and level: the tiles the plan expects, how many are `ok`, `failed` and
`missing` (no row yet). A missing tile is *blocked* when its input is not there:
a parent none of whose children is ok, a web tile whose raster is not ok. Then
the slowest tiles per step and the failures with their reasons, grouped.

The rows are those of the files at PDG's names plus the journal parts a running (or
killed) driver has committed, so `status` shows a run in progress. They are read a level
at a time as whole columns (`workflow.outcome`); only the rows shown become dicts.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.layout import lock_path
from rasterflow.workflow.lock import RunLock, is_stale
from rasterflow.workflow.outcome import outcome, step_levels
from rasterflow.workflow.plan import list_staged, make_plan
from rasterflow.workflow.records import RecordsReader
from rasterflow.workflow.steps import Step


@dataclass
class StepLevel:
    step: str
    z: int
    expected: int
    ok: int = 0
    failed: int = 0
    missing: int = 0
    blocked: int = 0  # of the missing: their input is not there


@dataclass
class StatusReport:
    config: RasterflowConfig
    levels: list[StepLevel] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    slowest: dict[str, list[dict]] = field(default_factory=dict)
    n_rows: int = 0
    last_run: str | None = None
    running: str | None = None  # who holds the run lock, if anyone
    unplanned: int = 0  # rows for tiles no longer staged

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def lines(self, max_failures: int = 20) -> list[str]:
        c = self.config
        out = [f"status of {c.filename_config}: {self.n_rows} event rows in "
               f"{c.filename_rasterization_events}"]  # fmt: skip
        if self.last_run:
            out[0] += f", last run {self.last_run}"
        if self.running:
            out.append(f"a run is in progress: {self.running}")
        out += ["", f"{'step':<10}{'level':<7}{'tiles':>7}{'ok':>7}{'failed':>8}{'missing':>9}"]
        for row in self.levels:
            line = (f"{row.step:<10}{'z' + str(row.z):<7}{row.expected:>7}{row.ok:>7}"
                    f"{row.failed:>8}{row.missing:>9}")  # fmt: skip
            if row.blocked:
                line += f"  ({row.blocked} blocked: input not ok)"
            out.append(line)
        for step, rows in self.slowest.items():
            if rows:
                out += ["", f"slowest {step} tiles:"]
                out += [f"  {_tile(r)}  {float(r['total_time']):.3f} s{_polygons(r)}"
                        f"{_output(r)}" for r in rows]  # fmt: skip
        if self.failures:
            out += ["", f"failures ({len(self.failures)}), by reason:"]
            reasons = Counter(_reason(row) for row in self.failures)
            out += [f"  {n:>5} x {reason}" for reason, n in reasons.most_common(10)]
            shown = self.failures if max_failures <= 0 else self.failures[:max_failures]
            out += ["", "failed tiles:"]
            out += [f"  {row['step']} {_tile(row)}: {row.get('error')}" for row in shown]
            if len(shown) < len(self.failures):
                out.append(f"  ... and {len(self.failures) - len(shown)} more "
                           f"(all in {c.filename_rasterization_events})")  # fmt: skip
        elif self.n_rows:
            out += ["", "no failures."]
        if self.unplanned:
            out.append(f"{self.unplanned} rows are for tiles no longer staged (kept in the log).")
        return out

    def text(self, max_failures: int = 20) -> str:
        return "\n".join(self.lines(max_failures))


def status_report(config: RasterflowConfig, slowest: int = 3) -> StatusReport:
    """Outcomes per step and level against the plan of the staged tiles now."""
    staged = list_staged(config)
    plan = make_plan(config, staged, 1 << 40, 1 << 30)
    result = outcome(RecordsReader(config), plan, slowest=slowest, everything=True)
    report = StatusReport(config, n_rows=result.rows, failures=result.failures,
                          slowest=result.slowest, last_run=result.last_run,
                          unplanned=result.unplanned)  # fmt: skip
    report.running = _lock_holder(config)
    for step in Step:
        for z in step_levels(step, plan):
            count = result.levels[str(step), z]
            level = StepLevel(str(step), z, plan.level_size(z), count.n_ok, count.n_failed)
            level.missing = level.expected - level.ok - level.failed
            if level.missing:
                level.blocked = _blocked(plan, result, step, z, count)
            report.levels.append(level)
    return report


def _blocked(plan, result, step: Step, z: int, count) -> int:
    """Missing tiles whose input is not there: a parent none of whose children is ok, a web
    tile whose GeoTIFF is not ok."""
    missing = ~(count.ok | count.failed)
    if step == Step.PARENT:
        children = plan.levels[z + 1]
        child_ok = result.levels[str(plan.raster_step(z + 1)), z + 1].ok
        where, found = plan.levels[z].children_index(children)
        any_ok = (found & child_ok[where]).any(axis=1)
        return int(np.count_nonzero(missing & ~any_ok))
    if step == Step.WEBTILE:
        raster_ok = result.levels[str(plan.raster_step(z)), z].ok
        return int(np.count_nonzero(missing & ~raster_ok))
    return 0


def _lock_holder(config: RasterflowConfig) -> str | None:
    holder = RunLock(lock_path(config)).holder()
    if not holder or is_stale(holder):
        return None
    job = f", job {holder['job_id']}" if holder.get("job_id") else ""
    return f"host {holder.get('host')}, pid {holder.get('pid')}{job}"


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def _tile(row: dict) -> str:
    return f"{row['z']}/{row['x']}/{row['y']}"


def _output(row: dict) -> str:
    """The GeoTIFF a raster step wrote (a web-tile row names one PNG per statistic: none)."""
    path = str(row.get("path") or "")
    return f"  {path}" if path and ";" not in path and row["step"] != "webtile" else ""


def _polygons(row: dict) -> str:
    n = _number(row.get("n_polygons"))
    return f", {int(n)} polygons" if n is not None else ""


def _reason(row: dict) -> str:
    """The error with its file name and numbers left out, so alike failures group."""
    error = str(row.get("error") or "unknown error")
    if row.get("path"):
        error = error.replace(str(row["path"]), "<file>")
    error = re.sub(r"(/[^\s:,'\"]+)+", "<file>", error)
    return f"{row['step']}: {re.sub(r'[0-9]+', 'N', error)}"
