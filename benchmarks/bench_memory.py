"""A worker's memory over a long run: RSS after 100 and after 1,000 z-max tiles.

Not a test: it prints a table and writes benchmarks/results/memory.json.

    .venv/bin/python benchmarks/bench_memory.py                 # 1,000 tiles
    .venv/bin/python benchmarks/bench_memory.py --tiles 5000    # longer

One process plays a Parsl worker: it calls the three batch functions of `rasterflow.workflow.tasks`
(the very functions the workers run) in a loop over a synthetic sample of 50 distinct z-max
tiles, generated once in `--work`: each round rasterizes every tile (in batches), builds
every parent level above them and renders the web tiles of every level, as a run does. RSS
is sampled after every batch; the target (issue 5) is RSS after 1,000 tiles within 10 % of
RSS after 100. The first 100 tiles carry the one-off costs (imports are done before the
baseline, but numba's compiled kernels, GDAL's and PROJ's caches, the allocator's arenas
fill during the first batches), so a leak shows as growth after that.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))
# Only what a Parsl worker holds: its pool module and the apps (the sample generator, the
# machine report and their imports stay in the parent process).
import parsl.executors.high_throughput.process_worker_pool  # noqa: E402, F401

from rasterflow.rasterize_core.tiles import Tile, morton_key  # noqa: E402
from rasterflow.workflow import tasks as apps  # noqa: E402
from rasterflow.workflow.config import load_config  # noqa: E402
from rasterflow.workflow.plan import list_staged  # noqa: E402

RESULTS = ROOT / "results"
SAMPLE = {"z_range": (9, 13), "tiles": (10, 5), "cells_per_tile": 24, "seed": 17}  # 50 tiles
BATCH = 10  # z-max tiles per rasterize batch (a real batch holds up to 64)


def prepare(work: Path) -> None:
    """The 50-tile sample (generated once, reused) and a fresh output tree."""
    from rasterflow.workflow.demo.synthetic import make_sample

    if not (work / "config.json").exists():
        shutil.rmtree(work, ignore_errors=True)
        make_sample(work, **SAMPLE)
    for name in ("geotiff", "web_tiles"):
        shutil.rmtree(work / name, ignore_errors=True)


def levels(tiles, z_min: int) -> dict[int, list]:
    """Every level's tiles above the z-max ones, Morton-ordered as the plan has them."""
    out, current = {}, tiles
    while current and current[0].z > z_min:
        current = sorted({t.parent() for t in current}, key=morton_key)
        out[current[0].z] = current
    return out


def fixed_ranges(config) -> dict[str, tuple[float, float]]:
    return {name: (0.0, 1.0 if "coverage" in name else 30.0) for name in config.stat_names}


def one_round(config, sources: dict, parents: dict, done: int, samples: list, started: float):
    """Rasterize every tile (batches of BATCH), then parents and web tiles of every level."""
    tiles = sorted(sources, key=morton_key)
    ranges = fixed_ranges(config)
    process = psutil.Process()
    for start in range(0, len(tiles), BATCH):
        batch = tiles[start : start + BATCH]
        results = apps.rasterize_batch(batch, [sources[t] for t in batch], config)
        assert results.ok().all(), results.events.to_pylist()
        done += len(batch)
        samples.append({"tiles": done, "rss_mb": process.memory_info().rss / 2**20,
                        "seconds": round(time.time() - started, 1)})  # fmt: skip
    for z in sorted(parents, reverse=True):
        for start in range(0, len(parents[z]), BATCH):
            results = apps.parents_batch(parents[z][start : start + BATCH], config)
            assert results.ok().all()
    for level in [tiles, *parents.values()]:
        for start in range(0, len(level), BATCH):
            chunk = level[start : start + BATCH]
            assert apps.webtiles_batch(chunk, config, ranges).ok().all()
    samples[-1]["rss_mb_after_parents_webtiles"] = process.memory_info().rss / 2**20
    return done


def memory_at(samples: list, tiles: int, key: str) -> float:
    """`key` at the end of the round that reached `tiles` z-max tiles (after its parents and
    web tiles, so both figures include all three functions)."""
    return next(s[key] for s in samples if s["tiles"] >= tiles and key in s)


def worker(work: Path, tiles: int) -> dict:
    """The loop, in a process that holds what a worker holds; returns the figures."""
    config = load_config(work / "config.json")
    staged = list_staged(config)
    listed = zip(staged.z.tolist(), staged.x.tolist(), staged.y.tolist(), strict=True)
    sources = {Tile(z, x, y): staged.path(z, x, y) for z, x, y in listed}
    parents = levels(sorted(sources, key=morton_key), config.z_min)
    process = psutil.Process()
    gc.collect()
    baseline = process.memory_info().rss / 2**20  # imports done, nothing run yet
    samples: list[dict] = []
    started, done = time.time(), 0
    while done < tiles:
        done = one_round(config, sources, parents, done, samples, started)
        samples[-1]["uss_mb"] = process.memory_full_info().uss / 2**20
    staged_mb = sum(os.path.getsize(path) for path in sources.values()) / 2**20
    rss, uss = "rss_mb_after_parents_webtiles", "uss_mb"
    return {
        "sample": {**SAMPLE, "z_max_tiles": len(sources), "staged_mb": round(staged_mb, 1),
                   "parent_tiles_per_round": sum(len(v) for v in parents.values())},
        "rss_mb": {"after_imports": round(baseline, 1),
                   "after_100": round(memory_at(samples, 100, rss), 1),
                   f"after_{tiles}": round(memory_at(samples, tiles, rss), 1),
                   "peak": round(max(s["rss_mb"] for s in samples), 1)},
        "uss_mb": {"after_100": round(memory_at(samples, 100, uss), 1),
                   f"after_{tiles}": round(memory_at(samples, tiles, uss), 1)},
        "seconds": round(time.time() - started, 1),
        "samples": samples,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=1000, help="z-max tiles to rasterize")
    parser.add_argument("--work", default="/tmp/rasterflow-bench-memory")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # the child: print the figures as JSON
        print(json.dumps(worker(Path(args.work), args.tiles)))
        return

    from bench_tiles import machine_info

    prepare(Path(args.work))
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--tiles",
        str(args.tiles),
        "--work",
        args.work,
    ]
    result = {"machine": machine_info(), **json.loads(subprocess.check_output(command))}
    rss = result["rss_mb"]
    result["ratio"] = round(rss[f"after_{args.tiles}"] / rss["after_100"], 4)
    result["target"] = "ratio <= 1.10"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(result, indent=2))
    sample = result["sample"]
    print(f"{sample['z_max_tiles']} distinct z-max tiles ({sample['staged_mb']} MB staged), "
          f"{sample['parent_tiles_per_round']} parents per round, batches of {BATCH}; "
          f"{result['seconds']} s")  # fmt: skip
    print(f"{'MB':>24} {'RSS':>8} {'USS':>8}")
    for label, value in rss.items():
        uss = result["uss_mb"].get(label)
        print(f"{label:>24} {value:8.1f} {'' if uss is None else f'{uss:8.1f}'}")
    verdict = "ok" if result["ratio"] <= 1.10 else "GROWS"
    print(f"{f'RSS {args.tiles} / 100':>24} {result['ratio']:8.3f}   (target <= 1.10: {verdict})")
    print(f"written {RESULTS / 'memory.json'}")


if __name__ == "__main__":
    main()
