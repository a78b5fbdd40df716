"""The driver at scale: planning, real runs of two sizes and their no-op reruns, simulated
runs up to 10^7 z-max tiles, Parsl's task rate.

Not a test: it prints a table and writes benchmarks/results/driver.json (the parts asked
for; others are kept from the last file).

    .venv/bin/python benchmarks/bench_driver.py                       # everything (~30 min)
    .venv/bin/python benchmarks/bench_driver.py --parts real --real 3000 24000
    .venv/bin/python benchmarks/bench_driver.py --parts simulate --simulate 100000 10000000

- planning: `make_plan` over n z-max tiles given as arrays (the listing's output), each
  size in a fresh process: time, and peak RSS (VmHWM) over the baseline after imports.
- real: `run_workflow` in its own process, site `local` (HTEX, 2 workers), on synthetic
  staged trees of tiny tiles (32 px, about one polygon each, z15 to z12; generated once
  into --work, about 10 ms a tile), then again with nothing to do. The
  driver process reports its own peak RSS and CPU (`getrusage(RUSAGE_SELF)`); per
  additional z-max tile = (bigger - smaller) / (difference in tiles).
- simulate: the real driver, plan, resume and records with stub apps (see
  `driver_scale.simulate`): peak memory and tiles/s up to 10^7 tiles.
- task rate: no-op apps through Parsl's HighThroughputExecutor with 2 local workers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from driver_scale import bench_config, real_run, simulate, staged_arrays  # noqa: E402

RESULTS = ROOT / "results"


# -- planning, one size per process -----------------------------------------------------------
def plan_one(n: int, workers: int) -> dict:
    from driver_scale import status_value

    from rasterflow.workflow.plan import plan_run

    config = bench_config(Path("/tmp/rasterflow-bench-driver"))
    base = status_value("VmRSS")
    started = time.perf_counter()
    staged = staged_arrays(n, "/data/staged")
    inputs_s, after_inputs = time.perf_counter() - started, status_value("VmRSS")
    started = time.perf_counter()
    plan = plan_run(config, staged, workers)
    plan_s = time.perf_counter() - started
    del staged
    mb = 2**20
    return {
        "z_max_tiles": n, "plan_s": round(plan_s, 2), "inputs_s": round(inputs_s, 2),
        "inputs_mb": round((after_inputs - base) / mb, 1),
        "peak_over_baseline_mb": round((status_value("VmHWM") - base) / mb, 1),
        "plan_held_mb": round(sum(a.nbytes for level in plan.levels.values() for a in (
            level.x, level.y, level.keys, level.cuts)) / mb + (plan.sizes.nbytes +
            plan.mtimes.nbytes) / mb, 1),
        "tiles_all_levels": plan.n_tiles,
        "batches": sum(level.n_batches for level in plan.levels.values()),
        "batch_mb": round(plan.batch_bytes / 1e6, 1), "workers_assumed": workers,
    }  # fmt: skip


def in_subprocess(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True,
                         text=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


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


# -- per additional tile ----------------------------------------------------------------------
def slopes(real: list[dict]) -> dict:
    """Driver memory, CPU and no-op rerun time per additional z-max tile, between the
    smallest and the largest real run."""
    if len(real) < 2:
        return {}
    by_size = sorted(real, key=lambda r: r["z_max_tiles"])
    small, big = by_size[0], by_size[-1]
    extra = big["z_max_tiles"] - small["z_max_tiles"]

    def per_tile(run: str, key: str, scale: float) -> float:
        return round((big[run][key] - small[run][key]) * scale / extra, 4)

    return {
        "between": [small["z_max_tiles"], big["z_max_tiles"]],
        "peak_rss_kb_per_tile": per_tile("fresh", "peak_rss_kb", 1.0),
        "rss_during_tiles_kb_per_tile": per_tile("fresh", "max_rss_during_tiles_kb", 1.0),
        "cpu_ms_per_tile": per_tile("fresh", "cpu_s", 1000.0),
        "noop_rerun_ms_per_tile": per_tile("noop_rerun", "wall_s", 1000.0),
        "noop_rerun_peak_rss_kb_per_tile": per_tile("noop_rerun", "peak_rss_kb", 1.0),
        "targets": {"peak_rss_kb_per_tile": 0.2, "cpu_ms_per_tile": 0.1,
                    "noop_rerun_ms_per_tile": 0.1, "noop_rerun_s_at_24000": 5.0},
    }  # fmt: skip


# -- main -------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.plan_one:
        print(json.dumps(plan_one(args.plan_one, args.workers)))
        return 0
    out = RESULTS / "driver.json"
    result = json.loads(out.read_text()) if out.exists() else {}
    from bench_tiles import machine_info  # heavy imports: not in the measured subprocesses

    result["machine"] = machine_info()
    work = Path(args.work)
    if "plan" in args.parts:
        result["planning"] = []
        for n in args.plan:
            print(f"planning {n} z-max tiles ...", flush=True)
            result["planning"].append(in_subprocess("--plan-one", str(n), "--workers",
                                                    str(args.workers)))  # fmt: skip
    if "real" in args.parts:
        result["real"] = []
        for n in args.real:
            print(f"real run of {n} z-max tiles, then a rerun with nothing to do ...", flush=True)
            result["real"].append(real_run(n, work, args.site))
        result["real_per_tile"] = slopes(result["real"])
    if "simulate" in args.parts:
        result["simulated"] = []
        for n in args.simulate:
            print(f"simulated run of {n} z-max tiles (stub apps) ...", flush=True)
            result["simulated"].append(in_subprocess("--simulate-one", str(n), "--work",
                                                     args.work))  # fmt: skip
    if "rate" in args.parts:
        print(f"task rate: {args.rate_tasks} no-op tasks, HTEX 2 workers ...", flush=True)
        result["task_rate"] = task_rate(args.rate_tasks, work / f"rate-{os.getpid()}")
    result["machine"]["load_avg_end"] = list(os.getloadavg())
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print_table(result)
    print(f"\nwritten: {out}")
    return 0


def print_table(result: dict) -> None:
    m = result["machine"]
    print(f"\n{m['date']}  {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB")
    for row in result.get("planning", []):
        print(
            f"plan {row['z_max_tiles']:>10} tiles: {row['plan_s']} s, peak "
            f"{row['peak_over_baseline_mb']} MB over baseline, held {row['plan_held_mb']} MB"
        )
    for row in result.get("real", []):
        fresh, again = row["fresh"], row["noop_rerun"]
        print(
            f"real {row['z_max_tiles']:>7} tiles: wall {fresh['wall_s']:.1f} s, driver CPU "
            f"{fresh['cpu_s']:.1f} s, peak {fresh['peak_rss_kb'] / 1024:.1f} MB; no-op rerun "
            f"{again['wall_s']:.2f} s, peak {again['peak_rss_kb'] / 1024:.1f} MB"
        )
    if result.get("real_per_tile"):
        print(f"per additional z-max tile: {json.dumps(result['real_per_tile'])}")
    for row in result.get("simulated", []):
        print(
            f"simulated {row['z_max_tiles']:>9}: {row['z_max_tiles_per_s']} z-max tiles/s, "
            f"peak {row['peak_rss_mb']} MB ({row['peak_over_start_mb']} over start), records "
            f"end {row['records_end_s']} s"
        )
    if "task_rate" in result:
        print(f"task rate: {json.dumps(result['task_rate'])}")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["plan", "real", "simulate", "rate"],
                        choices=["plan", "real", "simulate", "rate"])  # fmt: skip
    parser.add_argument("--plan", type=int, nargs="+", default=[10**4, 10**5, 10**6, 10**7])
    parser.add_argument("--real", type=int, nargs="+", default=[3000, 100_000])
    parser.add_argument("--simulate", type=int, nargs="+", default=[10**5, 10**6, 10**7])
    parser.add_argument("--site", default="local")
    parser.add_argument("--workers", type=int, default=256, help="workers assumed for batches")
    parser.add_argument("--rate-tasks", type=int, default=2000)
    parser.add_argument("--work", default="/tmp/rasterflow-bench-driver")
    parser.add_argument("--plan-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--simulate-one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.simulate_one:
        print(json.dumps(simulate(args.simulate_one, Path(args.work) / "simulated")))
        raise SystemExit(0)
    return args


if __name__ == "__main__":
    raise SystemExit(main())
