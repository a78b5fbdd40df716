"""What every command shares: the config argument, the site option, errors to exit codes."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from rasterflow.rasterize_core.errors import ConfigError, RasterflowError
from rasterflow.workflow.config import RasterflowConfig, load_config

T = TypeVar("T")


class ConfigPath(click.Path):
    """A config file argument, validated into frozen models before anything runs."""

    def __init__(self) -> None:
        super().__init__(exists=False, dir_okay=False, path_type=Path)

    # A click type may convert to any value; click.Path annotates its own result narrowly.
    def convert(self, value: Any, param: Any, ctx: Any) -> RasterflowConfig:  # type: ignore[override]
        path = Path(os.fsdecode(super().convert(value, param, ctx)))
        try:
            return load_config(path)
        except ConfigError as err:
            click.echo(f"rasterflow: {err}", err=True)
            ctx.exit(err.exit_code)
            raise  # unreachable: ctx.exit raises


def site_option(function: Callable) -> Callable:
    return click.option(
        "--site", default="local", show_default=True,
        help="Site name (site_configs/NAME.toml) or path to a site TOML file.",
    )(function)  # fmt: skip


def guarded(call: Callable[[], T]) -> T:
    """Turn the errors users can act on into a message and their exit code.

    SIGTERM (a walltime, `scancel`, `qdel`) is handled like Ctrl-C, so Parsl shuts its
    interchange and workers down instead of leaving them behind.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return call()
    except RasterflowError as err:
        click.echo(f"rasterflow: {err}", err=True)
        sys.exit(err.exit_code)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
