"""Site files, their Parsl configs and the rendered batch scripts (the real Slurm runs are in
tests/system/test_slurm_sites.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest
from pydantic import ValidationError

from rasterflow.executors import (
    in_allocation_config,
    list_sites,
    load_site,
    parsl_config,
    require_submittable,
    validate_site,
    worker_init,
)
from rasterflow.executors.sites import bundled_sites_dir
from rasterflow.rasterize_core.errors import ConfigError
from tests.helpers.paths import REPO, TEST_SITES

VENV_BIN = str(Path(sys.executable).parent)
BUNDLED = sorted(p.stem for p in bundled_sites_dir().glob("*.toml"))
PLACEHOLDERS = {
    "slurm-example": {"partition": "YOUR_PARTITION", "account": "YOUR_ACCOUNT"},
    "pbs-example": {"queue": "YOUR_QUEUE", "account": "YOUR_ACCOUNT"},
    "globus-compute-example": {"endpoint_id": "YOUR-ENDPOINT-UUID"},
}


def write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(excinfo) -> str:
    return "\n".join(excinfo.value.problems)


# --- the bundled files --------------------------------------------------------------------------


def test_the_expected_sites_are_bundled():
    assert {"local", "slurm-example", "slurm-ci", "pbs-example", "globus-compute-example"} <= set(
        BUNDLED
    )


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_site_validates(name):
    site = load_site(name)
    assert site.name == name
    assert site.kind in {"local", "slurm", "pbs", "globus_compute"}
    assert site.description.strip()
    assert site.source == str(bundled_sites_dir() / f"{name}.toml")
    assert "description" in (bundled_sites_dir() / f"{name}.toml").read_text()


def test_a_site_loads_by_path_too():
    assert load_site(str(bundled_sites_dir() / "local.toml")).kind == "local"


def test_list_sites_gives_name_kind_description():
    rows = {name: (kind, desc) for name, kind, desc in list_sites()}
    assert rows["local"][0] == "local"
    assert rows["slurm-example"][0] == "slurm"
    assert rows["slurm-ci"][0] == "slurm"
    assert rows["pbs-example"][0] == "pbs"
    assert rows["globus-compute-example"][0] == "globus_compute"
    assert all(desc for _, desc in rows.values())
    assert [name for name, _, _ in list_sites()] == sorted(rows)


@pytest.mark.parametrize("name", ["local", "slurm-ci"])
def test_sites_without_placeholders_are_submittable(name):
    require_submittable(load_site(name))


@pytest.mark.parametrize("name", sorted(PLACEHOLDERS))
def test_each_placeholder_is_named_until_replaced(name, tmp_path):
    site = load_site(name)  # loads anyway: a dry run can render it
    assert site.placeholders() == PLACEHOLDERS[name]
    with pytest.raises(ConfigError) as excinfo:
        require_submittable(site)
    assert excinfo.value.source == site.source
    assert str(bundled_sites_dir() / f"{name}.toml") in str(excinfo.value)
    for key, value in PLACEHOLDERS[name].items():
        line = next(p for p in excinfo.value.problems if p.startswith(f"{key}:"))
        assert value in line and "replace the placeholder" in line

    text = (bundled_sites_dir() / f"{name}.toml").read_text()
    for value in PLACEHOLDERS[name].values():
        replacement = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d" if "UUID" in value else "real"
        text = text.replace(f'"{value}"', f'"{replacement}"')
    edited = load_site(str(write(tmp_path, text, f"my-{name}.toml")))
    assert edited.placeholders() == {}
    require_submittable(edited)


def test_a_placeholder_inside_a_table_is_named_with_its_path():
    site = validate_site(
        {
            "kind": "globus_compute",
            "description": "x",
            "endpoint_id": "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
            "user_endpoint_config": {"account": "YOUR_ACCOUNT"},
        },
        source="g.toml",
    )
    with pytest.raises(
        ConfigError, match=r"user_endpoint_config\.account: replace the placeholder"
    ):
        require_submittable(site)


# --- validation errors --------------------------------------------------------------------------


def test_unknown_key_gets_file_path_and_did_you_mean(tmp_path):
    path = write(
        tmp_path,
        """
        kind = "slurm"
        description = "typo"
        partiton = "debug"
        wall_time = "01:00:00"
        """,
    )
    with pytest.raises(ConfigError) as excinfo:
        load_site(str(path))
    assert excinfo.value.source == str(path)
    assert str(path) in str(excinfo.value)
    text = problems(excinfo)
    assert "partiton: unknown key; did you mean `partition`?" in text
    assert "wall_time: unknown key; did you mean `walltime`?" in text


def test_unknown_key_without_a_close_match_lists_the_allowed_keys():
    with pytest.raises(ConfigError) as excinfo:
        validate_site({"kind": "local", "description": "x", "zzz": 1})
    assert re.search(r"zzz: unknown key \(allowed: .*workers", problems(excinfo))


def test_unknown_or_missing_kind():
    with pytest.raises(ConfigError, match=r"kind: unknown site kind 'slrum'; did you mean `slurm`"):
        validate_site({"kind": "slrum", "description": "x"})
    with pytest.raises(ConfigError, match=r"kind: required key is missing"):
        validate_site({"description": "x"})
    with pytest.raises(ConfigError, match=r"kind: unknown site kind \['local'\]"):
        validate_site({"kind": ["local"], "description": "x"})


def test_a_missing_description_is_named():
    with pytest.raises(ConfigError, match="description: required key is missing"):
        validate_site({"kind": "local"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("nodes_per_block", '"two"', "valid integer"),
        ("nodes_per_block", "0", "greater than or equal to 1"),
        ("walltime", "90", 'walltime "HH:MM:SS"'),
        ("walltime", '"1h"', 'walltime "HH:MM:SS"'),
        ("workers_per_node", '"many"', 'positive integer or "auto"'),
        ("exclusive", '"yes"', "valid boolean"),
        ("partition", "7", "valid string"),
        ("scheduler_options", '["#SBATCH -x"]', "valid string"),
        ("max_blocks", "0", "greater than or equal to 1"),
    ],
)
def test_a_wrong_type_is_rejected_with_its_key(tmp_path, key, value, message):
    path = write(tmp_path, f'kind = "slurm"\ndescription = "x"\n{key} = {value}\n')
    with pytest.raises(ConfigError) as excinfo:
        load_site(str(path))
    line = next(p for p in excinfo.value.problems if p.startswith(f"{key}:"))
    assert message in line


def test_blocks_must_be_ordered():
    with pytest.raises(ConfigError, match=r"max_blocks: max_blocks \(1\) is below"):
        validate_site({"kind": "slurm", "description": "x", "init_blocks": 2, "max_blocks": 1})


def test_a_bad_endpoint_id_is_rejected():
    with pytest.raises(ConfigError, match="endpoint_id: expected an endpoint UUID"):
        validate_site({"kind": "globus_compute", "description": "x", "endpoint_id": "abc"})


def test_an_unquoted_toml_time_is_a_walltime(tmp_path):
    site = load_site(str(write(tmp_path, 'kind = "pbs"\ndescription = "x"\nwalltime = 01:30:00\n')))
    assert site.walltime == "01:30:00"


def test_bad_toml_and_missing_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_site(str(write(tmp_path, 'kind = "local\n')))
    with pytest.raises(ConfigError, match="site file not found"):
        load_site(str(tmp_path / "nope.toml"))
    with pytest.raises(
        ConfigError, match=r"no bundled site named 'slurm-exampel'.*`slurm-example`"
    ):
        load_site("slurm-exampel")


def test_sites_are_frozen():
    site = load_site("local")
    with pytest.raises(ValidationError):
        site.workers = 3


def test_loading_touches_neither_parsl_nor_globus(tmp_path):
    code = (
        "import sys, rasterflow.executors as executors\n"
        "s = executors.load_site('globus-compute-example'); executors.list_sites()\n"
        "bad = [m for m in ('parsl', 'globus_compute_sdk') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=60)


# --- Parsl configs ------------------------------------------------------------------------------


def htex(config):
    from parsl.executors import HighThroughputExecutor

    (executor,) = config.executors
    assert isinstance(executor, HighThroughputExecutor)
    return executor


def test_local_config(tmp_path):
    from parsl.launchers import SingleNodeLauncher
    from parsl.providers import LocalProvider

    config = parsl_config(load_site("local"), tmp_path / "runinfo", retries=3)
    executor = htex(config)
    assert isinstance(executor.provider, LocalProvider)
    assert isinstance(executor.provider.launcher, SingleNodeLauncher)
    assert executor.max_workers_per_node == os.cpu_count()
    assert executor.address == "127.0.0.1"
    assert executor.interchange_launch_cmd[0] == sys.executable
    assert f"export PATH={VENV_BIN}:$PATH" in executor.provider.worker_init
    assert config.run_dir == str(tmp_path / "runinfo")
    assert config.retries == 3
    assert config.memoizer.memoize is False
    assert config.strategy == "simple"


def test_local_workers_can_be_fixed():
    site = validate_site({"kind": "local", "description": "x", "workers": 3})
    assert htex(parsl_config(site, "runinfo")).max_workers_per_node == 3


def test_every_call_builds_a_fresh_config(tmp_path):
    for name in ("local", "slurm-example", "pbs-example"):
        site = load_site(name)
        first, second = parsl_config(site, tmp_path), parsl_config(site, tmp_path)
        assert first is not second
        assert htex(first) is not htex(second)
        assert htex(first).provider is not htex(second).provider


def test_retry_handler_is_passed_through(tmp_path):
    def handler(exc, record):
        return 1.0

    config = parsl_config(load_site("local"), tmp_path, retries=5, retry_handler=handler)
    assert config.retries == 5 and config.retry_handler is handler


# Every key of a batch site, set to a value no default has, and where it must arrive in Parsl:
# (the object: "provider", "launcher", "executor" or "config"; its attribute; the value there).
BATCH_KEYS = {
    "account": ("provider", "account", "acct-7"),
    "walltime": ("provider", "walltime", "03:04:05"),
    "nodes_per_block": ("provider", "nodes_per_block", 3),
    "init_blocks": ("provider", "init_blocks", 2),
    "min_blocks": ("provider", "min_blocks", 1),
    "max_blocks": ("provider", "max_blocks", 5),
    "parallelism": ("provider", "parallelism", 0.5),
    "cmd_timeout": ("provider", "cmd_timeout", 11),
    "scheduler_options": ("provider", "scheduler_options", "#X --opt=1"),
    "worker_init": ("provider", "worker_init", "echo ready"),
    "prepend_path": ("provider", "worker_init", "export PATH=/opt/bin:$PATH"),
    "launcher_overrides": ("launcher", "overrides", "--extra=2"),
    "workers_per_node": ("executor", "max_workers_per_node", 6),
    "cores_per_worker": ("executor", "cores_per_worker", 2.0),
    "mem_per_worker": ("executor", "mem_per_worker", 1.5),
    "address": ("executor", "address", "10.1.2.3"),
    "encrypted": ("executor", "encrypted", False),
    "strategy": ("config", "strategy", "htex_auto_scale"),
    "strategy_period": ("config", "strategy_period", 2.5),
    "max_idletime": ("config", "max_idletime", 7.0),
}
KIND_KEYS = {
    "slurm": {
        "partition": ("provider", "partition", "part-1"),
        "qos": ("provider", "qos", "qos-2"),
        "constraint": ("provider", "constraint", "haswell"),
        "cores_per_node": ("provider", "cores_per_node", 7),
        "mem_per_node": ("provider", "mem_per_node", 9),
        "exclusive": ("provider", "exclusive", False),
    },
    "pbs": {
        "queue": ("provider", "queue", "queue-3"),
        "cpus_per_node": ("provider", "cpus_per_node", 12),
        "select_options": ("provider", "select_options", "ngpus=2"),
        "mpiexec_bind_cmd": ("launcher", "bind_cmd", "--cpu-bind"),
    },
}
INPUT = {"prepend_path": "/opt/bin"}  # the key's value in the file, where it differs from Parsl's
# Keys that become one line of a script Parsl adds its own lines to (#SBATCH, PATH).
SCRIPT_LINES = {"scheduler_options", "worker_init", "prepend_path"}


@pytest.mark.parametrize("kind", sorted(KIND_KEYS))
def test_every_site_key_reaches_parsl(kind, tmp_path):
    from parsl.launchers import MpiExecLauncher, SrunLauncher
    from parsl.providers import PBSProProvider, SlurmProvider

    keys = BATCH_KEYS | KIND_KEYS[kind]
    model = load_site("slurm-ci" if kind == "slurm" else "pbs-example")
    assert set(keys) == set(type(model).model_fields) - {"kind", "description"}  # none untested
    table = {key: INPUT.get(key, value) for key, (_, _, value) in keys.items()}
    config = parsl_config(validate_site({"kind": kind, "description": "t", **table}), tmp_path)
    executor = htex(config)
    provider, launcher = executor.provider, executor.provider.launcher
    assert isinstance(provider, SlurmProvider if kind == "slurm" else PBSProProvider)
    assert isinstance(launcher, SrunLauncher if kind == "slurm" else MpiExecLauncher)
    owners = {"provider": provider, "launcher": launcher, "executor": executor, "config": config}
    for key, (owner, attribute, expected) in keys.items():
        got = getattr(owners[owner], attribute)
        if key in SCRIPT_LINES:
            assert expected in got.splitlines(), (key, got)
        else:
            assert got == expected, (key, got)


def test_slurm_ci_config(tmp_path):
    executor = htex(parsl_config(load_site("slurm-ci"), tmp_path))
    assert executor.provider.partition == "debug"
    assert executor.provider.account is None
    assert executor.address == "127.0.0.1"


def test_worker_init_path_can_be_changed_or_dropped():
    base = {"kind": "local", "description": "x", "worker_init": "echo hi"}
    assert worker_init(validate_site({**base, "prepend_path": ""})) == "echo hi"
    custom = worker_init(validate_site({**base, "prepend_path": "/opt/env/bin"}))
    assert custom == "echo hi\nexport PATH=/opt/env/bin:$PATH"


@pytest.mark.parametrize(("setting", "expected"), [("auto", None), ("10.1.2.3", "10.1.2.3")])
def test_address_setting(setting, expected):
    site = validate_site({"kind": "slurm", "description": "x", "address": setting})
    assert htex(parsl_config(site, "runinfo")).address == expected


# --- rendered submit scripts, scheduler mocked as in Parsl's own provider tests ------------------


def submit_with_mocked_scheduler(provider, tmp_path, stdout):
    provider.script_dir = str(tmp_path)
    provider.execute_wait = mock.MagicMock(return_value=(0, stdout, ""))
    job_id = provider.submit("process_worker_pool.py --fake-args", tasks_per_node=1)
    command = provider.execute_wait.call_args.args[0]
    script = Path(command.split()[-1]).read_text()
    return job_id, command, script


def test_rendered_slurm_script(tmp_path):
    provider = htex(parsl_config(load_site("slurm-example"), tmp_path)).provider
    job_id, command, script = submit_with_mocked_scheduler(
        provider, tmp_path, "Submitted batch job 4242"
    )
    assert job_id == "4242"
    assert command.startswith("sbatch ")
    lines = script.splitlines()
    for expected in [
        "#SBATCH --partition=YOUR_PARTITION",
        "#SBATCH --account=YOUR_ACCOUNT",
        "#SBATCH --time=120",  # Parsl writes the walltime in minutes
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --exclusive",
        "#SBATCH --mail-type=NONE",
        "module load python",
        f"export PATH={VENV_BIN}:$PATH",
        "process_worker_pool.py --fake-args",
    ]:
        assert expected in lines, expected
    assert "#SBATCH --cpus-per-task=64" in script
    assert re.search(
        r"^srun --ntasks 1 -l --cpus-per-task=\$SLURM_CPUS_ON_NODE bash ", script, re.M
    )


def test_rendered_pbs_script(tmp_path):
    provider = htex(parsl_config(load_site("pbs-example"), tmp_path)).provider
    job_id, command, script = submit_with_mocked_scheduler(provider, tmp_path, "4242.pbs01\n")
    assert job_id == "4242.pbs01"
    assert command.startswith("qsub ")
    assert re.search(r"-q YOUR_QUEUE\b", command) and re.search(r"-A YOUR_ACCOUNT\b", command)
    lines = script.splitlines()
    for expected in [
        "#PBS -l walltime=01:00:00",
        "#PBS -l select=1:ncpus=32:ngpus=4",
        "#PBS -l filesystems=home:eagle",
        "module load conda",
        f"export PATH={VENV_BIN}:$PATH",
        "process_worker_pool.py --fake-args",
    ]:
        assert expected in lines, expected
    assert re.search(r"^mpiexec --cpu-bind none --depth=64 --ppn 1 -n \$WORKERCOUNT ", script, re.M)


# --- the driver inside one job (issue 8) ----------------------------------------------------------


def test_in_allocation_slurm_uses_all_the_jobs_nodes(tmp_path, monkeypatch):
    from parsl.launchers import SrunLauncher
    from parsl.providers import LocalProvider

    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "3")
    executor = htex(in_allocation_config(load_site("slurm-example"), tmp_path))
    assert isinstance(executor.provider, LocalProvider)
    assert isinstance(executor.provider.launcher, SrunLauncher)
    assert executor.provider.nodes_per_block == 3
    assert f"export PATH={VENV_BIN}:$PATH" in executor.provider.worker_init
    assert "srun --ntasks 3 -l --cpus-per-task=$SLURM_CPUS_ON_NODE" in executor.provider.launcher(
        "process_worker_pool.py", 1, 3
    )


def test_in_allocation_pbs_counts_the_nodefile_hosts(tmp_path, monkeypatch):
    from parsl.launchers import MpiExecLauncher

    monkeypatch.delenv("SLURM_JOB_NUM_NODES", raising=False)
    monkeypatch.delenv("SLURM_NNODES", raising=False)
    nodefile = write(tmp_path, "n1\nn1\nn2\nn2\n", "nodefile")
    monkeypatch.setenv("PBS_NODEFILE", str(nodefile))
    executor = htex(in_allocation_config(load_site("pbs-example"), tmp_path))
    assert isinstance(executor.provider.launcher, MpiExecLauncher)
    assert executor.provider.nodes_per_block == 2
    assert executor.provider.min_blocks == executor.provider.max_blocks == 1


def test_in_allocation_needs_a_batch_site(tmp_path):
    with pytest.raises(ConfigError, match="cannot run inside a batch job"):
        in_allocation_config(load_site("local"), tmp_path)


# --- Globus Compute -----------------------------------------------------------------------------


def test_globus_placeholder_blocks_building_the_executor(tmp_path):
    with pytest.raises(ConfigError, match="endpoint_id: replace the placeholder"):
        parsl_config(load_site("globus-compute-example"), tmp_path)


def test_globus_config_builds_parsls_executor(tmp_path, monkeypatch):
    gcs = pytest.importorskip("globus_compute_sdk")
    from parsl.executors import GlobusComputeExecutor

    monkeypatch.setattr("rasterflow.executors.globus_login.login_problem", lambda: None)

    made = []

    class OfflineExecutor(gcs.Executor):
        def __init__(self, **kwargs):  # no Client: nothing contacts the network
            made.append(kwargs)
            self.resource_specification = kwargs.get("resource_specification")
            self.user_endpoint_config = kwargs.get("user_endpoint_config")

        def __del__(self):
            pass

    monkeypatch.setattr(gcs, "Executor", OfflineExecutor)
    site = validate_site(
        {
            "kind": "globus_compute",
            "description": "x",
            "endpoint_id": "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
            "user_endpoint_config": {"account": "abc"},
        }
    )
    first, second = parsl_config(site, tmp_path), parsl_config(site, tmp_path)
    (executor,) = first.executors
    assert isinstance(executor, GlobusComputeExecutor)
    assert executor.executor is not second.executors[0].executor
    assert made[0] == {
        "endpoint_id": "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
        "user_endpoint_config": {"account": "abc"},
    }
    assert executor.user_endpoint_config == {"account": "abc"}


# --- the CI cluster scripts ---------------------------------------------------------------------


@pytest.mark.parametrize("script", ["slurm_up.sh", "slurm_down.sh"])
def test_ci_scripts_parse(script):
    path = REPO / ".ci" / script
    assert os.access(path, os.X_OK)
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_ci_slurm_conf_has_what_this_machine_needs():
    text = (REPO / ".ci" / "slurm_up.sh").read_text()
    for needed in [
        "ProctrackType=proctrack/linuxproc",
        "SelectType=select/cons_tres",
        "slurmd -N localhost",
        "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
    ]:
        assert needed in text


# --- the threads kind (tests/sites/threads.toml) --------------------------------------------------


def test_threads_site_builds_a_thread_pool(tmp_path):
    from parsl.executors import ThreadPoolExecutor

    site = load_site(TEST_SITES / "threads.toml")
    assert site.kind == "threads" and site.max_threads == 2
    config = parsl_config(site, tmp_path, retries=4)
    (executor,) = config.executors
    assert isinstance(executor, ThreadPoolExecutor) and executor.max_threads == 2
    assert config.retries == 4 and config.memoizer.memoize is False
    auto = validate_site({"kind": "threads", "description": "x"})
    assert parsl_config(auto, tmp_path).executors[0].max_threads == os.cpu_count()
    with pytest.raises(ConfigError, match="'threads' site cannot run inside a batch job"):
        in_allocation_config(site, tmp_path)
    with pytest.raises(ConfigError, match="max_threads"):
        validate_site({"kind": "threads", "description": "x", "max_threads": 0})
