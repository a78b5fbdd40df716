"""The CLI end to end on real runs (on the threads site: outputs, not processes, are the point):
the files it writes are reopened and checked, exit codes too."""

import subprocess
import sys
from pathlib import Path

import rasterio
from click.testing import CliRunner

from rasterflow.workflow.cli import main
from tests.helpers.paths import THREADS_SITE

RASTERFLOW = str(Path(sys.executable).with_name("rasterflow"))


def test_demo_writes_outputs_and_says_where(tmp_path):
    demo = tmp_path / "demo"
    result = subprocess.run(
        [RASTERFLOW, "demo", str(demo), "--site", THREADS_SITE],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert f"GeoTIFFs in {demo / 'geotiff'}" in last and "0 failed" in last
    tiffs = sorted((demo / "geotiff").rglob("*.tif"))
    assert tiffs
    with rasterio.open(tiffs[0]) as dataset:
        assert dataset.descriptions == ("iwp_count", "iwp_coverage", "mean_width")
        assert dataset.profile["compress"] == "deflate"
        assert dataset.block_shapes == [(256, 256)] * 3  # internally tiled, not strips
    web_tiles = list((demo / "web_tiles").glob("*/WorldCRS84Quad/*/*/*.png"))  # not quick-looks
    assert len(web_tiles) == 3 * len(tiffs)


def test_run_lists_failed_tiles_and_exits_1(tmp_path, write_staged, make_config):
    import shapely

    from rasterflow.rasterize_core.tiles import Tile, xy_bounds

    good = Tile(13, 1418, 908)
    write_staged(good, [shapely.box(*xy_bounds("WorldCRS84Quad", good)).buffer(-0.001)])
    bad = tmp_path / "staged" / "WorldCRS84Quad" / "13" / "1419" / "908.gpkg"
    bad.parent.mkdir(parents=True)
    bad.touch()
    config = make_config(z_range=[12, 13])
    result = CliRunner().invoke(main, ["run", str(config), "--site", THREADS_SITE])
    assert result.exit_code == 1
    assert f"failed rasterize 13/1419/908: {bad}: zero-byte file" in result.output
    assert "failed" in result.output.strip().splitlines()[-1]
    assert (tmp_path / "geotiff" / "WorldCRS84Quad" / "12" / "709" / "454.tif").exists()
