"""`rasterflow submit` and Globus Compute, tested up to the network boundary: the tasks run.

No Globus service is reachable here. What runs for real: the credential check (no login →
exit 2 at once, no prompt, nothing created), the SDK's serializer round trip of the one
function and its data-only arguments, the endpoint's own `GlobusComputeEngine` (built by
globus-compute-endpoint's config loader from the template in docs/remote.md) running the
packed task as an endpoint does, and `rasterflow submit --wait` with the SDK's real
`Client`, whose HTTPS calls alone go to an in-process stand-in for the web service that
hands each task to that engine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from rasterflow.executors import globus
from rasterflow.executors.globus import serializer
from rasterflow.workflow.cli import main
from rasterflow.workflow.demo.synthetic import make_sample
from rasterflow.workflow.submit import remote_run, submission_arguments
from tests.helpers.files import file_digests
from tests.helpers.globus import ENDPOINT_ID, build_engine, client_side_payloads, endpoint_template

pytest.importorskip("globus_compute_sdk", reason="the `globus` extra is not installed")
pytest.importorskip("globus_compute_endpoint", reason="the `globus` extra is not installed")

VENV_BIN = Path(sys.executable).parent
SAMPLE = {"z_range": (11, 13), "tiles": (2, 1)}  # 2 z-13 tiles, one parent per level


# --- helpers ---------------------------------------------------------------------------------


def run_on_engine(engine, function_code: str, payload: str, timeout: float = 600):
    """Hand one task to the engine as the endpoint does; return the unpacked Result."""
    from globus_compute_common import messagepack
    from globus_compute_common.messagepack.message_types import Task
    from globus_compute_endpoint.engines import GCFuture

    task_id = uuid.uuid4()
    message = messagepack.pack(Task(task_id=task_id, task_buffer=function_code + payload))
    future = GCFuture(task_id)
    engine.submit(future, message, resource_specification={},
                  result_serializers=[globus.DATA_STRATEGY])  # fmt: skip
    result = messagepack.unpack(future.result(timeout=timeout))
    assert result.task_id == task_id
    return result


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Factory: a fresh copy of the same synthetic sample (same seed: same inputs)."""

    def make(name: str):
        return make_sample(tmp_path_factory.mktemp(name), **SAMPLE)

    return make


@pytest.fixture(scope="module")
def roundtrip(samples):
    """Serialize function and arguments as `submit` does, deserialize, call: the reference."""
    sample = samples("roundtrip")
    arguments = submission_arguments(sample.config_path, site="local")
    function_code, payload = client_side_payloads(arguments)
    from globus_compute_sdk.serialize import ComputeSerializer

    endpoint_side = ComputeSerializer()  # what execute_task builds: default strategies
    function, args, kwargs = endpoint_side.unpack_and_deserialize(function_code + payload)
    summary = function(*args, **kwargs)
    return SimpleNamespace(sample=sample, arguments=arguments, function=function,
                           args=args, kwargs=kwargs, summary=summary,
                           function_code=function_code, payload=payload)  # fmt: skip


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The endpoint's engine from the docs' login-node template, started as an endpoint does."""
    saved_path = os.environ["PATH"]
    # The engine launches its interchange as `globus-compute-endpoint python-exec ...` from
    # PATH, as an endpoint started from the activated venv would.
    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{saved_path}"
    engine = build_engine(endpoint_template("login-node"),
                          worker_init=f"export PATH={VENV_BIN}:$PATH")  # fmt: skip
    run_dir = tmp_path_factory.mktemp("endpoint")
    engine.start(endpoint_id=uuid.UUID(ENDPOINT_ID), run_dir=str(run_dir))
    try:
        yield engine
    finally:
        engine.shutdown()
        os.environ["PATH"] = saved_path


def test_a_fresh_interpreter_deserializes_the_task(roundtrip, tmp_path):
    task = tmp_path / "task.txt"
    task.write_text(roundtrip.function_code + roundtrip.payload)
    script = (
        "import json, sys\n"
        "from globus_compute_sdk.serialize import ComputeSerializer\n"
        "f, a, k = ComputeSerializer().unpack_and_deserialize(open(sys.argv[1]).read())\n"
        "print(f.__module__ + '.' + f.__qualname__, json.dumps([a, k]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(task)], capture_output=True,
                         text=True, timeout=120, check=True, cwd=tmp_path)  # fmt: skip
    name, data = out.stdout.strip().split(" ", 1)
    assert name == "rasterflow.workflow.submit.remote_run"
    assert json.loads(data) == [[], roundtrip.arguments]


def test_roundtrip_function_runs(roundtrip):
    assert roundtrip.function is remote_run
    summary = roundtrip.summary
    assert json.loads(json.dumps(summary)) == summary  # JSONData can carry it back
    assert summary["exit_code"] == 0 and summary["failed"] == 0, summary
    assert summary["ok"] == {"rasterize": 2, "parent": 2, "webtile": 4}
    config = roundtrip.sample.config_path.parent
    assert summary["geotiff_dir"] == str(config / "geotiff")
    assert len(file_digests(config / "geotiff")) == 4
    assert summary["last_line"].startswith("rasterflow: 8 tile steps ok, 0 failed")


# --- the endpoint's engine -------------------------------------------------------------------


def test_endpoint_engine_runs_the_function(engine, samples, roundtrip):
    sample = samples("engine")
    arguments = submission_arguments(sample.config_path, site="local")
    result = run_on_engine(engine, *client_side_payloads(arguments))
    assert not result.is_error, result.data
    summary = serializer().deserialize(result.data)
    assert summary["exit_code"] == 0, summary
    assert summary["ok"] == roundtrip.summary["ok"]
    root = sample.config_path.parent
    reference = roundtrip.sample.config_path.parent / "geotiff"
    assert file_digests(root / "geotiff") == file_digests(reference)
    assert (root / "config__updated.json").exists()
    assert not list(Path(root).rglob("*.tmp"))


def test_endpoint_engine_returns_a_remote_exception(engine, make_config):
    arguments = submission_arguments(make_config())
    arguments["config"] = "not a dict"  # remote_run's dict() of a str raises ValueError
    result = run_on_engine(engine, *client_side_payloads(arguments), timeout=120)
    assert result.is_error and "ValueError" in result.data


@pytest.mark.slurm
def test_endpoint_engine_drives_a_slurm_site(slurm_cluster, engine, samples, roundtrip):
    """The production chain: endpoint engine on the login node → driver → sbatch workers."""
    sample = samples("engine-slurm")
    arguments = submission_arguments(sample.config_path, site="slurm-ci")
    result = run_on_engine(engine, *client_side_payloads(arguments))
    assert not result.is_error, result.data
    summary = serializer().deserialize(result.data)
    assert summary["exit_code"] == 0, summary
    root = sample.config_path.parent
    reference = roundtrip.sample.config_path.parent / "geotiff"
    assert file_digests(root / "geotiff") == file_digests(reference)
    parsl_logs = list((root / ".rasterflow" / "runinfo").glob("*/parsl.log"))
    assert re.search(r"Launched block \d+ with job ID \d+", parsl_logs[-1].read_text())


# --- `rasterflow submit` end to end, the web service stood in for -------------------------------


class StandInService:
    """The Globus Compute web service's HTTPS API (v2/v3), in process: the only stand-in.

    It keeps registered functions, joins a function's code and a task's payload into the
    Task message an endpoint receives, gives it to the engine, and answers get_task as the
    service does.
    """

    def __init__(self, engine):
        self.engine = engine
        self.functions: dict[str, dict] = {}
        self.futures: dict[str, object] = {}
        self.batches: list[dict] = []
        self.v2 = SimpleNamespace(get_task=self.get_task)
        self.v3 = SimpleNamespace(register_function=self.register_function, submit=self.submit)

    def client(self):
        """The SDK's real Client, with its web client pointed here."""
        import globus_sdk
        from globus_compute_sdk import Client

        client = Client(authorizer=globus_sdk.NullAuthorizer(), do_version_check=False)
        client._compute_web_client = self
        return client

    def register_function(self, data: dict):
        function_id = str(uuid.uuid4())
        self.functions[function_id] = data
        return SimpleNamespace(data={"function_uuid": function_id})

    def submit(self, endpoint_id, batch: dict):
        from globus_compute_common import messagepack
        from globus_compute_common.messagepack.message_types import Task
        from globus_compute_endpoint.engines import GCFuture

        assert str(endpoint_id) == ENDPOINT_ID
        json.dumps(batch)  # what goes over HTTPS is JSON
        self.batches.append(batch)
        tasks: dict[str, list[str]] = {}
        for function_id, payloads in batch["tasks"].items():
            code = self.functions[function_id]["function_code"]
            for payload in payloads:
                task_id = uuid.uuid4()
                future = GCFuture(task_id, function_id=function_id)
                message = messagepack.pack(Task(task_id=task_id, task_buffer=code + payload))
                self.engine.submit(future, message, resource_specification={},
                                   result_serializers=batch.get("result_serializers"))  # fmt: skip
                self.futures[str(task_id)] = future
                tasks.setdefault(function_id, []).append(str(task_id))
        return SimpleNamespace(data={"tasks": tasks, "request_id": "stand-in",
                                     "task_group_id": str(uuid.uuid4()),
                                     "endpoint_id": str(endpoint_id)})  # fmt: skip

    def get_task(self, task_id):
        from globus_compute_common import messagepack

        future = self.futures[str(task_id)]
        if not future.done():
            body = {"task_id": str(task_id), "status": "waiting-for-result"}
        else:
            result = messagepack.unpack(future.result())
            body = {"task_id": str(task_id), "completion_t": str(time.time())}
            if result.is_error:
                body |= {"status": "failed", "exception": result.data}
            else:
                body |= {"status": "success", "result": result.data}
        return SimpleNamespace(text=json.dumps(body))

    def wait_all(self, timeout: float = 600) -> None:
        for future in self.futures.values():
            future.result(timeout=timeout)


@pytest.fixture
def service(engine, monkeypatch):
    service = StandInService(engine)
    monkeypatch.setattr(globus, "compute_client", service.client)
    yield service
    service.wait_all()


def test_submit_wait_prints_task_id_and_summary(service, samples, roundtrip):
    sample = samples("submit")
    result = CliRunner().invoke(main, ["submit", str(sample.config_path),
                                       "--endpoint", ENDPOINT_ID, "--wait"])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == next(iter(service.futures))  # the task id, first
    summary = json.loads(lines[-2])
    assert summary["exit_code"] == 0 and summary["ok"] == roundtrip.summary["ok"]
    assert lines[-1] == summary["last_line"] and "0 failed" in lines[-1]
    (batch,) = service.batches
    (payloads,) = batch["tasks"].values()
    assert len(payloads) == 1  # ONE function call for the whole run
    assert batch["result_serializers"] == [globus.DATA_STRATEGY]
    (registered,) = service.functions.values()
    assert registered["function_name"] == "remote_run"
    root = sample.config_path.parent
    reference = roundtrip.sample.config_path.parent / "geotiff"
    assert file_digests(root / "geotiff") == file_digests(reference)


def test_submit_without_wait_prints_only_the_task_id(service, make_config):
    config = make_config()  # no staged tiles: the remote run will end with exit 2
    result = CliRunner().invoke(main, ["submit", str(config), "--endpoint", ENDPOINT_ID])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == next(iter(service.futures))


def test_submit_wait_passes_on_the_remote_exit_code(service, make_config):
    config = make_config()
    result = CliRunner().invoke(main, ["submit", str(config), "--endpoint", ENDPOINT_ID,
                                       "--site", "no-such-site", "--wait"])  # fmt: skip
    assert result.exit_code == 2
    assert "no bundled site named 'no-such-site'" in result.stdout.strip().splitlines()[-1]
