"""The processes a test started (Parsl interchanges, worker pools, drivers), found and ended."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil


def processes_under(root: Path) -> list[psutil.Process]:
    """Live processes whose command line names a path under `root` (ours, from this test)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if process.pid != os.getpid() and str(root) in " ".join(process.info["cmdline"] or ()):
            found.append(process)
    return found


def end_processes(pids) -> None:
    """SIGKILL these pids (processes this test started) if still alive."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
            procs[-1].kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def dead_pid() -> int:
    """The pid of a process that has ended (a writer or a driver that is gone)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
