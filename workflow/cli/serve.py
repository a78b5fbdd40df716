"""`rasterflow serve | export`: the product over HTTP, and one area as a Cloud-Optimized GeoTIFF.

Each command parses its arguments and calls one library function:
`products.serve.launch.serve`, `products.export.export_area`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rasterflow.workflow.cli.common import ConfigPath, guarded


@click.command("serve")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 serves to the network.")  # fmt: skip
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="Server processes; one per core serves the most tiles  [default: 2]",
)
def serve(config_path: Path, host: str, port: int, workers: int | None) -> None:
    """Serve CONFIG's run: tiles coloured on the fly from its GeoTIFFs, point queries,
    the map viewer and WMTS capabilities. Reads only; stop with Ctrl-C."""
    from rasterflow.workflow.config import load_config
    from rasterflow.workflow.products.serve.launch import DEFAULT_WORKERS, is_loopback, serve

    config = guarded(lambda: load_config(config_path))  # checked here; each worker reloads it
    if not Path(config.dir_geotiff).is_dir():
        click.echo(f"rasterflow: no GeoTIFFs at {config.dir_geotiff}: run "
                   f"`rasterflow run` first", err=True)  # fmt: skip
        sys.exit(2)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"rasterflow serve: http://{shown}:{port}/ (map), /tiles/{{stat}}/"
               f"{config.tms_id}/{{z}}/{{x}}/{{y}}.png, /point, /WMTSCapabilities.xml; "
               f"Ctrl-C stops", err=True)  # fmt: skip
    if not is_loopback(host):
        click.echo(f"rasterflow serve: listening on {host}: anyone who can reach this "
                   f"machine can read the tiles", err=True)  # fmt: skip
    serve(config_path, host, port, workers or DEFAULT_WORKERS)


@click.command("export")
@click.argument("config", type=ConfigPath())
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bbox", nargs=4, type=float, required=True, metavar="W S E N",
              help="The area: west south east north.")  # fmt: skip
@click.option("--bbox-crs", type=click.Choice(["lonlat", "grid"]), default="lonlat",
              show_default=True,
              help="lonlat: degrees (OGC:CRS84); grid: the TMS's CRS.")  # fmt: skip
@click.option(
    "--z",
    "z",
    type=int,
    default=None,
    help="Level to mosaic  [default: the finest under the size limit]",
)
@click.option("--stats", "stats", multiple=True, metavar="NAME[,NAME]",
              help="Statistics to export, as bands in this order [default: all].")  # fmt: skip
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Size limit, pixels per band [default: 100,000,000].")  # fmt: skip
def export(config, out: Path, bbox, bbox_crs: str, z: int | None, stats: tuple[str, ...],
           max_pixels: int | None) -> None:  # fmt: skip
    """One Cloud-Optimized GeoTIFF of an area of CONFIG's run, mosaicked from its tiles
    at one level: the statistics as named bands, NaN where there is no data."""
    from rasterflow.workflow.products.export import MAX_EXPORT_PIXELS, export_area

    names = [name for item in stats for name in item.split(",") if name] or None
    result = guarded(lambda: export_area(config, tuple(bbox), out, z=z, stats=names,
                                         bbox_crs=bbox_crs,
                                         max_pixels=max_pixels or MAX_EXPORT_PIXELS))  # fmt: skip
    click.echo(result.text())


COMMANDS = [serve, export]
