"""The whole workflow through real Slurm (the CI's single-node cluster), on the synthetic sample.

`site_configs/slurm-ci.toml` (SlurmProvider + SrunLauncher, partition `debug`) against
`--site local`: every app must have run in a worker of a Slurm job that Parsl submitted with
sbatch, and the GeoTIFFs (and PNGs) must be byte-identical to the local run's.

Evidence that the work ran inside Slurm, read from what Parsl and Slurm leave behind, with
no change to the apps: Parsl's log names the job id of every block it launched; `scontrol`
confirms each is a batch job of partition `debug` whose command is the block's submit
script in this run's folder; Slurm wrote the job's stdout, in which the script echoed
`$SLURM_CPUS_ON_NODE` (only set inside a job); and every task try that Parsl launched (by
executor id) was completed by a worker of those blocks, the only worker pool there was.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rasterflow.workflow.config import load_config
from rasterflow.workflow.demo.synthetic import make_sample
from rasterflow.workflow.run import run_workflow
from tests.helpers.configs import write_config
from tests.helpers.files import file_digests

pytestmark = pytest.mark.slurm

# Four z-13 tiles (2x2) of the synthetic net and their parents down to z10.
SAMPLE = {"z_range": (10, 13), "tiles": (2, 2), "cells_per_tile": 16, "seed": 13}
LAUNCHED = r"Parsl task \d+ try \d+ launched on executor (\S+) with executor id (\d+)"


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    """The synthetic staged tiles, shared by every run of this module (read only)."""
    return make_sample(tmp_path_factory.mktemp("sample"), **SAMPLE).root / "staged"


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, staged):
    """The reference: the same config through `--site local`."""
    root = tmp_path_factory.mktemp("local")
    config = load_config(_write_config(root, staged))
    report = run_workflow(config, site="local", live_progress=False)
    assert report.exit_code == 0, report.failures
    return config, report


def _write_config(root: Path, staged: Path) -> Path:
    return write_config(root, dir_staged=str(staged), z_range=list(SAMPLE["z_range"]))


def web_tiles(config) -> dict[str, str]:
    pngs = file_digests(Path(config.dir_web_tiles), "*.png")
    return {name: digest for name, digest in pngs.items() if not name.startswith("quicklooks/")}


def check_same_outputs(config, reference) -> None:
    tiffs = file_digests(Path(config.dir_geotiff), "*.tif")
    assert len(tiffs) > len(SAMPLE["tiles"]) * 2  # z-max tiles and parents
    assert tiffs == file_digests(Path(reference.dir_geotiff), "*.tif")
    pngs, reference_pngs = web_tiles(config), web_tiles(reference)  # the CLI adds quick-looks
    assert len(pngs) == 2 * len(tiffs)
    assert pngs == reference_pngs
    columns = ["step", "z", "x", "y", "status", "n_polygons"]
    ours = pd.read_csv(config.filename_rasterization_events)[columns]
    theirs = pd.read_csv(reference.filename_rasterization_events)[columns]
    order = ["step", "z", "x", "y"]
    pd.testing.assert_frame_equal(
        ours.sort_values(order).reset_index(drop=True),
        theirs.sort_values(order).reset_index(drop=True),
    )
    assert set(ours["status"]) == {"ok"}


def check_ran_in_slurm_jobs(config) -> list[str]:
    """Prove from Parsl's run folder and Slurm that every task ran in a Slurm job's worker."""
    events = Path(config.filename_rasterization_events)
    runs = sorted((events.parent / ".rasterflow" / "runinfo").glob("[0-9][0-9][0-9]"))
    assert runs, "no Parsl run folder"
    run = runs[-1]
    parsl_log = (run / "parsl.log").read_text()
    job_ids = re.findall(r"Launched block (\d+) with job ID (\d+)", parsl_log)
    assert job_ids, "Parsl launched no block"
    for block, job in job_ids:
        shown = subprocess.run(["scontrol", "show", "job", "-o", job],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
        assert shown.returncode == 0, f"scontrol does not know job {job}: {shown.stderr}"
        fields = dict(item.split("=", 1) for item in shown.stdout.split() if "=" in item)
        assert fields["Partition"] == "debug"
        assert fields["BatchFlag"] == "1"  # an sbatch job
        assert fields["StartTime"] != "Unknown", "the job never started"
        script = Path(fields["Command"])
        assert script.parent == run / "submit_scripts", script
        assert script.name.startswith(f"parsl.htex_slurm.block-{block}.")
        assert "#SBATCH --partition=debug" in script.read_text()
        stdout = Path(fields["StdOut"]).read_text()  # written by Slurm, for this job
        assert re.search(r"^Found cores : \d+$", stdout, re.M), stdout  # $SLURM_CPUS_ON_NODE
    launched = re.findall(LAUNCHED, parsl_log)
    assert launched and {executor for executor, _ in launched} == {"htex_slurm"}
    worker_logs = list((run / "htex_slurm").glob("block-*/*/worker_*.log"))
    blocks = {log.parent.parent.name for log in worker_logs}
    assert blocks <= {f"block-{block}" for block, _ in job_ids}, blocks
    completed = {
        task for log in worker_logs
        for task in re.findall(r"Completed executor task (\d+)", log.read_text())
    }  # fmt: skip
    assert {task for _, task in launched} == completed  # every try ran in those jobs' workers
    executors = {p.name for p in run.iterdir() if p.is_dir()} - {"submit_scripts"}
    assert executors == {"htex_slurm"}, executors  # no other pool could have done the work
    return [job for _, job in job_ids]


def test_whole_workflow_through_slurm_equals_local(slurm_cluster, tmp_path, staged, local_run):
    reference, local_report = local_run
    config = load_config(_write_config(tmp_path, staged))
    report = run_workflow(config, site="slurm-ci", live_progress=False)
    assert report.exit_code == 0, report.failures
    assert report.ok == local_report.ok and report.ok["rasterize"] == 4
    jobs = check_ran_in_slurm_jobs(config)
    assert jobs
    check_same_outputs(config, reference)


def test_cli_run_with_site_slurm_ci(slurm_cluster, tmp_path, staged, local_run):
    config_path = _write_config(tmp_path, staged)
    rasterflow = Path(sys.executable).parent / "rasterflow"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([str(rasterflow), "run", str(config_path), "--site", "slurm-ci"],
                            capture_output=True, text=True, timeout=600, env=env,
                            stdin=subprocess.DEVNULL)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert "0 failed" in last and f"GeoTIFFs in {tmp_path / 'geotiff'}" in last
    config = load_config(config_path)
    check_ran_in_slurm_jobs(config)
    check_same_outputs(config, local_run[0])
