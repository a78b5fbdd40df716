"""Load test of `rasterflow serve`: tiles/s and latency, loopback only, bounded.

Not a test: it prints a table and writes benchmarks/results/serve.json.

    .venv/bin/python benchmarks/bench_serve.py                 # 2 workers, defaults below
    .venv/bin/python benchmarks/bench_serve.py --workers 1 --requests 2000

A synthetic run (8x6 z-max tiles at z13, parents to z9; 3 statistics, no PNGs written) is
made once under --root. The server is started as users start it (`rasterflow serve CONFIG
--port P --workers W` on 127.0.0.1, a free port), and this script is its only client:
keep-alive HTTP/1.1 connections over asyncio streams, no If-None-Match, so every request
reads its GeoTIFF, colours the band and encodes the PNG (no cache hit). The requests cycle
through every (tile, statistic, palette, range) in a shuffled order: the config's palette
and range, `viridis` with a range, a CSS colour list.

Two phases, each bounded by a request count and a time limit, whichever comes first:
1. saturation: `--connections` clients send back to back (closed loop): the most tiles/s;
2. fixed rate: requests start on a schedule of `--rate` per second (open loop) on a pool
   of connections; latency counts from the scheduled start, so a stalled server is not
   hidden by a client that waits (no coordinated omission): p50/p99 at that load.
The client shares the 2 cores with the server (and, on a shared machine, with whatever else
runs): reported are also the CPU time per tile of the server's processes and of the client
(what 2 idle cores could do: 2000 ms / their sum), the time each tile took inside the
server (its access log's `ms`), each worker's share, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
STYLES = ["", "?palette=viridis&range=0,0.5", "?palette=%23000000,%23ff8800,%23ffffff"]


# -- the run and the server ---------------------------------------------------------------
def make_run(root: Path) -> Path:
    """A synthetic run under `root` (made once): its config path."""
    config_path = root / "config.json"
    if (root / "config__updated.json").exists():
        return config_path
    from rasterflow.workflow.config import load_config
    from rasterflow.workflow.demo.synthetic import make_sample
    from rasterflow.workflow.run import run_workflow

    make_sample(root, tiles=(8, 6))
    config = load_config(config_path).model_copy(update={"web_tiles": False})
    report = run_workflow(config, live_progress=False)
    assert report.exit_code == 0, report
    return config_path


def tile_urls(config_path: Path, seed: int = 1) -> list[str]:
    from rasterflow.workflow.config import load_config
    from rasterflow.workflow.products.viewer_data import geotiff_tiles

    config = load_config(config_path)
    urls = [f"/tiles/{quote(stat)}/{config.tms_id}/{z}/{x}/{y}.png{style}"
            for z, level in geotiff_tiles(config).items() for x, y in level
            for stat in config.stat_names for style in STYLES]  # fmt: skip
    random.Random(seed).shuffle(urls)
    return urls


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(config_path: Path, port: int, workers: int, log) -> subprocess.Popen:
    rasterflow = Path(sys.executable).parent / "rasterflow"
    server = subprocess.Popen(
        [str(rasterflow), "serve", str(config_path), "--port", str(port),
         "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if conn.recv(64).startswith(b"HTTP/1.1 200"):
                    return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not answer /healthz within 60 s")


# -- the client ----------------------------------------------------------------------------
class Connection:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def get(self, path: str) -> int:
        """One GET on this keep-alive connection; the status (the body is read and dropped)."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status


async def saturation(port: int, urls: list[str], count: int, limit_s: float, connections: int):
    """Closed loop: `connections` clients, back to back."""
    latencies, statuses, next_index = [], [], iter(range(count))
    deadline = time.perf_counter() + limit_s

    async def client():
        conn = await Connection.open(port)
        for i in next_index:
            if time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            statuses.append(await conn.get(urls[i % len(urls)]))
            latencies.append(time.perf_counter() - started)
        conn.writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return latencies, statuses, time.perf_counter() - started


async def fixed_rate(port: int, urls: list[str], count: int, limit_s: float, rate: float,
                     pool_size: int):  # fmt: skip
    """Open loop: request i starts at t0 + i / rate; latency from that scheduled time."""
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(pool_size):
        pool.put_nowait(await Connection.open(port))
    latencies, statuses = [], []
    t0 = time.perf_counter()

    async def one(i: int, scheduled: float):
        conn = await pool.get()
        try:
            statuses.append(await conn.get(urls[i % len(urls)]))
            latencies.append(time.perf_counter() - scheduled)
        finally:
            pool.put_nowait(conn)

    tasks = []
    for i in range(count):
        scheduled = t0 + i / rate
        if scheduled - t0 > limit_s:
            break
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return latencies, statuses, time.perf_counter() - t0


def summary(latencies, statuses, elapsed: float) -> dict:
    ms = np.array(latencies) * 1000
    return {"requests": len(ms), "errors": sum(s != 200 for s in statuses),
            "tiles_per_s": round(len(ms) / elapsed, 1), "seconds": round(elapsed, 2),
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(ms.max()), 2)}  # fmt: skip


def server_side(log_path: Path, since: str) -> dict:
    """From the server's own access log (lines after `since`): the time each tile took
    inside the server (without queueing in the client or the kernel) and each worker's share."""
    ms, workers = [], {}
    for line in log_path.read_text().splitlines():
        if line.startswith("{") and '"/tiles/' in line:
            entry = json.loads(line)
            if entry["ts"] >= since:
                ms.append(entry["ms"])
                workers[entry["pid"]] = workers.get(entry["pid"], 0) + 1
    if not ms:
        return {}
    return {"server_p50_ms": round(float(np.percentile(ms, 50)), 2),
            "server_p99_ms": round(float(np.percentile(ms, 99)), 2),
            "worker_shares": sorted((round(n / len(ms), 2) for n in workers.values()),
                                    reverse=True)}  # fmt: skip


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def server_cpu_s(server: subprocess.Popen) -> float:
    """CPU seconds (user + system) used so far by the server and its worker processes."""
    root = psutil.Process(server.pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def client_cpu(fn):
    before = time.process_time()
    result = fn()
    return result, time.process_time() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/rasterflow-bench-serve"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=6000, help="per phase, at most")
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase, at most")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, default=300.0)
    args = parser.parse_args()

    config_path = make_run(args.root)
    urls = tile_urls(config_path)
    port = free_port()
    log_path = args.root / "serve.log"
    with open(log_path, "wb") as log:
        server = start_server(config_path, port, args.workers, log)
        try:
            warm = asyncio.run(saturation(port, urls, 200, 10, args.connections))
            assert not summary(*warm)["errors"], "errors while warming up"
            sat_start, cpu0 = now_iso(), server_cpu_s(server)
            sat, sat_cpu = client_cpu(lambda: asyncio.run(
                saturation(port, urls, args.requests, args.seconds, args.connections)))  # fmt: skip
            fixed_start, cpu1 = now_iso(), server_cpu_s(server)
            fixed, fixed_cpu = client_cpu(lambda: asyncio.run(
                fixed_rate(port, urls, args.requests, args.seconds, args.rate, 32)))  # fmt: skip
            cpu2 = server_cpu_s(server)
        finally:
            server.terminate()
            server.wait(timeout=20)
    fixed_side = server_side(log_path, fixed_start)
    sat_side = server_side(log_path, sat_start)  # both phases: saturation's include fixed's
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
        "python": platform.python_version(), "workers": args.workers,
        "distinct_urls": len(urls), "connections": args.connections,
        "load_avg_1min_end": os.getloadavg()[0],
        "saturation": {**summary(*sat), "client_cpu_s": round(sat_cpu, 2),
                       "server_cpu_ms_per_tile": round((cpu1 - cpu0) / len(sat[0]) * 1000, 2),
                       "worker_shares": sat_side.get("worker_shares")},
        "fixed_rate": {"offered_per_s": args.rate, **summary(*fixed),
                       "client_cpu_s": round(fixed_cpu, 2),
                       "server_cpu_ms_per_tile": round((cpu2 - cpu1) / len(fixed[0]) * 1000, 2),
                       **fixed_side},
    }  # fmt: skip
    print(f"{'phase':<26}{'requests':>9}{'errors':>7}{'tiles/s':>9}{'p50 ms':>8}"
          f"{'p90 ms':>8}{'p99 ms':>8}{'max ms':>8}")  # fmt: skip
    for name, row in (("saturation (closed loop)", results["saturation"]),
                      (f"fixed {args.rate:g}/s (open loop)", results["fixed_rate"])):  # fmt: skip
        cells = [row[key] for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms")]
        print(
            f"{name:<26}{row['requests']:>9}{row['errors']:>7}{row['tiles_per_s']:>9}"
            + "".join(f"{cell:>8}" for cell in cells)
        )
    per_tile = results["saturation"]["server_cpu_ms_per_tile"]
    client = sat_cpu / len(sat[0]) * 1000
    print(f"CPU per tile: server {per_tile} ms, client {client:.2f} ms: "
          f"{2000 / (per_tile + client):.0f} tiles/s on 2 idle cores")  # fmt: skip
    print(f"fixed rate, inside the server: p50 {fixed_side.get('server_p50_ms')} ms, "
          f"p99 {fixed_side.get('server_p99_ms')} ms; worker shares "
          f"{fixed_side.get('worker_shares')}; load average at the end "
          f"{results['load_avg_1min_end']:.2f}")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
