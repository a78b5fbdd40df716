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

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rasterflow.executors.job_scripts import JOB_NAME, JobScript
from rasterflow.executors.parsl_configs import in_allocation_config, parsl_config
from rasterflow.executors.scheduler import IN_ALLOCATION_ENV, current_job_id, in_allocation
from rasterflow.executors.sites import load_site, require_submittable
from rasterflow.executors.warm_pool import WarmServer
from rasterflow.rasterize_core.errors import ConfigError, RasterflowError, SubmitError

__all__ = [
    "SubmittedJob",
    "config_for_run",
    "submit_command",
    "submit_jobs",
]


# --- inside the job: which Parsl config ----------------------------------------------------------


def config_for_run(
    site: Any,
    run_dir: str | os.PathLike[str],
    retries: int = 2,
    retry_handler: Callable | None = None,
    warm_server: WarmServer | None = None,
) -> Any:
    """The Parsl config `rasterflow run` uses: in-allocation inside a job, else pilot jobs.
    `warm_server`: what a local site's workers are forked from (`executors.warm_pool`)."""
    if not in_allocation():
        return parsl_config(site, run_dir, retries, retry_handler, warm_server)
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
