"""Per-tile costs against the I/O floor, and the whole pipeline's busy-ness (DESIGN §7).

Not a test: it prints a table and writes benchmarks/results/tiles_<sample>.json.

    .venv/bin/python benchmarks/bench_tiles.py                      # synthetic, 256 z-max tiles
    .venv/bin/python benchmarks/bench_tiles.py --staged ../shared/data/pdg-iwp-staged

Per tile, in this one process, warm (JIT compiled and caches loaded first), each stage is
timed `--repeats` times, interleaved tile by tile, and the median kept, both wall clock and
this thread's CPU time (which other processes on a shared machine do not inflate):
- z-max: `full` is the worker's whole per-tile path (apps: read, compute, write, summary,
  checksum); then its parts: read, centroids, coverage (shared by the area statistics), one
  band per statistic, write, summary, checksum. The I/O floor is `pyogrio.read_arrow` +
  `shapely.from_wkb` of the same columns, plus a plain rasterio write of the same bands with
  the same profile (deflate level, blocks, interleave): the least any reader/writer does.
- parent: `full` (the worker's path), and read the children, reduce, write.
- PNG: the web-tile step of a tile (GeoTIFF read, colour, encode, write, checksum) per PNG.
Then the pipeline runs through Parsl (`run_workflow`, `--workers` local workers) while a
thread samples every Parsl process's CPU time and memory from /proc. Busy-ness is a
worker's CPU time over the window from the first tile's start to the last tile's end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics as stats_mod
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyogrio
import rasterio
import shapely
from pyproj import CRS

from rasterflow.rasterize_core import coverage, geotiff, pyramid
from rasterflow.rasterize_core.read import read_staged_tile
from rasterflow.rasterize_core.statistics import centroid_pixels, compute_band
from rasterflow.rasterize_core.tiles import Tile, tms_crs_wkt, xy_bounds
from rasterflow.workflow import tasks as apps
from rasterflow.workflow.config import RasterflowConfig, parse_config
from rasterflow.workflow.demo.synthetic import IWP_STATISTICS
from rasterflow.workflow.plan import list_staged
from rasterflow.workflow.run import run_workflow

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"zmax_over_floor": 1.5, "parent_over_read_write": 2.0, "png_ms": 10.0,
           "worker_peak_mb": 300.0, "worker_busy": 0.85}  # fmt: skip


# -- machine and sample -------------------------------------------------------------------
def machine_info() -> dict:
    import numba
    import parsl

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(), "cpu": model, "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(), "gdal": rasterio.__gdal_version__,
        "rasterio": rasterio.__version__, "shapely": shapely.__version__,
        "pyogrio": pyogrio.__version__, "numba": numba.__version__, "numpy": np.__version__,
        "parsl": parsl.__version__, "load_avg_start": list(os.getloadavg()),
    }  # fmt: skip


def prepare_sample(args) -> tuple[RasterflowConfig, str]:
    """The config to benchmark: a generated synthetic sample (cached in --work) or --staged."""
    work = Path(args.work)
    if args.staged:
        raw = {"dir_staged": str(Path(args.staged).resolve()), "tms_id": "WorldCRS84Quad",
               "z_range": [args.z_min, 13], "statistics": IWP_STATISTICS}  # fmt: skip
        return with_outputs(raw, work / "iwp"), "iwp"
    from rasterflow.workflow.demo.synthetic import make_sample

    cols, rows = args.tiles
    root = work / f"synthetic-{cols}x{rows}-c{args.cells}"
    if not (root / "config.json").exists():
        print(f"generating a synthetic sample in {root} (a couple of minutes) ...", flush=True)
        make_sample(root, z_range=(args.z_min, 13), tiles=(cols, rows), cells_per_tile=args.cells)
    raw = json.loads((root / "config.json").read_text())
    return with_outputs(raw, root / "out"), f"synthetic-{cols}x{rows}"


def with_outputs(raw: dict, out: Path) -> RasterflowConfig:
    """The config with every output under `out` (a benchmark never writes beside inputs)."""
    raw = {**raw, "dir_geotiff": str(out / "geotiff"), "dir_web_tiles": str(out / "web_tiles"),
           "filename_rasterization_events": str(out / "events.csv"),
           "filename_rasters_summary": str(out / "summary.csv"),
           "filename_config": str(out / "config.json")}  # fmt: skip
    return parse_config(raw, source="benchmark")


def pick_tiles(sources: dict[Tile, str], limit: int) -> list[Tile]:
    """Whole 2x2 families (so parents have children), spread over input sizes."""
    families: dict[Tile, list[Tile]] = {}
    for tile in sources:
        families.setdefault(tile.parent(), []).append(tile)
    largest = max(len(kids) for kids in families.values())
    full = [kids for kids in families.values() if len(kids) == largest]
    by_size = sorted(full, key=lambda kids: sum(os.path.getsize(sources[t]) for t in kids))
    want = max(1, limit // largest)
    return sorted(t for kids in by_size[:: max(1, len(by_size) // want)][:want] for t in kids)


# -- per-tile timing ----------------------------------------------------------------------
class Timer:
    """Wall and thread-CPU samples per (kind, stage, tile)."""

    def __init__(self):
        self.samples: dict[tuple[str, str, Tile], list[tuple[float, float]]] = {}

    def time(self, kind: str, stage: str, tile: Tile, work: Callable[[], object]):
        wall, cpu = time.perf_counter(), time.thread_time()
        result = work()
        sample = (time.perf_counter() - wall, time.thread_time() - cpu)
        self.samples.setdefault((kind, stage, tile), []).append(sample)
        return result

    def median(self, kind: str, stage: str, tile: Tile, which: int = 0) -> float:
        return stats_mod.median(s[which] for s in self.samples[(kind, stage, tile)])

    def stages(self, kind: str) -> list[str]:
        return list(dict.fromkeys(stage for k, stage, _ in self.samples if k == kind))

    def tiles(self, kind: str) -> list[Tile]:
        return list(dict.fromkeys(tile for k, _, tile in self.samples if k == kind))


def bench_zmax(timer: Timer, config: RasterflowConfig, tiles, sources, scratch: Path) -> None:
    crs = CRS.from_wkt(tms_crs_wkt(config.tms_id))
    wkt = tms_crs_wkt(config.tms_id)
    columns = apps.staged_columns(config)
    wanted = list(dict.fromkeys([columns.centroid_x, columns.centroid_y, *columns.properties]))
    specs = apps.stat_specs(config)
    out = scratch / "write.tif"
    for tile in tiles:
        src, grid = sources[tile], apps.grid_of(config, tile)
        stage = partial(timer.time, "zmax", tile=tile)
        stage("full", work=partial(apps._rasterize_tile, tile, src, config, crs))
        bands = geotiff.read_geotiff(apps.geotiff_path(config, tile))
        stage("floor_read", work=partial(_floor_read, src, wanted))
        floor_write = partial(_floor_write, scratch / "floor.tif", bands, grid, wkt, config.cog)
        stage("floor_write", work=floor_write)
        stage("floor_write_gdal_default", work=partial(floor_write, default=True))
        staged = stage("read", work=partial(read_staged_tile, src, columns, crs))
        own = stage("centroids", work=partial(centroid_pixels, staged, grid))
        triplets = None
        if any(spec.weight_by == "area" for spec in specs):
            geoms = staged.geometries
            triplets = stage("coverage", work=partial(
                coverage.coverage_triplets, geoms, grid.bounds, grid.shape))  # fmt: skip
        band = partial(compute_band, staged, grid=grid, own_pixels=own, triplets=triplets)
        pairs = zip(config.statistics, specs, strict=True)
        computed = np.stack([stage(f"stat:{stat.name}", work=partial(band, spec=spec))
                             for stat, spec in pairs])  # fmt: skip
        stage("write", work=partial(geotiff.write_geotiff, out, computed, grid.bounds, wkt,
                                    config.stat_names, config.cog))  # fmt: skip
        stage("summary", work=partial(_summary, config, tile, computed, grid, out))
        stage("checksum", work=lambda: hashlib.sha256(out.read_bytes()).hexdigest())


def _floor_read(path: str, columns: list[str]):
    meta, table = pyogrio.read_arrow(path, columns=columns)
    column = table.column(meta["geometry_name"] or "wkb_geometry")
    return shapely.from_wkb(column.to_numpy(zero_copy_only=False))


def _floor_write(path: Path, bands, grid, crs_wkt: str, cog: bool, default=False) -> None:
    """The same profile as ours; or, `default`, GDAL's own deflate (level 6, pixel
    interleave), the write DESIGN §7's "about 15 ms" floor was measured with."""
    profile = geotiff.geotiff_profile(bands, grid.bounds, crs_wkt, cog)
    if default:
        for key in ("zlevel", "level", "interleave"):
            profile.pop(key, None)
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(bands.astype(profile["dtype"]))


def _summary(config, tile, bands, grid, path) -> list[dict]:
    """What apps adds after the write: the bands as written, one summary row each."""
    written = bands.astype(geotiff.choose_dtype(bands)).astype("float64")
    return [apps.band_summary(stat.name, band, tile, grid.bounds, path)
            for stat, band in zip(config.statistics, written, strict=True)]  # fmt: skip


def bench_parents(timer: Timer, config: RasterflowConfig, parents, scratch: Path) -> None:
    methods = [stat.resampling_method for stat in config.statistics]
    empties = [apps.empty_value(stat.aggregation_method) for stat in config.statistics]
    wkt = tms_crs_wkt(config.tms_id)
    for tile in parents:
        kids = [apps.geotiff_path(config, child) for child in tile.children()]
        stage = partial(timer.time, "parent", tile=tile)
        stage("full", work=partial(apps._parent_tile, tile, kids, config))
        arrays = stage("read", work=lambda k=kids: [
            geotiff.read_geotiff(p) if p.exists() else None for p in k])  # fmt: skip
        bands = stage("reduce", work=partial(pyramid.build_parent, arrays, methods, empties))
        stage("write", work=partial(geotiff.write_geotiff, scratch / "parent.tif", bands,
                                    xy_bounds(config.tms_id, tile), wkt, config.stat_names,
                                    config.cog))  # fmt: skip


def bench_pngs(timer: Timer, config: RasterflowConfig, tiles, ranges) -> None:
    for tile in tiles:
        timer.time("png", "full", tile, partial(apps._webtile_tile, tile, config, ranges))


def value_ranges(config: RasterflowConfig, tiles) -> dict[str, tuple[float, float]]:
    """Each statistic's configured range, a None end filled from the measured tiles."""
    stacked = np.stack([geotiff.read_geotiff(apps.geotiff_path(config, t)) for t in tiles])
    ranges = {}
    for index, stat in enumerate(config.statistics):
        values = stacked[:, index][np.isfinite(stacked[:, index])]
        lo, hi = stat.val_range
        lo = float(values.min()) if lo is None and values.size else float(lo or 0.0)
        hi = float(values.max()) if hi is None and values.size else float(hi or lo + 1.0)
        ranges[stat.name] = (lo, max(lo, hi))
    return ranges


def summarise(timer: Timer, kind: str, per: int = 1) -> dict:
    """Per stage: the median over tiles of each tile's median (ms), wall and CPU."""
    out = {}
    for stage in timer.stages(kind):
        tiles = [t for t in timer.tiles(kind) if (kind, stage, t) in timer.samples]
        wall = [timer.median(kind, stage, t) * 1e3 / per for t in tiles]
        cpu = [timer.median(kind, stage, t, 1) * 1e3 / per for t in tiles]
        out[stage] = {"wall_ms": round(stats_mod.median(wall), 2),
                      "cpu_ms": round(stats_mod.median(cpu), 2),
                      "wall_ms_max": round(max(wall), 2)}  # fmt: skip
    return out


def ratios(timer: Timer, kind: str, over: list[str]) -> dict:
    """full / sum(over), per tile from its medians (wall and CPU), and per repeat: the spread
    of the ratios of adjacent measurements shows the noise."""
    per_tile, per_tile_cpu, per_repeat = [], [], []
    for tile in timer.tiles(kind):
        per_tile.append(timer.median(kind, "full", tile) / sum(
            timer.median(kind, s, tile) for s in over))  # fmt: skip
        per_tile_cpu.append(timer.median(kind, "full", tile, 1) / sum(
            timer.median(kind, s, tile, 1) for s in over))  # fmt: skip
        fulls = timer.samples[(kind, "full", tile)]
        parts = zip(*(timer.samples[(kind, s, tile)] for s in over), strict=True)
        per_repeat += [f[0] / sum(p[0] for p in ps) for f, ps in zip(fulls, parts, strict=True)]
    q1, q3 = np.percentile(per_repeat, [25, 75])
    return {"median": round(stats_mod.median(per_tile), 3), "max": round(max(per_tile), 3),
            "median_cpu": round(stats_mod.median(per_tile_cpu), 3),
            "repeat_iqr": [round(float(q1), 3), round(float(q3), 3)]}  # fmt: skip


# -- the whole pipeline through Parsl -----------------------------------------------------
class ProcessSampler(threading.Thread):
    """Every `period` s, the CPU time and peak RSS (VmHWM) of the run's processes.

    The worker pool is started detached (its parent is init), so it is found by its log
    folder, which lies under this run's output folder; other runs on the machine are not.
    """

    def __init__(self, marker: str, period: float = 0.2):
        super().__init__(daemon=True)
        self.marker, self.period = marker, period
        self.series: dict[int, list[tuple[float, float]]] = {}  # pid -> [(time, cpu s)]
        self.roles: dict[int, str] = {}
        self.created: dict[int, float] = {}
        self.peak_rss: dict[int, int] = {}
        self.peak_uss: dict[int, int] = {}  # private memory: what one more worker adds
        self.cores: list[tuple[float, list[float]]] = []  # (time, busy s per core), all users
        self._done = threading.Event()
        self._pool: psutil.Process | None = None

    def run(self) -> None:
        while not self._done.is_set():
            with _gone_is_fine():  # a process may end between listing and reading it
                self.sample()
            self._done.wait(self.period)

    def stop(self) -> None:
        self._done.set()
        self.join()
        with _gone_is_fine():
            self.sample()

    def sample(self) -> None:
        now = time.time()
        self.cores.append((now, [c.user + c.system + c.nice for c in psutil.cpu_times(True)]))
        for proc, role in self._processes():
            with _gone_is_fine():
                times = proc.cpu_times()
                self.series.setdefault(proc.pid, []).append((now, times.user + times.system))
                self.peak_rss[proc.pid] = max(self.peak_rss.get(proc.pid, 0), _status(proc.pid))
                if len(self.cores) % 5 == 1:  # smaps costs ~ms: once a second is enough
                    self.peak_uss[proc.pid] = max(self.peak_uss.get(proc.pid, 0), _uss(proc.pid))
                self.roles.setdefault(proc.pid, role)
                self.created.setdefault(proc.pid, proc.create_time())

    def _processes(self) -> list[tuple[psutil.Process, str]]:
        me = psutil.Process()
        found = [(me, "driver")]
        for child in me.children():
            with _gone_is_fine():
                if "interchange" in child.name():
                    found.append((child, "interchange"))
        if self._pool is None:
            self._pool = next((p for p in psutil.process_iter(["cmdline"])
                               if _is_our_pool(p.info["cmdline"], self.marker)), None)  # fmt: skip
        if self._pool is not None:
            with _gone_is_fine():
                found.append((self._pool, "manager"))
                for child in self._pool.children(recursive=True):  # workers: fork server's
                    with _gone_is_fine():
                        if "resource_tracker" not in " ".join(child.cmdline()):
                            found.append((child, "pool_child"))
        return found

    def name_workers(self, workers: int) -> None:
        """The pool's workers are the last `workers` children it spawned; an earlier one is a
        helper of the pool (its resource tracker is left out when sampling)."""
        children = sorted((p for p, r in self.roles.items() if r in ("pool_child", "worker")),
                          key=self.created.get)  # fmt: skip
        for pid in children:
            self.roles[pid] = "worker" if pid in children[-workers:] else "pool_helper"

    def cpu_between(self, pid: int, t0: float, t1: float) -> float:
        times, cpu = zip(*self.series[pid], strict=True)
        return float(np.interp(t1, times, cpu) - np.interp(t0, times, cpu))

    def core_busy_s(self, t0: float, t1: float) -> float:
        times = [t for t, _ in self.cores]
        per_core = np.array([c for _, c in self.cores]).T
        return sum(float(np.interp(t1, times, c) - np.interp(t0, times, c)) for c in per_core)


def _is_our_pool(cmdline: list[str] | None, marker: str) -> bool:
    text = " ".join(cmdline or [])
    return ("process_worker_pool" in text or "warm_pool" in text) and marker in text


class _gone_is_fine:
    """Ignore a process that ended between listing and reading it."""

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        return kind is not None and issubclass(kind, (psutil.Error, OSError))


def _status(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _uss(pid: int) -> int:
    lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    return sum(int(line.split()[1]) * 1024 for line in lines if line.startswith("Private_"))


def run_pipeline(config: RasterflowConfig, workers: int, root: Path) -> dict:
    """One fresh run of every step through Parsl, with its CPU, busy-ness and memory."""
    out = root / f"run-{datetime.now(UTC):%H%M%S%f}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run_config = with_outputs(config.model_dump(mode="json"), out)
    site = out / "site.toml"
    site.write_text(f'kind = "local"\ndescription = "benchmark"\nworkers = {workers}\n')
    sampler = ProcessSampler(marker=str(out))
    sampler.start()
    started = time.perf_counter()
    report = run_workflow(run_config, site=str(site), overwrite=True, live_progress=False)
    wall = time.perf_counter() - started
    sampler.stop()
    sampler.name_workers(workers)
    events = pd.read_csv(run_config.filename_rasterization_events)
    figures = pipeline_figures(sampler, events, wall, workers)
    figures.update(tiles_ok=report.ok, failed=len(report.failures))
    shutil.rmtree(out, ignore_errors=True)  # ~130 MB a run for the 256-tile sample
    return figures


def pipeline_figures(sampler: ProcessSampler, events: pd.DataFrame, wall: float, workers: int):
    begin = events["start_time"]  # epoch seconds
    t0, t1 = float(begin.min()), float((begin + events["total_time"]).max())
    window, cores = t1 - t0, os.cpu_count() or 1
    cpu_by_role: dict[str, float] = {}
    for pid, role in sampler.roles.items():
        used = sampler.series[pid][-1][1] - sampler.series[pid][0][1]
        cpu_by_role[role] = round(cpu_by_role.get(role, 0.0) + used, 2)
    workers_pids = [p for p, r in sampler.roles.items() if r == "worker"]
    busy = sorted(round(sampler.cpu_between(p, t0, t1) / window, 3) for p in workers_pids)
    ours = sum(sampler.cpu_between(pid, t0, t1) for pid in sampler.roles)
    others = max(0.0, sampler.core_busy_s(t0, t1) - ours)
    steps = events.groupby("step")["total_time"].agg(["count", "sum", "median"]).round(4)
    headline = {
        "wall_s": round(wall, 2), "window_s": round(window, 2),
        "busy_min_worker": busy[0] if busy else 0.0, "busy_workers": busy,
        "occupancy": round(float(events["total_time"].sum()) / (window * workers), 3),
        "other_load": round(others / (window * cores), 3),
        "busy_all_cores_wall": round(cpu_by_role.get("worker", 0.0) / (wall * cores), 3),
        "worker_peak_mb": round(max(sampler.peak_rss[p] for p in workers_pids) / 2**20, 1),
        "worker_private_mb": round(max(sampler.peak_uss.get(p, 0) for p in workers_pids)
                                   / 2**20, 1),
        "cpu_s": cpu_by_role,
    }  # fmt: skip
    return {"headline": headline, "steps": steps.to_dict("index")}


# -- report ---------------------------------------------------------------------------------
def targets(result: dict) -> dict:
    """Each target with the value measured in this run. Busy-ness is the workers' CPU time
    over the tile window; `occupancy` (time inside tiles) and `other_load` (CPU that other
    processes used meanwhile) tell a worker idling apart from a machine shared with others."""
    r, runs = result["ratios"], [run["headline"] for run in result["pipeline"]]
    zmax, parent = r["zmax_full_over_floor"], r["parent_full_over_read_write"]
    rows = {
        "zmax_over_floor": (zmax["median"], "<=", f"CPU time ratio {zmax['median_cpu']}"),
        "parent_over_read_write": (parent["median"], "<=",
                                   f"CPU time ratio {parent['median_cpu']}"),
        "png_ms": (result["per_tile"]["png"]["full"]["wall_ms"], "<=",
                   f"CPU {result['per_tile']['png']['full']['cpu_ms']} ms"),
    }  # fmt: skip
    if runs:
        private = max(run["worker_private_mb"] for run in runs)
        rows["worker_peak_mb"] = (max(run["worker_peak_mb"] for run in runs), "<=",
                                  f"peak RSS; private (USS) {private} MB")  # fmt: skip
    if runs and result["sample"]["z_max_tiles"] >= 256:  # the target is set on 256 tiles
        median = stats_mod.median
        occupancy = median(run["occupancy"] for run in runs)
        other = median(run["other_load"] for run in runs)
        rows["worker_busy"] = (median(run["busy_min_worker"] for run in runs), ">=",
                               f"occupancy {occupancy}, other load {other}")  # fmt: skip
    return {name: {"value": value, "target": TARGETS[name], "note": note,
                   "met": value <= TARGETS[name] if op == "<=" else value >= TARGETS[name]}
            for name, (value, op, note) in rows.items()}  # fmt: skip


def print_table(result: dict) -> None:
    m = result["machine"]
    print(f"\n{m['date']}  {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, load average "
          f"{m['load_avg_start'][0]:.2f} at start, {m['load_avg_end'][0]:.2f} at end")  # fmt: skip
    print(f"sample: {json.dumps(result['sample'])}")
    print(f"\n{'per tile (median of tile medians)':<36}{'wall ms':>9}{'cpu ms':>9}{'max ms':>9}")
    for kind in ("zmax", "parent", "png"):
        for stage, row in result["per_tile"][kind].items():
            print(f"  {kind + ' ' + stage:<34}{row['wall_ms']:>9.2f}{row['cpu_ms']:>9.2f}"
                  f"{row['wall_ms_max']:>9.2f}")  # fmt: skip
    for name, value in result["ratios"].items():
        print(f"  {name:<34}{value['median']:>9.3f}{value['median_cpu']:>9.3f}  (max "
              f"{value['max']}, per-repeat IQR {value['repeat_iqr']})")  # fmt: skip
    for run in result["pipeline"]:
        print(f"\npipeline: {json.dumps(run['headline'])}")
    print("\ntargets:")
    for name, row in result["targets"].items():
        print(f"  {name:<24}{row['value']:>9.3f}  target {row['target']:<6} "
              f"{'met' if row['met'] else 'NOT met':<8} {row['note']}")  # fmt: skip


# -- main -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict = {"machine": machine_info()}
    config, name = prepare_sample(args)
    staged = list_staged(config)
    listed = zip(staged.z.tolist(), staged.x.tolist(), staged.y.tolist(), strict=True)
    sources = {Tile(z, x, y): staged.path(z, x, y) for z, x, y in listed}
    tiles = pick_tiles(sources, args.per_tile)
    parents = sorted({t.parent() for t in tiles})
    mb = sum(os.path.getsize(sources[t]) for t in tiles) / len(tiles) / 1e6
    result["sample"] = {"name": name, "z_max_tiles": len(sources), "timed_z_max": len(tiles),
                        "timed_parents": len(parents), "repeats": args.repeats,
                        "stats": config.stat_names, "mb_per_timed_tile": round(mb, 2)}  # fmt: skip
    scratch = Path(config.dir_geotiff).parent / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"per tile: {len(tiles)} z-max tiles, {len(parents)} parents, {args.repeats} repeats")
    bench_zmax(Timer(), config, tiles[:1], sources, scratch)  # warm: JIT cache, GDAL drivers
    timer = Timer()
    for _ in range(args.repeats):
        bench_zmax(timer, config, tiles, sources, scratch)
    ranges = value_ranges(config, tiles)
    for _ in range(args.repeats):
        bench_parents(timer, config, parents, scratch)
        bench_pngs(timer, config, tiles, ranges)
    result["per_tile"] = {"zmax": summarise(timer, "zmax"), "parent": summarise(timer, "parent"),
                          "png": summarise(timer, "png", per=len(config.statistics))}  # fmt: skip
    result["ratios"] = {
        "zmax_full_over_floor": ratios(timer, "zmax", ["floor_read", "floor_write"]),
        "zmax_full_over_gdal_default_floor": ratios(
            timer, "zmax", ["floor_read", "floor_write_gdal_default"]
        ),  # fmt: skip
        "parent_full_over_read_write": ratios(timer, "parent", ["read", "write"]),
    }
    result["pipeline"] = []
    for index in range(args.pipeline_runs):
        print(f"pipeline run {index + 1}/{args.pipeline_runs}, {args.workers} workers", flush=True)
        result["pipeline"].append(run_pipeline(config, args.workers, Path(args.work) / "runs"))
    result["machine"]["load_avg_end"] = list(os.getloadavg())
    result["targets"] = targets(result)
    print_table(result)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"tiles_{name}.json"
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"\nwritten: {out}")
    return 0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--staged", help="a staged folder ({tms}/{z}/{x}/{y}.gpkg) instead")
    parser.add_argument("--work", default="/tmp/rasterflow-bench", help="samples and outputs")
    parser.add_argument("--tiles", type=int, nargs=2, default=(16, 16), metavar=("COLS", "ROWS"),
                        help="synthetic z-max tiles (default 16 16: 256)")  # fmt: skip
    parser.add_argument(
        "--cells",
        type=int,
        default=60,
        help="synthetic cells per tile side (60: ~3600 polygons, as the real)",
    )
    parser.add_argument("--z-min", type=int, default=9)
    parser.add_argument("--per-tile", type=int, default=16, help="z-max tiles timed one by one")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pipeline-runs", type=int, default=3)
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
