"""Faults: bad input fails alone, transient failures are retried, one run per output.

Every bad input of DESIGN.md §4 is staged next to a good sample and run through the
real CLI: each bad tile is one `failed` row naming its file and the reason, the
exit code is 1 with the list, and every other tile matches exact geometry. A
worker process is SIGKILLed mid-batch and the batch is retried; the retry handler
keeps deterministic errors from being retried. (The run lock and the records are
unit-tested in tests/unit/workflow/test_lock.py and test_records.py.)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from parsl import python_app

import rasterflow.workflow.plan as plan_module
import rasterflow.workflow.run as run_module
from rasterflow.executors.sites import load_site
from rasterflow.rasterize_core.errors import (
    RasterflowError,
)
from rasterflow.rasterize_core.tiles import Tile, matrix_size, xy_bounds
from rasterflow.workflow.config import load_config
from rasterflow.workflow.demo.synthetic import make_sample
from rasterflow.workflow.run import run_workflow
from tests.helpers.processes import end_processes, processes_under
from tests.helpers.samples import staged_sample
from tests.helpers.truth import exact_coverage

RASTERFLOW = str(Path(sys.executable).with_name("rasterflow"))
TMS = "WorldCRS84Quad"


# -- bad input ------------------------------------------------------------------
def inner_box(tile: Tile, a: float, b: float):
    """A box over the fractions [a, b] of the tile's width and height."""
    left, bottom, right, top = xy_bounds(TMS, tile)
    w, h = right - left, top - bottom
    return shapely.box(left + a * w, bottom + a * h, left + b * w, bottom + b * h)


def write_layer(path: Path, frame, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pyogrio.write_dataframe(frame, path, layer=path.stem, **options)
    return path


def bow_tie(tile: Tile):
    left, bottom, right, top = inner_box(tile, 0.2, 0.6).bounds
    return shapely.Polygon([(left, bottom), (right, top), (right, bottom), (left, top)])


def stage_bad_inputs(staged: Path, first: Tile, enforce_permissions: bool) -> tuple[dict, list]:
    """Stage each case at its own tile beside the sample; return {tile: (path, expected
    reason)} for the failing ones (reason None: must be ok) and the polygons that count."""
    x0, y = first.x + 8 + first.x % 2, first.y  # even: each pair below shares a parent
    tiles = iter(Tile(13, x0 + i, y) for i in range(20))

    def path_of(tile: Tile) -> Path:
        path = staged / TMS / f"{tile.z}/{tile.x}/{tile.y}.gpkg"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    cases: dict[Tile, tuple[Path, str | None]] = {}
    counted = []

    def layer(tile, polygons, crs="OGC:CRS84", width=True, **options):
        columns = (
            {"Width": np.full(len(polygons), 5.0)} if width else {"Other": [1.0] * len(polygons)}
        )
        return write_layer(
            path_of(tile), gpd.GeoDataFrame(columns, geometry=polygons, crs=crs), **options
        )

    # Pairs (ok, failing) under one parent: the parent is built from the child that exists.
    t = next(tiles)
    cases[t] = (layer(t, [], geometry_type="Polygon"), None)  # empty layer: an empty tile
    t = next(tiles)
    good = layer(t, [inner_box(t, 0.1, 0.2)])
    corrupt = good.read_bytes()
    good.write_bytes(corrupt[: len(corrupt) // 2])  # a copy cut short
    cases[t] = (good, "database disk image is malformed")

    t = next(tiles)
    counted.append(bow_tie(t))
    cases[t] = (layer(t, [counted[-1]]), None)  # self-intersecting: repaired
    t = next(tiles)
    path_of(t).touch()
    cases[t] = (path_of(t), "zero-byte file")

    t = next(tiles)
    counted.append(shapely.MultiPolygon([inner_box(t, 0.1, 0.3), inner_box(t, 0.5, 0.9)]))
    cases[t] = (layer(t, [counted[-1]]), None)
    t = next(tiles)
    frame = pd.DataFrame({"Width": [5.0], "staging_centroid_x": [0.0]})  # attributes only
    cases[t] = (write_layer(path_of(t), frame), "layer has no geometry column")

    t = next(tiles)
    cases[t] = (layer(t, [inner_box(t, 0.1, 0.5)], width=False), "missing property column")
    t = next(tiles)
    cases[t] = (layer(t, [shapely.box(0, 0, 1000, 1000)], crs="EPSG:3413"),
                "is not the tile grid's CRS")  # fmt: skip
    if enforce_permissions:
        t = next(tiles)
        cases[t] = (layer(t, [inner_box(t, 0.1, 0.5)]), "not readable: permission denied")
        cases[t][0].chmod(0)

    outside = Tile(13, matrix_size(TMS, 13)[0] + 1, y)  # one column past the matrix
    frame = gpd.GeoDataFrame({"Width": [5.0]}, geometry=[shapely.box(0, 0, 1, 1)], crs="OGC:CRS84")
    write_layer(path_of(outside), frame)
    cases[outside] = (path_of(outside), f"tile 13/{outside.x}/{y} is outside {TMS}")
    return cases, counted


def unprivileged() -> list[str]:
    """A prefix that makes permissions bite. As root (CI), `setpriv` drops the two
    capabilities that let root read any file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from
    the bounding set of the run and of every process it starts (Parsl's workers): the run
    then reads files as their modes allow, like any user, while still reaching the root-only
    interpreter and writing its outputs. Switching to `nobody` cannot work here: the
    interpreter lives under /root (mode 0700)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def test_bad_inputs_fail_alone(tmp_path):
    """Each bad input is one `failed` row naming its file and the reason, listed by the CLI
    (exit 1); the rest, parents over a bad tile's sibling included, match exact geometry."""
    enforce = os.geteuid() != 0 or shutil.which("setpriv") is not None
    sample = make_sample(tmp_path / "run", z_range=(11, 13), tiles=(2, 2), cells_per_tile=8, seed=5)
    data = json.loads(sample.config_path.read_text()) | {"tile_size": [128, 128]}
    sample.config_path.write_text(json.dumps(data))
    config = load_config(sample.config_path)
    cases, counted = stage_bad_inputs(Path(config.dir_staged), sample.tiles[0], enforce)

    run = subprocess.run([*unprivileged(), RASTERFLOW, "run", str(sample.config_path)],
                         capture_output=True, text=True, timeout=180)  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr

    failing = {tile: case for tile, case in cases.items() if case[1]}
    listed = [line for line in run.stdout.splitlines() if line.startswith("failed ")]
    assert len(listed) == len(failing)
    for tile, (path, reason) in failing.items():
        assert sum(line.startswith(f"failed rasterize 13/{tile.x}/{tile.y}: {path}: ")
                   and reason in line for line in listed) == 1  # fmt: skip
    assert f"{len(failing)} failed" in run.stdout.splitlines()[-1]
    events = pd.read_csv(config.filename_rasterization_events)
    failed = events[events["status"] == "failed"]
    assert {Tile(13, x, y) for x, y in zip(failed["x"], failed["y"], strict=True)} == set(failing)
    for row in failed.itertuples():
        path, reason = failing[Tile(row.z, row.x, row.y)]
        assert row.step == "rasterize" and row.path == str(path) and row.attempt == 1
        assert str(path) in row.error and reason in row.error, row.error
    done = events[(events["status"] == "ok") & (events["step"] == "rasterize")]
    expected = set(sample.tiles) | {tile for tile, (_, reason) in cases.items() if not reason}
    assert {Tile(13, x, y) for x, y in zip(done["x"], done["y"], strict=True)} == expected
    parents = {tile.parent() for tile in cases}
    built = {p for p in parents if Path(config.dir_geotiff, TMS, f"12/{p.x}/{p.y}.tif").exists()}
    assert built == {tile.parent() for tile, (_, reason) in cases.items() if not reason}
    truth = np.concatenate([sample.polygons.geometry.to_numpy(), np.array(counted, dtype=object)])
    check_exact(config, truth, failing)
    empty = [t for t, (_, reason) in cases.items() if reason is None][0]
    with rasterio.open(Path(config.dir_geotiff, TMS, f"13/{empty.x}/{empty.y}.tif")) as dataset:
        count, coverage, width = dataset.read().astype(float)
    assert (count == 0).all() and (coverage == 0).all() and np.isnan(width).all()


def check_exact(config, truth: np.ndarray, failing: dict) -> None:
    """Every GeoTIFF at every level: coverage as exact geometry, each level's count whole."""
    totals: dict[int, float] = {}
    for path in Path(config.dir_geotiff, TMS).rglob("*.tif"):
        tile = Tile(*(int(p) for p in path.with_suffix("").parts[-3:]))
        assert tile not in failing
        with rasterio.open(path) as dataset:
            count, coverage = dataset.read(1), dataset.read(2)
        expected = exact_coverage(truth, xy_bounds(TMS, tile), coverage.shape)
        np.testing.assert_allclose(coverage, expected, atol=1e-6, rtol=0)
        assert (coverage[expected == 0] == 0).all()
        totals[tile.z] = totals.get(tile.z, 0) + count.sum()
        png = Path(config.dir_web_tiles, "iwp_coverage", TMS, f"{tile.z}/{tile.x}/{tile.y}.png")
        assert png.exists()
    assert totals == dict.fromkeys((11, 12, 13), float(len(truth)))


# -- retries --------------------------------------------------------------------
# Defined in a namespace called __main__ so that dill sends the function by value: workers
# cannot import this test module (a ModuleNotFoundError, itself deterministic: never retried).
FAIL = """
def fail(kind, tally):
    with open(tally, "a") as handle:
        handle.write(".")
    raise TypeError("a bug") if kind == "bug" else OSError("connection reset")
"""


def test_parsl_retries_transient_errors_only(tmp_path):
    namespace = {"__name__": "__main__"}
    exec(FAIL, namespace)
    fail = namespace["fail"]
    tallies = {kind: tmp_path / f"{kind}.tally" for kind in ("bug", "transient")}
    with run_module._parsl(load_site("local"), tmp_path / "runinfo"):
        app = python_app(fail)
        futures = {kind: app(kind, str(path)) for kind, path in tallies.items()}
        errors = {kind: future.exception(timeout=120) for kind, future in futures.items()}
        tries = {kind: future.task_record["try_id"] for kind, future in futures.items()}
    assert isinstance(errors["bug"], TypeError) and isinstance(errors["transient"], OSError)
    assert {kind: len(path.read_text()) for kind, path in tallies.items()} == {
        "bug": 1,
        "transient": 3,
    }
    assert tries == {"bug": 0, "transient": 2}


def quick_heartbeat(make_config):
    """The site's Parsl config with a 1 s heartbeat: a pool notices a dead worker at its
    next heartbeat (30 s by default)."""

    def make(*args, **kwargs):
        parsl_config = make_config(*args, **kwargs)
        for executor in parsl_config.executors:
            executor.heartbeat_period = 1
        return parsl_config

    return make


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_killed_worker_batch_is_retried(tmp_path, monkeypatch):
    """SIGKILL a Parsl worker while it runs a z-max batch: the batch is retried and recorded
    with attempt 2, and every tile ends ok."""
    sample = staged_sample(tmp_path)
    config = load_config(sample.config_path)
    report, killed = run_killing_workers(config, tmp_path, monkeypatch, batch_tiles=3, kills=1)
    assert killed, "no worker was seen running a batch"
    assert report.exit_code == 0 and not report.failures
    events = pd.read_csv(config.filename_rasterization_events)
    assert (events["status"] == "ok").all()
    retried = events[events["attempt"] > 1]  # the lost batch: its first worker killed
    assert set(retried["attempt"]) == {2} and retried["step"].nunique() == 1
    assert 1 <= len(retried) <= 3 and len(events[events["attempt"] == 1]) == len(events) - len(
        retried
    )


def test_dead_interchange_fails_the_run_instead_of_hanging(tmp_path):
    """Parsl waits forever on a dead interchange (OOM, a stray kill): the driver notices,
    fails with a message, ends its worker pool and keeps the rows so far for the rerun."""
    sample = staged_sample(tmp_path)
    config = load_config(sample.config_path)
    lock_path = Path(f"{config.filename_rasterization_events}.lock")

    def kill_interchange():
        end = time.time() + 60
        while time.time() < end:
            with contextlib.suppress(OSError, ValueError):
                pid = json.loads(lock_path.read_text()).get("interchange_pid")
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_interchange, daemon=True)
    killer.start()
    started = time.time()
    with pytest.raises(RasterflowError, match="interchange .* died"):
        run_workflow(config, live_progress=False)
    assert time.time() - started < 60
    assert not lock_path.exists() and processes_under(tmp_path) == []


def run_killing_workers(config, tmp_path, monkeypatch, batch_tiles: int, kills: int):
    """Run the pipeline while a thread SIGKILLs `kills` busy workers; (report, killed pids)."""
    monkeypatch.setattr(plan_module, "MAX_BATCH_TILES", batch_tiles)
    monkeypatch.setattr(run_module, "config_for_run", quick_heartbeat(run_module.config_for_run))
    killed: list[int] = []
    killer = threading.Thread(target=kill_busy_worker, args=(tmp_path, killed, kills), daemon=True)
    killer.start()
    try:
        report = run_workflow(config, live_progress=False)
    finally:
        killer.join(timeout=1)
        end_processes([p.pid for p in processes_under(tmp_path)])
    return report, killed


WORKER_LINE = re.compile(r"HTEX-Worker-\d+-(\d+) .* (Received|Completed) executor task")


def kill_busy_worker(root: Path, killed: list[int], times: int = 1, timeout: float = 90) -> None:
    """SIGKILL a Parsl worker while it runs a task, `times` times. Parsl's worker logs
    "Received executor task" before a task and "Completed" after it, under a name with its
    pid: a worker whose last such line is "Received" is inside a batch (killing one between
    tasks, blocked in its queue's read, could leave the queue locked for the others)."""
    end = time.time() + timeout
    while time.time() < end and len(killed) < times:
        for log in root.glob(".rasterflow/runinfo/*/htex_local/block-*/*/worker_*.log"):
            lines = [m for m in map(WORKER_LINE.search, log.read_text().splitlines()) if m]
            if lines and lines[-1].group(2) == "Received":
                pid = int(lines[-1].group(1))
                if pid not in killed:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                    if len(killed) == times:
                        return
        time.sleep(0.005)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_batch_lost_after_every_retry_is_split(tmp_path, monkeypatch):
    """A batch whose worker dies on every try (a tile that crashes GDAL, or eats the memory)
    is run again tile by tile, so that only such a tile could fail: here every try of the one
    z-max batch is killed, then its tiles alone all succeed, each with 4 tries recorded."""
    sample = staged_sample(tmp_path)
    config = load_config(sample.config_path)
    report, killed = run_killing_workers(config, tmp_path, monkeypatch, batch_tiles=64, kills=3)
    assert len(killed) == 3 and report.exit_code == 0
    events = pd.read_csv(config.filename_rasterization_events)
    assert (events["status"] == "ok").all()
    rasterized = events[events["step"] == "rasterize"]
    assert len(rasterized) == len(sample.tiles) and (rasterized["attempt"] == 4).all()
    assert (events.loc[events["step"] != "rasterize", "attempt"] == 1).all()
