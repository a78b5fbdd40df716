"""`rasterflow plan`: what a run would do, without doing it.

The same plan `run` makes (staged tiles, every level's parents, batches cut by
input bytes for the site's workers) and what a rerun would skip, from the event
log and the files, by the fingerprints `run` uses (`workflow.resume`).
Nothing is submitted and Parsl is not started.

A parent or web tile above a tile that will be redone is counted as redone: its
inputs may change. If they come out byte-identical the run skips it after all,
so the redo counts are upper bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.plan import Plan, plan_run, staged_sources
from rasterflow.workflow.records import RecordsReader, column
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
    fill_stats,
    fold,
    level_ranges,
)


@dataclass
class LevelPlan:
    z: int
    step: str  # "rasterize" (z-max) or "parent"
    tiles: int
    batches: int
    input_bytes: int | None  # staged bytes (z-max only)
    redo: int  # raster step (rasterize or parent): tiles a rerun would do
    web_redo: int  # web tiles a rerun would do

    @property
    def skip(self) -> int:
        return self.tiles - self.redo

    @property
    def web_skip(self) -> int:
        return self.tiles - self.web_redo


@dataclass
class PlanReport:
    config: RasterflowConfig
    site: str
    workers: int
    batch_bytes: int
    batch_tiles: int
    levels: list[LevelPlan] = field(default_factory=list)
    invalid: list[Tile] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # listed sources that are not there
    has_log: bool = False
    overwrite: bool = False
    retries: set[Tile] = field(default_factory=set)  # failed before, same inputs now

    def lines(self) -> list[str]:
        c = self.config
        staged = Path(c.dir_staged) / c.tms_id / str(c.z_max)
        top = self.levels[0] if self.levels else None
        out = [
            f"plan for {c.filename_config}: {c.tms_id}, z {c.z_min}-{c.z_max}, "
            f"{len(c.statistics)} statistics ({', '.join(c.stat_names)})",
            f"staged: {top.tiles if top else 0} tiles, {_size(top.input_bytes if top else 0)} "
            f"in {staged}",
            f"site {self.site}: {self.workers} workers; z-max batches up to "
            f"{_size(self.batch_bytes)} or {self.batch_tiles} tiles",
        ]
        header = (f"{'level':<6}{'step':<10}{'tiles':>8}{'batches':>9}{'input':>11}"
                  f"{'skip':>9}{'redo':>8}{'web skip':>10}{'web redo':>10}")  # fmt: skip
        out += ["", header]
        for level in self.levels:
            size = _size(level.input_bytes) if level.input_bytes is not None else ""
            out.append(f"{'z' + str(level.z):<6}{level.step:<10}{level.tiles:>8}{level.batches:>9}"
                       f"{size:>11}{level.skip:>9}{level.redo:>8}{level.web_skip:>10}"
                       f"{level.web_redo:>10}")  # fmt: skip
        tiles = sum(level.tiles for level in self.levels)
        batches = sum(level.batches for level in self.levels)
        redo = sum(level.redo + level.web_redo for level in self.levels)
        skip = 2 * tiles - redo
        out.append(f"{'total':<16}{tiles:>8}{batches:>9}")
        out.append("")
        if self.overwrite:
            out.append(f"--overwrite: a run would redo all {redo} tile steps.")
        elif not self.has_log:
            out.append(f"no event log yet ({c.filename_rasterization_events}): "
                       f"a run would do all {redo} tile steps.")  # fmt: skip
        elif redo == 0:
            out.append(f"up to date: a rerun would skip all {skip} tile steps.")
        else:
            out.append(f"a rerun would redo at most {redo} tile steps and skip {skip} "
                       "(parents and web tiles over redone tiles count as redone).")  # fmt: skip
            if self.retries:
                out.append(f"{len(self.retries)} of them retry tiles that failed with the same "
                           "inputs (`rasterflow status` lists why); if they now succeed, the "
                           "parents above them are redone too.")  # fmt: skip
        if self.invalid:
            shown = ", ".join(f"{t.z}/{t.x}/{t.y}" for t in self.invalid[:5])
            out.append(f"{len(self.invalid)} staged tiles are outside {c.tms_id} and will "
                       f"fail: {shown}{' ...' if len(self.invalid) > 5 else ''}")  # fmt: skip
        if self.unreadable:
            shown = ", ".join(self.unreadable[:3])
            out.append(f"{len(self.unreadable)} listed tiles have no staged file and will "
                       f"fail: {shown}{' ...' if len(self.unreadable) > 3 else ''}")  # fmt: skip
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


def plan_report(
    config: RasterflowConfig,
    site: str = "local",
    overwrite: bool = False,
    tiles_file: str | Path | None = None,
) -> PlanReport:
    """The run's plan and what a rerun would skip; raises RasterflowError with no tiles."""
    from rasterflow.executors.sites import load_site
    from rasterflow.workflow.run import expected_workers  # imports Parsl, starts nothing

    workers = expected_workers(load_site(site))
    plan = plan_run(config, staged_sources(config, tiles_file), workers)
    reader = RecordsReader(config)
    report = PlanReport(config, site, workers, plan.batch_bytes, plan.batch_tiles,
                        invalid=list(plan.invalid), has_log=reader.has_events,
                        overwrite=overwrite or config.overwrite)  # fmt: skip
    top = plan.levels[plan.z_max]
    missing = plan.sizes < 0
    pairs = zip(top.x[missing].tolist(), top.y[missing].tolist(), strict=True)
    report.unreadable = [plan.source(plan.z_max, x, y) for x, y in pairs]
    redo, report.retries = rerun_todo(config, plan, reader, report.overwrite)
    for z in sorted(plan.levels, reverse=True):
        step = plan.raster_step(z)
        extra = len(plan.invalid) if z == plan.z_max else 0  # outside the grid: fail again
        size = int(np.maximum(plan.sizes, 0).sum()) if z == plan.z_max else None
        report.levels.append(LevelPlan(z, step, plan.level_size(z), plan.levels[z].n_batches,
                                       size, int(redo[step, z].sum()) + extra,
                                       int(redo[Step.WEBTILE, z].sum())))  # fmt: skip
    return report


def rerun_todo(
    config: RasterflowConfig, plan: Plan, reader: RecordsReader, overwrite: bool
) -> tuple[dict[tuple[str, int], np.ndarray], set[Tile]]:
    """Per (step, z): which of the level's tiles a run would work on now (bool per tile);
    and the retries among them.

    A retry is a tile that failed with the same inputs as now: it is redone, but
    is expected to fail again (errors that are not transient do), so the parents
    above it are not counted. Above any other redone tile, they are (upper bounds).
    """
    seeds, outputs = config_seeds(config), Outputs(config)
    todo: dict[tuple[str, int], np.ndarray] = {}
    retries: set[Tile] = set()
    below: tuple = ()  # the level below: (level, its rows, its tiles whose output may change)
    for z in sorted(plan.levels, reverse=True):
        level, step = plan.levels[z], plan.raster_step(z)
        index = np.arange(len(level))
        rows = LevelRows.read(reader, step, level)
        if step == Step.RASTERIZE:
            prints = rasterize_fingerprints(seeds[step], level, plan.sizes, plan.mtimes, index)
            above = np.zeros(len(level), bool)
            own = needs_work(rows, level, index, prints, outputs.geotiffs_exist, overwrite)
        else:
            child, child_rows, changing = below
            prints = parent_fingerprints(seeds[step], level, index, child, child_rows.checksum)
            where, found = level.children_index(child)
            above = (found & changing[where]).any(axis=1)
            own = needs_work(rows, level, index, prints, outputs.geotiffs_exist, overwrite)
            own &= above | _some_child_exists(outputs, child, where, found)
        again = own & rows.failed & (rows.fingerprint == prints)
        retries |= set(level.tiles(np.flatnonzero(again)))
        todo[step, z] = own | above
        changing = (own & ~again) | above
        below = (level, rows, changing)
        ranges = level_ranges(config, z, _observed(reader, config, z))
        web_prints = webtile_fingerprints(web_seed(seeds[Step.WEBTILE], ranges), rows.checksum)
        web_rows = LevelRows.read(reader, Step.WEBTILE, level)
        web = needs_work(web_rows, level, index, web_prints, outputs.pngs_exist, overwrite)
        if web.any():
            web[web] = outputs.geotiffs_exist(z, level.x[web], level.y[web])
        todo[Step.WEBTILE, z] = web | changing
    return todo, retries


def _some_child_exists(outputs: Outputs, child, where: np.ndarray, found: np.ndarray):
    """Per parent: a child GeoTIFF is on disk (a parent is built from the children that
    exist)."""
    exists = np.zeros(len(child), dtype=bool)
    listed = np.unique(where[found])
    exists[listed] = outputs.geotiffs_exist(child.z, child.x[listed], child.y[listed])
    return (found & exists[where]).any(axis=1)


def _observed(reader: RecordsReader, config: RasterflowConfig, z: int) -> Observed:
    """The level's summary rows, folded (only where a range has an end to fill)."""
    names = fill_stats(config, z)
    observed: Observed = {}
    if names:
        for chunk in reader.summary(z, RANGE_COLUMNS):
            fold(observed, column(chunk, "stat"), column(chunk, "min", np.nan),
                 column(chunk, "max", np.nan), names)  # fmt: skip
    return observed


def _size(n: int | None) -> str:
    """Bytes for people: `812 B`, `1.4 MB`."""
    value = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
