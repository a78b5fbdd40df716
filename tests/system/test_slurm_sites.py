"""Sites on the CI's real Slurm: Parsl apps inside a Slurm job (pilot jobs), and the driver
inside an allocation with its workers started by srun."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rasterflow.executors import load_site, parsl_config, require_submittable

pytestmark = pytest.mark.slurm
VENV_BIN = str(Path(sys.executable).parent)


def write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_slurm_ci_site_runs_apps_inside_a_slurm_job(slurm_cluster, tmp_path):
    import parsl
    from parsl import python_app

    # Stdlib functions travel by reference: nothing from this test module must be importable
    # on the worker.
    getenv, which, power = python_app(os.getenv), python_app(shutil.which), python_app(pow)

    site = load_site("slurm-ci")
    require_submittable(site)
    with parsl.load(parsl_config(site, tmp_path / "runinfo", retries=0)):
        squares = [power(i, 2) for i in range(4)]
        job_ids = [getenv("SLURM_JOB_ID") for _ in range(4)]
        worker_pool = which("process_worker_pool.py")
        assert [f.result(timeout=50) for f in squares] == [0, 1, 4, 9]
        job_ids = {f.result(timeout=50) for f in job_ids}
        worker_pool = worker_pool.result(timeout=50)
    assert len(job_ids) == 1 and str(next(iter(job_ids))).isdigit(), job_ids
    assert worker_pool == f"{VENV_BIN}/process_worker_pool.py"
    scripts = list((tmp_path / "runinfo").glob("*/submit_scripts/parsl.htex_slurm.*"))
    scripts = [p for p in scripts if not p.name.endswith((".stdout", ".stderr"))]
    assert scripts and all("#SBATCH --partition=debug" in p.read_text() for p in scripts)


def test_in_allocation_driver_inside_a_slurm_job(slurm_cluster, tmp_path):
    driver = write(
        tmp_path,
        """
        import os, sys, parsl
        from parsl import python_app
        from rasterflow.executors import in_allocation_config, load_site

        @python_app
        def where():
            import os
            return os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURM_STEP_ID")

        with parsl.load(in_allocation_config(load_site("slurm-ci"), "runinfo", retries=0)):
            job, step = where().result(timeout=40)
        print("RESULT", job == os.environ["SLURM_JOB_ID"], step, flush=True)
        """,
        "driver.py",
    )
    log = tmp_path / "job.out"
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--exclusive", "-t", "2", "-o", str(log), "--wrap",
         f"{sys.executable} {driver}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    job_id = submitted.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # sbatch --wait polls too slowly (up to 10 s)
        queued = subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True)
        if job_id not in queued.stdout:
            break
        time.sleep(0.3)
    else:
        subprocess.run(["scancel", job_id])
        pytest.fail(f"job {job_id} still running after 60 s; log: {log.read_text()}")
    output = log.read_text() if log.exists() else ""
    assert re.search(r"^RESULT True \d+$", output, re.M), output
