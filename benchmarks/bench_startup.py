"""Small runs end to end: where the wall time of a one-tile and a 64-tile run goes.

Not a test: it prints a table and writes benchmarks/results/startup.json.

    .venv/bin/python benchmarks/bench_startup.py                    # both jobs, cli and api, 5 reps
    .venv/bin/python benchmarks/bench_startup.py --reps 3 --jobs 64 --modes cli
    .venv/bin/python benchmarks/bench_startup.py --tree /tmp/base --tree .   # before/after

The jobs are the synthetic sample of `rasterflow demo` (3 statistics, 256 px tiles, web
tiles on) over z13 to z10: `one` is 1 z-max tile (4 GeoTIFFs), `64` is 8x8 z-max tiles
(97 GeoTIFFs). Each repeat is a first run (outputs deleted, staged tiles kept) in a fresh
process: `cli` runs `python -m rasterflow run CONFIG`; `api` runs a child that imports
rasterflow and calls `run_workflow` then `publish`, as the command does. `--tree DIR` puts
DIR first on PYTHONPATH (driver and workers), to time another version of the code, e.g.
`git archive HEAD | tar -x -C DIR`; given several times, the trees take turns run by run,
so that the machine's other load falls on each alike.

The timeline comes from records each process writes itself, not from the code under test:
the parent's clock around the process, Parsl's own logs (the DataFlowKernel's first line,
the interchange's start, the worker pool's first line, each worker's start), the event
log (each tile's start and duration). Phases, in seconds from the process start:
`dfk` (imports, config, planning, lock: the driver before Parsl), `ix` (interchange up),
`pool` (the worker pool process has started), `worker` (first worker ready), `tile0` (first
tile starts: the task arrived and the worker imported rasterflow), `end` (last tile ends),
`exit`. `tile0_extra` is the first z-max tile's duration over the median one (lazy imports,
numba kernels loaded from the on-disk cache); `after` = exit - end (records, __updated.json,
products, Parsl's shutdown, interpreter exit). The `api` child also reports its own import
time and the time `publish` took.

`--imports` also times the worker path in a fresh process: Parsl's worker-pool module, then
`rasterflow.workflow.tasks`, then a first and second z-max tile, and lists the packages
with the most import time (`python -X importtime`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
JOBS = {"one": (1, 1), "64": (8, 8)}
POINTS = ("dfk", "ix", "pool", "worker", "tile0", "end", "exit")


# -- the jobs ------------------------------------------------------------------------------
def prepare(work: Path, job: str, tree: str | None) -> Path:
    """The job's staged sample and config, generated once into `work` (in a child process:
    this one imports no rasterflow, so that --tree times only that tree)."""
    root = work / f"job-{job}"
    config = root / "config.json"
    if not config.exists():
        work.mkdir(parents=True, exist_ok=True)
        code = (
            "import sys\nfrom rasterflow.workflow.demo.synthetic import make_sample\n"
            f"make_sample(sys.argv[1], z_range=(10, 13), tiles={JOBS[job]!r})"
        )
        subprocess.run([sys.executable, "-c", code, str(root)], env=child_env(tree), check=True,
                       cwd=work)  # fmt: skip
    return config


def clear_outputs(config_path: Path) -> None:
    """Delete everything a run wrote (outputs, records, Parsl's run dirs); keep the input."""
    raw = json.loads(config_path.read_text())
    root = config_path.parent
    for key in ("dir_geotiff", "dir_web_tiles"):
        shutil.rmtree(raw[key], ignore_errors=True)
    shutil.rmtree(root / ".rasterflow", ignore_errors=True)
    for path in root.iterdir():
        if path.is_file() and path.name != "config.json":
            path.unlink()


def child_env(tree: str | None) -> dict:
    """The environment of every child (run from the job's folder, never from a checkout,
    whose `rasterflow/` would come first on sys.path)."""
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
    return env


def run_once(config: Path, mode: str, tree: str | None) -> dict:
    clear_outputs(config)
    if mode == "cli":
        command = [sys.executable, "-m", "rasterflow", "run", str(config)]
    else:
        command = [sys.executable, __file__, "--child", str(config)]
    started = time.time()
    done = subprocess.run(command, env=child_env(tree), capture_output=True, text=True,
                          cwd=config.parent)  # fmt: skip
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    marks = json.loads(done.stdout.strip().splitlines()[-1]) if mode == "api" else {}
    return timeline(config, started, ended) | {f"api_{k}": v for k, v in marks.items()}


def child(config_path: str) -> None:
    """The `api` mode: what `rasterflow run` does, timed from inside."""
    started = time.time()
    from rasterflow.workflow.config import load_config
    from rasterflow.workflow.products import publish
    from rasterflow.workflow.run import run_workflow

    imported = time.time()
    config = load_config(config_path)
    report = run_workflow(config, live_progress=False)
    ran = time.time()
    publish(config, report)
    marks = {"import": imported - started, "run_workflow": ran - imported,
             "publish": time.time() - ran}  # fmt: skip
    print(json.dumps({key: round(value, 3) for key, value in marks.items()}))


# -- the timeline, from the logs ----------------------------------------------------------
def first_stamp(path: Path, pattern: str = "") -> float | None:
    """The epoch time of the first line of a Parsl log that matches `pattern`."""
    if not path.exists():
        return None
    for line in path.read_text(errors="replace").splitlines():
        head, _, rest = line.partition(" ")
        if re.fullmatch(r"\d+\.\d+", head) and re.search(pattern, rest):
            return float(head)
    return None


def timeline(config_path: Path, started: float, ended: float) -> dict:
    import pandas as pd

    raw = json.loads(config_path.read_text())
    (run_dir,) = sorted((config_path.parent / ".rasterflow" / "runinfo").glob("[0-9]*"))[-1:]
    htex = run_dir / "htex_local"
    workers = [first_stamp(p, "Worker .* started") for p in htex.glob("block-*/*/worker_*.log")]
    events = tile_times(pd.read_csv(raw["filename_rasterization_events"]))
    begin = events["begin"]
    finish = begin + events["duration_s"]
    zmax = events["step"] == "rasterize"
    first = begin[zmax].idxmin()
    points = {
        "dfk": first_stamp(run_dir / "parsl.log"),
        "ix": first_stamp(htex / "interchange.log"),
        "pool": min(
            filter(None, [first_stamp(p) for p in htex.glob("block-*/*/manager.log")]), default=None
        ),  # fmt: skip
        "worker": min(filter(None, workers), default=None),
        "tile0": float(begin.min()),
        "end": float(finish.max()),
        "exit": ended,
    }
    row = {key: (None if value is None else round(value - started, 3))
           for key, value in points.items()}  # fmt: skip
    row["wall"] = round(ended - started, 3)
    row["tile0_extra"] = round(events.loc[first, "duration_s"]
                               - events.loc[zmax, "duration_s"].median(), 3)  # fmt: skip
    row["after"] = round(ended - float(finish.max()), 3)
    row["worker_s"] = round(float(events["duration_s"].sum()), 3)
    row["tiles"] = {step: int(n) for step, n in events["step"].value_counts().items()}
    return row


def tile_times(events):
    """`begin` (epoch s) and `duration_s` per row, from either layout of the event log:
    PDG's (`start_time` epoch, `total_time`) or the older (`started_at` ISO, `duration_s`)."""
    import pandas as pd

    if "start_time" in events:
        return events.assign(begin=events["start_time"], duration_s=events["total_time"])
    stamps = pd.to_datetime(events["started_at"], utc=True)
    return events.assign(begin=stamps.map(lambda stamp: stamp.timestamp()))


# -- the worker path ----------------------------------------------------------------------
WORKER_PATH = """
import json, sys, time
t0 = time.time()
import parsl.executors.high_throughput.process_worker_pool
t1 = time.time()
from rasterflow.workflow import tasks
t2 = time.time()
from pathlib import Path
from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.config import load_config
config = load_config(sys.argv[1])
found = sorted(Path(config.dir_staged, config.tms_id, str(config.z_max)).glob("*/*.gpkg"))
(a, sa), (b, sb) = [(Tile(config.z_max, int(p.parent.name), int(p.stem)), str(p))
                    for p in found[:2]]
t3 = time.time()
tasks.rasterize_batch([a], [sa], config)
t4 = time.time()
tasks.rasterize_batch([b], [sb], config)
t5 = time.time()
heavy = [m for m in ("numba", "pandas", "geopandas", "rasterio", "pyogrio", "PIL", "coloraide",
                     "globus_compute_sdk") if m in sys.modules]
print(json.dumps({"parsl_pool": t1 - t0, "tasks": t2 - t1, "tile1": t4 - t3, "tile2": t5 - t4,
                  "imported": heavy}))
"""


def worker_path(config: Path, tree: str | None, reps: int) -> dict:
    """As in a worker of the local site: PARSL_WORKER_RANK set, and the tree's lean-import
    folder (if it has one) first on PYTHONPATH, as its worker_init puts it."""
    env = child_env(tree)
    env["PARSL_WORKER_RANK"] = "0"
    lean = Path(tree or Path(__file__).resolve().parents[1], "executors", "parsl_lean")
    if lean.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(lean), env.get("PYTHONPATH")]))
    samples = []
    for _ in range(reps):
        command = [sys.executable, "-c", WORKER_PATH, str(config)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                              cwd=config.parent)  # fmt: skip
        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = {key: round(statistics.median(s[key] for s in samples), 3)
              for key in ("parsl_pool", "tasks", "tile1", "tile2")}  # fmt: skip
    result["imported"] = samples[-1]["imported"]
    timed = subprocess.run([sys.executable, "-X", "importtime", "-c",
                            "import parsl.executors.high_throughput.process_worker_pool\n"
                            "import rasterflow.workflow.tasks"],
                           env=env, capture_output=True, text=True, check=True,
                           cwd=config.parent)  # fmt: skip
    result["top_packages_ms"] = top_packages(timed.stderr)
    return result


def top_packages(importtime: str, count: int = 10) -> dict[str, float]:
    """Self import time summed per top-level package, the largest first."""
    totals: dict[str, int] = {}
    for line in importtime.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            top = match.group(2).split(".")[0]
            totals[top] = totals.get(top, 0) + int(match.group(1))
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:count]
    return {name: round(us / 1000, 1) for name, us in ranked}


# -- report -------------------------------------------------------------------------------
VERSIONS = """
import json, platform, sys
import numba, parsl, rasterio
print(json.dumps({"python": platform.python_version(), "gdal": rasterio.__gdal_version__,
                  "numba": numba.__version__, "parsl": parsl.__version__}))
"""


def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo
                  if line.startswith("model name")), "?")  # fmt: skip
    versions = subprocess.run([sys.executable, "-c", VERSIONS], capture_output=True, text=True,
                              cwd="/")  # fmt: skip
    return {"date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "cpu": model, "cores": os.cpu_count(), "load_avg_start": list(os.getloadavg()),
            **json.loads(versions.stdout or "{}")}  # fmt: skip


def summarize(rows: list[dict]) -> dict:
    keys = [*POINTS, "wall", "tile0_extra", "after", "worker_s", "api_import", "api_publish"]
    out = {}
    for key in keys:
        values = [row[key] for row in rows if row.get(key) is not None]
        if values:
            out[key] = {"median": round(statistics.median(values), 3),
                        "min": round(min(values), 3), "max": round(max(values), 3)}  # fmt: skip
    return out


def print_table(results: dict) -> None:
    print(f"\n{'tree':>8} {'job':>4} {'mode':>4} | " + " ".join(f"{p:>6}" for p in POINTS)
          + f" | {'wall':>6} {'min':>6} | {'tile0+':>6} {'after':>6} | import publish")  # fmt: skip
    for key, summary in results.items():
        tree, job, mode = key.split("/")
        cells = " ".join(f"{summary.get(p, {}).get('median', float('nan')):6.2f}" for p in POINTS)
        extra = ""
        if mode == "api":
            extra = (
                f"{summary['api_import']['median']:6.2f} {summary['api_publish']['median']:7.2f}"
            )
        print(f"{tree:>8} {job:>4} {mode:>4} | {cells} | {summary['wall']['median']:6.2f} "
              f"{summary['wall']['min']:6.2f} | {summary['tile0_extra']['median']:6.2f} "
              f"{summary['after']['median']:6.2f} | {extra}")  # fmt: skip


def tree_label(tree: str) -> str:
    return "this" if tree == "." else Path(tree).name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--jobs", default="one,64")
    parser.add_argument("--modes", default="cli,api")
    parser.add_argument("--tree", action="append",
                        help="a source tree put first on PYTHONPATH ('.': this checkout, the "
                             "default); give several to compare them, run by run")  # fmt: skip
    parser.add_argument("--work", default="/tmp/rasterflow-bench-startup")
    parser.add_argument("--imports", action="store_true", help="also time the worker path")
    parser.add_argument("--label", default="", help="a suffix for the JSON's name")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    machine = machine_info()
    trees = {tree_label(tree): (None if tree == "." else tree) for tree in args.tree or ["."]}
    work = Path(args.work)
    configs = {job: prepare(work, job, None) for job in args.jobs.split(",")}
    rows: dict[str, list[dict]] = {}
    for tree in trees.values():  # one unmeasured run each: numba's cache, the page cache
        for config in configs.values():
            run_once(config, "cli", tree)
    for rep in range(args.reps):  # interleaved, so that a busy spell hits every case alike
        for job, config in configs.items():
            for mode in args.modes.split(","):
                for label, tree in trees.items():
                    row = run_once(config, mode, tree)
                    rows.setdefault(f"{label}/{job}/{mode}", []).append(row)
                    print(f"rep {rep + 1} {label}/{job}/{mode}: wall {row['wall']:.2f} s, first "
                          f"tile at {row['tile0']:.2f}, last ends {row['end']:.2f}",
                          flush=True)  # fmt: skip
    results = {key: summarize(found) for key, found in rows.items()}
    print_table(results)
    report = {"machine": machine, "trees": {label: tree or "this checkout"
              for label, tree in trees.items()}, "results": results, "runs": rows}  # fmt: skip
    if args.imports:
        config = configs.get("64") or prepare(work, "64", None)  # two tiles needed
        report["worker_path"] = {label: worker_path(config, tree, args.reps)
                                 for label, tree in trees.items()}  # fmt: skip
        for label, found in report["worker_path"].items():
            print(f"\nworker path, fresh process, {label} (s):", json.dumps(found))
    report["machine"]["load_avg_end"] = list(os.getloadavg())
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        name = f"startup{'-' + args.label if args.label else ''}.json"
        (RESULTS / name).write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {RESULTS / name}  ({datetime.now():%H:%M})")


if __name__ == "__main__":
    main()
