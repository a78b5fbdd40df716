"""Batch scripts for `rasterflow job`: the whole run inside one Slurm or PBS allocation.

    script = render_job_script("config.json", "my-slurm.toml")   # `#SBATCH` or `#PBS` lines

Header lines come from the site file; the body sets `RASTERFLOW_IN_ALLOCATION=1`, releases
a lock left by an earlier job of the run, then runs `rasterflow run CONFIG --site S` as a
child that a scheduler's SIGTERM stops cleanly. `rasterflow.executors.jobs` submits the script.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rasterflow.executors.parsl_configs import worker_init
from rasterflow.executors.scheduler import IN_ALLOCATION_ENV
from rasterflow.executors.site_models import (
    WALLTIME_RE,  # one format: site files and --walltime
    PbsSite,
    SlurmSite,
)
from rasterflow.executors.sites import is_site_path, load_site
from rasterflow.rasterize_core.errors import ConfigError

__all__ = [
    "JOB_NAME",
    "WALLTIME_RE",
    "JobScript",
    "render_job_script",
]

JOB_NAME = "rasterflow"


@dataclass(frozen=True)
class JobScript:
    """A rendered batch script and what submitting it needs."""

    scheduler: str  # "slurm" | "pbs"
    text: str
    jobs_dir: Path  # <event log's folder>/.rasterflow/jobs: scripts and job logs
    site_source: str
    placeholders: dict[str, str] = field(default_factory=dict)

    @property
    def submit_program(self) -> str:
        return "sbatch" if self.scheduler == "slurm" else "qsub"

    def log_path(self, job_id: str) -> Path:
        """Where the job's output goes (Slurm `%j`, PBS `$PBS_JOBID`: the id qsub printed)."""
        return self.jobs_dir / f"{job_id}.log"


def render_job_script(
    config_path: str | os.PathLike[str],
    site: str,
    lock: str | os.PathLike[str],
    jobs_dir: str | os.PathLike[str],
    nodes: int | None = None,
    walltime: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> JobScript:
    """The batch script that runs `rasterflow run CONFIG --site SITE` inside one allocation.

    Header lines come from the site file (partition/queue, account, walltime, nodes, raw
    `scheduler_options`), the body from its `worker_init`. `nodes` and `walltime` override the
    site's `nodes_per_block` and `walltime`. Placeholders are rendered and listed in a comment
    line at the top; `submit_jobs` refuses them. Paths in the script are absolute; the job
    starts in `cwd` (default: here), against which a config's relative paths resolve.
    `lock` is the run's lock file, `jobs_dir` where scripts and job logs go.
    """
    if walltime is not None and not WALLTIME_RE.match(walltime):
        raise ConfigError("--walltime", [f"expected HH:MM:SS, got {walltime!r}"])
    if nodes is not None and nodes < 1:
        raise ConfigError("--nodes", [f"expected a positive number of nodes, got {nodes}"])
    cwd = Path(cwd or os.getcwd()).resolve()
    config_file = _absolute(Path(config_path), cwd)
    site_model = load_site(_site_ref(site, cwd))
    if not isinstance(site_model, SlurmSite | PbsSite):
        raise ConfigError(
            site_model.source,
            [
                f"kind: a {site_model.kind!r} site cannot run as a batch job "
                "(`rasterflow job` needs a slurm or pbs site)"
            ],
        )
    jobs_dir = _absolute(Path(jobs_dir), cwd)
    lock = _absolute(Path(lock), cwd)
    nodes = nodes or site_model.nodes_per_block
    walltime = walltime or site_model.walltime
    scheduler = "slurm" if isinstance(site_model, SlurmSite) else "pbs"

    lines = ["#!/bin/bash"]
    found = site_model.placeholders()
    if found:
        listed = ", ".join(f"{key} = {value}" for key, value in found.items())
        lines.append(f"# NOT SUBMITTABLE: placeholders left in {site_model.source}: {listed}")
    if isinstance(site_model, SlurmSite):
        lines += _slurm_header(site_model, nodes, walltime, jobs_dir)
    else:
        lines += _pbs_header(site_model, nodes, walltime, jobs_dir)
    lines += _body(scheduler, site_model, site, cwd, config_file, jobs_dir, lock)
    return JobScript(
        scheduler=scheduler,
        text="\n".join(lines) + "\n",
        jobs_dir=jobs_dir,
        site_source=site_model.source,
        placeholders=found,
    )


def _slurm_header(site: SlurmSite, nodes: int, walltime: str, jobs_dir: Path) -> list[str]:
    directives = [f"--job-name={JOB_NAME}"]
    for flag, value in (
        ("partition", site.partition),
        ("account", site.account),
        ("qos", site.qos),
        ("constraint", site.constraint),
    ):
        if value:
            directives.append(f"--{flag}={value}")
    directives += [f"--nodes={nodes}", "--ntasks-per-node=1"]
    if site.cores_per_node:
        directives.append(f"--cpus-per-task={site.cores_per_node}")
    if site.mem_per_node:
        directives.append(f"--mem={site.mem_per_node}g")
    if site.exclusive:
        directives.append("--exclusive")
    directives += [
        f"--time={walltime}",
        f"--output={jobs_dir}/%j.log",  # stdout and stderr: sbatch joins them by default
        "--open-mode=append",  # a requeued job keeps what it wrote before
    ]
    return [f"#SBATCH {d}" for d in directives] + _raw_options(site.scheduler_options)


def _pbs_header(site: PbsSite, nodes: int, walltime: str, jobs_dir: Path) -> list[str]:
    select = f"select={nodes}:ncpus={site.cpus_per_node}"
    if site.select_options:
        select += ":" + site.select_options.lstrip(":")
    directives = [f"-N {JOB_NAME}", "-S /bin/bash"]
    if site.queue:
        directives.append(f"-q {site.queue}")
    if site.account:
        directives.append(f"-A {site.account}")
    directives += [
        f"-l {select}",
        f"-l walltime={walltime}",
        # The body writes its own log, live, to <jobs_dir>/$PBS_JOBID.log; what PBS itself
        # says (a walltime kill) goes to <jobs_dir>/rasterflow.o<sequence number>.
        "-j oe",
        f"-o {jobs_dir}/",
    ]
    return [f"#PBS {d}" for d in directives] + _raw_options(site.scheduler_options)


def _raw_options(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines() if line.strip()]


def _body(scheduler, site, site_arg, cwd, config_file, jobs_dir, lock) -> list[str]:
    python = sys.executable
    rasterflow = Path(python).parent / "rasterflow"
    run = [str(rasterflow)] if rasterflow.is_file() else [python, "-m", "rasterflow.workflow.cli"]
    run += ["run", str(config_file), "--site", _site_ref(site_arg, cwd)]
    body = [""]
    if scheduler == "pbs":
        body.append(f'exec >>{shlex.quote(str(jobs_dir))}/"$PBS_JOBID".log 2>&1')
    body += [
        "# rasterflow job: the driver runs inside this allocation, with one worker pool on each",
        "# of its nodes. Submitting this script again resumes the run where it stopped.",
    ]
    init = worker_init(site)
    if init:
        body.append(init)
    body += [
        f"export {IN_ALLOCATION_ENV}=1",
        f"cd {shlex.quote(str(cwd))}",
        # A lock left by an earlier job of this run that has ended (walltime, scancel/qdel).
        shlex.join([python, "-m", "rasterflow.workflow.lock", "release-stale-lock", str(lock)]),
        *RUN_AND_STOP_CLEANLY.format(run=shlex.join(run)).splitlines(),
    ]
    return body


# The scheduler ends a job (walltime, scancel, qdel) by sending SIGTERM, then SIGKILL after a
# grace period. A driver killed outright orphans Parsl's interchange, which then outlives the
# job where the scheduler tracks processes by their parent (Slurm's proctrack/linuxproc). So
# the run is a child of this script, in its own process group (`set -m`): SIGTERM becomes a
# Ctrl-C for it (Parsl shuts its interchange and workers down; the journal keeps what was
# done), and whatever it leaves behind in its group is ended with it.
RUN_AND_STOP_CLEANLY = """\
set -m
{run} &
run=$!
trap 'kill -INT "$run" 2>/dev/null' TERM
wait "$run"
status=$?
while kill -0 "$run" 2>/dev/null; do wait "$run"; status=$?; done
kill -TERM -- "-$run" 2>/dev/null
exit "$status"
"""


def _site_ref(site: str, cwd: Path) -> str:
    """A bundled name stays a name; a site file becomes its absolute path."""
    return str(_absolute(Path(site).expanduser(), cwd)) if is_site_path(site) else site


def _absolute(path: Path, cwd: Path) -> Path:
    return path if path.is_absolute() else cwd / path
