"""The driver at scale, two ways (used by bench_driver.py).

- `simulate(n)`: the real Driver, plan, records and resume over n z-max tiles, with stub
  apps on Parsl's ThreadPoolExecutor that fabricate compact results (as distinct per tile
  as the real ones: paths, checksums, statistics) and touch no file. The staged listing is
  made up as arrays (10^7 files cannot be written here); everything after it is the run's
  own code, the records' end included (their CSV and Parquet files are written for real,
  in this process, where a real run has a worker write them: an upper bound), and Parsl's
  finished tasks freed as a run's session frees them. Gives the driver's peak memory (the
  process's VmHWM: stubs and Parsl included) and tiles/s.
- `real_run(n)`: `run_workflow` in its own process on a synthetic staged tree of n tiny
  z-max tiles (`workflow.demo.synthetic`, generated once and kept), site `local` (HTEX,
  2 workers); that process reports its own peak RSS (VmHWM) and CPU (`getrusage(
  RUSAGE_SELF)`: the interchange and the workers are other processes). Then the same
  command again: the rerun with nothing to do.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import threading
import time
import zlib
from contextlib import closing
from pathlib import Path

import numpy as np

Z_MAX = 15
STATS = [
    {"name": "iwp_count", "weight_by": "count", "property": "centroids_per_pixel",
     "aggregation_method": "sum", "resampling_method": "sum", "val_range": [0, None]},
    {"name": "iwp_coverage", "weight_by": "area", "property": "area_per_pixel_area",
     "aggregation_method": "sum", "resampling_method": "average", "val_range": [0, 1]},
]  # fmt: skip


def status_value(field: str) -> int:
    """A field of /proc/self/status, in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def bench_config(root: Path, z_min: int = 0):
    from rasterflow.workflow.config import parse_config

    return parse_config({
        "dir_staged": str(root / "staged"), "dir_geotiff": str(root / "geotiff"),
        "dir_web_tiles": str(root / "web_tiles"),
        "filename_rasterization_events": str(root / "events.csv"),
        "filename_rasters_summary": str(root / "summary.csv"),
        "filename_config": str(root / "config.json"),
        "tms_id": "WorldCRS84Quad", "z_range": [z_min, Z_MAX], "statistics": STATS,
    }, source="benchmark")  # fmt: skip


def staged_arrays(n: int, root: str, seed: int = 0):
    """n z-max tiles in a band 25 times wider than tall, in a shuffled order (as a
    directory listing is), sizes 0.1-15 MB, as `list_staged` returns them."""
    from rasterflow.workflow.plan import Staged, path_template

    rows = max(1, math.ceil(math.sqrt(n / 25)))
    cols = math.ceil(n / rows)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    x = (20_000 + order % cols).astype(np.int32)
    y = (2_000 + order // cols).astype(np.int32)
    sizes = (np.clip(rng.lognormal(np.log(1.5), 1.0, n), 0.1, 15.0) * 1e6).astype(np.int64)
    template = f"{root}/WorldCRS84Quad/{{z}}/{{x}}/{{y}}.gpkg"
    assert path_template(lambda t: f"{root}/WorldCRS84Quad/{t.z}/{t.x}/{t.y}.gpkg") == template
    return Staged(template, np.full(n, Z_MAX, np.int32), x, y, sizes,
                  np.full(n, 1_700_000_000 * 10**9, np.int64))  # fmt: skip


# -- stub apps: fabricated results, no file touched ------------------------------------------
def _fake(step: str, batch, summary: bool):
    import pyarrow as pa

    from rasterflow.workflow.batches import TASK_EVENT_SCHEMA, TileResults
    from rasterflow.workflow.steps import SUMMARY_PART

    x, y, n = batch.x.astype(np.int64), batch.y.astype(np.int64), len(batch.x)
    z = np.full(n, batch.z, np.int64)
    seed = np.array([zlib.crc32(f"{step}/{batch.z}/{a}/{b}".encode()) for a, b in
                     zip(x.tolist(), y.tolist(), strict=True)], np.uint64)  # fmt: skip
    names = [f"{batch.z}/{a}/{b}" for a, b in zip(x.tolist(), y.tolist(), strict=True)]
    tif = [f"/g/WorldCRS84Quad/{name}.tif" for name in names]
    pngs = [";".join(f"/w/{s['name']}/WorldCRS84Quad/{name}.png" for s in STATS) for name in names]
    paths = pngs if step == "webtile" else tif
    events = pa.table({
        "step": [step] * n, "z": z, "x": x, "y": y, "status": ["ok"] * n,
        "start_time": 1.7e9 + seed / 1e6, "total_time": 0.05 + seed % 1000 / 1e5,
        "error": pa.nulls(n, pa.string()), "path": paths, "host": ["bench"] * n,
        "n_polygons": (seed % 1000).astype(np.int64), "checksum": seed * np.uint64(2654435761),
        "skipped": pa.nulls(n, pa.string()), "detail": pa.nulls(n, pa.string()),
    }, schema=TASK_EVENT_SCHEMA)  # fmt: skip
    k = len(STATS) if summary else 0
    value = np.repeat(seed % 100_000 / 7.0, k)
    table = pa.table({
        "stat": [s["name"] for s in STATS] * n if k else [], "z": np.repeat(z, k),
        "x": np.repeat(x, k), "y": np.repeat(y, k), "min": value / 9, "max": value,
        "mean": value / 2, "median": value / 3, "std": value / 5, "var": value / 25,
        "sum": value * 900, "n_nonempty": np.repeat((seed % 100 + 900).astype(np.int64), k),
        "path": np.repeat(np.array(tif, dtype=object), k),
        "minx": np.repeat(x / 2**batch.z, k), "maxx": np.repeat((x + 1) / 2**batch.z, k),
        "miny": np.repeat(y / 2**batch.z, k), "maxy": np.repeat((y + 1) / 2**batch.z, k),
    }, schema=SUMMARY_PART)  # fmt: skip
    return TileResults(events, table, np.arange(n))


def stub_rasterize(batch, sources, config):
    return _fake("rasterize", batch, True)


def stub_parents(batch, config):
    return _fake("parent", batch, True)


def stub_webtiles(batch, config, ranges):
    return _fake("webtile", batch, False)


def stub_quicklooks(z, config):
    return []


class StubApps:
    def __init__(self, dfk):
        from parsl import python_app

        self.rasterize = python_app(stub_rasterize, data_flow_kernel=dfk)
        self.parents = python_app(stub_parents, data_flow_kernel=dfk)
        self.webtiles = python_app(stub_webtiles, data_flow_kernel=dfk)
        self.quicklooks = python_app(stub_quicklooks, data_flow_kernel=dfk)


def simulate(n: int, root: Path, window: int = 16, workers: int = 256) -> dict:
    """A run of n z-max tiles (z15 to z0) through the real driver with stub apps."""
    from parsl.config import Config
    from parsl.executors.threads import ThreadPoolExecutor

    from rasterflow.workflow.driver import Driver
    from rasterflow.workflow.outcome import outcome
    from rasterflow.workflow.parsl_session import ParslSession
    from rasterflow.workflow.plan import plan_run
    from rasterflow.workflow.progress import RunProgress
    from rasterflow.workflow.records import RecordsReader, RunRecords

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    config = bench_config(root)
    base, started = status_value("VmRSS"), time.perf_counter()
    plan = plan_run(config, staged_arrays(n, str(root / "staged")), workers)
    plan_s, after_plan = time.perf_counter() - started, status_value("VmRSS")
    records = RunRecords(config)
    found = records.open()
    # A run's session: it frees Parsl's finished tasks as it goes (`check`).
    session = ParslSession(Config(executors=[ThreadPoolExecutor(max_threads=2,
                           label="threads")], run_dir=str(root / "runinfo"), usage_tracking=0,
                           initialize_logging=False))  # fmt: skip
    dfk = session.dfk()
    samples: list[tuple] = []
    done = threading.Event()
    try:
        driver = Driver(config, plan, records, found, "bench", RunProgress(live=False,
                        every_s=1e9), window, launch=lambda: StubApps(dfk),
                        watch=session.check)  # fmt: skip

        def sample():
            while not done.wait(0.2):
                samples.append((status_value("VmRSS"), len(driver._outstanding),
                                len(dfk.tasks)))  # fmt: skip

        threading.Thread(target=sample, daemon=True).start()
        started = time.perf_counter()
        driver.run()
        run_s = time.perf_counter() - started
        records.finish()
        finish_s = time.perf_counter() - started - run_s
        result = outcome(RecordsReader(config), plan, "bench")
        report_s = time.perf_counter() - started - run_s - finish_s
    finally:
        done.set()
        session.close()
    mb = 2**20
    return {
        "z_max_tiles": n, "tiles_all_levels": plan.n_tiles, "window": window,
        "plan_s": round(plan_s, 2), "run_s": round(run_s, 1), "records_end_s": round(finish_s, 1),
        "report_s": round(report_s, 1),
        "z_max_tiles_per_s": round(n / run_s), "all_tiles_per_s": round(plan.n_tiles / run_s),
        "rows": result.rows, "ok": result.count("ok"),
        "rss_at_start_mb": round(base / mb, 1), "plan_mb": round((after_plan - base) / mb, 1),
        "peak_rss_mb": round(status_value("VmHWM") / mb, 1),
        "peak_over_start_mb": round((status_value("VmHWM") - base) / mb, 1),
        "max_outstanding": max((s[1] for s in samples), default=0),
        "max_parsl_task_records": max((s[2] for s in samples), default=0),
        "events_csv_mb": round(Path(config.filename_rasterization_events).stat().st_size / mb),
    }  # fmt: skip


# -- real runs ---------------------------------------------------------------------------------
DRIVER = """
import json, resource, sys, threading, time
started = time.perf_counter()
from rasterflow.workflow.config import load_config
from rasterflow.workflow.run import run_workflow

def status(field):  # this process's own (getrusage's ru_maxrss counts its parent's at exec)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

samples, stop = [], threading.Event()

def sample():  # RSS over time: is the peak during the tiles or at the end?
    while not stop.wait(0.25):
        samples.append((time.time(), status("VmRSS")))

imported = status("VmRSS")
threading.Thread(target=sample, daemon=True).start()
config = load_config(sys.argv[1])
report = run_workflow(config, site=sys.argv[2], live_progress=False)
ended = time.time()
stop.set()
me = resource.getrusage(resource.RUSAGE_SELF)
peak = status("VmHWM")  # before this script reads the event log below (its own memory)
import pyarrow.parquet as pq
ends = pq.read_table(config.filename_rasterization_events.with_suffix(".parquet"),
                     columns=["end_time"])["end_time"].to_numpy()
last = float(ends.max()) if len(ends) else ended
print(json.dumps({"wall_s": time.perf_counter() - started, "cpu_s": me.ru_utime + me.ru_stime,
                  "peak_rss_kb": peak, "rss_after_imports_kb": imported,
                  "max_rss_during_tiles_kb": max((r for t, r in samples if t <= last), default=0),
                  "max_rss_after_last_tile_kb": max((r for t, r in samples if t > last), default=0),
                  "after_last_tile_s": round(ended - last, 2),
                  "ok": report.ok, "done": report.done, "failed": len(report.failures)}))
"""


def sample_tree(n: int, root: Path, tile_size: int = 32) -> Path:
    """A staged tree of n z-max tiles at z15 in a block about as wide as tall, z15 to z12,
    tiny tiles; generated once and kept. Returns its config.

    One tile is staged by the demo's generator (`make_sample`: 8 polygons, with PDG's
    staging columns); every other tile is a copy of its GeoPackage with the geometries and
    the staging columns moved to that tile (sqlite, about 1 ms a tile where GDAL takes 25:
    10^5 tiles in minutes, not hours). The copies carry no spatial index, which the reader
    never uses."""
    from rasterflow.workflow.demo.synthetic import make_sample

    config_path, complete = root / "config.json", root / "complete"
    if complete.exists():
        return config_path
    shutil.rmtree(root, ignore_errors=True)
    sample = make_sample(root, z_range=(12, Z_MAX), tiles=(1, 1), cells_per_tile=2, seed=5)
    data = json.loads(sample.config_path.read_text())
    data["tile_size"] = [tile_size, tile_size]
    template, *others = sorted((root / "staged").rglob("*.gpkg"))
    for path in others:
        path.unlink()
    _drop_spatial_index(template)
    columns = max(1, round(math.sqrt(n)))
    x0, y0 = int(template.parent.name), int(template.stem)
    for i in range(1, n):
        _clone_tile(template, x0, y0, x0 + i % columns, y0 + i // columns)
    config_path.write_text(json.dumps(data, indent=2))
    complete.touch()
    return config_path


def _drop_spatial_index(path: Path) -> None:
    """GDAL's R-tree triggers call its SQL functions, which plain sqlite lacks."""
    import sqlite3

    with closing(sqlite3.connect(path)) as db, db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            db.execute(f'DROP TRIGGER "{name}"')
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name LIKE 'rtree_%' AND sql LIKE '%VIRTUAL%'"
        ).fetchall():
            db.execute(f'DROP TABLE "{name}"')
        db.execute("DELETE FROM gpkg_extensions WHERE extension_name = 'gpkg_rtree_index'")


def _clone_tile(template: Path, x0: int, y0: int, x: int, y: int) -> None:
    """The template tile's GeoPackage, moved from tile (x0, y0) to tile (x, y)."""
    import sqlite3
    import struct

    import shapely

    from rasterflow.rasterize_core.tiles import Tile, xy_bounds

    here, there = (
        xy_bounds("WorldCRS84Quad", Tile(Z_MAX, x0, y0)),
        xy_bounds("WorldCRS84Quad", Tile(Z_MAX, x, y)),
    )
    dx, dy = there[0] - here[0], there[1] - here[1]
    path = template.parents[1] / str(x) / f"{y}.gpkg"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA synchronous = OFF")  # a benchmark's input: no fsync per file
        ((table, geom),) = db.execute("SELECT table_name, column_name FROM gpkg_geometry_columns")
        rows = db.execute(
            f'SELECT fid, "{geom}", staging_centroid_x, staging_centroid_y FROM "{table}"'
        ).fetchall()
        for fid, blob, cx, cy in rows:
            flags = blob[3]  # GDAL writes little-endian headers (bit 0 set)
            start = 8 + {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(flags >> 1) & 0b111]
            moved = shapely.transform(shapely.from_wkb(blob[start:]), lambda c: c + (dx, dy))
            left, bottom, right, top = moved.bounds
            header = (
                b"GP"
                + bytes([blob[2], (flags & ~0b1110) | 0b0010])
                + blob[4:8]
                + struct.pack("<4d", left, right, bottom, top)
            )  # envelope: x, then y
            db.execute(
                f'UPDATE "{table}" SET "{geom}" = ?, staging_centroid_x = ?, '
                "staging_centroid_y = ?, staging_tile = ?, staging_centroid_tile = ? "
                "WHERE fid = ?",
                (
                    header + shapely.to_wkb(moved),
                    cx + dx,
                    cy + dy,
                    f"{Z_MAX}/{x}/{y}",
                    f"Tile(x={x}, y={y}, z={Z_MAX})",
                    fid,
                ),
            )


def real_run(n: int, root: Path, site: str) -> dict:
    """A fresh run of the sample tree, then the same run again (nothing to do)."""
    config_path = sample_tree(n, root / f"tree-{n}")
    tree = config_path.parent
    for name in ("geotiff", "web_tiles", ".rasterflow"):
        shutil.rmtree(tree / name, ignore_errors=True)
    for path in tree.glob("rasterization_events*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in tree.glob("rasters_summary*"):
        path.unlink()
    staged = sum(1 for _ in (tree / "staged").rglob("*.gpkg"))
    first = _driver(config_path, site)
    again = _driver(config_path, site)
    return {"z_max_tiles": staged, "fresh": first, "noop_rerun": again}


def _driver(config_path: Path, site: str) -> dict:
    out = subprocess.run([sys.executable, "-c", DRIVER, str(config_path), site], check=True,
                         capture_output=True, text=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])
