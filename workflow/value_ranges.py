"""Per-level value ranges for web tiles, and the updated config PDG's portal reads.

A `None` end of a statistic's range at zoom z is filled from that level's
summary: the min of the tiles' minima, the max of their maxima.
"""

from __future__ import annotations

import copy
import json
import math
from typing import TYPE_CHECKING

import numpy as np

from rasterflow.rasterize_core.atomic import atomic_write_bytes
from rasterflow.workflow import pdg_keys
from rasterflow.workflow.config import RasterflowConfig

if TYPE_CHECKING:
    import pandas as pd

# The summary columns `level_ranges` reads: callers ask the records for these alone.
RANGE_COLUMNS = ["stat", "min", "max"]
Ranges = dict[int, dict[str, tuple[float, float]]]  # z -> statistic -> (low, high)
Observed = dict[str, tuple[float, float]]  # statistic -> (min of minima, max of maxima)


def fill_stats(config: RasterflowConfig, z: int) -> list[str]:
    """The statistics whose range at z has an end to fill from the summary."""
    return [stat.name for stat in config.statistics if None in stat.val_range_at(z)]


def fold(observed: Observed, stats: np.ndarray, minima: np.ndarray, maxima: np.ndarray,
         names: list[str] | None = None) -> Observed:  # fmt: skip
    """Fold summary rows (whole columns; NaN left out) into `observed`, in place: a level's
    ranges are folded as its batches finish, never from a frame of all its rows."""
    minima = np.asarray(minima, dtype=np.float64)
    maxima = np.asarray(maxima, dtype=np.float64)
    for name in names if names is not None else np.unique(stats).tolist():
        pick = stats == name
        lows, highs = minima[pick], maxima[pick]
        lows, highs = lows[~np.isnan(lows)], highs[~np.isnan(highs)]
        old = observed.get(name, (math.inf, -math.inf))
        observed[name] = (min(old[0], float(lows.min())) if lows.size else old[0],
                          max(old[1], float(highs.max())) if highs.size else old[1])  # fmt: skip
    return observed


def level_ranges(
    config: RasterflowConfig, z: int, summary: Observed | pd.DataFrame
) -> dict[str, tuple[float, float]]:
    """Each statistic's range at z: as configured, a `None` end filled from what the level's
    summary holds (`Observed`, or summary rows with RANGE_COLUMNS)."""
    if not isinstance(summary, dict):  # a frame: pandas is loaded already
        import pandas as pd

        summary = fold({}, summary["stat"].to_numpy(),
                       pd.to_numeric(summary["min"], errors="coerce").to_numpy(),
                       pd.to_numeric(summary["max"], errors="coerce").to_numpy())  # fmt: skip
    ranges = {}
    for stat in config.statistics:
        lo, hi = stat.val_range_at(z)
        low, high = summary.get(stat.name, (math.nan, math.nan))
        lo = _filled(lo, low, 0.0)
        hi = _filled(hi, high, max(lo, 0.0) + 1.0)
        ranges[stat.name] = (lo, max(hi, lo))
    return ranges


def _filled(configured: float | None, observed: float, fallback: float) -> float:
    if configured is not None:
        return float(configured)
    return float(observed) if observed is not None and math.isfinite(observed) else fallback


def write_updated_config(config: RasterflowConfig, ranges: Ranges) -> None:
    """`<filename_config>__updated.json`, as PDG writes it: the input config with every key
    kept (PDG-only ones too) over PDG's defaults (`defaults | config`, shallow), and in each
    statistic's `z_config` the range its web tiles were coloured with at each level (both
    ends; PDG writes only the ends it filled, which reads the same)."""
    updated = copy.deepcopy(pdg_keys.PDG_DEFAULTS) | config.input_mapping()
    for stat in updated["statistics"]:
        z_config = {str(z): dict(entry or {}) for z, entry in (stat.get("z_config") or {}).items()}
        for z, by_stat in sorted(ranges.items()):
            if stat.get("name") in by_stat:
                z_config.setdefault(str(z), {})["val_range"] = list(by_stat[stat["name"]])
        if z_config:
            stat["z_config"] = dict(sorted(z_config.items(), key=lambda item: int(item[0])))
    text = json.dumps(updated, indent=4, default=str)
    atomic_write_bytes(config.updated_config_path(), text.encode())
