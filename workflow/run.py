"""One run, start to end: plan, lock, Parsl up, drive the DAG, write the records.

The only entry point the CLI, batch jobs and Globus Compute call to do work.
"""

from __future__ import annotations

import logging
import os
import re
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from rasterflow.executors.jobs import config_for_run
from rasterflow.executors.sites import load_site, require_submittable
from rasterflow.executors.warm_pool import WarmServer
from rasterflow.rasterize_core.skips import SKIP_REASONS, skipped_text
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.driver import Driver, ParslApps
from rasterflow.workflow.layout import lock_path, runinfo_dir
from rasterflow.workflow.lock import pid_alive, run_lock
from rasterflow.workflow.outcome import outcome
from rasterflow.workflow.parsl_session import ParslSession, retry_cost
from rasterflow.workflow.plan import plan_run, staged_sources
from rasterflow.workflow.progress import RunProgress
from rasterflow.workflow.records import RecordsReader, RunRecords
from rasterflow.workflow.value_ranges import Ranges, write_updated_config

log = logging.getLogger(__name__)
WORKER_PRELOAD = "rasterflow.workflow.worker_preload"  # what local workers start with


@dataclass
class RunReport:
    run_id: str
    geotiff_dir: Path
    web_tiles_dir: Path | None  # None: web tiles off
    events_csv: Path
    elapsed_s: float
    done: dict[str, int] = field(default_factory=dict)  # tiles processed in this run, per step
    failures: list[dict] = field(default_factory=list)  # current failed rows, all steps
    ok: dict[str, int] = field(default_factory=dict)  # current ok rows, per step
    notes: list[str] = field(default_factory=list)
    ranges: Ranges = field(default_factory=dict)  # per level: the web tiles' value ranges
    skipped: dict[str, int] = field(default_factory=dict)  # rows skipped in this run, by reason
    skipped_tiles: int = 0  # z-max tiles of this run that skipped rows

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def skipped_line(self) -> str:
        """`skipped rows: 3 empty, 1 non-finite in 2 tiles`; "" when no row was skipped."""
        if not self.skipped:
            return ""
        tiles = f"{self.skipped_tiles} tile{'s' if self.skipped_tiles != 1 else ''}"
        return f"skipped rows: {skipped_text(self.skipped)} in {tiles}"

    def last_line(self) -> str:
        ok = sum(self.ok.values())
        web = f", web tiles in {self.web_tiles_dir}" if self.web_tiles_dir else ""
        return (
            f"rasterflow: {ok} tile steps ok, {len(self.failures)} failed; GeoTIFFs in "
            f"{self.geotiff_dir}{web}, events in {self.events_csv}"
        )


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid4().hex[:6]}"


def run_workflow(
    config: RasterflowConfig,
    site: str = "local",
    overwrite: bool = False,
    tiles_file: str | os.PathLike[str] | None = None,
    window: int | None = None,
    live_progress: bool | None = None,
) -> RunReport:
    """Run every step for the config's staged tiles; return what happened."""
    started = time.time()
    site_model = load_site(site)
    require_submittable(site_model)
    workers = expected_workers(site_model)
    redo_all = overwrite or config.overwrite
    run_id = new_run_id()
    session = _parsl(site_model, runinfo_dir(config))
    with run_lock(lock_path(config)) as lock, closing(session):  # Parsl ends whatever happens
        records = RunRecords(config)
        if redo_all or not records.files.exist():
            session.start()  # a first run has work: Parsl starts while the driver plans
        plan = plan_run(config, staged_sources(config, tiles_file), workers)
        found = records.open()  # folds in what a killed run left
        with RunProgress(live_progress) as progress:
            progress.expect(plan)
            driver = Driver(config, plan, records, found, run_id, progress,
                            window or max(8, 4 * workers), _launcher(session, lock),
                            lock.heartbeat, watch=session.check,
                            overwrite=redo_all)  # fmt: skip
            try:
                driver.run()
            finally:
                records.close()  # what finished is committed, whatever happened
        driver.finish_records()
        session.close()
        write_updated_config(config, driver.ranges)
        # Workers write the trees: a rerun with nothing to do walks none (10^7 tiles: minutes).
        sweep_temp_files(config, trees=driver.started_executor or lock.took_over)
    if lock.reaped:
        log.info("ended %d processes left by a killed run: %s", len(lock.reaped), lock.reaped)
    if not driver.started_executor:
        log.info("nothing to do: every tile is up to date (Parsl not started)")
    return _report(config, plan, run_id, started, sorted(driver.notes), driver.ranges)


def _launcher(session: ParslSession, lock):
    """What the driver calls at its first batch with work: Parsl up (started in the
    background the moment the driver knows it has work), the lock told how to end it."""

    def launch() -> ParslApps:
        session.start()
        lock.note(**session.traces())  # waits for Parsl to be up
        return ParslApps(session.dfk())

    return launch


def expected_workers(site_model) -> int:
    """Workers the site will bring, for sizing batches (a guess where the pool scales)."""
    names = ("workers", "workers_per_node", "max_threads")  # local, batch, threads sites
    count = next((getattr(site_model, n) for n in names if hasattr(site_model, n)), "auto")
    per_node = count if isinstance(count, int) else (os.cpu_count() or 1)
    blocks = getattr(site_model, "max_blocks", 1) * getattr(site_model, "nodes_per_block", 1)
    return per_node * blocks


def _parsl(site_model, run_dir: Path) -> ParslSession:
    """The run's Parsl session: nothing of Parsl, not even its import, until `start()`
    loads it in the background (`with` waits for it). A local site's workers are forked
    with the apps' libraries loaded (`workflow.worker_preload`), from a server that starts
    first and imports them while Parsl starts."""
    warm_server = WarmServer([WORKER_PRELOAD])

    def parsl_config():
        return config_for_run(site_model, run_dir, retries=2, retry_handler=retry_cost,
                              warm_server=warm_server)  # fmt: skip

    return ParslSession(parsl_config, also_stop=warm_server.stop)


def _report(config, plan, run_id: str, started: float, notes, ranges: Ranges) -> RunReport:
    result = outcome(RecordsReader(config), plan, run_id)
    return RunReport(
        run_id=run_id,
        geotiff_dir=Path(config.dir_geotiff),
        web_tiles_dir=Path(config.dir_web_tiles) if config.web_tiles else None,
        events_csv=Path(config.filename_rasterization_events),
        elapsed_s=round(time.time() - started, 2),
        done=result.done(),
        failures=result.failures,
        ok=result.count("ok"),
        notes=list(notes),
        ranges=ranges,
        skipped={r: result.skipped[r] for r in SKIP_REASONS if result.skipped[r]},
        skipped_tiles=result.skipped_tiles,
    )


TEMP_NAME = re.compile(r"\.(\d+)\.[0-9a-f]{8}\.tmp$")


def sweep_temp_files(config: RasterflowConfig, *, trees: bool) -> int:
    """Remove temporary files whose writer (a pid on this host) is gone: those of the event
    log and summary (a driver killed while writing them), and under the output trees if
    `trees` (a worker ran since the last sweep, or a killed run's may have)."""
    records = [Path(config.filename_rasterization_events), Path(config.filename_rasters_summary)]
    stems = tuple(path.name.removesuffix(".csv") for path in records)
    # A name test before any Path: millions of tiles are walked past.
    roots = (config.dir_geotiff, config.dir_web_tiles) if trees else ()
    found = [Path(folder, name) for root in roots
             for folder, _, names in os.walk(root) for name in names
             if name.endswith(".tmp")]  # fmt: skip
    for folder in {path.parent for path in records if path.parent.is_dir()}:
        found += [path for path in folder.iterdir() if path.name.startswith(stems)]
    removed = 0
    for path in found:
        match = TEMP_NAME.search(path.name)
        if match and not pid_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
