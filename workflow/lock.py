"""One run per output: a lock file naming host, pid and batch job, with a heartbeat.

On the same host a lock whose pid is gone is stale at once; from another host
(a shared filesystem), a lock whose heartbeat is older than two minutes.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from rasterize_core.atomic import atomic_write_bytes
from rasterize_core.errors import RunLockedError

STALE_AFTER_S = 120.0


def lock_record() -> dict:
    job = os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")
    return {"host": os.uname().nodename, "pid": os.getpid(), "job_id": job,
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
        try:
            holder = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            holder = {}  # a lock cut short by a kill: nobody can be holding it
        if holder and not is_stale(holder):
            job = f", job {holder['job_id']}" if holder.get("job_id") else ""
            raise RunLockedError(
                f"another rasterflow run is writing this output (host {holder.get('host')}, "
                f"pid {holder.get('pid')}{job}); lock file {self.path}. If that run is gone, "
                "delete the lock file."
            )
        atomic_write_bytes(self.path, data)

    def heartbeat(self) -> None:
        atomic_write_bytes(self.path, json.dumps(lock_record()).encode())

    def release(self) -> None:
        with suppress(FileNotFoundError):
            self.path.unlink()


@contextmanager
def run_lock(path: Path):
    lock = RunLock(path)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
