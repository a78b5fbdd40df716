"""Parsl's worker pool, its workers forked warm from a fork server instead of spawned cold.

    python -m rasterflow.executors.warm_pool --preload MODULE[,MODULE] <the pool's arguments>

Parsl's pool (`process_worker_pool.py`) starts its manager and every worker with
`multiprocessing`'s spawn: each is a new interpreter that imports Parsl, then, at its
first task, the apps' libraries (numba, GDAL, pyarrow, Pillow), about 1.4 s of CPU per
worker, paid again by every worker of every block. Here the pool is the same code, run
with Parsl's spawn context swapped for a `forkserver` one whose server imports the
`--preload` modules once, while the pool itself starts: every process the pool starts is
then forked from it in milliseconds, with those modules loaded.

The server imports the modules and nothing else runs in it (no thread, no task), so
forking it is safe; the workers run exactly Parsl's worker code. The one place this
reaches past Parsl's public API, `parsl.multiprocessing.SpawnContext`, is checked by
tests/unit/executors/test_warm_pool.py.
"""

from __future__ import annotations

import multiprocessing
import runpy
import sys
from multiprocessing import forkserver

POOL_MODULE = "parsl.executors.high_throughput.process_worker_pool"
PRELOAD_FLAG = "--preload="


def launch_command(python: str, preload: list[str], parsl_command: str) -> str:
    """HighThroughputExecutor's `launch_cmd`: Parsl's own command with this module in place
    of the `process_worker_pool.py` script."""
    script, _, arguments = parsl_command.partition(" ")
    assert script == "process_worker_pool.py", parsl_command
    return f"{python} -m {__name__} {PRELOAD_FLAG}{','.join(preload)} {arguments}"


def forking_context(preload: list[str]) -> multiprocessing.context.ForkServerContext:
    """A forkserver context whose server is started now, importing Parsl's pool and
    `preload` in the background (the pool's own imports go on meanwhile)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([POOL_MODULE, *preload])
    forkserver.ensure_running()
    return context


def main(argv: list[str]) -> None:
    preload = [name for name in argv[0].removeprefix(PRELOAD_FLAG).split(",") if name]
    context = forking_context(preload)
    import parsl.multiprocessing

    # Read by the pool module at its import; the two contexts offer the same calls.
    parsl.multiprocessing.SpawnContext = context  # type: ignore[assignment]
    sys.argv = ["process_worker_pool.py", *argv[1:]]
    runpy.run_module(POOL_MODULE, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
