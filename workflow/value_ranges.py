"""Per-level value ranges for web tiles, and the updated config PDG's portal reads.

A `None` end of a statistic's range at zoom z is filled from that level's
summary: the min of the tiles' minima, the max of their maxima.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from rasterflow.rasterize_core.atomic import atomic_write_bytes
from rasterflow.workflow.config import RasterflowConfig

# The summary columns `level_ranges` reads: callers ask the records for these alone.
RANGE_COLUMNS = ["stat", "min", "max"]
Ranges = dict[int, dict[str, tuple[float, float]]]  # z -> statistic -> (low, high)


def level_ranges(
    config: RasterflowConfig, z: int, summary: pd.DataFrame
) -> dict[str, tuple[float, float]]:
    ranges = {}
    for stat in config.statistics:
        lo, hi = stat.val_range_at(z)
        rows = summary[summary["stat"] == stat.name]
        lo = _filled(lo, pd.to_numeric(rows["min"], errors="coerce").min(), 0.0)
        hi = _filled(hi, pd.to_numeric(rows["max"], errors="coerce").max(), max(lo, 0.0) + 1.0)
        ranges[stat.name] = (lo, max(hi, lo))
    return ranges


def _filled(configured: float | None, observed: float, fallback: float) -> float:
    if configured is not None:
        return float(configured)
    return float(observed) if observed is not None and math.isfinite(observed) else fallback


def write_updated_config(config: RasterflowConfig, ranges: Ranges) -> None:
    """`<filename_config>__updated.json`: the config with every level's range in z_config."""
    dumped = config.model_dump(mode="json")
    for stat in dumped["statistics"]:
        z_config = stat.setdefault("z_config", {})
        for z, by_stat in sorted(ranges.items()):
            z_config[str(z)] = {"val_range": list(by_stat[stat["name"]])}
    text = json.dumps(dumped, indent=2)
    atomic_write_bytes(config.updated_config_path(), text.encode())
