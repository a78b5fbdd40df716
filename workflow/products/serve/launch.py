"""Start the server: uvicorn in `workers` processes, each building the app from the config.

Workers are processes: reading, colouring and encoding a tile hold the GIL most of the time,
so one process serves about one core's worth of tiles. Each worker reads the config named in
RASTERFLOW_SERVE_CONFIG (set here; workers are spawned, not forked, and import the app).

How connections reach the workers matters: with one listening socket shared by all
(uvicorn's own `--workers`), whichever worker is awake accepts, and a client's keep-alive
connections often all land on one worker (measured: a 32-connection client, 100 % of its
requests on one of two workers, p99 427 ms at 300 tiles/s). On Linux each worker here binds
its own socket with SO_REUSEPORT instead and the kernel spreads connections over them by
their addresses' hash. A port already in use (by anything, another `rasterflow serve` too)
is refused first, so two servers never share a port unknowingly. Elsewhere, uvicorn's own
workers.
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

APP_FACTORY = "rasterflow.workflow.products.serve.app:app_from_environment"
DEFAULT_WORKERS = 2  # measured on 2 cores: see README "Serving the product"
UVICORN_OPTIONS: dict[str, Any] = {
    "factory": True,
    "access_log": False,  # ours: one JSON line per request (serve/logs.py)
    "log_level": "warning",
    "server_header": False,
    "timeout_keep_alive": 30,
    "timeout_graceful_shutdown": 5,
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(config_path: str | Path, host: str = "127.0.0.1", port: int = 8000,
          workers: int = DEFAULT_WORKERS) -> None:  # fmt: skip
    """Serve the run of `config_path` until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    from rasterflow.workflow.products.serve.app import ENV_CONFIG

    os.environ[ENV_CONFIG] = str(Path(config_path).resolve())
    if workers > 1 and sys.platform == "linux":
        _check_port_free(host, port)
        _supervise(host, port, workers)
    else:
        uvicorn.run(APP_FACTORY, host=host, port=port, workers=workers if workers > 1 else None,
                    **UVICORN_OPTIONS)  # fmt: skip


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn chooses


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as err:
            sys.exit(f"rasterflow serve: cannot listen on {host}:{port}: {err.strerror}")


def _worker(host: str, port: int) -> None:
    """One worker process: its own SO_REUSEPORT socket, one uvicorn server on it."""
    import uvicorn

    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    config = uvicorn.Config(APP_FACTORY, host=host, port=port, **UVICORN_OPTIONS)
    uvicorn.Server(config).run(sockets=[sock])


def _supervise(host: str, port: int, workers: int) -> None:
    """Start the workers, restart one that dies, stop them all on SIGINT or SIGTERM."""
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    running = [_start(context, host, port) for _ in range(workers)]
    restarts: list[float] = []
    failed = False
    while not stopping:
        time.sleep(0.2)
        for index, process in enumerate(running):
            if not process.is_alive() and not stopping:
                restarts = [t for t in restarts if time.monotonic() - t < 60] + [time.monotonic()]
                if len(restarts) > 5 * workers:  # a worker that cannot start: give up
                    stopping = failed = True
                    print("rasterflow serve: workers keep dying; stopping", file=sys.stderr)
                    break
                running[index] = _start(context, host, port)
    for process in running:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)  # each finishes its requests, then exits
    for process in running:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
    if failed:
        sys.exit(1)


def _start(context, host: str, port: int):
    process = context.Process(target=_worker, args=(host, port), name="rasterflow-serve-worker")
    process.start()
    return process
