"""The CLI end to end: the files it writes are reopened and checked, exit codes too."""

import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from click.testing import CliRunner

from rasterflow.workflow.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_one_import_name(tmp_path):
    """Installed, rasterflow is `rasterflow.*` only: the generic bare names stay free."""
    code = ("import importlib.util as u, rasterflow, rasterflow.workflow.cli; "
            "print(rasterflow.__version__, [u.find_spec(n) for n in "
            "('workflow', 'executors', 'rasterize_core')])")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(" ", 1)[1].strip() == "[None, None, None]"


def test_python_dash_m_is_the_cli(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rasterflow", "sites"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "local local" in done.stdout


@pytest.mark.slow
def test_demo_writes_outputs_and_says_where(tmp_path):
    demo = tmp_path / "demo"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "rasterflow"), "demo", str(demo)],
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


@pytest.mark.slow
def test_run_lists_failed_tiles_and_exits_1(tmp_path, write_staged, make_config):
    import shapely

    from rasterflow.rasterize_core.tiles import Tile, xy_bounds

    good = Tile(13, 1418, 908)
    write_staged(good, [shapely.box(*xy_bounds("WorldCRS84Quad", good)).buffer(-0.001)])
    bad = tmp_path / "staged" / "WorldCRS84Quad" / "13" / "1419" / "908.gpkg"
    bad.parent.mkdir(parents=True)
    bad.touch()
    config = make_config(z_range=[12, 13])
    result = CliRunner().invoke(main, ["run", str(config)])
    assert result.exit_code == 1
    assert f"failed rasterize 13/1419/908: {bad}: zero-byte file" in result.output
    assert "failed" in result.output.strip().splitlines()[-1]
    assert (tmp_path / "geotiff" / "WorldCRS84Quad" / "12" / "709" / "454.tif").exists()


def test_sites_lists_every_bundled_site():
    result = CliRunner().invoke(main, ["sites"])
    assert result.exit_code == 0
    kinds = {line.split()[0]: line.split()[1] for line in result.output.splitlines()}
    assert kinds["local"] == "local"
    assert {"local", "slurm", "pbs", "globus_compute"} <= set(kinds.values())
