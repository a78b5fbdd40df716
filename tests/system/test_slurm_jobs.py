"""`rasterflow job` on the CI's single-node Slurm, on the synthetic sample: the driver inside
one allocation (its Parsl blocks are srun steps of that job), and a chained pair whose first job
is cancelled midway, the second resuming. Each is checked against a local run: same GeoTIFFs and
web tiles, byte for byte, and one event row per tile and step."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from rasterflow.workflow.demo.synthetic import make_sample
from rasterflow.workflow.lock import release_stale_job_lock
from tests.helpers.batch_jobs import (
    RASTERFLOW,
    assert_nothing_left_running,
    block_scripts,
    local_run,
    outputs_of,
    rasterflow_job,
    same_outputs,
    write_lock,
)
from tests.helpers.configs import write_config
from tests.helpers.slurm import slurm_state, wait_for_slurm

pytestmark = pytest.mark.slurm

# Six z-13 tiles from z13 down to z0: enough tile steps (and batches) that a job cancelled once
# the first rows are journaled is cut off midway.
SAMPLE = {"z_range": (0, 13), "tiles": (3, 2), "cells_per_tile": 24, "seed": 21}


def config_file(root: Path, staged: Path) -> Path:
    """A config over the synthetic tiles with outputs under `root` (relative paths)."""
    root.mkdir(parents=True, exist_ok=True)
    return write_config(root, **{
        "dir_staged": str(staged),
        "dir_geotiff": "geotiff",
        "dir_web_tiles": "web_tiles",
        "filename_rasterization_events": "out/events.csv",
        "filename_rasters_summary": "out/summary.csv",
        "z_range": list(SAMPLE["z_range"]),
    })  # fmt: skip


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    """The synthetic staged tiles, shared by every run of this module (read only)."""
    return make_sample(tmp_path_factory.mktemp("sample"), **SAMPLE).root / "staged"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, staged):
    root = tmp_path_factory.mktemp("local-reference")
    return local_run(root, config_file(root, staged))


def test_rasterflow_job_on_slurm_equals_a_local_run(slurm_cluster, staged, reference, tmp_path):
    config = config_file(tmp_path, staged)
    ((job_id, after, log),) = rasterflow_job(tmp_path, str(config), "--site", "slurm-ci")
    assert after is None
    assert log == tmp_path / "out" / ".rasterflow" / "jobs" / f"{job_id}.log"
    wait_for_slurm([job_id])
    state = slurm_state(job_id)
    output = log.read_text()
    assert state.get("JobState") == "COMPLETED" and state.get("ExitCode") == "0:0", output
    steps = len(outputs_of(reference)["events"])
    assert re.search(rf"^rasterflow: {steps} tile steps ok, 0 failed", output, re.M), output
    same_outputs(config, reference)
    # The driver ran inside the job: its Parsl blocks were srun steps of that job, not pilot jobs.
    blocks = block_scripts(tmp_path / "out" / ".rasterflow" / "runinfo")
    assert blocks and all("srun --ntasks 1 " in p.read_text() for p in blocks)
    assert not any("#SBATCH" in p.read_text() for p in blocks)
    (script,) = (tmp_path / "out" / ".rasterflow" / "jobs").glob("rasterflow-*.sbatch")
    assert f"{RASTERFLOW} run {config} --site slurm-ci &" in script.read_text()
    assert_nothing_left_running(tmp_path)


def test_a_chain_on_slurm_resumes_after_the_first_job_is_cancelled(
    slurm_cluster, staged, reference, tmp_path
):
    config = config_file(tmp_path, staged)
    (first, _, first_log), (second, after, second_log) = rasterflow_job(
        tmp_path, str(config), "--site", "slurm-ci", "--chain", "2"
    )
    assert after == first
    assert slurm_state(second).get("Dependency", "").startswith(f"afterany:{first}")
    journal = tmp_path / "out" / "events.csv.parts"  # the journal's committed parts
    deadline = time.monotonic() + 120
    while not (journal.is_dir() and any(journal.glob("*.done"))):  # the first rows are in
        if time.monotonic() > deadline or slurm_state(first).get("JobState") not in (
            "PENDING",
            "RUNNING",
            "CONFIGURING",
        ):
            subprocess.run(["scancel", first, second])
            pytest.fail(f"no journal rows while job {first} ran: {first_log.read_text()}")
        time.sleep(0.05)
    subprocess.run(["scancel", first], check=True, timeout=30)
    wait_for_slurm([first, second])

    assert slurm_state(first).get("JobState") == "CANCELLED"
    state = slurm_state(second)
    output = second_log.read_text()
    assert state.get("JobState") == "COMPLETED" and state.get("ExitCode") == "0:0", output
    steps = len(outputs_of(reference)["events"])
    assert f"rasterflow: {steps} tile steps ok, 0 failed" in output
    assert "another rasterflow run is writing this output" not in output
    assert f"rasterflow: {steps} tile steps ok" not in first_log.read_text()  # cut off midway
    same_outputs(config, reference)
    events = outputs_of(config)["events"]
    assert len(events) == steps  # one row per tile and step: nothing duplicated by the resume
    # Both jobs did part of the work: rows of the cancelled job kept, the rest from the second.
    assert events["run_id"].nunique() == 2, events[["step", "z", "run_id"]]
    assert not journal.exists()
    # The cancelled driver's interchange did not outlive its job (the script ends its group).
    assert_nothing_left_running(tmp_path)
    # Had the second job landed on another node, it would have released the first job's lock
    # (its heartbeat still fresh) after asking Slurm whether that job had ended.
    lock = write_lock(tmp_path / "elsewhere.lock", first)
    assert f"left by job {first} (host elsewhere)" in release_stale_job_lock(lock)
    assert not lock.exists()
