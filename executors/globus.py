"""`rasterflow submit`: send a whole run to a Globus Compute endpoint (DESIGN.md §5).

The run travels as ONE function call whose arguments are plain data:

    remote_run(config={...the PDG config, as JSON...}, site="NAME-or-PATH",
               overwrite=False, workdir=None)                    # -> summary dict

`remote_run` is imported on the endpoint as `executors.globus.remote_run` (the function is
sent by reference with the SDK's `DillCode`; the arguments as JSON with `JSONData`; the
result comes back as JSON too), so rasterflow must be installed in the endpoint's Python.
There it validates the config again, runs `run_workflow` with the named site (a site of the
endpoint's machine: a bundled name or a path there) and returns `report_summary(report)`.

Client side, nothing touches the network before the credentials are known to be usable
(`executors.globus_login`: no login is a `NotLoggedIn` error at once, never a prompt).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executors.globus_login import NotLoggedIn, _globus_app, login_problem
from rasterize_core.errors import ConfigError, RasterflowError, SubmitError

REMOTE_FUNCTION = "executors.globus.remote_run"
#: Import path of the task's data serialization: arguments and result as JSON only.
DATA_STRATEGY = "globus_compute_sdk.serialize.JSONData"
MAX_FAILURES_IN_SUMMARY = 50
#: The config keys that name files or folders: they must make sense on the endpoint.
PATH_KEYS = (
    "dir_staged",
    "dir_geotiff",
    "dir_web_tiles",
    "filename_rasterization_events",
    "filename_rasters_summary",
    "filename_config",
)


class RemoteRunError(SubmitError):
    """The task was accepted but the remote run raised, or could not be waited for."""


# --- endpoint side -------------------------------------------------------------------------------


def remote_run(
    config: dict[str, Any],
    site: str = "local",
    overwrite: bool = False,
    workdir: str | None = None,
) -> dict[str, Any]:
    """Run the workflow where this function executes; return `report_summary` (plain data).

    `config` is the PDG config as a JSON object, `site` a site name or path on this machine,
    `workdir` the folder that relative paths in `config` resolve against. A config or site
    that does not validate, or an output locked by another run, comes back as a summary with
    `exit_code` 2 and `error` (nothing has run); anything else unexpected raises, and the
    SDK re-raises it on the submitting side.
    """
    from workflow.config import parse_config
    from workflow.run import run_workflow

    if workdir:
        os.chdir(workdir)
    try:
        model = parse_config(dict(config), source="the submitted config")
        report = run_workflow(model, site=site, overwrite=overwrite, live_progress=False)
    except RasterflowError as err:
        return {
            "exit_code": 2,
            "error": str(err),
            "host": socket.gethostname(),
            "last_line": f"rasterflow: {err}",
        }
    return report_summary(report)


def report_summary(report) -> dict[str, Any]:
    """A `RunReport` as a small JSON-ready dict: counts, failures, where, last line."""
    failures = [
        {key: _plain(row.get(key)) for key in ("step", "z", "x", "y", "path", "error")}
        for row in report.failures[:MAX_FAILURES_IN_SUMMARY]
    ]
    return {
        "run_id": report.run_id,
        "host": socket.gethostname(),
        "exit_code": report.exit_code,
        "ok": {step: int(n) for step, n in report.ok.items()},
        "done": {step: int(n) for step, n in report.done.items()},
        "failed": len(report.failures),
        "failures": failures,
        "notes": [str(note) for note in report.notes],
        "elapsed_s": float(report.elapsed_s),
        "geotiff_dir": str(report.geotiff_dir),
        "web_tiles_dir": str(report.web_tiles_dir),
        "events_csv": str(report.events_csv),
        "last_line": report.last_line(),
    }


def _plain(value: Any) -> Any:
    """A JSON-native copy of an event-row value (numpy ints, NaN, paths)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return None if value != value else value  # NaN → None
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    return str(value)


# --- client side: what is sent -------------------------------------------------------------------


def submission_arguments(
    config_path: str | os.PathLike[str],
    site: str = "local",
    overwrite: bool = False,
    workdir: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of `remote_run` for this config file: JSON-ready data only.

    The config is validated here first (a bad config never leaves this machine). Its paths
    are paths on the endpoint's machine: relative ones need `workdir`. A config without
    `filename_config` gets one beside its event log, so the `__updated.json` that the run
    writes lands with the outputs, not in the endpoint's task folder.
    """
    from workflow.config import parse_config, read_config_json

    source = str(config_path)
    raw = read_config_json(config_path)
    model = parse_config(raw, source)
    if "filename_config" not in raw:
        events = Path(model.filename_rasterization_events)
        raw["filename_config"] = str(events.parent / Path(config_path).name)
    if workdir is None:
        relative = [key for key in PATH_KEYS if key in raw and not Path(raw[key]).is_absolute()]
        relative += [  # keys left out take relative defaults
            key for key in PATH_KEYS if key not in raw and key != "filename_config"
        ]
        if relative:
            raise ConfigError(
                source,
                [
                    f"{key}: {str(getattr(model, key))!r} is relative; a remote run needs "
                    "absolute paths on the endpoint's machine, or --workdir DIR there"
                    for key in relative
                ],
            )
    elif not Path(workdir).is_absolute():
        raise ConfigError(source, [f"--workdir {workdir!r} must be an absolute path"])
    arguments = {"config": raw, "site": str(site), "overwrite": bool(overwrite)}
    if workdir is not None:
        arguments["workdir"] = str(workdir)
    json.dumps(arguments)  # data only: anything else fails here, not on the endpoint
    return arguments


def serializer():
    """The SDK serializer used for the task: function by reference, data as JSON."""
    from globus_compute_sdk.serialize import ComputeSerializer, DillCode, JSONData

    return ComputeSerializer(strategy_code=DillCode(), strategy_data=JSONData())


# --- client side: the client, behind the login check ---------------------------------------------


def require_login() -> None:
    """Raise `NotLoggedIn` unless a client can be created without asking anyone."""
    problem = login_problem()
    if problem:
        raise NotLoggedIn(problem)


def compute_client():
    """A `globus_compute_sdk.Client` for the submission (after `require_login`)."""
    require_login()
    try:
        from globus_compute_sdk import Client
    except ImportError as exc:
        raise SubmitError(f"{exc}: pip install 'rasterflow[globus]'") from exc

    interactive = sys.stdin is not None and sys.stdin.isatty()
    return Client(app=_globus_app(interactive))


# --- client side: submit and wait ----------------------------------------------------------------


@dataclass
class Submitted:
    task_id: str
    endpoint_id: str
    summary: dict[str, Any] | None = None  # with wait=True: what remote_run returned

    @property
    def exit_code(self) -> int:
        return 0 if self.summary is None else int(self.summary.get("exit_code", 1))


def submit_run(
    config_path: str | os.PathLike[str],
    endpoint_id: str,
    site: str = "local",
    overwrite: bool = False,
    workdir: str | None = None,
    wait: bool = False,
    on_submitted: Callable[[str], None] | None = None,
    poll_s: float = 2.0,
    timeout_s: float | None = None,
    client_factory: Callable[[], Any] | None = None,
) -> Submitted:
    """Send `remote_run(**arguments)` to the endpoint as one task; optionally wait for it.

    Validates the config and checks the login before anything goes out; `on_submitted` is
    called with the task id as soon as the service has accepted the task.
    """
    arguments = submission_arguments(config_path, site, overwrite, workdir)
    try:
        client = (client_factory or compute_client)()
        client.fx_serializer = serializer()  # however the client was built: these strategies
        function_id = client.register_function(
            remote_run, description="rasterflow: one whole run (executors.globus.remote_run)"
        )
        batch = client.create_batch(result_serializers=[DATA_STRATEGY])
        batch.add(function_id, args=(), kwargs=arguments)
        response = client.batch_run(endpoint_id, batch)
    except RasterflowError:
        raise
    except Exception as exc:  # service refused (unknown endpoint, no permission, network)
        raise SubmitError(f"could not submit to Globus Compute: {exc}") from exc
    task_id = str(response["tasks"][str(function_id)][0])
    submitted = Submitted(task_id=task_id, endpoint_id=str(endpoint_id))
    if on_submitted:
        on_submitted(task_id)
    if wait:
        submitted.summary = wait_for_result(client, task_id, poll_s, timeout_s)
    return submitted


def wait_for_result(
    client, task_id: str, poll_s: float = 2.0, timeout_s: float | None = None
) -> dict[str, Any]:
    """Poll the task until it finishes; return remote_run's summary (or raise its error)."""
    from globus_compute_sdk.errors import TaskExecutionFailed

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    delay = min(poll_s, 1.0)
    while True:
        try:
            task = client.get_task(task_id)
        except TaskExecutionFailed as exc:
            raise RemoteRunError(f"the remote run (task {task_id}) raised:\n{exc}") from exc
        if not task.get("pending", True):
            if "result" in task:
                return task["result"]
            raise RemoteRunError(f"task {task_id} ended without a result: {task}")
        if deadline is not None and time.monotonic() > deadline:
            raise RemoteRunError(
                f"task {task_id} still {task.get('status', 'pending')} after {timeout_s} s "
                "(the run goes on; look again later)"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, max(poll_s, 30.0))
