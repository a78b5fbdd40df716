"""The run lock: one run per output. A live holder refuses a second run with its host, pid,
job and path; a stale one (dead pid here, old heartbeat elsewhere, cut short) is taken over and
what the dead run left running is ended; a job's stale lock is released before its run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from rasterflow.rasterize_core.errors import RunLockedError
from rasterflow.workflow.lock import (
    STALE_AFTER_S,
    RunLock,
    reap_orphans,
    release_stale_job_lock,
    run_lock,
)
from tests.helpers.batch_jobs import write_lock
from tests.helpers.processes import alive, dead_pid, end_processes


def write_holder(path: Path, **fields) -> None:
    record = {"host": os.uname().nodename, "pid": os.getpid(), "job_id": None,
              "heartbeat": time.time()} | fields  # fmt: skip
    path.write_text(json.dumps(record))


def test_live_lock_refuses_with_holder_and_path(tmp_path):
    path = tmp_path / "events.csv.lock"
    write_holder(path, host="login2", pid=4242, job_id="917", heartbeat=time.time() - 10)
    with pytest.raises(RunLockedError) as raised, run_lock(path):
        pass
    message = str(raised.value)
    assert "host login2" in message and "pid 4242" in message and "job 917" in message
    assert str(path) in message
    assert json.loads(path.read_text())["pid"] == 4242  # left as it was


@pytest.mark.parametrize("holder", ["dead pid here", "old heartbeat elsewhere", "cut short"])
def test_stale_lock_is_taken_over(tmp_path, holder):
    path = tmp_path / "events.csv.lock"
    if holder == "dead pid here":
        write_holder(path, pid=dead_pid(), heartbeat=time.time())
    elif holder == "old heartbeat elsewhere":
        old = time.time() - STALE_AFTER_S - 5
        write_holder(path, host="login2", pid=os.getpid(), heartbeat=old)
    else:
        path.write_text('{"host": "vm", "pi')  # a lock written by a driver killed mid-write
    with run_lock(path) as lock:
        assert lock.holder()["pid"] == os.getpid() and lock.took_over
        lock.note(parsl_run_dir="/x", interchange_pid=None)
        lock.heartbeat()
        assert lock.holder()["parsl_run_dir"] == "/x"  # kept through heartbeats
    assert not path.exists()


def test_release_leaves_a_lock_taken_over_meanwhile(tmp_path):
    path = tmp_path / "events.csv.lock"
    with run_lock(path):
        write_holder(path, host="login2", pid=4242)  # another host judged us stale
    assert json.loads(path.read_text())["pid"] == 4242


def test_takeover_ends_processes_of_the_dead_run(tmp_path):
    """What a SIGKILLed driver leaves (its interchange; a pool naming its run dir, with a
    child) is ended by the run that takes its lock over; nothing else is, not even a process
    that got the interchange's pid later (pids are reused fast on a busy host)."""
    run_dir = tmp_path / "runinfo" / "000"
    sleep = "import time; time.sleep(60)"
    spawn = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {sleep!r}]); {sleep}"
    pool = subprocess.Popen([sys.executable, "-c", spawn, f"--logdir={run_dir}/htex_local"])
    interchange = subprocess.Popen([sys.executable, "-c", sleep])
    time.sleep(0.1)  # a later birth, as a process that got a dead interchange's pid has
    other = subprocess.Popen([sys.executable, "-c", sleep, f"{run_dir}0/x"])  # runinfo/0000
    try:
        time.sleep(0.5)
        child = psutil.Process(pool.pid).children()[0].pid
        born = psutil.Process(interchange.pid).create_time()
        path = tmp_path / "events.csv.lock"
        write_holder(path, pid=dead_pid(), parsl_run_dir=str(run_dir),
                   interchange_pid=interchange.pid, interchange_started=born)  # fmt: skip
        lock = RunLock(path)
        lock.acquire()
        assert sorted(lock.reaped) == sorted([pool.pid, child, interchange.pid])
        assert not alive(child) and pool.wait(5) is not None and interchange.wait(5) is not None
        assert other.poll() is None
        lock.release()
        reused = {"interchange_pid": other.pid, "interchange_started": born}
        assert reap_orphans(reused | {"parsl_run_dir": str(run_dir)}) == []
        assert other.poll() is None
    finally:
        end_processes([pool.pid, interchange.pid, other.pid])


# --- the lock an ended job leaves behind (`rasterflow job`) ---------------------------------------


def test_a_lock_outside_any_job_is_left_to_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("PBS_JOBID", raising=False)
    lock = write_lock(tmp_path / "events.csv.lock", None)
    assert release_stale_job_lock(lock) is None and lock.exists()
    assert release_stale_job_lock(tmp_path / "missing.lock") is None


def test_a_lock_from_this_host_is_left_to_the_run(tmp_path, monkeypatch):
    """Same host: the run's own rule takes it over at once and ends what the dead run left."""
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    lock = tmp_path / "events.csv.lock"
    lock.write_text(json.dumps({"host": os.uname().nodename, "pid": 1, "job_id": "77"}))
    assert release_stale_job_lock(lock) is None and lock.exists()


def test_a_lock_of_this_very_job_is_released(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "77")  # a requeued job finds its own earlier lock
    lock = write_lock(tmp_path / "events.csv.lock", "77")
    assert "left by job 77" in release_stale_job_lock(lock)
    assert not lock.exists()


def test_the_lock_helper_runs_as_a_module(tmp_path):
    lock = write_lock(tmp_path / "events.csv.lock", None)
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID", "PBS_JOBID")}
    command = [sys.executable, "-m", "rasterflow.workflow.lock", "release-stale-lock", str(lock)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and lock.exists()
    usage = subprocess.run(command[:3], capture_output=True, text=True)
    assert usage.returncode == 2 and "release-stale-lock" in usage.stderr
