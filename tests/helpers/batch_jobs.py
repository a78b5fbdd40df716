"""Runs through a batch scheduler (the CI's Slurm, the stand-in PBS) compared with a local run,
and the processes and files such a run leaves."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from .files import file_digests

RASTERFLOW = str(Path(sys.executable).with_name("rasterflow"))


def same_outputs(config_path: Path, reference_path: Path) -> None:
    """GeoTIFFs and PNGs byte-identical to the reference run; one ok row per tile and step."""
    ours, reference = outputs_of(config_path), outputs_of(reference_path)
    for kind in ("geotiff", "web"):
        assert ours[kind] and ours[kind] == reference[kind], kind
    events = ours["events"]
    assert not events.duplicated(["step", "z", "x", "y"]).any()
    assert (events["status"] == "ok").all()
    key = ["step", "z", "x", "y", "n_polygons"]
    ref_events = reference["events"]
    pd.testing.assert_frame_equal(
        events[key].sort_values(key).reset_index(drop=True),
        ref_events[key].sort_values(key).reset_index(drop=True),
    )


def outputs_of(config_path: Path) -> dict:
    cwd = config_path.parent
    config = json.loads(config_path.read_text())
    return {
        "geotiff": file_digests(cwd / config["dir_geotiff"], "*.tif"),
        "web": file_digests(cwd / config["dir_web_tiles"], "*.png"),
        "events": pd.read_csv(cwd / config["filename_rasterization_events"]),
    }


def local_run(root: Path, config_path: Path) -> Path:
    """Run the config locally (the reference), from its own folder, as a user would."""
    done = subprocess.run([RASTERFLOW, "run", str(config_path), "--site", "local"],
                          cwd=root, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return config_path


def leftover_processes(root: Path) -> dict[int, str]:
    """Processes (not this one) whose working directory is inside `root`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone, or a zombie
            continue
        if cwd == str(root) or cwd.startswith(f"{root}/"):
            found[int(entry.name)] = command.strip()
    return found


def assert_nothing_left_running(root: Path, timeout: float = 15.0) -> None:
    """Every process the jobs started from `root` has ended (e.g. no orphaned interchange)."""
    deadline = time.monotonic() + timeout
    while (left := leftover_processes(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:  # started by this test's jobs: end them so the next tests start clean
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, left


def block_scripts(runinfo: Path) -> list[Path]:
    """The scripts Parsl's provider ran for each block (not the launcher's cmd_*.sh)."""
    return [p for p in runinfo.rglob("submit_scripts/*.sh") if not p.name.startswith("cmd_")]


def submitted(stdout: str) -> list[tuple[str, str | None, Path]]:
    """(job id, after, log) from the lines `rasterflow job` prints."""
    pattern = r"^submitted job (\S+?)(?: after (\S+))?; log: (.+)$"
    return [(m[0], m[1] or None, Path(m[2])) for m in re.findall(pattern, stdout, re.M)]


def rasterflow_job(cwd: Path, *args: str, env: dict | None = None) -> list:
    done = subprocess.run([RASTERFLOW, "job", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    jobs = submitted(done.stdout)
    assert jobs, done.stdout
    script = jobs[0][2].parent / re.search(r"^batch script: .*/(.+)$", done.stdout, re.M)[1]
    assert script.is_file()
    return jobs


def write_lock(path: Path, job_id: str | None) -> Path:
    """A run lock held by pid 1 of another host, inside job `job_id` (or none)."""
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "job_id": job_id,
                                "heartbeat": time.time()}))  # fmt: skip
    return path
