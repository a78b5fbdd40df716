"""Globus Compute transport: send one function call to an endpoint, wait for its result.

The function travels by reference (the SDK's `DillCode`: the endpoint imports it by module
and name, so the same rasterflow must be installed there), its arguments and its result as
JSON (`JSONData`): data only. Which function and which arguments is the engine's business
(`rasterflow.workflow.submit`). Nothing touches the network before the credentials are known
to be usable (`globus_login`: no login is a `NotLoggedIn` error at once, never a prompt).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rasterflow.executors.globus_login import compute_client
from rasterflow.rasterize_core.errors import EXIT_FAILED_TILES, RasterflowError, SubmitError

#: Import path of the task's data serialization: arguments and result as JSON only.
DATA_STRATEGY = "globus_compute_sdk.serialize.JSONData"


class RemoteRunError(SubmitError):
    """The task was accepted but the remote run raised, or could not be waited for."""

    exit_code = EXIT_FAILED_TILES  # the run may have started: not a usage error


def serializer():
    """The SDK serializer used for the task: function by reference, data as JSON."""
    from globus_compute_sdk.serialize import ComputeSerializer, DillCode, JSONData

    return ComputeSerializer(strategy_code=DillCode(), strategy_data=JSONData())


# --- client side: submit and wait ----------------------------------------------------------------


@dataclass
class Submitted:
    task_id: str
    endpoint_id: str
    summary: dict[str, Any] | None = None  # with wait=True: what the function returned

    @property
    def exit_code(self) -> int:
        return 0 if self.summary is None else int(self.summary.get("exit_code", 1))


def submit_call(
    function: Callable[..., dict[str, Any]],
    arguments: dict[str, Any],
    endpoint_id: str,
    wait: bool = False,
    on_submitted: Callable[[str], None] | None = None,
    poll_s: float = 2.0,
    timeout_s: float | None = None,
    client_factory: Callable[[], Any] | None = None,
) -> Submitted:
    """Send `function(**arguments)` to the endpoint as one task; optionally wait for it.

    Checks the login before anything goes out; `on_submitted` is called with the task id as
    soon as the service has accepted the task.
    """
    try:
        client = (client_factory or compute_client)()
        client.fx_serializer = serializer()  # however the client was built: these strategies
        name = f"{function.__module__}.{function.__qualname__}"
        function_id = client.register_function(function, description=f"rasterflow: {name}")
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
