"""One run, start to end: plan, lock, Parsl up, drive the DAG, write the records.

The only entry point the CLI, batch jobs and Globus Compute call to do work.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import parsl
import psutil

from rasterflow.executors.jobs import config_for_run
from rasterflow.executors.sites import load_site, require_submittable
from rasterflow.rasterize_core.errors import ConfigError, RunAbortedError, TileInputError
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.driver import Driver
from rasterflow.workflow.layout import lock_path, runinfo_dir
from rasterflow.workflow.lock import pid_alive, reap_orphans, run_lock
from rasterflow.workflow.plan import plan_run, staged_sources
from rasterflow.workflow.progress import RunProgress
from rasterflow.workflow.records import RunRecords
from rasterflow.workflow.resume import Fingerprints
from rasterflow.workflow.value_ranges import Ranges, write_updated_config

log = logging.getLogger(__name__)
STEPS = ("rasterize", "parent", "webtile")


@dataclass
class RunReport:
    run_id: str
    geotiff_dir: Path
    web_tiles_dir: Path
    events_csv: Path
    elapsed_s: float
    done: dict[str, int] = field(default_factory=dict)  # tiles processed in this run, per step
    failures: list[dict] = field(default_factory=list)  # current failed rows, all steps
    ok: dict[str, int] = field(default_factory=dict)  # current ok rows, per step
    notes: list[str] = field(default_factory=list)
    ranges: Ranges = field(default_factory=dict)  # per level: the web tiles' value ranges

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def last_line(self) -> str:
        ok = sum(self.ok.values())
        return (
            f"rasterflow: {ok} tile steps ok, {len(self.failures)} failed; GeoTIFFs in "
            f"{self.geotiff_dir}, web tiles in {self.web_tiles_dir}, events in {self.events_csv}"
        )


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid4().hex[:6]}"


def run_workflow(
    config: RasterflowConfig,
    site: str = "local",
    overwrite: bool = False,
    tiles_file: str | Path | None = None,
    window: int | None = None,
    live_progress: bool | None = None,
) -> RunReport:
    """Run every step for the config's staged tiles; return what happened."""
    started = time.time()
    site_model = load_site(site)
    require_submittable(site_model)
    workers = expected_workers(site_model)
    plan = plan_run(config, staged_sources(config, tiles_file), workers)
    records = RunRecords(config).load()
    run_id = new_run_id()
    with run_lock(lock_path(config)) as lock:
        fingerprints = Fingerprints(config, plan, records, overwrite or config.overwrite, run_id)
        parsl_run = _parsl(site_model, runinfo_dir(config))
        with RunProgress(live_progress) as progress, parsl_run as dfk:
            lock.note(**parsl_traces(dfk))
            progress.expect(plan)
            driver = Driver(config, plan, records, fingerprints, run_id, progress,
                            window or max(8, 4 * workers), lock.heartbeat,
                            watch=parsl_run.check)  # fmt: skip
            driver.run()
        records.write()
        write_updated_config(config, driver.ranges)
        sweep_temp_files(config)
    if lock.reaped:
        log.info("ended %d processes left by a killed run: %s", len(lock.reaped), lock.reaped)
    return _report(config, plan, records, run_id, started, sorted(driver.notes), driver.ranges)


def expected_workers(site_model) -> int:
    """Workers the site will bring, for sizing batches (a guess where the pool scales)."""
    count = getattr(site_model, "workers", None) or getattr(site_model, "workers_per_node", None)
    per_node = count if isinstance(count, int) else (os.cpu_count() or 1)
    blocks = getattr(site_model, "max_blocks", 1) * getattr(site_model, "nodes_per_block", 1)
    return per_node * blocks


class _parsl:
    """Load a fresh Parsl config for the site; always clean up, even on Ctrl-C."""

    def __init__(self, site_model, run_dir: Path):
        self.config = config_for_run(site_model, run_dir, retries=2, retry_handler=retry_cost)

    def __enter__(self):
        self.dfk = parsl.load(self.config)
        return self.dfk

    def check(self) -> None:
        """Fail the run if an interchange died (killed, OOM): Parsl would wait for it forever.
        The rows so far are in the journal, so a rerun resumes."""
        for proc in self._interchanges():
            if proc.poll() is not None:
                raise RunAbortedError(
                    f"Parsl's interchange (pid {proc.pid}) died with exit code {proc.returncode}; "
                    "the results so far are kept: rerun to resume"
                )

    def _interchanges(self) -> list:
        procs = [getattr(ex, "interchange_proc", None) for ex in self.dfk.executors.values()]
        return [proc for proc in procs if proc is not None]

    def __exit__(self, *exc) -> None:
        try:
            if all(proc.poll() is None for proc in self._interchanges()):
                self.dfk.cleanup()
            else:  # cleanup would block on the dead interchange's channel: end what is ours
                atexit.unregister(self.dfk.atexit_cleanup)
                reap_orphans({"parsl_run_dir": os.path.abspath(self.dfk.run_dir)})
        finally:
            parsl.clear()


def parsl_traces(dfk) -> dict:
    """What a run that finds this driver dead needs to end the Parsl processes it left:
    the run dir (every pool command line names it), the interchange's pid and birth time."""
    procs = [getattr(executor, "interchange_proc", None) for executor in dfk.executors.values()]
    pid = next((proc.pid for proc in procs if proc is not None), None)
    started = psutil.Process(pid).create_time() if pid and psutil.pid_exists(pid) else None
    return {"parsl_run_dir": os.path.abspath(dfk.run_dir), "interchange_pid": pid,
            "interchange_started": started}  # fmt: skip


def retry_cost(exception: BaseException, task_record: dict) -> float:
    """Parsl retry handler: deterministic errors use up every retry at once."""
    deterministic = (TileInputError, ConfigError, ImportError, TypeError, AttributeError)
    return 100.0 if isinstance(exception, deterministic) else 1.0


def _report(config, plan, records: RunRecords, run_id: str, started: float, notes,
            ranges: Ranges) -> RunReport:  # fmt: skip
    planned = {(z, t.x, t.y) for z, tiles in plan.levels.items() for t in tiles}
    current = [row for key, row in records.events.items() if key[1:] in planned]
    return RunReport(
        run_id=run_id,
        geotiff_dir=Path(config.dir_geotiff),
        web_tiles_dir=Path(config.dir_web_tiles),
        events_csv=Path(config.filename_rasterization_events),
        elapsed_s=round(time.time() - started, 2),
        done={s: sum(r["run_id"] == run_id and r["step"] == s for r in current) for s in STEPS},
        failures=[row for row in current if row["status"] == "failed"],
        ok={s: sum(r["status"] == "ok" and r["step"] == s for r in current) for s in STEPS},
        notes=list(notes),
        ranges=ranges,
    )


TEMP_NAME = re.compile(r"\.(\d+)\.[0-9a-f]{8}\.tmp$")


def sweep_temp_files(config: RasterflowConfig) -> int:
    """Remove temporary files whose writer (a pid on this host) is gone: under the output
    trees, and those of the event log and summary (a driver killed while writing them)."""
    records = [Path(config.filename_rasterization_events), Path(config.filename_rasters_summary)]
    stems = tuple(path.name.removesuffix(".csv") for path in records)
    found = [Path(folder, name) for root in (config.dir_geotiff, config.dir_web_tiles)
             for folder, _, names in os.walk(root) for name in names]  # fmt: skip
    for folder in {path.parent for path in records if path.parent.is_dir()}:
        found += [path for path in folder.iterdir() if path.name.startswith(stems)]
    removed = 0
    for path in found:
        match = TEMP_NAME.search(path.name)
        if match and not pid_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
