"""Batch jobs: the whole run, driver included, inside one Slurm or PBS allocation (issue 8).

    script = render_job_script("config.json", "my-slurm.toml")   # executors.job_scripts
    jobs = submit_jobs(script, chain=3)                            # sbatch/qsub, afterany chain

The same site file serves both shapes (DESIGN.md §5): `rasterflow run --site S` on a login
node submits pilot jobs (`parsl_config`); the job script (`render_job_script`) sets
`RASTERFLOW_IN_ALLOCATION=1` and runs `rasterflow run CONFIG --site S` inside the allocation,
where `config_for_run` picks `in_allocation_config` (HighThroughputExecutor + LocalProvider,
one worker pool per node of the job, started with srun or mpiexec).

A job that hits its walltime leaves the run's journal behind; the next job of a chain (or a
resubmission) resumes from it. Its lock, left on another node by a job that has ended, is
released first (`release_stale_job_lock`): its heartbeat would otherwise look alive for two
more minutes and the next job would stop at once.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from executors.job_scripts import IN_ALLOCATION_ENV, JOB_NAME, JobScript
from executors.parsl_configs import in_allocation_config, parsl_config
from executors.sites import load_site, require_submittable
from rasterize_core.errors import ConfigError, RasterflowError, SubmitError
from workflow.lock import current_job_id

__all__ = [
    "SubmittedJob",
    "config_for_run",
    "in_allocation",
    "release_stale_job_lock",
    "submit_command",
    "submit_jobs",
]


# --- inside the job: which Parsl config ----------------------------------------------------------


def in_allocation() -> bool:
    """True when this process is the driver of a `rasterflow job` (the job script says so)."""
    return os.environ.get(IN_ALLOCATION_ENV) == "1"


def config_for_run(
    site: Any,
    run_dir: str | os.PathLike[str],
    retries: int = 2,
    retry_handler: Callable | None = None,
) -> Any:
    """The Parsl config `rasterflow run` uses: in-allocation inside a job, else pilot jobs."""
    if not in_allocation():
        return parsl_config(site, run_dir, retries, retry_handler)
    if not current_job_id():
        raise RasterflowError(
            f"{IN_ALLOCATION_ENV}=1 but this process is not inside a Slurm or PBS job "
            "(no SLURM_JOB_ID or PBS_JOBID): submit with `rasterflow job`, or unset it"
        )
    return in_allocation_config(site, run_dir, retries, retry_handler)


# --- submitting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmittedJob:
    job_id: str
    log: Path
    script: Path  # the batch script submitted (kept beside the logs)
    after: str | None = None  # the job this one waits for (afterany)


def submit_command(scheduler: str, script_path: Path, after: str | None = None) -> list[str]:
    """The sbatch/qsub command line for one job of a chain."""
    if scheduler == "slurm":
        depend = [f"--dependency=afterany:{after}"] if after else []
        return ["sbatch", "--parsable", *depend, str(script_path)]
    depend = ["-W", f"depend=afterany:{after}"] if after else []
    return ["qsub", *depend, str(script_path)]


def submit_jobs(
    script: JobScript,
    chain: int = 1,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> list[SubmittedJob]:
    """Write the script under `jobs_dir` and submit it `chain` times, each job after the last.

    Refuses a script with placeholders left in. Returns the jobs in submission order.
    """
    if script.placeholders:
        require_submittable(load_site(script.site_source))
    if chain < 1:
        raise ConfigError("--chain", [f"expected at least 1 job, got {chain}"])
    if shutil.which(script.submit_program) is None:
        raise SubmitError(
            f"{script.submit_program} not found on PATH: run `rasterflow job` on a login node "
            f"of the {script.scheduler} cluster"
        )
    script.jobs_dir.mkdir(parents=True, exist_ok=True)  # sbatch does not create --output's folder
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    suffix = "sbatch" if script.scheduler == "slurm" else "pbs"
    path = script.jobs_dir / f"{JOB_NAME}-{stamp}.{suffix}"
    path.write_text(script.text)
    path.chmod(0o755)
    jobs: list[SubmittedJob] = []
    for _ in range(chain):
        after = jobs[-1].job_id if jobs else None
        command = submit_command(script.scheduler, path, after)
        try:
            done = run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SubmitError(_failed(command, str(exc), jobs)) from exc
        job_id = _job_id(script.scheduler, done.stdout)
        if done.returncode != 0 or not job_id:
            reason = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
            raise SubmitError(_failed(command, reason, jobs))
        jobs.append(SubmittedJob(job_id, script.log_path(job_id), path, after))
    return jobs


def _job_id(scheduler: str, stdout: str) -> str | None:
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    return lines[-1].split(";")[0] if scheduler == "slurm" else lines[-1]


def _failed(command: Sequence[str], reason: str, jobs: list[SubmittedJob]) -> str:
    done = f" (already submitted: {', '.join(j.job_id for j in jobs)})" if jobs else ""
    return f"`{shlex.join(command)}` failed: {reason}{done}"


# --- a lock left by an ended job -----------------------------------------------------------------

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
            return {"ended": True, "alive": False}.get(state)
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


def release_stale_job_lock(lock_path: str | os.PathLike[str]) -> str | None:
    """Remove the run's lock if a batch job on another host holds it and has ended.

    Says why, or returns None and leaves the lock to the run's own rule (workflow/lock.py):
    a lock from this host (stale at once when its pid is gone, and the run that takes it
    over ends what the dead run left running here), held by no batch job, or by a job still
    alive or whose state the scheduler cannot tell. A lock from another host would otherwise
    block the next job of a chain for two minutes (its heartbeat's age).
    """
    path = Path(lock_path)
    try:
        text = path.read_text()
        holder = json.loads(text or "{}")
    except (OSError, ValueError):
        return None
    job = str(holder.get("job_id") or "")
    if not job or holder.get("host") == os.uname().nodename:
        return None
    if job != current_job_id() and not job_ended(job):
        return None
    try:
        if path.read_text() != text:  # taken over meanwhile
            return None
        path.unlink()
    except OSError:
        return None
    host = holder.get("host")
    return f"released the lock {path} left by job {job} (host {host}), which has ended"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m executors.jobs release-stale-lock LOCK`: the job script's first step."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "release-stale-lock":
        print("usage: python -m executors.jobs release-stale-lock LOCK_FILE", file=sys.stderr)
        return 2
    note = release_stale_job_lock(args[1])
    if note:
        print(f"rasterflow job: {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
