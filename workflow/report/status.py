"""`rasterflow status`: where a run stands, from its event log (also while it runs).

Per step and level: the tiles the plan expects, how many are `ok`, `failed` and
`missing` (no row yet). A missing tile is *blocked* when its input is not there:
a parent none of whose children is ok, a web tile whose raster is not ok. Then
the slowest tiles per step and the failures with their reasons, grouped.

The rows are those of the event CSV plus the journal a running (or killed)
driver appends to, so `status` shows a run in progress.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.layout import lock_path
from rasterflow.workflow.lock import RunLock, is_stale
from rasterflow.workflow.plan import list_staged, make_plan
from rasterflow.workflow.records import RunRecords

STEPS = ("rasterize", "parent", "webtile")


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
                out += [f"  {_tile(r)}  {float(r['duration_s']):.3f} s{_polygons(r)}"
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
    records = RunRecords(config).load()
    sources = list_staged(config)
    plan = make_plan(config, sources, 1 << 40, 1 << 30, dict.fromkeys(sources, 0))
    report = StatusReport(config, n_rows=len(records.events))
    report.running = _lock_holder(config)

    def ok(step: str, tile: Tile) -> bool:
        row = records.event(step, *tile)
        return bool(row) and row["status"] == "ok"

    def raster_ok(tile: Tile) -> bool:
        return ok(plan.raster_step(tile.z), tile)

    planned = set()
    for step in STEPS:
        for z in _levels(step, plan):
            level = StepLevel(step, z, len(plan.levels[z]))
            for tile in plan.levels[z]:
                planned.add((step, *tile))
                row = records.event(step, *tile)
                if row and row["status"] == "ok":
                    level.ok += 1
                elif row:
                    level.failed += 1
                else:
                    level.missing += 1
                    if step == "parent":
                        level.blocked += not any(raster_ok(c) for c in tile.children())
                    elif step == "webtile":
                        level.blocked += not raster_ok(tile)
            report.levels.append(level)
    rows = list(records.events.values())
    report.unplanned = sum(1 for key in records.events if key not in planned)
    failed = [r for r in rows if r["status"] == "failed"]
    report.failures = sorted(
        failed, key=lambda r: (STEPS.index(r["step"]), -r["z"], r["x"], r["y"])
    )
    for step in STEPS:
        timed = [r for r in rows if r["step"] == step and r["status"] == "ok"
                 and _number(r.get("duration_s")) is not None]  # fmt: skip
        timed.sort(key=lambda r: -_number(r["duration_s"]))
        report.slowest[step] = timed[:slowest]
    report.last_run = _last_run(rows)
    return report


def _levels(step: str, plan) -> list[int]:
    """The levels a step works on, finest first: rasterize z-max, parents below it."""
    levels = sorted(plan.levels, reverse=True)
    if step == "rasterize":
        return [plan.z_max]
    return [z for z in levels if z != plan.z_max] if step == "parent" else levels


def _lock_holder(config: RasterflowConfig) -> str | None:
    holder = RunLock(lock_path(config)).holder()
    if not holder or is_stale(holder):
        return None
    job = f", job {holder['job_id']}" if holder.get("job_id") else ""
    return f"host {holder.get('host')}, pid {holder.get('pid')}{job}"


def _last_run(rows: list[dict]) -> str | None:
    started = [
        (str(r.get("started_at") or ""), str(r.get("run_id"))) for r in rows if r.get("run_id")
    ]
    return max(started)[1] if started else None


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
