"""`rasterflow submit` and Globus Compute, tested up to the network boundary.

No Globus service is reachable here. What runs for real: the credential check (no login →
exit 2 at once, no prompt, nothing created), the SDK's serializer round trip of the one
function and its data-only arguments, the endpoint's own `GlobusComputeEngine` (built by
globus-compute-endpoint's config loader from the template in docs/remote.md) running the
packed task as an endpoint does, and `rasterflow submit --wait` with the SDK's real
`Client`, whose HTTPS calls alone go to an in-process stand-in for the web service that
hands each task to that engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from rasterflow.executors import globus, globus_login
from rasterflow.executors.globus import serializer
from rasterflow.executors.globus_login import NotLoggedIn, login_problem
from rasterflow.rasterize_core.errors import ConfigError
from rasterflow.workflow.cli import main
from rasterflow.workflow.demo.synthetic import make_sample
from rasterflow.workflow.submit import remote_run, submission_arguments

pytest.importorskip("globus_compute_sdk", reason="the `globus` extra is not installed")
pytest.importorskip("globus_compute_endpoint", reason="the `globus` extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
ENDPOINT_ID = "5b4f4c0e-7a52-4d5e-9a8f-3c2d1e0f9a11"
SAMPLE = {"z_range": (11, 13), "tiles": (2, 1)}  # 2 z-13 tiles, one parent per level


# --- helpers ---------------------------------------------------------------------------------


def endpoint_template(name: str) -> str:
    """The YAML block marked `rasterflow-endpoint-template: NAME` in the docs."""
    marker = f"<!-- rasterflow-endpoint-template: {name} -->"
    for doc in (ROOT / "docs" / "remote.md", ROOT / "README.md"):
        text = doc.read_text() if doc.exists() else ""
        if marker in text:
            block = re.search(r"```yaml\n(.*?)\n[ \t]*```", text.split(marker, 1)[1], re.S)
            return textwrap.dedent(block.group(1)) + "\n"
    pytest.fail(f"no {marker} block in docs/remote.md or README.md")


def build_engine(template: str, **provider_overrides):
    """A GlobusComputeEngine from endpoint-template YAML, loaded as the endpoint loads it."""
    import yaml
    from globus_compute_endpoint.endpoint.config.utils import load_config_yaml

    assert "{{" not in template and "{%" not in template  # plain YAML: renders to itself
    data = yaml.safe_load(template)
    data["engine"]["provider"].update(provider_overrides)
    return load_config_yaml(yaml.safe_dump(data)).engine


def digests(root: Path, pattern: str = "*.tif") -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob(pattern))
    }


def client_side_payloads(arguments: dict) -> tuple[str, str]:
    """(function_code, task payload) exactly as the SDK's Client builds them for `submit`."""
    from globus_compute_sdk.sdk.batch import Batch
    from globus_compute_sdk.sdk.client import FunctionRegistrationData

    ser = serializer()
    function_code = FunctionRegistrationData(function=remote_run, serializer=ser).function_code
    batch = Batch(task_group_id=None, serializer=ser)
    function_id = str(uuid.uuid4())
    batch.add(function_id, args=(), kwargs=arguments)
    return function_code, batch.prepare()["tasks"][function_id][0]


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


# --- what is sent ----------------------------------------------------------------------------


def test_arguments_are_data_only(make_config, tmp_path):
    path = make_config(z_range=[11, 13])
    arguments = submission_arguments(path, site="slurm-ci", overwrite=True)
    assert set(arguments) == {"config", "site", "overwrite"}
    assert json.loads(json.dumps(arguments)) == arguments
    raw = json.loads(path.read_text())
    assert arguments["config"] == raw | {"filename_config": str(tmp_path / "config.json")}
    assert arguments["site"] == "slurm-ci" and arguments["overwrite"] is True


def test_relative_paths_need_a_workdir(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"dir_staged": "staged", "dir_geotiff": "/abs/geotiff"}))
    with pytest.raises(ConfigError) as excinfo:
        submission_arguments(path)
    text = str(excinfo.value)
    assert "dir_staged: 'staged' is relative" in text and "--workdir" in text
    assert "dir_geotiff" not in text
    assert "dir_web_tiles" in text  # left out: the relative default
    arguments = submission_arguments(path, workdir="/data/run1")
    assert arguments["workdir"] == "/data/run1"
    with pytest.raises(ConfigError, match="must be an absolute path"):
        submission_arguments(path, workdir="run1")


def test_a_bad_config_never_leaves(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"z_rnage": [0, 13]}))
    with pytest.raises(ConfigError, match="did you mean 'z_range'"):
        submission_arguments(path)


def test_function_travels_by_reference_and_arguments_as_json(make_config):
    import base64

    arguments = submission_arguments(make_config())
    function_code, payload = client_side_payloads(arguments)
    ser = serializer()
    (code,) = ser.unpack_buffers(function_code)
    assert code.startswith("01\n")  # DillCode
    pickled = base64.b64decode(code[3:])
    assert b"rasterflow.workflow.submit" in pickled and b"remote_run" in pickled
    assert len(pickled) < 200  # a reference, not the function's code
    args, kwargs = ser.unpack_buffers(payload)
    assert args == "11\n[]" and kwargs.startswith("11\n")  # JSONData
    assert json.loads(kwargs[3:]) == arguments


@pytest.mark.slow
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


@pytest.mark.slow
def test_roundtrip_function_runs(roundtrip):
    assert roundtrip.function is remote_run
    summary = roundtrip.summary
    assert json.loads(json.dumps(summary)) == summary  # JSONData can carry it back
    assert summary["exit_code"] == 0 and summary["failed"] == 0, summary
    assert summary["ok"] == {"rasterize": 2, "parent": 2, "webtile": 4}
    config = roundtrip.sample.config_path.parent
    assert summary["geotiff_dir"] == str(config / "geotiff")
    assert len(digests(config / "geotiff")) == 4
    assert summary["last_line"].startswith("rasterflow: 8 tile steps ok, 0 failed")


def test_remote_run_reports_a_bad_config_without_running(tmp_path):
    summary = remote_run({"z_range": [13, 10]}, site="local")
    assert summary["exit_code"] == 2
    assert "z_range [13, 10] is reversed" in summary["error"]
    summary = remote_run({"dir_staged": str(tmp_path)}, site="no-such-site")
    assert summary["exit_code"] == 2 and "no bundled site named 'no-such-site'" in summary["error"]


# --- the endpoint's engine -------------------------------------------------------------------


@pytest.mark.slow
def test_endpoint_engine_runs_the_function(engine, samples, roundtrip):
    sample = samples("engine")
    arguments = submission_arguments(sample.config_path, site="local")
    result = run_on_engine(engine, *client_side_payloads(arguments))
    assert not result.is_error, result.data
    summary = serializer().deserialize(result.data)
    assert summary["exit_code"] == 0, summary
    assert summary["ok"] == roundtrip.summary["ok"]
    root = sample.config_path.parent
    assert digests(root / "geotiff") == digests(roundtrip.sample.config_path.parent / "geotiff")
    assert (root / "config__updated.json").exists()
    assert not list(Path(root).rglob("*.tmp"))


@pytest.mark.slow
def test_endpoint_engine_returns_a_remote_exception(engine, make_config):
    arguments = submission_arguments(make_config())
    arguments["config"] = "not a dict"  # remote_run's dict() of a str raises ValueError
    result = run_on_engine(engine, *client_side_payloads(arguments), timeout=120)
    assert result.is_error and "ValueError" in result.data


@pytest.mark.slow
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
    assert digests(root / "geotiff") == digests(roundtrip.sample.config_path.parent / "geotiff")
    parsl_logs = list((root / ".rasterflow" / "runinfo").glob("*/parsl.log"))
    assert re.search(r"Launched block \d+ with job ID \d+", parsl_logs[-1].read_text())


def test_the_slurm_workers_template_builds_slurm_engine():
    from parsl.launchers import SrunLauncher
    from parsl.providers import SlurmProvider

    engine = build_engine(endpoint_template("slurm-workers"))
    try:
        provider = engine.executor.provider
        assert isinstance(provider, SlurmProvider) and isinstance(provider.launcher, SrunLauncher)
        assert provider.partition == "cpu" and provider.account == "my-allocation"
        assert engine.executor.max_workers_per_node == 32
    finally:
        engine.shutdown()


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


@pytest.mark.slow
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
    assert digests(root / "geotiff") == digests(roundtrip.sample.config_path.parent / "geotiff")


@pytest.mark.slow
def test_submit_without_wait_prints_only_the_task_id(service, make_config):
    config = make_config()  # no staged tiles: the remote run will end with exit 2
    result = CliRunner().invoke(main, ["submit", str(config), "--endpoint", ENDPOINT_ID])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == next(iter(service.futures))


@pytest.mark.slow
def test_submit_wait_passes_on_the_remote_exit_code(service, make_config):
    config = make_config()
    result = CliRunner().invoke(main, ["submit", str(config), "--endpoint", ENDPOINT_ID,
                                       "--site", "no-such-site", "--wait"])  # fmt: skip
    assert result.exit_code == 2
    assert "no bundled site named 'no-such-site'" in result.stdout.strip().splitlines()[-1]


def test_submit_rejects_a_bad_endpoint_id(make_config):
    result = CliRunner().invoke(main, ["submit", str(make_config()), "--endpoint", "nope"])
    assert result.exit_code == 2 and "not a valid UUID" in result.output


# --- credentials: never a prompt -------------------------------------------------------------


@pytest.fixture
def no_login(tmp_path, monkeypatch):
    """No client variables, and the SDK's storage folder an empty place under tmp_path."""
    for key in ("GLOBUS_COMPUTE_CLIENT_ID", "GLOBUS_COMPUTE_CLIENT_SECRET"):
        monkeypatch.delenv(key, raising=False)
    folder = tmp_path / "globus_compute"
    monkeypatch.setenv("GLOBUS_COMPUTE_USER_DIR", str(folder))
    return folder


@pytest.mark.parametrize("stdin", ["devnull", "closed"])
def test_submit_without_credentials_fails_at_once(tmp_path, make_config, stdin):
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("GLOBUS_", "XDG_"))}  # fmt: skip
    env |= {"HOME": str(home), "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"}
    command = [str(VENV_BIN / "rasterflow"), "submit", str(make_config()), "--endpoint",
               ENDPOINT_ID, "--wait"]  # fmt: skip
    started = time.monotonic()
    if stdin == "closed":
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60,
                                stdin=None, preexec_fn=lambda: os.close(0))  # fmt: skip
    else:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60,
                                stdin=subprocess.DEVNULL)  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert elapsed < 30, elapsed
    assert "not logged in to Globus Compute" in result.stderr
    for hint in ("globus-compute-endpoint login", "GLOBUS_COMPUTE_CLIENT_ID",
                 "GLOBUS_COMPUTE_CLIENT_SECRET"):  # fmt: skip
        assert hint in result.stderr
    assert result.stdout == ""  # no task id: nothing was sent
    assert list(home.iterdir()) == []  # not even the SDK's folder was created


def test_login_problem_without_storage_creates_nothing(no_login):
    assert "does not exist" in login_problem()
    assert not no_login.exists()
    with pytest.raises(NotLoggedIn, match="globus-compute-endpoint login"):
        globus_login.compute_client()


def test_login_problem_with_client_variables(no_login, monkeypatch):
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_SECRET", "s3cret")
    assert "GLOBUS_COMPUTE_CLIENT_ID is not" in login_problem()
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_ID", str(uuid.uuid4()))
    assert login_problem() is None


def store_tokens(expires_in: int, refresh: bool) -> None:
    from globus_compute_sdk.sdk.auth.token_storage import get_token_storage
    from globus_sdk.token_storage import TokenStorageData

    scopes = {"auth.globus.org": "openid",
              "funcx_service": "https://auth.globus.org/scopes/"
                               "facd7ccc-c5f4-42aa-916b-a0e270e2c2a9/all"}  # fmt: skip
    storage = get_token_storage()
    storage.store_token_data_by_resource_server({
        server: TokenStorageData(
            resource_server=server, identity_id=str(uuid.UUID(int=1)), scope=scope,
            access_token="access", refresh_token="refresh" if refresh else None,
            expires_at_seconds=int(time.time()) + expires_in, token_type="Bearer",
        )
        for server, scope in scopes.items()
    })  # fmt: skip
    storage.close()


def test_a_stored_login_is_recognised_offline(no_login):
    store_tokens(expires_in=3600, refresh=True)
    assert login_problem() is None


def test_an_expired_login_without_refresh_is_a_problem(no_login):
    store_tokens(expires_in=-3600, refresh=False)
    assert "expired" in login_problem()


def test_the_non_interactive_app_raises_instead_of_prompting(no_login, monkeypatch):
    def no_input(*args, **kwargs):
        raise AssertionError("prompted for input")

    monkeypatch.setattr("builtins.input", no_input)
    store_tokens(expires_in=-3600, refresh=False)
    app = globus_login._globus_app(interactive=False)
    with pytest.raises(NotLoggedIn, match="no terminal"):
        app.login(force=True)
