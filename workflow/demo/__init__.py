"""The demo: a synthetic staged sample (`synthetic`) and a whole run over it, products included."""

from __future__ import annotations

import logging
from pathlib import Path

from rasterflow.workflow.config import load_config
from rasterflow.workflow.demo.synthetic import make_sample
from rasterflow.workflow.products import publish
from rasterflow.workflow.run import RunReport, run_workflow

log = logging.getLogger(__name__)


def run_demo(directory: Path, site: str = "local") -> RunReport:
    """A 3x2-tile synthetic net at z 13 (built once), rasterized down to z 9."""
    directory = Path(directory).resolve()
    config_path = directory / "config.json"
    if not config_path.exists():
        sample = make_sample(directory)
        log.info("staged %d synthetic polygons into %d tiles under %s",
                 len(sample.polygons), len(sample.tiles), directory / "staged")  # fmt: skip
    config = load_config(config_path)
    report = run_workflow(config, site=site)
    publish(config, report)
    return report
