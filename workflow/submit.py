"""Sending a run elsewhere: into a batch allocation, or to a Globus Compute endpoint.

A batch job runs `rasterflow run` inside the allocation (`job_script`). A Globus Compute
task is ONE function call whose arguments are plain data:

    remote_run(config={...the PDG config, as JSON...}, site="NAME-or-PATH",
               overwrite=False, workdir=None)                    # -> summary dict

The endpoint imports `remote_run` from this module (so rasterflow must be installed in its
Python), validates the config again, runs the workflow with a site of the endpoint's
machine and returns `report_summary(report)`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rasterflow.executors.globus import Submitted, submit_call
from rasterflow.executors.job_scripts import JobScript, render_job_script
from rasterflow.rasterize_core.errors import ConfigError, RasterflowError
from rasterflow.workflow.config import load_config, parse_config, read_config_json
from rasterflow.workflow.layout import jobs_dir, lock_path
from rasterflow.workflow.products import publish
from rasterflow.workflow.run import RunReport, run_workflow

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


def job_script(
    config_path: str | os.PathLike[str],
    site: str,
    nodes: int | None = None,
    walltime: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> JobScript:
    """The batch script that runs CONFIG's whole run inside one allocation of SITE."""
    cwd = Path(cwd or os.getcwd()).resolve()
    config_file = Path(config_path) if Path(config_path).is_absolute() else cwd / config_path
    config = load_config(config_file)
    return render_job_script(
        config_file, site, lock_path(config), jobs_dir(config), nodes, walltime, cwd
    )


def submit_remote_run(
    config_path: str | os.PathLike[str],
    endpoint_id: str,
    site: str = "local",
    overwrite: bool = False,
    workdir: str | None = None,
    wait: bool = False,
    on_submitted: Callable[[str], None] | None = None,
    timeout_s: float | None = None,
    client_factory: Callable[[], Any] | None = None,
) -> Submitted:
    """Validate CONFIG here, then send `remote_run` with it to the endpoint as one task."""
    arguments = submission_arguments(config_path, site, overwrite, workdir)
    return submit_call(remote_run, arguments, endpoint_id, wait, on_submitted,
                       timeout_s=timeout_s, client_factory=client_factory)  # fmt: skip


# --- endpoint side ----------------------------------------------------------------------------


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
    if workdir:
        os.chdir(workdir)
    try:
        model = parse_config(dict(config), source="the submitted config")
        report = run_workflow(model, site=site, overwrite=overwrite, live_progress=False)
        publish(model, report)
    except RasterflowError as err:
        return {
            "exit_code": 2,
            "error": str(err),
            "host": socket.gethostname(),
            "last_line": f"rasterflow: {err}",
        }
    return report_summary(report)


def report_summary(report: RunReport) -> dict[str, Any]:
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
        "web_tiles_dir": str(report.web_tiles_dir) if report.web_tiles_dir else None,
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
    source = str(config_path)
    raw = read_config_json(Path(config_path))
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
