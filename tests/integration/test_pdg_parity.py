"""rasterflow with PDG's own configs on PDG's own examples gives PDG's files.

Both examples in ../shared/data hold what pdgraster wrote (READMEs beside them):
- pdg-minimal-example: its staged tiles, `make-rasters-config.json` (PDG's defaults: two
  statistics, white to black, nodata 0), 17 GeoTIFFs and 34 PNGs, z 0-13;
- pdg-iwp-staged with pdg-iwp-staged-pdgraster/config.json (translucent LCh palettes, no
  nodata_val, 128 px tiles), 11 GeoTIFFs and 22 PNGs, z 6-13.
rasterflow runs each config unchanged but for its paths (pointed at a temporary folder).

PDG's parents carry resampling noise (~1e-7 where rasterflow is exact), so values agree
within 1e-6, and a PNG pixel may differ where that noise alone moved PDG's pixel to another
palette entry (a 3 stored as 2.9999999985 falls one entry lower; a 1e-7 is not nodata 0):
those pixels are found by colouring PDG's own values as PDG does, with and without the
noise. Of the other pixels at most 0.1 % may differ by more than 2 in a channel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from rasterflow.workflow.config import parse_config
from rasterflow.workflow.run import run_workflow
from tests.helpers.paths import REPO

DATA = REPO.parent / "shared" / "data"
NOISE_DECIMALS = 6  # PDG's noise is ~1e-7: values rounded to 1e-6 are the noise-free ones
pytestmark = [pytest.mark.real_data, pytest.mark.slow]


@dataclass(frozen=True)
class Example:
    name: str
    config: Path  # PDG's config, as committed
    staged: Path
    outputs: Path  # PDG's outputs
    geotiffs: str  # their folders below `outputs`
    web_tiles: str


EXAMPLES = {
    "minimal": Example("minimal", DATA / "pdg-minimal-example/make-rasters-config.json",
                       DATA / "pdg-minimal-example/staged", DATA / "pdg-minimal-example",
                       "geotiff", "web_tiles"),
    "iwp": Example("iwp", DATA / "pdg-iwp-staged-pdgraster/config.json",
                   DATA / "pdg-iwp-staged", DATA / "pdg-iwp-staged-pdgraster",
                   "geotiffs", "web-tiles"),
}  # fmt: skip


@dataclass
class Run:
    example: Example
    config: object
    root: Path  # rasterflow's outputs

    def pdg_files(self, folder: str, pattern: str) -> list[Path]:
        base = self.example.outputs / folder
        return sorted(p.relative_to(base) for p in base.rglob(pattern))


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def run(request, tmp_path_factory) -> Run:
    example = EXAMPLES[request.param]
    if not example.outputs.is_dir() or not example.staged.is_dir():
        pytest.skip(f"PDG's {example.name} example not found under {DATA}")
    root = tmp_path_factory.mktemp(f"pdg-{example.name}")
    raw = json.loads(example.config.read_text()) | {
        "dir_staged": str(example.staged),
        "dir_geotiff": str(root / "geotiff"),
        "dir_web_tiles": str(root / "web_tiles"),
        "filename_rasterization_events": str(root / "rasterization_events.csv"),
        "filename_rasters_summary": str(root / "rasters_summary.csv"),
        "filename_config": str(root / "config.json"),
    }
    config = parse_config(raw, str(example.config))
    report = run_workflow(config, site="local", live_progress=False)
    assert report.exit_code == 0, report.failures
    return Run(example, config, root)


def read_bands(path: Path) -> tuple[np.ndarray, tuple]:
    with rasterio.open(path) as dataset:
        return dataset.read().astype(np.float64), dataset.descriptions


def read_rgba(path: Path) -> np.ndarray:
    with Image.open(path) as image:  # PDG's PNGs are palette or RGBA images
        return np.asarray(image.convert("RGBA")).astype(int)


def test_every_geotiff_pdg_wrote_is_written_with_its_values(run):
    worst = 0.0
    for rel in run.pdg_files(run.example.geotiffs, "*.tif"):
        theirs, their_bands = read_bands(run.example.outputs / run.example.geotiffs / rel)
        ours, our_bands = read_bands(run.root / "geotiff" / rel)
        assert our_bands == their_bands == tuple(run.config.stat_names), rel
        worst = max(worst, float(np.abs(ours - theirs).max()))
    assert worst <= 1e-6


def test_every_png_pdg_wrote_is_written_with_its_colours(run):
    ranges = pdg_level_ranges(run)
    total = differing = noise = 0
    for rel in run.pdg_files(run.example.web_tiles, "*.png"):
        stat_name, z = rel.parts[0], int(rel.parts[2])
        theirs = read_rgba(run.example.outputs / run.example.web_tiles / rel)
        ours = read_rgba(run.root / "web_tiles" / rel)
        band = pdg_band(run, stat_name, rel)
        stat = next(s for s in run.config.statistics if s.name == stat_name)
        painted_by_noise = noise_pixels(band, ranges[stat_name][z], stat.nodata_val)
        apart = np.abs(theirs - ours).max(axis=2) > 2
        total += apart.size
        differing += int((apart & ~painted_by_noise).sum())
        noise += int(painted_by_noise.sum())
    assert total > 0
    assert differing <= 0.001 * total, f"{differing} of {total} pixels (noise: {noise})"


def pdg_band(run: Run, stat_name: str, rel: Path) -> np.ndarray:
    """PDG's values behind one of its PNGs: its GeoTIFF's band of that statistic."""
    tms, z, x, y = rel.parts[1], rel.parts[2], rel.parts[3], Path(rel.parts[4]).stem
    bands, names = read_bands(run.example.outputs / run.example.geotiffs / tms / z / x /
                              f"{y}.tif")  # fmt: skip
    return bands[names.index(stat_name)]


def pdg_level_ranges(run: Run) -> dict[str, dict[int, tuple[float, float]]]:
    """PDG's colour range per statistic and level: the configured ends, the open ones from
    the level's GeoTIFFs (the min of the minima, the max of the maxima), as pdgraster does."""
    by_level: dict[int, list[np.ndarray]] = {}
    for rel in run.pdg_files(run.example.geotiffs, "*.tif"):
        bands, _ = read_bands(run.example.outputs / run.example.geotiffs / rel)
        by_level.setdefault(int(rel.parts[-3]), []).append(bands)
    ranges: dict[str, dict[int, tuple[float, float]]] = {}
    for i, stat in enumerate(run.config.statistics):
        for z, tiles in by_level.items():
            lo, hi = stat.val_range_at(z)
            lo = min(t[i].min() for t in tiles) if lo is None else lo
            hi = max(t[i].max() for t in tiles) if hi is None else hi
            ranges.setdefault(stat.name, {})[z] = (float(lo), float(hi))
    return ranges


def noise_pixels(band: np.ndarray, val_range: tuple[float, float], nodata) -> np.ndarray:
    """Pixels whose colour in PDG's tile comes from its noise: PDG's palette entry for its
    value differs from the entry for the value rounded to 1e-6 (range rounded likewise)."""
    lo, hi = val_range
    noisy = pdg_entry(band, lo, hi, nodata)
    clean = pdg_entry(np.round(band, NOISE_DECIMALS), round(lo, NOISE_DECIMALS),
                      round(hi, NOISE_DECIMALS), nodata)  # fmt: skip
    return noisy != clean


def pdg_entry(band: np.ndarray, lo: float, hi: float, nodata) -> np.ndarray:
    """pdgraster WebImage's palette index: clip, scale to 0..255, truncate; 256 = nodata."""
    scaled = (np.clip(band, lo, hi) - lo) * (255 / (hi - lo))
    entry = scaled.astype(int)
    if nodata is not None:
        entry[band == nodata] = 256
    return entry
