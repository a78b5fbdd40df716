"""`rasterflow submit`: send a whole run to a Globus Compute endpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from rasterflow.workflow.cli.common import guarded


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--endpoint",
    "endpoint_id",
    required=True,
    type=click.UUID,
    help="The Globus Compute endpoint's id (`globus-compute-endpoint list` there).",
)
@click.option(
    "--site",
    default="local",
    show_default=True,
    help="Site the run uses on the endpoint's machine: a bundled name or a path there.",
)
@click.option(
    "--wait", is_flag=True, help="Wait for the run, print its summary and exit with its exit code."
)
@click.option("--overwrite", is_flag=True, help="Redo every tile, ignoring earlier results.")
@click.option(
    "--workdir",
    default=None,
    help="Absolute folder on the endpoint's machine for relative paths in CONFIG.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=None,
    help="With --wait: stop waiting after this many seconds (the run goes on).",
)
def submit(config, endpoint_id, site, wait, overwrite, workdir, timeout_s) -> None:
    """Send CONFIG's whole run to a Globus Compute endpoint as one task; print the task id.

    The endpoint runs `rasterflow.workflow.submit.remote_run(config, site)`: rasterflow must be
    installed in its Python, and CONFIG's paths are paths on that machine.
    """
    from rasterflow.workflow.submit import submit_remote_run

    def announce(task_id: str) -> None:
        click.echo(task_id)
        if wait:
            click.echo(f"rasterflow: waiting for task {task_id} on endpoint {endpoint_id} "
                       "(Ctrl-C stops waiting, not the run)", err=True)  # fmt: skip

    # A bad config or no login: nothing was sent (exit 2); the remote run failed: exit 1.
    submitted = guarded(lambda: submit_remote_run(
        config, str(endpoint_id), site, overwrite, workdir, wait,
        on_submitted=announce, timeout_s=timeout_s))  # fmt: skip
    if submitted.summary is not None:
        click.echo(json.dumps(submitted.summary))
        click.echo(submitted.summary.get("last_line", ""))
    sys.exit(submitted.exit_code)


COMMANDS: list = [submit]
