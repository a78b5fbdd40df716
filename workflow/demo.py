"""`rasterflow demo`: stage a synthetic sample and run the whole pipeline on it."""

from __future__ import annotations

import logging
from pathlib import Path

from workflow.config import load_config
from workflow.run import RunReport, run_workflow
from workflow.synthetic import make_sample

log = logging.getLogger("rasterflow")


def run_demo(directory: Path, site: str = "local") -> RunReport:
    """A 3x2-tile synthetic net at z 13 (built once), rasterized down to z 9."""
    directory = Path(directory).resolve()
    config_path = directory / "config.json"
    if not config_path.exists():
        sample = make_sample(directory)
        log.info("staged %d synthetic polygons into %d tiles under %s",
                 len(sample.polygons), len(sample.tiles), directory / "staged")  # fmt: skip
    return run_workflow(load_config(config_path), site=site)
