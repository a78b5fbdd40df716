"""Scheduler knowledge: which batch job this process runs in, and whether a job is over.

Slurm and PBS Pro only, read from the environment the scheduler sets and from `squeue` /
`qstat`. The engine asks these questions (its lock, its Parsl config); nothing here knows
about runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

#: Set to 1 by a `rasterflow job` script: the driver runs inside the allocation.
IN_ALLOCATION_ENV = "RASTERFLOW_IN_ALLOCATION"


def current_job_id() -> str | None:
    """The Slurm or PBS job this process runs in, or None outside a batch job."""
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID") or None


def in_allocation() -> bool:
    """True when this process is the driver of a `rasterflow job` (the job script says so)."""
    return os.environ.get(IN_ALLOCATION_ENV) == "1"


def allocation_nodes() -> int | None:
    """The node count of the batch job this process runs in, or None outside a job."""
    for var in ("SLURM_JOB_NUM_NODES", "SLURM_NNODES"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    nodefile = os.environ.get("PBS_NODEFILE")
    if nodefile and Path(nodefile).is_file():
        hosts = {line.strip() for line in Path(nodefile).read_text().splitlines() if line.strip()}
        return len(hosts) or None
    return None


_SLURM_ENDED = {
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "TIMEOUT",
}  # fmt: skip


def job_ended(job_id: str, timeout: float = 60.0) -> bool | None:
    """Has this batch job ended? True, False, or None when the scheduler cannot tell.

    A job still completing (Slurm COMPLETING, PBS E) is waited for, up to `timeout` s.
    """
    deadline = time.monotonic() + timeout
    while True:
        state = _job_state(job_id)
        if state != "ending" or time.monotonic() > deadline:
            return {"ended": True, "alive": False}.get(state) if state else None
        time.sleep(1.0)


def _job_state(job_id: str) -> str | None:
    """'ended', 'ending', 'alive', or None (unknown) for a Slurm or PBS job id."""
    if os.environ.get("SLURM_JOB_ID"):
        slurm = True
    elif os.environ.get("PBS_JOBID"):
        slurm = False
    else:  # Slurm ids are numbers (array tasks 12_3); PBS ids name their server (12.pbs01)
        slurm = re.fullmatch(r"\d+(_\d+)?", job_id) is not None
    program = "squeue" if slurm else "qstat"
    if shutil.which(program) is None:
        return None
    command = (
        ["squeue", "-h", "-j", job_id, "-o", "%T"]
        if slurm
        else ["qstat", "-x", "-f", "-F", "json", job_id]
    )
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if slurm:
        if out.returncode != 0:
            return "ended" if "invalid job id" in out.stderr.lower() else None
        state = out.stdout.strip().split()[0] if out.stdout.strip() else ""
        if not state or state in _SLURM_ENDED:
            return "ended"  # squeue lists nothing for a job gone from the controller
        return "ending" if state == "COMPLETING" else "alive"
    if out.returncode != 0:
        return "ended" if "unknown job id" in out.stderr.lower() else None
    try:
        jobs = json.loads(out.stdout).get("Jobs", {})
    except ValueError:
        return None
    states = {job.get("job_state") for job in jobs.values()}
    if not states or states <= {"F", "X", "C"}:
        return "ended"
    return "ending" if "E" in states else "alive"
