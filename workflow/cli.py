"""`rasterflow`: each command parses its arguments and calls one library function.

Exit codes: 0 success (for `run`: every tile ok); 1 the run finished but some
tiles failed (listed); 2 bad config or usage (nothing run).
"""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from pathlib import Path

import click

from rasterize_core.errors import ConfigError, RasterflowError, RunAbortedError
from workflow.config import load_config

EXIT_FAILED_TILES = 1
EXIT_USAGE = 2


class ConfigPath(click.Path):
    """A config file argument, validated into frozen models before anything runs."""

    def __init__(self):
        super().__init__(exists=False, dir_okay=False, path_type=Path)

    def convert(self, value, param, ctx):
        path = super().convert(value, param, ctx)
        try:
            return load_config(path)
        except ConfigError as err:
            click.echo(f"rasterflow: {err}", err=True)
            ctx.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug lines.")
def main(verbose: bool) -> None:
    """Exact, resumable rasterization of PDG staged vector tiles, as a Parsl workflow."""
    # Our own logger only: Parsl writes its debug log into the run directory.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("rasterflow")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    warnings.filterwarnings("default", module="workflow")


def _site_option(function):
    return click.option(
        "--site", default="local", show_default=True,
        help="Site name (site_configs/NAME.toml) or path to a site TOML file.",
    )(function)  # fmt: skip


@main.command()
@click.argument("config", type=ConfigPath())
@_site_option
@click.option("--overwrite", is_flag=True, help="Redo every tile, ignoring earlier results.")
@click.option("--tiles", "tiles_file", type=click.Path(exists=True, dir_okay=False),
              help="Run only these z-max tiles: one z/x/y per line.")  # fmt: skip
@click.option("--window", type=int, default=None, help="Outstanding batches at most.")
@click.option("--stac", is_flag=True, help="Also write a STAC catalog of the outputs.")
def run(config, site, overwrite, tiles_file, window, stac) -> None:
    """Rasterize CONFIG's staged tiles, build parents and web tiles."""
    from workflow.run import run_workflow

    if stac:
        config = config.model_copy(update={"stac": True})

    report = _guarded(lambda: run_workflow(config, site, overwrite, tiles_file, window))
    _finish(report)


@main.command()
@click.argument("directory", required=False, default="rasterflow-demo",
                type=click.Path(file_okay=False, path_type=Path))  # fmt: skip
@_site_option
def demo(directory: Path, site: str) -> None:
    """Stage a synthetic sample into DIRECTORY and run everything on it, locally."""
    from workflow.demo import run_demo

    report = _guarded(lambda: run_demo(directory, site))
    _finish(report)


def _guarded(call):
    """Turn the errors users can act on into a message and an exit code.

    SIGTERM (a walltime, `scancel`, `qdel`) is handled like Ctrl-C, so Parsl shuts its
    interchange and workers down instead of leaving them behind.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return call()
    except RunAbortedError as err:  # started, then stopped: what is done is kept
        click.echo(f"rasterflow: {err}", err=True)
        sys.exit(EXIT_FAILED_TILES)
    except RasterflowError as err:  # bad config, locked output, nothing to do
        click.echo(f"rasterflow: {err}", err=True)
        sys.exit(EXIT_USAGE)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _finish(report) -> None:
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    for row in report.failures:
        click.echo(f"failed {row['step']} {row['z']}/{row['x']}/{row['y']}: {row['error']}")
    click.echo(report.last_line())
    sys.exit(report.exit_code)


@main.command()
def sites() -> None:
    """List the bundled site files: NAME KIND description."""
    from executors.sites import list_sites

    for name, kind, description in list_sites():
        click.echo(f"{name} {kind} {description}")


def _register_command_groups() -> None:
    """Commands that live in their own modules (inspection; remote and batch submission)."""
    from workflow import cli_inspect, cli_jobs, cli_remote

    for module in (cli_inspect, cli_remote, cli_jobs):
        for command in module.COMMANDS:
            main.add_command(command)


_register_command_groups()

if __name__ == "__main__":
    main()
