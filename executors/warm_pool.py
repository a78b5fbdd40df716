"""Parsl's worker pool, its workers forked warm from a fork server instead of spawned cold.

    python -m rasterflow.executors.warm_pool --preload=MODULE[,MODULE] [--server=SOCKET,PID]
        <the pool's arguments>

Parsl's pool (`process_worker_pool.py`) starts its manager and every worker with
`multiprocessing`'s spawn: each is a new interpreter that imports Parsl, then, at its
first task, the apps' libraries (numba, GDAL, pyarrow, Pillow), about 1.4 s of CPU per
worker, paid again by every worker of every block. Here the pool is the same code, run
with Parsl's spawn context swapped for a `forkserver` one whose server has imported the
`--preload` modules: every process the pool starts is forked from it in milliseconds,
with those modules loaded.

Which server: with `--server`, a `WarmServer` the driver started the moment it knew it
had work, so that its imports (1.3 s) overlap Parsl's own start (the interchange, then
this pool) instead of following it. Its workers take the pool's environment and output
before they run (`PoolProcess`); the server ends them when it ends (the driver stops it, or
dies), and the pool when Parsl ends the pool. Without `--server` (Python 3.14+, a site with
worker_init lines, no room for a socket), or if that server is gone, the pool starts its
own, as Parsl's multiprocessing does, importing the modules while the pool itself starts.

The server imports the modules and nothing else runs in it (no thread, no task), so
forking it is safe; the workers run exactly Parsl's worker code. This reaches past
public APIs in two places: `parsl.multiprocessing.SpawnContext`, and the fields of
`multiprocessing.forkserver`'s server that say where it listens; both are checked by
tests/unit/executors/test_warm_pool.py.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from multiprocessing import forkserver, reduction, resource_tracker
from multiprocessing.context import ForkServerContext, ForkServerProcess
from typing import Any

from rasterflow.executors import parsl_lean

POOL_MODULE = "parsl.executors.high_throughput.process_worker_pool"
# `server_context` sets the fields multiprocessing's server client has in Python 3.11-3.13;
# 3.14 adds an authentication key: there, the pool starts its own server.
DRIVER_SERVER_WORKS = sys.version_info < (3, 14)
PRELOAD_FLAG = "--preload="
SERVER_FLAG = "--server="

# The driver's server: multiprocessing's own fork server loop. It runs in a process group
# of its own (Popen's process_group), which its workers share: when its loop ends (the
# driver closed its end of the `alive` pipe, or died), it ends them too.
SERVE = """\
import os, shutil, signal, warnings
from multiprocessing import forkserver
# Each process re-runs the pool module, preloaded here on purpose, as its __mp_main__.
warnings.filterwarnings("ignore", ".* found in sys.modules after import of package",
                        RuntimeWarning)
try:
    forkserver.main({listener}, {alive}, {modules!r})
finally:
    shutil.rmtree({folder!r}, ignore_errors=True)  # its socket: gone with the driver too
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    import time; time.sleep(1)
    os.killpg(0, signal.SIGKILL)  # itself too, last
"""


class WarmServer:
    """A local pool's fork server, started by the driver ahead of Parsl: `start()` returns
    the pool's `--server=` argument, `stop()` ends the server and every process it forked."""

    def __init__(self, preload: Sequence[str]):
        self.preload = list(preload)
        self.process: subprocess.Popen | None = None
        self._alive = -1  # the write end of the server's `alive` pipe
        self._folder = ""

    def start(self) -> str:
        """Start the server (once; its imports go on in the background)."""
        if self.process is None:
            self._folder = tempfile.mkdtemp(prefix="rasterflow-forkserver-")  # 0700
            try:
                self.process = self._spawn()
            except BaseException:
                shutil.rmtree(self._folder, ignore_errors=True)
                raise
        return f"{SERVER_FLAG}{self.address},{self.process.pid}"

    def _spawn(self) -> subprocess.Popen:
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(self.address)
            listener.listen()
            alive_r, self._alive = os.pipe()
            code = SERVE.format(listener=listener.fileno(), alive=alive_r, folder=self._folder,
                                modules=server_modules(self.preload))  # fmt: skip
            try:
                return subprocess.Popen(
                    [sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                    env=parsl_lean.environ(), pass_fds=(listener.fileno(), alive_r),
                    process_group=0)  # fmt: skip
            except BaseException:
                os.close(self._alive)
                raise
            finally:
                os.close(alive_r)

    @property
    def address(self) -> str:
        return os.path.join(self._folder, "socket")

    def stop(self) -> None:
        if self.process is None:
            return
        import psutil

        forked = []  # its workers: not this process's children, so waited for by status
        with suppress(psutil.Error):
            forked = psutil.Process(self.process.pid).children(recursive=True)
        _end_group(self.process.pid, signal.SIGTERM)  # before its loop sees `alive` close
        if self._alive >= 0:
            os.close(self._alive)
            self._alive = -1
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        _end_group(self.process.pid, signal.SIGKILL)  # what ignored SIGTERM (the group id
        self.process.wait()  # stays valid while a member lives)
        _wait_dead(forked, timeout=10)
        shutil.rmtree(self._folder, ignore_errors=True)
        self.process = None


def _wait_dead(processes: list, timeout: float) -> None:
    """Until these processes (psutil's) have exited."""
    deadline = time.monotonic() + timeout
    for process in processes:
        while not _exited(process) and time.monotonic() < deadline:
            time.sleep(0.01)


def _end_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def server_modules(preload: Sequence[str]) -> list[str]:
    """What a fork server imports: Parsl's pool (its workers' code), this module
    (`PoolProcess`) and `preload`."""
    return [POOL_MODULE, __name__, *preload]


def launch_command(python: str, preload: list[str], parsl_command: str,
                   server: str | None = None) -> str:  # fmt: skip
    """HighThroughputExecutor's `launch_cmd`: Parsl's own command with this module in place
    of the `process_worker_pool.py` script (`server`: a `WarmServer.start()` argument)."""
    script, _, arguments = parsl_command.partition(" ")
    assert script == "process_worker_pool.py", parsl_command
    ours = [f"{PRELOAD_FLAG}{','.join(preload)}", *([server] if server else [])]
    words = " ".join(shlex.quote(word) for word in ours).replace("{", "{{").replace("}", "}}")
    return f"{python} -m {__name__} {words} {arguments}"


class PoolProcess(ForkServerProcess):
    """A process of the pool. Forked by the driver's server, it has the driver's
    environment and output: it takes the pool's (the site's worker_init, Parsl's variables;
    the pool's log files, not the driver's terminal) to run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pool_environ = dict(os.environ)
        self._pool_output = (_PassedFd(1), _PassedFd(2))

    def run(self) -> None:
        os.environ.clear()
        os.environ.update(self._pool_environ)
        for target, passed in enumerate(self._pool_output, start=1):
            os.dup2(int(passed), target)
        super().run()


class _PassedFd:
    """A descriptor of the pool, handed to the forked process with its other descriptors
    (multiprocessing's DupFd, while the process object is pickled for the server)."""

    def __init__(self, fd: int):
        self.fd = fd

    def __int__(self) -> int:
        return self.fd

    def __reduce__(self):
        return _received, (reduction.DupFd(self.fd),)


def _received(duplicate: Any) -> _PassedFd:
    return _PassedFd(duplicate.detach())


class PoolContext(ForkServerContext):
    Process = PoolProcess


def forking_context(preload: list[str]) -> PoolContext:
    """A forkserver context whose server is started now, importing Parsl's pool and
    `preload` in the background (the pool's own imports go on meanwhile)."""
    context = PoolContext()
    context.set_forkserver_preload(server_modules(preload))
    forkserver.ensure_running()
    return context


def server_context(argument: str, preload: list[str]) -> PoolContext:
    """A forkserver context on the driver's server (`--server=SOCKET,PID`), or, once that is
    gone, on a server of this process's own, as `forking_context` starts."""
    address, pid = argument.removeprefix(SERVER_FLAG).rsplit(",", 1)
    driver_server = int(pid)
    server: Any = forkserver._forkserver
    start_own = server.ensure_running

    def ensure_running() -> None:
        if server._forkserver_pid == driver_server:
            if not _exited(driver_server):
                resource_tracker.ensure_running()  # the children's, as start_own does
                return
            # Its workers outlive it, still taking tasks, while the pool replaces them.
            _end_group(driver_server, signal.SIGKILL)
            os.close(server._forkserver_alive_fd)
            server._forkserver_pid = server._forkserver_address = None
        start_own()  # starts ours if none runs

    # What multiprocessing's own ensure_running() sets once it started a server; the
    # `alive` descriptor it hands each child is only for a server the child would start.
    server._forkserver_address = address
    server._forkserver_pid = driver_server
    server._forkserver_alive_fd = os.open(os.devnull, os.O_RDONLY)
    server.ensure_running = ensure_running
    forkserver.set_forkserver_preload(server_modules(preload))
    return PoolContext()


def end_children_with_pool() -> None:
    """On SIGTERM, end this pool's processes, then the pool. Parsl ends a pool by signalling
    its process group (LocalProvider's cancel, a scale-in), which the processes a driver's
    server forked are not in."""

    def end(signum: int, frame: Any) -> None:
        for child in multiprocessing.active_children():
            with suppress(OSError):
                child.kill()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, end)


def _exited(process: Any) -> bool:
    """A process (a pid, or psutil's) gone, or a zombie: only its parent's wait is left."""
    import psutil

    try:
        process = process if isinstance(process, psutil.Process) else psutil.Process(process)
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def main(argv: list[str]) -> None:
    ours = [arg for arg in argv[:2] if arg.startswith((PRELOAD_FLAG, SERVER_FLAG))]
    options = dict(arg.split("=", 1) for arg in ours)
    preload = [name for name in options.get(PRELOAD_FLAG[:-1], "").split(",") if name]
    server = options.get(SERVER_FLAG[:-1])
    context = server_context(server, preload) if server else forking_context(preload)
    if server:
        end_children_with_pool()
    import parsl.multiprocessing

    # Read by the pool module at its import; the two contexts offer the same calls.
    parsl.multiprocessing.SpawnContext = context  # type: ignore[assignment]
    sys.argv = ["process_worker_pool.py", *argv[len(ours) :]]
    runpy.run_module(POOL_MODULE, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    # Run from the module under its own name: the workers unpickle `PoolProcess` from it.
    from rasterflow.executors.warm_pool import main as pool_main

    pool_main(sys.argv[1:])
