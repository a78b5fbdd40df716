"""`rasterflow job`: the whole run inside one Slurm or PBS allocation (issue 8, DESIGN.md §5).

The rendered scripts line by line; submission and chaining with the scheduler mocked; the
in-allocation config switch; then for real: on the CI's single-node Slurm (`rasterflow job`
on the real tiles, and a chained pair whose first job is cancelled midway), and through the
stand-in PBS in tests/bin/pbs (`rasterflow job` on a pbs site, and a pilot-job run through
Parsl's PBSProProvider). Every real run is checked against a local run: same GeoTIFFs and web
tiles, byte for byte, and one event row per tile and step.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from rasterflow.executors.jobs import config_for_run, submit_command, submit_jobs
from rasterflow.executors.scheduler import IN_ALLOCATION_ENV
from rasterflow.executors.sites import bundled_sites_dir, load_site
from rasterflow.rasterize_core.errors import ConfigError, RasterflowError, SubmitError
from rasterflow.workflow.cli import main
from rasterflow.workflow.config import load_config
from rasterflow.workflow.lock import release_stale_job_lock
from rasterflow.workflow.submit import job_script
from tests.conftest import IWP_STATISTICS, REAL_DATA, file_digests, requires_real_data

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
VENV_BIN = str(Path(PYTHON).parent)
RASTERFLOW = f"{VENV_BIN}/rasterflow"
PBS_BIN = REPO / "tests" / "bin" / "pbs"
SITES = bundled_sites_dir()


def config_file(root: Path, **overrides) -> Path:
    """A PDG config over the real tiles with outputs under `root` (relative paths)."""
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "dir_staged": str(REAL_DATA),
        "dir_geotiff": "geotiff",
        "dir_web_tiles": "web_tiles",
        "filename_rasterization_events": "out/events.csv",
        "filename_rasters_summary": "out/summary.csv",
        "tms_id": "WorldCRS84Quad",
        "z_range": [10, 13],
        "statistics": IWP_STATISTICS,
    } | overrides
    path = root / "config.json"
    path.write_text(json.dumps(config))
    return path


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
    site = str(pbs_site(tmp_path)) if site == "pbs" else site
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


# --- the lock an ended job leaves behind ----------------------------------------------------------


def write_lock(path: Path, job_id: str | None) -> Path:
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "job_id": job_id,
                                "heartbeat": time.time()}))  # fmt: skip
    return path


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
    command = [PYTHON, "-m", "rasterflow.workflow.lock", "release-stale-lock", str(lock)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and lock.exists()
    usage = subprocess.run(command[:3], capture_output=True, text=True)
    assert usage.returncode == 2 and "release-stale-lock" in usage.stderr


# --- helpers for real runs ------------------------------------------------------------------------


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


# --- the real single-node Slurm -------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def real_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("local-reference")
    return local_run(root, config_file(root, z_range=[0, 13]))


@requires_real_data()
@pytest.mark.real_data
@pytest.mark.slurm
@pytest.mark.slow
def test_rasterflow_job_on_slurm_equals_a_local_run(slurm_cluster, real_reference, tmp_path):
    config = config_file(tmp_path, z_range=[0, 13])
    ((job_id, after, log),) = rasterflow_job(tmp_path, str(config), "--site", "slurm-ci")
    assert after is None
    assert log == tmp_path / "out" / ".rasterflow" / "jobs" / f"{job_id}.log"
    wait_for_slurm([job_id])
    state = slurm_state(job_id)
    output = log.read_text()
    assert state.get("JobState") == "COMPLETED" and state.get("ExitCode") == "0:0", output
    assert re.search(r"^rasterflow: 34 tile steps ok, 0 failed", output, re.M), output
    same_outputs(config, real_reference)
    # The driver ran inside the job: its Parsl blocks were srun steps of that job, not pilot jobs.
    blocks = block_scripts(tmp_path / "out" / ".rasterflow" / "runinfo")
    assert blocks and all("srun --ntasks 1 " in p.read_text() for p in blocks)
    assert not any("#SBATCH" in p.read_text() for p in blocks)
    (script,) = (tmp_path / "out" / ".rasterflow" / "jobs").glob("rasterflow-*.sbatch")
    assert f"{RASTERFLOW} run {config} --site slurm-ci &" in script.read_text()
    assert_nothing_left_running(tmp_path)


@requires_real_data()
@pytest.mark.real_data
@pytest.mark.slurm
@pytest.mark.slow
def test_a_chain_on_slurm_resumes_after_the_first_job_is_cancelled(
    slurm_cluster, real_reference, tmp_path
):
    config = config_file(tmp_path, z_range=[0, 13])
    (first, _, first_log), (second, after, second_log) = rasterflow_job(
        tmp_path, str(config), "--site", "slurm-ci", "--chain", "2"
    )
    assert after == first
    assert slurm_state(second).get("Dependency", "").startswith(f"afterany:{first}")
    journal = tmp_path / "out" / "events.csv.journal.jsonl"
    deadline = time.monotonic() + 120
    while not (journal.exists() and journal.read_text().strip()):  # the first rows are in
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
    assert "rasterflow: 34 tile steps ok, 0 failed" in output
    assert "another rasterflow run is writing this output" not in output
    assert "rasterflow: 34 tile steps ok" not in first_log.read_text()  # cut off midway
    same_outputs(config, real_reference)
    events = outputs_of(config)["events"]
    assert len(events) == 34  # one row per tile and step: nothing duplicated by the resume
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


# --- the stand-in PBS (tests/bin/pbs) -------------------------------------------------------------


def pbs_site(root: Path) -> Path:
    path = root / "sites" / "standin-pbs.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        textwrap.dedent("""
        kind = "pbs"
        description = "the stand-in PBS of tests/bin/pbs: every job runs on this machine"
        queue = "workq"
        nodes_per_block = 1
        cpus_per_node = 2
        init_blocks = 1
        min_blocks = 0
        max_blocks = 1
        walltime = "00:10:00"
        workers_per_node = 2
        mpiexec_bind_cmd = "--bind-to"
        address = "loopback"
        cmd_timeout = 30
    """)
    )
    return path


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
    from rasterflow.workflow.demo.synthetic import make_sample

    root = tmp_path_factory.mktemp("synthetic-reference")
    sample = make_sample(root, z_range=(11, 13), tiles=(2, 2))
    return local_run(root, sample.config_path)


def synthetic_sample(root: Path) -> Path:
    from rasterflow.workflow.demo.synthetic import make_sample

    return make_sample(root, z_range=(11, 13), tiles=(2, 2)).config_path


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_rasterflow_job_through_the_standin_pbs(standin_pbs, synthetic_reference, tmp_path):
    config = synthetic_sample(tmp_path / "sample")
    site = pbs_site(tmp_path)
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


@pytest.mark.slow
def test_pilot_jobs_through_the_standin_pbs(standin_pbs, synthetic_reference, tmp_path):
    """`rasterflow run --site <pbs>`: the driver here, Parsl's PBSProProvider submits the block."""
    config_path = synthetic_sample(tmp_path / "sample")
    site = pbs_site(tmp_path)
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
