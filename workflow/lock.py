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
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

from rasterflow.executors.scheduler import current_job_id, job_ended
from rasterflow.rasterize_core.atomic import atomic_write_bytes
from rasterflow.rasterize_core.errors import RunLockedError

#: A lock from another host is stale once its heartbeat is this old; the driver beats
#: every HEARTBEAT_S, so a live run is never taken for dead.
STALE_AFTER_S = 120.0
HEARTBEAT_S = 30.0
USAGE = "usage: python -m rasterflow.workflow.lock release-stale-lock LOCK_FILE"


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
        self.took_over = False  # from a run that died holding it

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
        self.took_over = True
        if holder.get("host") == os.uname().nodename:
            self.reaped = reap_orphans(holder)
        atomic_write_bytes(self.path, data)
        mine = json.loads(data)
        taken = self.holder()
        if (taken.get("host"), taken.get("pid")) != (mine["host"], mine["pid"]):
            raise RunLockedError(f"another rasterflow run took over the stale lock {self.path}")

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
        ours = run_dir is not None and run_dir in command
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


def release_stale_job_lock(lock_path: str | os.PathLike[str]) -> str | None:
    """Remove the run's lock if a batch job on another host holds it and has ended.

    Says why, or returns None and leaves the lock to the run's own rule (workflow/lock.py):
    a lock from this host (stale at once when its pid is gone, and the run that takes it
    over ends what the dead run left running here), held by no batch job, or by a job still
    alive or whose state the scheduler cannot tell. A lock from another host would otherwise
    block the next job of a chain for two minutes (its heartbeat's age).
    """
    lock = RunLock(Path(lock_path))
    holder = lock.holder()
    job = str(holder.get("job_id") or "")
    if not job or holder.get("host") == os.uname().nodename:
        return None
    if job != current_job_id() and not job_ended(job):
        return None
    if lock.holder() != holder:  # taken over meanwhile
        return None
    with suppress(OSError):
        lock.path.unlink()
    host = holder.get("host")
    return f"released the lock {lock.path} left by job {job} (host {host}), which has ended"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m rasterflow.workflow.lock release-stale-lock LOCK`: a job script's first step."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "release-stale-lock":
        print(USAGE, file=sys.stderr)
        return 2
    note = release_stale_job_lock(args[1])
    if note:
        print(f"rasterflow job: {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
