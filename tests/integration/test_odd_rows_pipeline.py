"""Odd rows through a real pipeline (DESIGN §9): a tile of ordinary polygons plus every
kind of odd row stays `ok` and exact over its usable rows, its event row counts the skips,
the run sums them; `strict` fails that tile naming the file; text in a column that a
statistic averages fails its tile naming the column and the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely

from rasterflow.rasterize_core.skips import SKIP_REASONS
from rasterflow.rasterize_core.tiles import Tile, xy_bounds
from rasterflow.workflow.cli.run import _finish
from rasterflow.workflow.config import load_config
from rasterflow.workflow.run import run_workflow
from tests.helpers.configs import IWP_STATISTICS, write_config
from tests.helpers.odd_rows import TileFrame, write_raw_gpkg
from tests.helpers.truth import exact_coverage

pytestmark = pytest.mark.slow

TMS = "WorldCRS84Quad"
ODD, TEXT, CLEAN = Tile(13, 1418, 908), Tile(13, 1419, 908), Tile(13, 1418, 909)
MEAN_AREA = {"name": "mean_area", "weight_by": "count", "property": "Area",
             "aggregation_method": "mean", "resampling_method": "average"}  # fmt: skip
SHAPE = (128, 128)


def staged_path(root: Path, tile: Tile) -> Path:
    return root / "staged" / TMS / f"{tile.z}/{tile.x}/{tile.y}.gpkg"


def stage(root: Path) -> tuple[list, dict[str, list[int]]]:
    """Three tiles: ordinary polygons plus every odd row; text in `Area`; clean. Returns the
    odd tile's usable polygons and its odd rows' fids by reason."""
    frame = TileFrame(xy_bounds(TMS, ODD))
    # 200 ordinary polygons, a few over the tile's left edge (centroid outside: not counted
    # here), and a collection whose polygons count (its line does not).
    good = frame.good_polygons(196, seed=13)
    good += [frame.box(-0.04, 0.3), frame.box(-0.01, 0.6), frame.box(0.97, 0.5)]
    collection = shapely.GeometryCollection(
        [frame.box(0.4, 0.4, 0.02), shapely.LineString(frame.ring((0, 0), (1, 1)))]
    )
    odd = list(frame.odd_rows().values())
    blobs = [shapely.to_wkb(g) for g in good] + [shapely.to_wkb(collection)]
    blobs += [blob for blob, _ in odd]
    write_raw_gpkg(staged_path(root, ODD), blobs, {"Area": np.linspace(1, 2, len(blobs))})
    fids: dict[str, list[int]] = {}
    for fid, (_, reason) in enumerate(odd, len(good) + 2):
        fids.setdefault(reason, []).append(fid)

    text = TileFrame(xy_bounds(TMS, TEXT)).good_polygons(20)
    areas = [None, "12.0 m2", *["3"] * 18]
    write_raw_gpkg(staged_path(root, TEXT), shapely.to_wkb(text).tolist(), {"Area": areas})
    clean = TileFrame(xy_bounds(TMS, CLEAN)).good_polygons(20)
    write_raw_gpkg(staged_path(root, CLEAN), shapely.to_wkb(clean).tolist(),
                   {"Area": np.ones(20)})  # fmt: skip
    return [*good, frame.box(0.4, 0.4, 0.02)], fids


def centroids_inside(polygons, tile: Tile) -> int:
    left, bottom, right, top = xy_bounds(TMS, tile)
    c = shapely.centroid(np.asarray(polygons, dtype=object))
    x, y = shapely.get_x(c), shapely.get_y(c)
    return int(np.count_nonzero((x >= left) & (x < right) & (y > bottom) & (y <= top)))


def test_odd_rows_through_the_pipeline(tmp_path, capsys):
    usable, fids = stage(tmp_path)
    statistics = [*IWP_STATISTICS, MEAN_AREA]
    config = load_config(write_config(tmp_path, z_range=[12, 13], tile_size=list(SHAPE),
                                      statistics=statistics))  # fmt: skip
    report = run_workflow(config, live_progress=False)

    # The odd tile is ok and exact over its usable rows; its event row counts the skips.
    events = pd.read_csv(config.filename_rasterization_events).set_index(["step", "x", "y"])
    odd_row = events.loc[("rasterize", ODD.x, ODD.y)]
    expected_skips = ", ".join(f"{len(fids[r])} {r}" for r in SKIP_REASONS if r in fids)
    assert odd_row["status"] == "ok" and odd_row["skipped"] == expected_skips
    assert odd_row["n_polygons"] == centroids_inside(usable, ODD) == len(usable) - 1
    with rasterio.open(Path(config.dir_geotiff, TMS, f"13/{ODD.x}/{ODD.y}.tif")) as dataset:
        count, coverage, _ = dataset.read().astype(float)
    assert count.sum() == centroids_inside(usable, ODD)
    truth = exact_coverage(usable, xy_bounds(TMS, ODD), SHAPE)
    np.testing.assert_allclose(coverage, truth, atol=1e-6, rtol=0)
    assert (coverage[truth == 0] == 0).all()

    # Text where a mean needs numbers: the tile fails naming the column and the file.
    text_row = events.loc[("rasterize", TEXT.x, TEXT.y)]
    source = staged_path(tmp_path, TEXT)
    assert text_row["status"] == "failed"
    assert text_row["error"] == (
        f"{source}: property 'Area' holds text ('12.0 m2', fid 2) in layer '{TEXT.y}'; "
        "a numeric column is needed for 'mean'"
    )
    assert pd.isna(events.loc[("rasterize", CLEAN.x, CLEAN.y), "skipped"])  # "" reads as empty

    # The run sums this run's skips, and its last lines say so.
    assert report.skipped == {r: len(fids[r]) for r in SKIP_REASONS if r in fids}
    assert report.skipped_tiles == 1 and report.exit_code == 1
    with pytest.raises(SystemExit):
        _finish(report)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == f"skipped rows: {expected_skips} in 1 tile"

    # strict: the same tile fails, naming the file and the skipped rows by fid.
    strict = run_workflow(config.model_copy(update={"strict": True}), overwrite=True,
                          live_progress=False)  # fmt: skip
    failed = {(row["x"], row["y"]): row["error"] for row in strict.failures}
    assert set(failed) == {(ODD.x, ODD.y), (TEXT.x, TEXT.y)} and not strict.skipped
    first_empty = fids["empty"][0]
    assert failed[(ODD.x, ODD.y)].startswith(
        f"{staged_path(tmp_path, ODD)}: rows that cannot contribute, and strict is set: "
        f"{len(fids['null'])} null (fid {fids['null'][0]}), 2 empty (fid {first_empty}, "
    )
