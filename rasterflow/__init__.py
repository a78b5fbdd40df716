"""rasterflow: exact, resumable rasterization of PDG staged vector tiles, as a Parsl workflow.

For scripts:

    import rasterflow
    config = rasterflow.load_config("config.json")
    report = rasterflow.run(config, site="local")   # a RunReport; products written too

The packages below: `rasterflow.rasterize_core` (pure per-tile functions),
`rasterflow.executors` (sites, Parsl configs, batch jobs, Globus Compute) and
`rasterflow.workflow` (the engine, its reports and products, the command line).
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rasterflow.workflow.config import RasterflowConfig
    from rasterflow.workflow.run import RunReport

try:
    __version__ = version("rasterflow")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "load_config", "run"]


def load_config(path: str | os.PathLike[str]) -> RasterflowConfig:
    """Read a PDG config file into frozen, validated models (raises `ConfigError`)."""
    from rasterflow.workflow.config import load_config as load

    return load(Path(path))


def run(
    config: RasterflowConfig | str | os.PathLike[str],
    site: str = "local",
    overwrite: bool = False,
    tiles_file: str | os.PathLike[str] | None = None,
) -> RunReport:
    """Run every step for the config's staged tiles on `site`, then write the products
    (map page, WMTS, quick-looks, STAC when asked); return the run's report."""
    from rasterflow.workflow.products import publish
    from rasterflow.workflow.run import run_workflow

    model = config if not isinstance(config, str | os.PathLike) else load_config(config)
    report = run_workflow(model, site, overwrite, tiles_file)
    publish(model, report)
    return report
