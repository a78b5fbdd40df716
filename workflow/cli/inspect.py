"""`rasterflow plan | status | view`: look at a run before, during and after it.

Each command parses its arguments and calls one library function:
`report.plan.plan_report`, `report.status.status_report`, `products.viewer.write_products`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rasterflow.workflow.cli.common import guarded


def _load(path: Path):
    """The validated config, or the message and exit code 2 (as `run` does)."""
    from rasterflow.workflow.config import load_config

    return guarded(lambda: load_config(path))


_config_argument = click.argument("config", type=click.Path(dir_okay=False, path_type=Path))


@click.command("plan")
@_config_argument
@click.option("--site", default="local", show_default=True,
              help="Site name or TOML path: its workers size batches, as in `run`.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Plan as `run --overwrite` would: redo all.")
@click.option("--tiles", "tiles_file", type=click.Path(exists=True, dir_okay=False),
              help="Plan only these z-max tiles: one z/x/y per line.")  # fmt: skip
def plan(config: Path, site: str, overwrite: bool, tiles_file: str | None) -> None:
    """What `rasterflow run CONFIG` would do, without doing it.

    Tiles and batches per level, input bytes, and what a rerun would skip.
    """
    from rasterflow.workflow.report.plan import plan_report

    settings = _load(config)
    report = guarded(lambda: plan_report(settings, site, overwrite, tiles_file))
    click.echo(report.text())


@click.command("status")
@_config_argument
@click.option("--slowest", default=3, show_default=True, type=click.IntRange(min=0),
              help="Slowest tiles listed per step.")  # fmt: skip
@click.option("--failures", "max_failures", default=20, show_default=True,
              type=click.IntRange(min=0), help="Failed tiles listed at most (0: all).")  # fmt: skip
def status(config: Path, slowest: int, max_failures: int) -> None:
    """Where CONFIG's run stands, from its event log (also while it runs).

    Per step and level: ok, failed, missing; the slowest tiles; the failures
    with their reasons. Exit code 1 when some tiles failed.
    """
    from rasterflow.workflow.report.status import status_report

    settings = _load(config)
    report = guarded(lambda: status_report(settings, slowest))
    click.echo(report.text(max_failures))
    sys.exit(report.exit_code)


@click.command("view")
@_config_argument
@click.option("--base-url", default=None, metavar="URL",
              help="Where the web-tiles folder is served, for the WMTS document "
                   "[default: its file:// URL].")  # fmt: skip
@click.option("--open", "open_page", is_flag=True, help="Open the map page in a browser.")
def view(config: Path, base_url: str | None, open_page: bool) -> None:
    """Write the offline map page, WMTS capabilities and quick-looks beside the web tiles."""
    from rasterflow.workflow.layout import VIEWER_NAME
    from rasterflow.workflow.products.viewer import write_products

    settings = _load(config)
    paths = guarded(lambda: write_products(settings, base_url=base_url))
    quicklooks = [p for p in paths if p.parent.name == "quicklooks"]
    for path in paths:
        if path not in quicklooks:
            click.echo(f"{'map page' if path.name == VIEWER_NAME else 'WMTS'}: {path}")
    if quicklooks:
        click.echo(f"quick-looks: {len(quicklooks)} in {quicklooks[0].parent}")
    page = next((p for p in paths if p.name == VIEWER_NAME), None)
    if open_page and page is not None:
        import webbrowser

        webbrowser.open(page.resolve().as_uri())


COMMANDS: list = [plan, status, view]
