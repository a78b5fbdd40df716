"""One run per output: a lock file naming host, pid and batch job, with a heartbeat.

On the same host a lock whose pid is gone is stale at once; from another host
(a shared filesystem), a lock whose heartbeat is older than two minutes.

A SIGKILLed driver leaves its Parsl interchange and worker pool running: the
interchange never notices its parent is gone, and it keeps the pool alive. The
lock records their traces (the interchange's pid, the Parsl run directory that
every pool command line names), so the run that takes a stale lock over on the
same host ends them. Until then they can only finish their tasks, whose files
are written by atomic rename: identical bytes, never half a file.
"""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

from rasterize_core.atomic import atomic_write_bytes
from rasterize_core.errors import RunLockedError

STALE_AFTER_S = 120.0


def current_job_id() -> str | None:
    """The Slurm or PBS job this process runs in, or None outside a batch job."""
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID") or None


def lock_record() -> dict:
    return {"host": os.uname().nodename, "pid": os.getpid(), "job_id": current_job_id(),
            "heartbeat": time.time()}  # fmt: skip


def is_stale(record: dict, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    if record.get("host") == os.uname().nodename:
        return not pid_alive(int(record.get("pid", -1)))
    return now - float(record.get("heartbeat", 0)) > STALE_AFTER_S


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.extra: dict = {}  # Parsl traces, kept through every heartbeat
        self.reaped: list[int] = []  # pids of a dead run's processes ended on takeover

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(lock_record()).encode()
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            self._take_over_if_stale(data)
            return
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)

    def _take_over_if_stale(self, data: bytes) -> None:
        holder = self.holder()
        if holder and not is_stale(holder):
            job = f", job {holder['job_id']}" if holder.get("job_id") else ""
            raise RunLockedError(
                f"another rasterflow run is writing this output (host {holder.get('host')}, "
                f"pid {holder.get('pid')}{job}); lock file {self.path}. If that run is gone, "
                "delete the lock file."
            )
        if holder.get("host") == os.uname().nodename:
            self.reaped = reap_orphans(holder)
        atomic_write_bytes(self.path, data)

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}  # a lock cut short by a kill: nobody can be holding it

    def note(self, **fields) -> None:
        """Add fields to the record (Parsl's traces) and write it now."""
        self.extra.update(fields)
        self.heartbeat()

    def heartbeat(self) -> None:
        atomic_write_bytes(self.path, json.dumps(lock_record() | self.extra).encode())

    def release(self) -> None:
        """Remove the lock, unless another run has taken it over meanwhile."""
        holder = self.holder()
        if holder.get("host") == os.uname().nodename and holder.get("pid") == os.getpid():
            with suppress(FileNotFoundError):
                self.path.unlink()


def reap_orphans(holder: dict) -> list[int]:
    """SIGKILL what a dead driver on this host left running: its interchange, and every
    process (pool launch scripts, worker pools and their workers) of its Parsl run dir."""
    run_dir = holder.get("parsl_run_dir")
    run_dir = run_dir.rstrip("/") + "/" if run_dir else None  # runinfo/001 is not runinfo/0012
    pid = int(holder.get("interchange_pid") or -1)
    born = float(holder.get("interchange_started") or -1)
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter(["pid", "cmdline", "create_time"]):
        if process.pid == os.getpid():
            continue
        command = " ".join(process.info["cmdline"] or ())
        ours = bool(run_dir) and run_dir in command
        # A pid is reused quickly on a busy host: it must be the same process, born then
        # (to the clock tick the kernel counts it in).
        ours |= process.pid == pid and abs(process.info["create_time"] - born) < 0.005
        if ours:
            with suppress(psutil.Error):
                for child in [process, *process.children(recursive=True)]:
                    found[child.pid] = child
    for process in found.values():
        with suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(list(found.values()), timeout=5)
    return sorted(found)


@contextmanager
def run_lock(path: Path):
    lock = RunLock(path)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
