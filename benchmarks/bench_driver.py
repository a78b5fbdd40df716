"""The driver at scale: planning time and memory, the window of futures, Parsl's task rate.

Not a test: it prints a table and writes benchmarks/results/driver.json.

    .venv/bin/python benchmarks/bench_driver.py              # 10^4, 10^5, 10^6 tiles
    .venv/bin/python benchmarks/bench_driver.py --sizes 10000 --window-tiles 2000

- planning: `make_plan` on a tile list (no files: the sources and sizes dicts are built
  directly, as `list_staged` + `source_sizes` would return them), a pan-Arctic-like band of
  z-max tiles (25 columns per row, shuffled as a directory listing is, sizes 0.1-15 MB).
  Each size runs in a fresh process; memory is its peak RSS (VmHWM) over the baseline
  after imports, so it includes the inputs every run holds.
- window: the real `Driver` over a `--window-tiles` run with the apps swapped for stubs that
  return records like the real ones, on Parsl's ThreadPoolExecutor: RSS, outstanding
  futures and Parsl's task table sampled as it goes; memory should stay flat but for the
  records (one event per tile and step, one summary row per tile and statistic).
- task rate: no-op apps through Parsl's HighThroughputExecutor with 2 local workers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tiles import machine_info  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
Z_MAX = 15
STATS = [
    {"name": "iwp_count", "weight_by": "count", "property": "centroids_per_pixel",
     "aggregation_method": "sum", "resampling_method": "sum", "val_range": [0, None]},
    {"name": "iwp_coverage", "weight_by": "area", "property": "area_per_pixel_area",
     "aggregation_method": "sum", "resampling_method": "average", "val_range": [0, 1]},
]  # fmt: skip


def bench_config(root: Path):
    from rasterflow.workflow.config import parse_config

    return parse_config({
        "dir_staged": str(root / "staged"), "dir_geotiff": str(root / "geotiff"),
        "dir_web_tiles": str(root / "web_tiles"),
        "filename_rasterization_events": str(root / "events.csv"),
        "filename_rasters_summary": str(root / "summary.csv"),
        "tms_id": "WorldCRS84Quad", "z_range": [0, Z_MAX], "statistics": STATS,
    }, source="benchmark")  # fmt: skip


def tile_inputs(n: int, root: str, seed: int = 0):
    """`n` z-max tiles in a band 25 times wider than tall, in a shuffled order, with paths
    and sizes as `list_staged` and `source_sizes` give them."""
    from rasterflow.rasterize_core.tiles import Tile

    rows = max(1, math.ceil(math.sqrt(n / 25)))
    cols = math.ceil(n / rows)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    x0, y0 = 20_000, 2_000
    tiles = [Tile(Z_MAX, x0 + int(i) % cols, y0 + int(i) // cols) for i in order]
    sizes_mb = np.clip(rng.lognormal(np.log(1.5), 1.0, n), 0.1, 15.0)
    sources = {t: f"{root}/WorldCRS84Quad/{Z_MAX}/{t.x}/{t.y}.gpkg" for t in tiles}
    sizes = {t: int(mb * 1e6) for t, mb in zip(tiles, sizes_mb, strict=True)}
    return sources, sizes


def vm_hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# -- planning, one size per process -----------------------------------------------------------
def plan_one(n: int, workers: int) -> dict:
    from rasterflow.workflow.plan import MAX_BATCH_TILES, default_batch_bytes, make_plan

    config = bench_config(Path("/tmp/rasterflow-bench-driver"))
    base = rss()
    started = time.perf_counter()
    sources, sizes = tile_inputs(n, "/data/staged")
    inputs_s = time.perf_counter() - started
    after_inputs = rss()
    batch_bytes = default_batch_bytes(sum(sizes.values()), workers)
    started = time.perf_counter()
    plan = make_plan(config, sources, batch_bytes, MAX_BATCH_TILES, sizes)
    plan_s = time.perf_counter() - started
    mb = 2**20
    return {
        "z_max_tiles": n, "plan_s": round(plan_s, 2), "inputs_s": round(inputs_s, 2),
        "inputs_mb": round((after_inputs - base) / mb, 1),
        "peak_over_baseline_mb": round((vm_hwm() - base) / mb, 1),
        "plan_mb_approx": round((vm_hwm() - after_inputs) / mb, 1),
        "tiles_all_levels": plan.n_tiles,
        "batches": sum(len(b) for b in plan.batches.values()),
        "batch_mb": round(batch_bytes / 1e6, 1), "workers_assumed": workers,
    }  # fmt: skip


def plan_in_subprocess(n: int, workers: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--plan-one", str(n), "--workers",
                          str(workers)], check=True, capture_output=True, text=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the window of futures ---------------------------------------------------------------------
def _record(step: str, tile, with_summary: bool) -> dict:
    """A record shaped like the real apps': same keys, and values as distinct per tile as
    theirs (checksum, start time, statistics, the web tiles' PNG paths joined), so shared
    constants do not flatter the records' memory."""
    seed = zlib.crc32(f"{step}/{tile.z}/{tile.x}/{tile.y}".encode())
    v, (x, y) = seed % 100_000 / 7.0, (tile.x / 2**tile.z, tile.y / 2**tile.z)
    tif = f"/g/WorldCRS84Quad/{tile.z}/{tile.x}/{tile.y}.tif"
    pngs = ";".join(f"/w/{s['name']}/WorldCRS84Quad/{tile.z}/{tile.x}/{tile.y}.png" for s in STATS)
    summary = [{"stat": s["name"], "bounds": [x, y, x + 0.5**tile.z, y + 0.5**tile.z],
                "min": v / 9, "max": v, "mean": v / 2, "median": v / 3, "std": v / 5,
                "var": v / 25, "sum": v * 900, "path": tif,
                "tile": f"Tile(x={tile.x}, y={tile.y}, z={tile.z})", "z": tile.z,
                "x": tile.x, "y": tile.y, "n_nonempty": 900 + seed % 100}
               for s in STATS]  # fmt: skip
    return {"step": step, "z": tile.z, "x": tile.x, "y": tile.y, "host": "bench",
            "started_at": datetime.now(UTC).isoformat(timespec="milliseconds"), "status": "ok",
            "error": None, "path": pngs if step == "webtile" else tif,
            "checksum": f"{seed:08x}{seed ^ 0x5BD1E995:08x}",
            "summary": summary if with_summary else [], "n_polygons": 300 + seed % 1000,
            "notes": [], "duration_s": round(0.05 + v / 1e6, 4)}  # fmt: skip


def stub_rasterize(tiles, sources, config):
    return [_record("rasterize", t, True) for t in tiles]


def stub_parents(tiles, config):
    return [_record("parent", t, True) for t in tiles]


def stub_webtiles(tiles, config, ranges):
    return [_record("webtile", t, False) for t in tiles]


def window_run(n: int, batch_tiles: int, window: int, root: Path) -> dict:
    import parsl
    from parsl.config import Config
    from parsl.dataflow.memoization import BasicMemoizer
    from parsl.executors.threads import ThreadPoolExecutor

    from rasterflow.workflow import tasks as apps
    from rasterflow.workflow.driver import Driver
    from rasterflow.workflow.plan import make_plan
    from rasterflow.workflow.progress import RunProgress
    from rasterflow.workflow.records import RunRecords
    from rasterflow.workflow.resume import Fingerprints

    config = bench_config(root)
    sources, sizes = tile_inputs(n, str(root / "staged"))
    plan = make_plan(config, sources, 1 << 62, batch_tiles, sizes)  # batches cut by count
    apps.rasterize_batch, apps.parents_batch, apps.webtiles_batch = (
        stub_rasterize, stub_parents, stub_webtiles)  # fmt: skip
    records = RunRecords(config)
    dfk = parsl.load(Config(executors=[ThreadPoolExecutor(max_threads=2, label="threads")],
                            run_dir=str(root / "runinfo"), memoizer=BasicMemoizer(memoize=False),
                            usage_tracking=0, initialize_logging=False))  # fmt: skip
    samples: list[tuple] = []
    try:
        driver = Driver(config, plan, records, Fingerprints(config, plan, records, True),
                        "bench", RunProgress(live=False, every_s=1e9), window)  # fmt: skip
        done = threading.Event()

        def sample():
            while not done.wait(0.05):
                samples.append((time.perf_counter(), rss(), len(driver._outstanding),
                                len(dfk.tasks), len(records.events)))  # fmt: skip

        sampler = threading.Thread(target=sample, daemon=True)
        base, started = rss(), time.perf_counter()
        sampler.start()
        driver.run()
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        tasks = dfk.task_count
    finally:
        parsl.dfk().cleanup()
        parsl.clear()
        records.close()
    return window_figures(samples, base, elapsed, records, plan, window, tasks)


def window_figures(samples, base, elapsed, records, plan, window, tasks) -> dict:
    mb = 2**20
    events = np.array([s[4] for s in samples])
    memory = np.array([s[1] for s in samples]) - base
    total_events = len(records.events)
    pickled = pickle.dumps((records.events, records.summary), protocol=5)
    tracemalloc.start()  # the records' size in memory: an equal copy, measured as it is built
    copy = pickle.loads(pickled)
    records_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del copy
    # Memory at each tenth of the run, and how much of it the records explain.
    tenths = [int(np.searchsorted(events, total_events * k / 10)) for k in range(1, 11)]
    tenths = [min(i, len(samples) - 1) for i in tenths]
    return {
        "z_max_tiles": len(plan.levels[plan.z_max]), "tiles_all_levels": plan.n_tiles,
        "window": window, "parsl_tasks": tasks, "elapsed_s": round(elapsed, 2),
        "max_outstanding": max(s[2] for s in samples),
        "max_parsl_task_records": max(s[3] for s in samples),
        "events": total_events, "summary_rows": len(records.summary),
        "records_mb": round(records_bytes / mb, 1),
        "records_kb_per_z_max_tile": round(records_bytes / len(plan.levels[plan.z_max]) / 1024, 2),
        "rss_growth_mb_by_tenth": [round(float(memory[i]) / mb, 1) for i in tenths],
        "events_by_tenth": [int(events[i]) for i in tenths],
        "rss_growth_minus_records_mb": round((float(memory[tenths[-1]]) - records_bytes) / mb, 1),
    }  # fmt: skip


# -- Parsl's task rate -----------------------------------------------------------------------
def noop(x):
    return x


def task_rate(n: int, root: Path) -> dict:
    import parsl
    from parsl import python_app

    from rasterflow.executors.parsl_configs import parsl_config
    from rasterflow.executors.sites import load_site

    site = root / "site.toml"
    root.mkdir(parents=True, exist_ok=True)
    site.write_text('kind = "local"\ndescription = "benchmark"\nworkers = 2\n')
    dfk = parsl.load(parsl_config(load_site(str(site)), root / "runinfo"))
    try:
        app = python_app(noop)
        app(0).result()  # the pool is up
        started = time.perf_counter()
        futures = [app(i) for i in range(n)]
        submitted = time.perf_counter() - started
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - started
    finally:
        dfk.cleanup()
        parsl.clear()
    return {"tasks": n, "submit_per_s": round(n / submitted), "complete_per_s": round(n / elapsed)}


# -- main -------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.plan_one:
        print(json.dumps(plan_one(args.plan_one, args.workers)))
        return 0
    result = {"machine": machine_info(), "planning": []}
    for n in args.sizes:
        print(f"planning {n} z-max tiles ...", flush=True)
        result["planning"].append(plan_in_subprocess(n, args.workers))
    root = Path(args.work)
    print(f"window: {args.window_tiles} tiles through the Driver ...", flush=True)
    result["window"] = window_run(args.window_tiles, args.batch_tiles, args.window,
                                  root / f"window-{os.getpid()}")  # fmt: skip
    print(f"task rate: {args.rate_tasks} no-op tasks, HTEX 2 workers ...", flush=True)
    result["task_rate"] = task_rate(args.rate_tasks, root / f"rate-{os.getpid()}")
    result["machine"]["load_avg_end"] = list(os.getloadavg())
    print_table(result)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "driver.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwritten: {out}")
    return 0


def print_table(result: dict) -> None:
    m = result["machine"]
    print(f"\n{m['date']}  {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB")
    print(f"{'z-max tiles':>12}{'plan s':>9}{'peak MB':>9}{'inputs MB':>11}{'batches':>9}")
    for row in result["planning"]:
        print(f"{row['z_max_tiles']:>12}{row['plan_s']:>9}{row['peak_over_baseline_mb']:>9}"
              f"{row['inputs_mb']:>11}{row['batches']:>9}")  # fmt: skip
    print(f"\nwindow: {json.dumps(result['window'])}")
    print(f"task rate: {json.dumps(result['task_rate'])}")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    parser.add_argument("--workers", type=int, default=256, help="workers assumed for batches")
    parser.add_argument("--window-tiles", type=int, default=10**4)
    parser.add_argument("--batch-tiles", type=int, default=8)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--rate-tasks", type=int, default=2000)
    parser.add_argument("--work", default="/tmp/rasterflow-bench")
    parser.add_argument("--plan-one", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
