"""The CI's single-node Slurm (.ci/slurm_up.sh): is it usable here, and why not."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest

_CONTROLLER_DOWN: list[str] = []


def _down(reason: str) -> str:
    _CONTROLLER_DOWN.append(reason)
    return reason


def slurm_unusable(wait: float = 120.0) -> str | None:
    """Why the CI Slurm cannot be used here, or None once a node of `debug` is idle.

    A node still busy (the previous test's job completing) is waited for, up to `wait` s.
    """
    if _CONTROLLER_DOWN:  # sinfo takes ~10 s to give up: ask once per session
        return _CONTROLLER_DOWN[0]
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm is not installed (no sinfo/sbatch on PATH); start it with .ci/slurm_up.sh"
    deadline = time.monotonic() + wait
    while True:
        try:
            out = subprocess.run(
                ["sinfo", "-h", "-N", "-p", "debug", "-o", "%N %T"],
                capture_output=True,
                text=True,
                timeout=15,
            )
        except subprocess.TimeoutExpired:
            return _down("sinfo timed out: is slurmctld running? (.ci/slurm_up.sh)")
        if out.returncode != 0:
            return _down(
                f"sinfo failed ({out.stderr.strip()}): is slurmctld running? (.ci/slurm_up.sh)"
            )
        states = out.stdout.split()[1::2]
        if any(s in ("idle", "mixed") for s in states):  # "idle*": not answering
            return None
        busy = any(s in ("allocated", "completing") for s in states)
        if not busy or time.monotonic() > deadline:
            return f"no idle node in partition debug (sinfo: {out.stdout.strip() or 'nothing'})"
        time.sleep(0.5)


def slurm_state(job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", job_id, "-o"], capture_output=True,
                         text=True, timeout=30).stdout  # fmt: skip
    return dict(re.findall(r"(\w+)=(\S*)", out))


def wait_for_slurm(job_ids: list[str], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # sbatch --wait polls too slowly (up to 10 s)
        queued = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)],
                                capture_output=True, text=True)  # fmt: skip
        if not set(queued.stdout.split()) & set(job_ids):
            return
        time.sleep(0.3)
    subprocess.run(["scancel", *job_ids])
    pytest.fail(f"jobs {job_ids} still in the queue after {timeout} s")
