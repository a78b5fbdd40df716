"""Fixture factories: build exactly the staged input a test needs, and truth from shapely."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from rasterflow.rasterize_core.tiles import Tile, xy_bounds
from rasterflow.workflow.demo.synthetic import IWP_STATISTICS  # noqa: F401 (tests import it from here)

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pdg-iwp-staged"
REAL_POLYGONS = 14281


def requires_real_data():
    return pytest.mark.skipif(
        not REAL_DATA.is_dir(), reason=f"real staged tiles not found at {REAL_DATA}"
    )


@pytest.fixture
def write_staged(tmp_path):
    """Factory: write polygons (+ columns) as a staged GeoPackage for `tile`; return its path."""

    def write(
        tile: Tile,
        polygons,
        columns: dict | None = None,
        root: Path | None = None,
        crs: str = "OGC:CRS84",
        tms_id: str = "WorldCRS84Quad",
    ) -> Path:
        root = root or tmp_path / "staged"
        path = root / tms_id / str(tile.z) / str(tile.x) / f"{tile.y}.gpkg"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = gpd.GeoDataFrame(columns or {}, geometry=list(polygons), crs=crs)
        pyogrio.write_dataframe(frame, path, layer=path.stem, promote_to_multi=None)
        return path

    return write


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


@pytest.fixture
def make_config(tmp_path):
    """Factory: `write_config` under tmp_path (or another root)."""

    def make(root: Path | None = None, **overrides) -> Path:
        return write_config(root or tmp_path, **overrides)

    return make


def pixel_boxes(bounds, shape) -> np.ndarray:
    """The (h, w) shapely boxes of a grid over `bounds`, row 0 at the top."""
    left, bottom, right, top = bounds
    h, w = shape
    xs = np.linspace(left, right, w + 1)
    ys = np.linspace(top, bottom, h + 1)
    x0, y0 = np.meshgrid(xs[:-1], ys[:-1])
    x1, y1 = np.meshgrid(xs[1:], ys[1:])
    return shapely.box(x0, y1, x1, y0)


def exact_coverage(polygons, bounds, shape) -> np.ndarray:
    """Σ area(polygon ∩ pixel) / area(pixel), by shapely, over a grid (independent truth)."""
    boxes = pixel_boxes(bounds, shape).ravel()
    polygons = shapely.make_valid(np.asarray(polygons, dtype=object))
    tree = shapely.STRtree(boxes)
    poly_idx, box_idx = tree.query(polygons, predicate="intersects")
    areas = shapely.area(shapely.intersection(polygons[poly_idx], boxes[box_idx]))
    total = np.bincount(box_idx, weights=areas, minlength=boxes.size)
    return (total / shapely.area(boxes)).reshape(shape)


def file_digests(root: Path, pattern: str) -> dict[str, str]:
    """sha256 of every file under root matching pattern, keyed by its path below root."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob(pattern))
    }


def tile_box(tile: Tile, tms_id: str = "WorldCRS84Quad"):
    return shapely.box(*xy_bounds(tms_id, tile))


# --- the CI's single-node Slurm (.ci/slurm_up.sh) -----------------------------------

_CONTROLLER_DOWN: list[str] = []


def _down(reason: str) -> str:
    _CONTROLLER_DOWN.append(reason)
    return reason


def slurm_unusable(wait: float = 120.0) -> str | None:
    """Why the CI Slurm cannot be used here, or None once a node of `debug` is idle.

    A node still busy (the previous test's job completing) is waited for, up to `wait` s.
    """
    if _CONTROLLER_DOWN:  # sinfo takes ~10 s to give up: ask once per session
        return _CONTROLLER_DOWN[0]
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm is not installed (no sinfo/sbatch on PATH); start it with .ci/slurm_up.sh"
    deadline = time.monotonic() + wait
    while True:
        try:
            out = subprocess.run(
                ["sinfo", "-h", "-N", "-p", "debug", "-o", "%N %T"],
                capture_output=True,
                text=True,
                timeout=15,
            )
        except subprocess.TimeoutExpired:
            return _down("sinfo timed out: is slurmctld running? (.ci/slurm_up.sh)")
        if out.returncode != 0:
            return _down(
                f"sinfo failed ({out.stderr.strip()}): is slurmctld running? (.ci/slurm_up.sh)"
            )
        states = out.stdout.split()[1::2]
        if any(s in ("idle", "mixed") for s in states):  # "idle*": not answering
            return None
        busy = any(s in ("allocated", "completing") for s in states)
        if not busy or time.monotonic() > deadline:
            return f"no idle node in partition debug (sinfo: {out.stdout.strip() or 'nothing'})"
        time.sleep(0.5)


@pytest.fixture
def slurm_cluster():
    reason = slurm_unusable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so Slurm must be usable here: {reason}")
        pytest.skip(reason)
