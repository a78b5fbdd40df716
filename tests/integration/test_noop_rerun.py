"""A rerun with nothing to do decides so before Parsl starts: it never loads Parsl, sends no
task, rewrites no file, and reports the run's tiles as up to date. Nor does it walk the
output trees for temporary files, unless it took over from a killed run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from rasterflow.workflow import run as run_module
from rasterflow.workflow.config import load_config
from rasterflow.workflow.layout import lock_path
from rasterflow.workflow.parsl_session import ParslSession
from rasterflow.workflow.run import run_workflow
from tests.helpers.files import file_digests
from tests.helpers.paths import THREADS_SITE
from tests.helpers.processes import dead_pid


def plant_temp_files(config, pid: int) -> list[Path]:
    """Temporary files (`atomic.temp_path_for`'s names) of writer `pid`: a GeoTIFF's in the
    output tree, and the event log's beside it."""
    geotiff = next(Path(config.dir_geotiff).rglob("*.tif"))
    events = Path(config.filename_rasterization_events)
    paths = [path.with_name(f"{path.name}.{pid}.0123abcd.tmp") for path in (geotiff, events)]
    for path in paths:
        path.write_bytes(b"cut short")
    return paths


def test_a_rerun_with_nothing_to_do_starts_no_parsl(demo_copy, monkeypatch):
    config = load_config(demo_copy)
    root = demo_copy.parent
    in_tree, of_events = plant_temp_files(config, dead_pid())
    before = {pattern: file_digests(root, pattern) for pattern in ("*.tif", "*.png")}
    events = pd.read_csv(config.filename_rasterization_events)

    def refuse(*args, **kwargs):
        raise AssertionError("Parsl was started for a rerun with nothing to do")

    monkeypatch.setattr(ParslSession, "start", refuse)
    monkeypatch.setattr(run_module, "ParslApps", refuse)
    report = run_workflow(config, site=THREADS_SITE, live_progress=False)
    assert report.exit_code == 0 and set(report.done.values()) == {0}
    assert report.ok == {step: int((events["step"] == step).sum()) for step in report.ok}
    assert {pattern: file_digests(root, pattern) for pattern in ("*.tif", "*.png")} == before
    assert pd.read_csv(config.filename_rasterization_events).equals(events)
    assert not of_events.exists()  # the records' folder: always swept
    assert in_tree.exists()  # no worker ran since the last sweep: the trees are not walked


def test_a_rerun_after_a_killed_run_sweeps_the_trees(demo_copy):
    """The lock of a driver that died on this host: the rerun, with nothing to do, takes it
    over and removes the temporary files of dead writers, not those of a live one."""
    config = load_config(demo_copy)
    dead = plant_temp_files(config, dead_pid())
    live = plant_temp_files(config, os.getpid())
    lock = {"host": os.uname().nodename, "pid": dead_pid(), "heartbeat": 0}
    lock_path(config).write_text(json.dumps(lock))
    report = run_workflow(config, site=THREADS_SITE, live_progress=False)
    assert report.exit_code == 0 and set(report.done.values()) == {0}
    assert not any(path.exists() for path in dead) and all(path.exists() for path in live)
    assert not lock_path(config).exists()
