"""`rasterflow run | demo | sites`: do the work, locally or on a site."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rasterflow.workflow.cli.common import ConfigPath, guarded, site_option


@click.command()
@click.argument("config", type=ConfigPath())
@site_option
@click.option("--overwrite", is_flag=True, help="Redo every tile, ignoring earlier results.")
@click.option("--tiles", "tiles_file", type=click.Path(exists=True, dir_okay=False),
              help="Run only these z-max tiles: one z/x/y per line.")  # fmt: skip
@click.option("--window", type=int, default=None, help="Outstanding batches at most.")
@click.option("--stac", is_flag=True, help="Also write a STAC catalog of the outputs.")
@click.option("--no-web-tiles", "no_web_tiles", is_flag=True,
              help="Skip pre-rendering PNGs (`serve` colours tiles on the fly).")  # fmt: skip
@click.option("--strict", is_flag=True,
              help="Fail a tile with odd rows (empty, non-finite...) instead.")  # fmt: skip
def run(config, site, overwrite, tiles_file, window, stac, no_web_tiles, strict) -> None:
    """Rasterize CONFIG's staged tiles, build parents and web tiles."""
    from rasterflow.workflow.products import publish
    from rasterflow.workflow.run import run_workflow

    flags = {"stac": stac or config.stac, "web_tiles": config.web_tiles and not no_web_tiles,
             "strict": strict or config.strict}  # fmt: skip
    config = config.model_copy(update=flags)
    report = guarded(lambda: run_workflow(config, site, overwrite, tiles_file, window))
    publish(config, report)
    _finish(report)


@click.command()
@click.argument("directory", required=False, default="rasterflow-demo",
                type=click.Path(file_okay=False, path_type=Path))  # fmt: skip
@site_option
def demo(directory: Path, site: str) -> None:
    """Stage a synthetic sample into DIRECTORY and run everything on it, locally."""
    from rasterflow.workflow.demo import run_demo

    _finish(guarded(lambda: run_demo(directory, site)))


def _finish(report) -> None:
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    for row in report.failures:
        click.echo(f"failed {row['step']} {row['z']}/{row['x']}/{row['y']}: {row['error']}")
    if report.skipped:
        click.echo(report.skipped_line())
    click.echo(report.last_line())
    sys.exit(report.exit_code)


@click.command()
def sites() -> None:
    """List the bundled site files: NAME KIND description."""
    from rasterflow.executors.sites import list_sites

    for name, kind, description in list_sites():
        click.echo(f"{name} {kind} {description}")


COMMANDS: list = [run, demo, sites]
