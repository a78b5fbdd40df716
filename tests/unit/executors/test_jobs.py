"""`rasterflow job`: the whole run inside one Slurm or PBS allocation.

The rendered scripts line by line; submission and chaining with the scheduler mocked; the
in-allocation config switch. The real runs are in tests/system (test_slurm_jobs.py on the CI's
Slurm, test_pbs_standin.py through the stand-in PBS).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rasterflow.executors.jobs import config_for_run, submit_command, submit_jobs
from rasterflow.executors.scheduler import IN_ALLOCATION_ENV
from rasterflow.executors.sites import bundled_sites_dir, load_site
from rasterflow.rasterize_core.errors import ConfigError, RasterflowError, SubmitError
from rasterflow.workflow.cli import main
from rasterflow.workflow.submit import job_script
from tests.helpers.configs import write_config
from tests.helpers.paths import TEST_SITES

PYTHON = sys.executable
VENV_BIN = str(Path(PYTHON).parent)
RASTERFLOW = f"{VENV_BIN}/rasterflow"
SITES = bundled_sites_dir()


def config_file(root: Path, **overrides) -> Path:
    """A PDG config with relative output paths under `root` (as a job's working directory)."""
    root.mkdir(parents=True, exist_ok=True)
    return write_config(root, **{
        "dir_geotiff": "geotiff",
        "dir_web_tiles": "web_tiles",
        "filename_rasterization_events": "out/events.csv",
        "filename_rasters_summary": "out/summary.csv",
        "z_range": [10, 13],
    } | overrides)  # fmt: skip


def body(lock: Path, config: Path, site: str) -> list[str]:
    return [
        "# rasterflow job: the driver runs inside this allocation, with one worker pool on each",
        "# of its nodes. Submitting this script again resumes the run where it stopped.",
    ], [
        f"export {IN_ALLOCATION_ENV}=1",
        f"cd {config.parent}",
        f"{PYTHON} -m rasterflow.workflow.lock release-stale-lock {lock}",
        *run_lines(f"{RASTERFLOW} run {config} --site {site}"),
    ]


def run_lines(command: str) -> list[str]:
    """The run, a child in its own process group, stopped cleanly on SIGTERM."""
    return [
        "set -m",
        f"{command} &",
        "run=$!",
        """trap 'kill -INT "$run" 2>/dev/null' TERM""",
        'wait "$run"',
        "status=$?",
        'while kill -0 "$run" 2>/dev/null; do wait "$run"; status=$?; done',
        'kill -TERM -- "-$run" 2>/dev/null',
        'exit "$status"',
    ]


# --- the rendered scripts, line by line -----------------------------------------------------------


def test_rendered_slurm_script(tmp_path):
    config = config_file(tmp_path)
    script = job_script(config, "slurm-example", cwd=tmp_path)
    jobs = tmp_path / "out" / ".rasterflow" / "jobs"
    comment, run = body(tmp_path / "out" / "events.csv.lock", config, "slurm-example")
    assert script.scheduler == "slurm" and script.jobs_dir == jobs
    assert script.text.splitlines() == [
        "#!/bin/bash",
        f"# NOT SUBMITTABLE: placeholders left in {SITES}/slurm-example.toml: "
        "account = YOUR_ACCOUNT, partition = YOUR_PARTITION",
        "#SBATCH --job-name=rasterflow",
        "#SBATCH --partition=YOUR_PARTITION",
        "#SBATCH --account=YOUR_ACCOUNT",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=64",
        "#SBATCH --exclusive",
        "#SBATCH --time=02:00:00",
        f"#SBATCH --output={jobs}/%j.log",
        "#SBATCH --open-mode=append",
        "#SBATCH --mail-type=NONE",
        "",
        *comment,
        "module load python",
        f"export PATH={VENV_BIN}:$PATH",
        *run,
    ]
    assert script.placeholders == {"partition": "YOUR_PARTITION", "account": "YOUR_ACCOUNT"}
    assert script.log_path("4242") == jobs / "4242.log"


def test_rendered_pbs_script(tmp_path):
    config = config_file(tmp_path)
    script = job_script(config, "pbs-example", cwd=tmp_path)
    jobs = tmp_path / "out" / ".rasterflow" / "jobs"
    comment, run = body(tmp_path / "out" / "events.csv.lock", config, "pbs-example")
    assert script.scheduler == "pbs"
    assert script.text.splitlines() == [
        "#!/bin/bash",
        f"# NOT SUBMITTABLE: placeholders left in {SITES}/pbs-example.toml: "
        "account = YOUR_ACCOUNT, queue = YOUR_QUEUE",
        "#PBS -N rasterflow",
        "#PBS -S /bin/bash",
        "#PBS -q YOUR_QUEUE",
        "#PBS -A YOUR_ACCOUNT",
        "#PBS -l select=1:ncpus=32:ngpus=4",
        "#PBS -l walltime=01:00:00",
        "#PBS -j oe",
        f"#PBS -o {jobs}/",
        "#PBS -l filesystems=home:eagle",
        "",
        f'exec >>{jobs}/"$PBS_JOBID".log 2>&1',
        *comment,
        "module use /soft/modulefiles",
        "module load conda",
        'cd "$PBS_O_WORKDIR"',
        f"export PATH={VENV_BIN}:$PATH",
        *run,
    ]
    assert script.log_path("7.pbs01") == jobs / "7.pbs01.log"


def test_the_ci_site_renders_without_placeholders(tmp_path):
    config = config_file(tmp_path)
    script = job_script(config, "slurm-ci", cwd=tmp_path)
    lines = script.text.splitlines()
    assert not script.placeholders and not any("NOT SUBMITTABLE" in line for line in lines)
    header = [line for line in lines if line.startswith("#SBATCH")]
    assert header == [
        "#SBATCH --job-name=rasterflow",
        "#SBATCH --partition=debug",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --exclusive",
        "#SBATCH --time=01:00:00",
        f"#SBATCH --output={tmp_path}/out/.rasterflow/jobs/%j.log",
        "#SBATCH --open-mode=append",
    ]
    assert lines[-9:] == run_lines(f"{RASTERFLOW} run {config} --site slurm-ci")
    subprocess.run(["bash", "-n"], input=script.text, text=True, check=True)


def test_nodes_and_walltime_override_the_site(tmp_path):
    config = config_file(tmp_path)
    slurm = job_script(config, "slurm-ci", nodes=4, walltime="47:30:00", cwd=tmp_path)
    assert "#SBATCH --nodes=4" in slurm.text.splitlines()
    assert "#SBATCH --time=47:30:00" in slurm.text.splitlines()
    pbs = job_script(config, "pbs-example", nodes=3, walltime="00:05:00", cwd=tmp_path)
    assert "#PBS -l select=3:ncpus=32:ngpus=4" in pbs.text.splitlines()
    assert "#PBS -l walltime=00:05:00" in pbs.text.splitlines()
    with pytest.raises(ConfigError, match="HH:MM:SS"):
        job_script(config, "slurm-ci", walltime="2h", cwd=tmp_path)


def test_a_site_file_and_a_relative_config_become_absolute(tmp_path, monkeypatch):
    config_file(tmp_path, filename_rasterization_events=str(tmp_path / "abs" / "ev.csv"))
    site = tmp_path / "sites" / "mine.toml"
    site.parent.mkdir()
    shutil.copy(SITES / "slurm-ci.toml", site)
    monkeypatch.chdir(tmp_path)
    script = job_script("config.json", "sites/mine.toml")
    lines = script.text.splitlines()
    assert lines[-8] == f"{RASTERFLOW} run {tmp_path}/config.json --site {site} &"
    assert f"#SBATCH --output={tmp_path}/abs/.rasterflow/jobs/%j.log" in lines
    assert lines[-10].endswith(f"release-stale-lock {tmp_path}/abs/ev.csv.lock")


def test_only_batch_sites_and_valid_configs_render(tmp_path):
    config = config_file(tmp_path)
    with pytest.raises(ConfigError, match="'local' site cannot run as a batch job"):
        job_script(config, "local", cwd=tmp_path)
    with pytest.raises(ConfigError, match="globus_compute"):
        job_script(config, "globus-compute-example", cwd=tmp_path)
    bad = config_file(tmp_path / "bad", z_rnage=[1, 2])
    with pytest.raises(ConfigError, match="z_rnage"):
        job_script(bad, "slurm-ci", cwd=tmp_path)


# --- the command line -----------------------------------------------------------------------------


def test_dry_run_prints_the_script_and_submits_nothing(tmp_path, monkeypatch):
    config = config_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["job", str(config), "--site", "slurm-example", "--dry-run", "--chain", "3"]
    )
    assert result.exit_code == 0, result.output
    expected = job_script(config, "slurm-example", cwd=tmp_path).text
    assert result.stdout == expected
    assert "NOT SUBMITTABLE" in result.stdout
    assert "dry run: nothing submitted" in result.stderr
    assert "then 2 more: `sbatch --parsable --dependency=afterany:<previous job>" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "slurm-example"], "partition: replace the placeholder 'YOUR_PARTITION'"),
        (["--site", "pbs-example"], "queue: replace the placeholder 'YOUR_QUEUE'"),
        (["--site", "local"], "cannot run as a batch job"),
        (["--site", "slurm-exampel"], "did you mean `slurm-example`"),
    ],
)
def test_nothing_is_submitted_when_the_site_is_not_ready(tmp_path, monkeypatch, args, message):
    config = config_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}/nothing-here")  # a submission would fail loudly
    result = CliRunner().invoke(main, ["job", str(config), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [["--walltime", "90"], ["--nodes", "0"], ["--chain", "0"], []],
)
def test_bad_usage_exits_2(tmp_path, args):
    config = config_file(tmp_path)
    site = [] if args == [] else ["--site", "slurm-ci"]  # --site is required
    result = CliRunner().invoke(main, ["job", str(config), *site, *args])
    assert result.exit_code == 2, result.output


def test_a_bad_config_exits_2(tmp_path):
    config = config_file(tmp_path, z_range=[13, 10])
    result = CliRunner().invoke(main, ["job", str(config), "--site", "slurm-ci", "--dry-run"])
    assert result.exit_code == 2 and "z_range" in result.stderr


# --- submitting and chaining, the scheduler mocked ------------------------------------------------


class FakeScheduler:
    def __init__(self, outputs, returncode=0, stderr=""):
        self.outputs = list(outputs)
        self.commands: list[list[str]] = []
        self.returncode, self.stderr = returncode, stderr

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        return subprocess.CompletedProcess(
            command, self.returncode, self.outputs.pop(0), self.stderr
        )


@pytest.mark.parametrize(
    ("site", "outputs", "ids", "dependency"),
    [
        ("slurm-ci", ["101\n", "102;cluster\n", "103\n"], ["101", "102", "103"],
         lambda prev: [f"--dependency=afterany:{prev}"]),
        ("pbs", ["7.pbs01\n", "8.pbs01\n", "9.pbs01\n"], ["7.pbs01", "8.pbs01", "9.pbs01"],
         lambda prev: ["-W", f"depend=afterany:{prev}"]),
    ],
)  # fmt: skip
def test_a_chain_waits_for_each_previous_job(tmp_path, monkeypatch, site, outputs, ids, dependency):
    monkeypatch.setattr("rasterflow.executors.jobs.shutil.which", lambda name: f"/usr/bin/{name}")
    site = str(TEST_SITES / "standin-pbs.toml") if site == "pbs" else site
    script = job_script(config_file(tmp_path), site, cwd=tmp_path)
    fake = FakeScheduler(outputs)
    jobs = submit_jobs(script, chain=3, run=fake)
    assert [job.job_id for job in jobs] == ids
    assert [job.after for job in jobs] == [None, *ids[:2]]
    assert [job.log for job in jobs] == [script.jobs_dir / f"{i}.log" for i in ids]
    (path,) = script.jobs_dir.glob("rasterflow-*")
    assert {job.script for job in jobs} == {path}
    assert path.read_text() == script.text and os.access(path, os.X_OK)
    program = "sbatch" if script.scheduler == "slurm" else "qsub"
    base = [program, "--parsable"] if program == "sbatch" else [program]
    assert fake.commands == [
        [*base, str(path)],
        [*base, *dependency(ids[0]), str(path)],
        [*base, *dependency(ids[1]), str(path)],
    ]
    assert fake.commands == [
        submit_command(script.scheduler, path, after) for after in [None, *ids[:2]]
    ]


def test_a_failed_submission_names_what_was_already_submitted(tmp_path, monkeypatch):
    monkeypatch.setattr("rasterflow.executors.jobs.shutil.which", lambda name: f"/usr/bin/{name}")
    script = job_script(config_file(tmp_path), "slurm-ci", cwd=tmp_path)

    class SecondFails(FakeScheduler):
        def __call__(self, command, **kwargs):
            done = super().__call__(command, **kwargs)
            if len(self.commands) == 2:
                return subprocess.CompletedProcess(command, 1, "", "sbatch: error: QOSMaxJobs")
            return done

    with pytest.raises(SubmitError, match=r"QOSMaxJobs \(already submitted: 101\)"):
        submit_jobs(script, chain=2, run=SecondFails(["101\n", ""]))


def test_placeholders_and_a_missing_scheduler_are_refused(tmp_path, monkeypatch):
    config = config_file(tmp_path)
    with pytest.raises(ConfigError, match="replace the placeholder"):
        submit_jobs(job_script(config, "slurm-example", cwd=tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SubmitError, match="sbatch not found on PATH"):
        submit_jobs(job_script(config, "slurm-ci", cwd=tmp_path))


# --- inside the job: the in-allocation config -----------------------------------------------------


def test_config_for_run_picks_the_shape(tmp_path, monkeypatch):
    from parsl.launchers import MpiExecLauncher, SrunLauncher
    from parsl.providers import LocalProvider, PBSProProvider, SlurmProvider

    for var in (IN_ALLOCATION_ENV, "SLURM_JOB_ID", "PBS_JOBID", "PBS_NODEFILE"):
        monkeypatch.delenv(var, raising=False)
    slurm, pbs = load_site("slurm-ci"), load_site("pbs-example")
    assert isinstance(config_for_run(slurm, tmp_path).executors[0].provider, SlurmProvider)
    assert isinstance(config_for_run(pbs, tmp_path).executors[0].provider, PBSProProvider)

    monkeypatch.setenv(IN_ALLOCATION_ENV, "1")
    with pytest.raises(RasterflowError, match="not inside a Slurm or PBS job"):
        config_for_run(slurm, tmp_path)
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    config = config_for_run(slurm, tmp_path, retries=4)
    provider = config.executors[0].provider
    assert isinstance(provider, LocalProvider) and isinstance(provider.launcher, SrunLauncher)
    assert provider.nodes_per_block == 2 and config.retries == 4
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.delenv("SLURM_JOB_NUM_NODES")
    monkeypatch.setenv("PBS_JOBID", "3.pbs01")
    provider = config_for_run(pbs, tmp_path).executors[0].provider
    assert isinstance(provider, LocalProvider) and isinstance(provider.launcher, MpiExecLauncher)
    with pytest.raises(ConfigError, match="cannot run inside a batch job"):
        config_for_run(load_site("local"), tmp_path)
