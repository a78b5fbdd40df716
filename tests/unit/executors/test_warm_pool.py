"""The warm pool's two contracts with Parsl: its launch command is Parsl's own with the
script replaced, and Parsl's pool takes its process context from the one name it swaps."""

from __future__ import annotations

import ast
import collections
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest
from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

from rasterflow.executors import warm_pool
from rasterflow.executors.parsl_configs import parsl_config
from rasterflow.executors.sites import load_site
from rasterflow.executors.warm_pool import WarmServer


def test_launch_command_is_parsls_with_this_module_in_front():
    for server in (None, "--server=/tmp/s,12"):
        command = warm_pool.launch_command("/venv/bin/python", ["a.b", "c"], DEFAULT_LAUNCH_CMD,
                                           server)  # fmt: skip
        words = shlex.split(command.replace("{", "").replace("}", ""))
        ours = ["/venv/bin/python", "-m", warm_pool.__name__, "--preload=a.b,c"]
        assert words[:4] == ours and ("--server=/tmp/s,12" in words) == (server is not None)
        assert command.endswith(DEFAULT_LAUNCH_CMD.partition(" ")[2])
    # Parsl formats the command: a brace or a space in the socket's path survives it.
    odd = warm_pool.launch_command("py", ["m"], DEFAULT_LAUNCH_CMD, "--server=/t m{p}/s,1")
    assert "'--server=/t m{p}/s,1'" in odd.format_map(collections.defaultdict(str))


needs_driver_server = pytest.mark.skipif(
    not warm_pool.DRIVER_SERVER_WORKS, reason="Python 3.14+: the pool starts its own server"
)


@needs_driver_server
def test_local_site_forks_from_the_drivers_server_unless_it_has_its_own_shell(tmp_path):
    site = load_site("local")
    server = WarmServer(["colorsys"])
    try:
        (warm,) = parsl_config(site, tmp_path, warm_server=server).executors
        assert warm.launch_cmd.startswith(
            f"{sys.executable} -m {warm_pool.__name__} --preload=colorsys "
            f"--server={server.address},{server.process.pid} "
        )
    finally:
        server.stop()
    shell = site.model_copy(update={"worker_init": "ulimit -n 4096"})
    own = WarmServer(["colorsys"])
    (warm,) = parsl_config(shell, tmp_path, warm_server=own).executors
    assert own.process is None and "--server" not in warm.launch_cmd
    assert warm.launch_cmd.startswith(f"{sys.executable} -m {warm_pool.__name__} --preload=")
    (plain,) = parsl_config(site, tmp_path).executors
    assert plain.launch_cmd.startswith("process_worker_pool.py ")


def test_no_socket_for_the_server_leaves_the_pool_its_own(tmp_path, monkeypatch, caplog):
    deep = tmp_path / ("d" * 120)  # past AF_UNIX's 108 bytes
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    server = WarmServer(["colorsys"])
    (warm,) = parsl_config(load_site("local"), tmp_path, warm_server=server).executors
    assert server.process is None and "--server" not in warm.launch_cmd
    assert "--preload=colorsys" in warm.launch_cmd and "pool's fork server" in caplog.text
    assert list(deep.iterdir()) == []  # its folder removed


# A worker pool in miniature: forks one process that reports, one that sleeps, then waits.
POOL = """
import json, os, sys, time
from rasterflow.executors import warm_pool

def report(queue):
    print("written by the pool's process", file=sys.stderr, flush=True)
    queue.put({"ppid": os.getppid(), "marker": os.environ.get("POOL_MARKER"),
               "preloaded": "colorsys" in sys.modules})

if __name__ == "__main__":
    context = warm_pool.server_context(sys.argv[1], ["colorsys"])
    warm_pool.end_children_with_pool()
    queue = context.Queue()
    reporter = context.Process(target=report, args=(queue,))
    reporter.start()
    seen = queue.get(timeout=60)
    reporter.join(60)
    sleeper = context.Process(target=time.sleep, args=(600,), daemon=True)
    sleeper.start()
    print(json.dumps({**seen, "exitcode": reporter.exitcode, "sleeper": sleeper.pid}), flush=True)
    sys.stdin.read()
"""


def run_pool(tmp_path: Path, server_argument: str) -> tuple[subprocess.Popen, dict]:
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    pool = subprocess.Popen([sys.executable, str(script), server_argument], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "POOL_MARKER": "pool"})  # fmt: skip
    return pool, json.loads(pool.stdout.readline())


@needs_driver_server
@pytest.mark.slow
def test_pool_forks_from_the_drivers_server_in_its_own_environment(tmp_path, capfd):
    """The processes of a pool told `--server` are the driver's server's children, with its
    modules loaded, the pool's environment and output; stopping the server ends them."""
    server = WarmServer(["colorsys"])
    pool, seen = run_pool(tmp_path, server.start())
    try:
        assert seen["ppid"] == server.process.pid and seen["exitcode"] == 0
        assert seen["preloaded"] and seen["marker"] == "pool" and "POOL_MARKER" not in os.environ
        sleeper = psutil.Process(seen["sleeper"])
        server.stop()
        sleeper.wait(timeout=30)  # ended with the server, though its pool still runs
        assert pool.poll() is None
    finally:
        _, errors = pool.communicate("", timeout=60)
        server.stop()
    assert "written by the pool's process" in errors
    assert "written by" not in capfd.readouterr().err  # the server's (the driver's) stderr
    assert not Path(server.address).parent.exists()


@needs_driver_server
@pytest.mark.slow
def test_pool_ended_by_parsl_ends_the_processes_it_forked(tmp_path):
    """Parsl ends a pool with SIGTERM to its process group, which the processes the
    driver's server forked for it are not in: they end with it all the same."""
    server = WarmServer(["colorsys"])
    pool, seen = run_pool(tmp_path, server.start())
    try:
        sleeper = psutil.Process(seen["sleeper"])
        pool.send_signal(signal.SIGTERM)
        sleeper.wait(timeout=30)
        assert pool.wait(timeout=30) == 128 + signal.SIGTERM and server.process.poll() is None
    finally:
        pool.kill()
        server.stop()


# A driver in miniature: starts a server, says where, then waits to be killed.
DRIVER = """
import json, sys, time
from rasterflow.executors.warm_pool import WarmServer
server = WarmServer(["colorsys"])
argument = server.start()
print(json.dumps({"argument": argument, "server": server.process.pid,
                  "folder": server._folder}), flush=True)
time.sleep(600)
"""


@needs_driver_server
@pytest.mark.slow
def test_a_killed_drivers_server_ends_with_its_workers(tmp_path):
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], text=True, stdout=subprocess.PIPE)
    started = json.loads(driver.stdout.readline())
    pool, seen = run_pool(tmp_path, started["argument"])
    try:
        sleeper = psutil.Process(seen["sleeper"])
        server = psutil.Process(started["server"])
        driver.kill()
        driver.wait(timeout=30)
        sleeper.wait(timeout=60)
        psutil.wait_procs([server], timeout=60)
        assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE
        assert not Path(started["folder"]).exists()
    finally:
        pool.communicate("", timeout=60)


@pytest.mark.slow
def test_pool_starts_its_own_server_when_the_drivers_is_gone(tmp_path):
    server = WarmServer(["colorsys"])
    argument = server.start()
    gone = server.process.pid
    server.stop()
    pool, seen = run_pool(tmp_path, argument)
    try:
        assert seen["exitcode"] == 0 and seen["ppid"] not in (gone, pool.pid)
        own_server = psutil.Process(seen["ppid"])
        assert own_server.ppid() == pool.pid and seen["preloaded"]
    finally:
        pool.communicate("", timeout=60)


def test_parsls_pool_reads_its_context_from_parsl_multiprocessing():
    """`main` swaps `parsl.multiprocessing.SpawnContext` before the pool module runs: the
    pool must import that name (and use no other way to start processes)."""
    import parsl.multiprocessing

    assert hasattr(parsl.multiprocessing, "SpawnContext")
    source = Path(importlib.util.find_spec(warm_pool.POOL_MODULE).origin).read_text()
    imports = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)]
    names = [[a.name for a in node.names] for node in imports
             if node.module == "parsl.multiprocessing"]  # fmt: skip
    assert names == [["SpawnContext"]]
    assert "multiprocessing.Process(" not in source and "get_context(" not in source
