"""Batch runs through the stand-in PBS of tests/bin/pbs: `rasterflow job` on a pbs site (the
driver inside the job, workers started by mpiexec) and a pilot-job run through Parsl's
PBSProProvider. Every run is checked against a local run: same GeoTIFFs and web tiles, byte for
byte, and one event row per tile and step."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from rasterflow.executors.scheduler import IN_ALLOCATION_ENV
from rasterflow.workflow.config import load_config
from rasterflow.workflow.demo.synthetic import make_sample
from rasterflow.workflow.lock import release_stale_job_lock
from tests.helpers.batch_jobs import (
    RASTERFLOW,
    assert_nothing_left_running,
    block_scripts,
    local_run,
    rasterflow_job,
    same_outputs,
    write_lock,
)
from tests.helpers.paths import PBS_BIN, TEST_SITES

STANDIN_PBS_SITE = str(TEST_SITES / "standin-pbs.toml")


@pytest.fixture
def standin_pbs(tmp_path, monkeypatch):
    """The stand-in qsub/qstat/qdel/mpiexec first on PATH, its state and $HOME under tmp_path.

    On teardown every job still queued or running is deleted (its runner ends its processes).
    """
    state, home = tmp_path / "pbs-state", tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PATH", f"{PBS_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PBS_STANDIN_STATE", str(state))
    monkeypatch.setenv("HOME", str(home))
    for var in ("SLURM_JOB_ID", "PBS_JOBID", IN_ALLOCATION_ENV):
        monkeypatch.delenv(var, raising=False)
    yield state
    live = [
        p.name for p in (state / "jobs").glob("*") if pbs_job(state, p.name)["job_state"] != "F"
    ]
    if live:
        subprocess.run([str(PBS_BIN / "qdel"), *live], capture_output=True)


def out(*command: str, cwd: Path | None = None) -> str:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True).stdout


def pbs_job(state: Path, job_id: str) -> dict:
    return json.loads((state / "jobs" / job_id / "job.json").read_text())


def wait_for_pbs(job_ids: list[str], timeout: float = 180.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = json.loads(out("qstat", "-x", "-f", "-F", "json", *job_ids))["Jobs"]
        if all(job["job_state"] == "F" for job in jobs.values()):
            return jobs
        time.sleep(0.3)
    subprocess.run(["qdel", *job_ids])
    pytest.fail(f"jobs {job_ids} not finished after {timeout} s")


@pytest.fixture(scope="module")
def synthetic_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic-reference")
    sample = make_sample(root, z_range=(11, 13), tiles=(2, 2))
    return local_run(root, sample.config_path)


def synthetic_sample(root: Path) -> Path:
    return make_sample(root, z_range=(11, 13), tiles=(2, 2)).config_path


def test_the_standin_pbs_itself(standin_pbs, tmp_path):
    """qsub/qstat/qdel behave as PBS Pro does where Parsl and `rasterflow job` look."""
    script = tmp_path / "job.sh"
    script.write_text(
        textwrap.dedent("""\
        #!/bin/bash
        #PBS -N probe
        #PBS -l select=2:ncpus=3
        #PBS -l walltime=00:00:30
        #PBS -j oe
        echo "id=$PBS_JOBID cpus=$NCPUS dir=$PWD nodes=$(sort -u $PBS_NODEFILE | wc -l)"
        echo "venv=${VIRTUAL_ENV:-none} work=$PBS_O_WORKDIR"
        mpiexec -n 2 sh -c 'echo rank $PMI_RANK'
        (sleep 300 &)
        sleep 300
    """)
    )
    first = out("qsub", str(script), cwd=tmp_path).strip()
    second = out("qsub", "-W", f"depend=afterany:{first}", "-N", "after", str(script), cwd=tmp_path)
    second = second.strip()
    assert re.fullmatch(r"\d+\.standin", first) and second != first
    deadline = time.monotonic() + 30
    output = tmp_path / f"probe.o{first.split('.')[0]}"
    while "rank 1" not in (output.read_text() if output.exists() else ""):
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.1)
    jobs = json.loads(out("qstat", "-x", "-f", "-F", "json", first, second))["Jobs"]
    assert jobs[first]["job_state"] == "R" and jobs[second]["job_state"] == "H"
    session = jobs[first]["session_id"]
    assert subprocess.run(["qdel", first]).returncode == 0
    jobs = wait_for_pbs([first])
    assert jobs[first]["Exit_status"] == 271
    text = output.read_text()
    assert f"id={first} cpus=3 dir={tmp_path / 'home'} nodes=1" in text
    assert f"venv=none work={tmp_path}" in text  # a fresh environment, as PBS gives
    assert "rank 0" in text and "rank 1" in text
    # Every process of the job ended, the daemonised `sleep` included.
    time.sleep(0.3)
    alive = subprocess.run(["pgrep", "-s", str(session)], capture_output=True, text=True)
    assert alive.stdout.strip() == ""
    subprocess.run(["qdel", second], check=True)
    assert wait_for_pbs([second])[second]["Exit_status"] == 271
    unknown = subprocess.run(["qstat", "99.standin"], capture_output=True, text=True)
    assert unknown.returncode == 153 and "Unknown Job Id" in unknown.stderr
    finished = subprocess.run(["qstat", first], capture_output=True, text=True)
    assert finished.returncode == 35
    assert_nothing_left_running(tmp_path)


def test_a_lock_left_elsewhere_by_an_ended_job_is_released(standin_pbs, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#PBS -N sleeper\nsleep 60\n")
    running = out("qsub", str(script), cwd=tmp_path).strip()
    ended = out("qsub", str(script), cwd=tmp_path).strip()
    subprocess.run(["qdel", ended], check=True)
    wait_for_pbs([ended])
    alive = write_lock(tmp_path / "alive.lock", running)
    assert release_stale_job_lock(alive) is None and alive.exists()
    dead = write_lock(tmp_path / "dead.lock", ended)
    assert f"left by job {ended} (host elsewhere), which has ended" in release_stale_job_lock(dead)
    assert not dead.exists()
    gone = write_lock(tmp_path / "gone.lock", "999.standin")  # purged from the server
    assert release_stale_job_lock(gone) and not gone.exists()
    subprocess.run(["qdel", running], check=True)
    wait_for_pbs([running])
    assert_nothing_left_running(tmp_path)


def test_rasterflow_job_through_the_standin_pbs(standin_pbs, synthetic_reference, tmp_path):
    config = synthetic_sample(tmp_path / "sample")
    site = STANDIN_PBS_SITE
    (first, _, log), (second, after, second_log) = rasterflow_job(
        tmp_path, str(config), "--site", str(site), "--chain", "2"
    )
    assert after == first
    assert pbs_job(standin_pbs, second)["depend"] == [f"afterany:{first}"]
    jobs = wait_for_pbs([first, second])
    output = log.read_text()
    assert jobs[first]["Exit_status"] == 0, output
    assert log == Path(json.loads(config.read_text())["filename_rasterization_events"]).parent / (
        f".rasterflow/jobs/{first}.log"
    )
    assert re.search(r"^rasterflow: \d+ tile steps ok, 0 failed", output, re.M), output
    same_outputs(config, synthetic_reference)
    # The driver ran inside the job, with its workers started by mpiexec over the job's nodes.
    blocks = block_scripts(log.parent.parent / "runinfo")
    assert blocks and all("mpiexec --bind-to none" in p.read_text() for p in blocks)
    # The second job of the chain found the run done: nothing redone, the same event rows.
    assert jobs[second]["Exit_status"] == 0, second_log.read_text()
    assert "0 failed" in second_log.read_text()
    assert (log.parent / f"rasterflow.o{first.split('.')[0]}").exists()  # PBS's own output
    assert_nothing_left_running(tmp_path)


def test_pilot_jobs_through_the_standin_pbs(standin_pbs, synthetic_reference, tmp_path):
    """`rasterflow run --site <pbs>`: the driver here, Parsl's PBSProProvider submits the block."""
    config_path = synthetic_sample(tmp_path / "sample")
    site = STANDIN_PBS_SITE
    done = subprocess.run([RASTERFLOW, "run", str(config_path), "--site", str(site)],
                          cwd=tmp_path / "sample", capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    same_outputs(config_path, synthetic_reference)
    (job_id,) = [p.name for p in (standin_pbs / "jobs").iterdir()]
    wait_for_pbs([job_id], timeout=30)  # Parsl cancelled it at the end (qdel)
    job = pbs_job(standin_pbs, job_id)
    assert job["Job_Name"].startswith("parsl.htex_pbs")
    assert job["comment"] == "qdel"
    assert job["queue"] == "workq"
    stdout = Path(job["Output_Path"]).read_text()
    assert "Found cores" in stdout  # MpiExecLauncher's script ran inside the job
    config = load_config(config_path)
    script = next(
        p for p in (Path(config.filename_rasterization_events).parent / ".rasterflow"
                    / "runinfo").rglob("submit_scripts/parsl.htex_pbs.*")
        if not p.name.endswith((".stdout", ".stderr"))
    )  # fmt: skip
    assert "#PBS -l select=1:ncpus=2" in script.read_text().splitlines()
    assert_nothing_left_running(tmp_path)
