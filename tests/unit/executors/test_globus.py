"""`rasterflow submit` up to the network boundary: the data-only arguments and the function sent
by reference, the endpoint templates of the docs, and credentials checked without a prompt.
(The endpoint's engine running tasks is in tests/system/test_globus.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from rasterflow.executors import globus_login
from rasterflow.executors.globus import serializer
from rasterflow.executors.globus_login import NotLoggedIn, login_problem
from rasterflow.rasterize_core.errors import ConfigError
from rasterflow.workflow.cli import main
from rasterflow.workflow.submit import remote_run, submission_arguments
from tests.helpers.globus import ENDPOINT_ID, build_engine, client_side_payloads, endpoint_template

pytest.importorskip("globus_compute_sdk", reason="the `globus` extra is not installed")
pytest.importorskip("globus_compute_endpoint", reason="the `globus` extra is not installed")

VENV_BIN = Path(sys.executable).parent


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
    with pytest.raises(ConfigError, match="did you mean `z_range`"):
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


def test_remote_run_reports_a_bad_config_without_running(tmp_path):
    summary = remote_run({"z_range": [13, 10]}, site="local")
    assert summary["exit_code"] == 2
    assert "z_range [13, 10] is reversed" in summary["error"]
    summary = remote_run({"dir_staged": str(tmp_path)}, site="no-such-site")
    assert summary["exit_code"] == 2 and "no bundled site named 'no-such-site'" in summary["error"]


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
