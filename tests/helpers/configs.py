"""PDG config files for tests."""

from __future__ import annotations

import json
from pathlib import Path

from rasterflow.workflow.demo.synthetic import IWP_STATISTICS

__all__ = ["IWP_STATISTICS", "write_config"]


def write_config(root: Path, **overrides) -> Path:
    """A PDG config file in `root` with its outputs beside it (staged tiles in root/staged
    unless overridden); returns its path."""
    config = {
        "dir_staged": str(root / "staged"),
        "dir_geotiff": str(root / "geotiff"),
        "dir_web_tiles": str(root / "web_tiles"),
        "filename_rasterization_events": str(root / "events.csv"),
        "filename_rasters_summary": str(root / "summary.csv"),
        "tms_id": "WorldCRS84Quad",
        "statistics": IWP_STATISTICS,
    } | overrides
    path = root / "config.json"
    path.write_text(json.dumps(config))
    return path
