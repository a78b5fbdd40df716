"""Fixtures for every test, markers derived from the folder, and the guards of the one
import name. Helpers live in tests/helpers/: tests import those, never this file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest

from rasterflow.rasterize_core.tiles import Tile
from tests.helpers.configs import write_config
from tests.helpers.paths import THREADS_SITE
from tests.helpers.real_data import real_data_missing
from tests.helpers.slurm import slurm_unusable
from tests.helpers.stac import OfflineValidator

# Subprocesses (drivers, `python -c`, job scripts) must not put their working directory on
# sys.path: from the checkout root it would import a second copy of the bare folders.
os.environ["PYTHONSAFEPATH"] = "1"

BARE_NAMES = ("workflow", "executors", "rasterize_core")
TESTS = Path(__file__).resolve().parent
# Folder → markers. Integration tests run real Parsl pipelines; system tests need real
# outside parts (Slurm, the stand-in PBS, a Globus Compute engine, a browser).
FOLDER_MARKERS = {
    "unit": ("unit",),
    "integration": ("integration", "slow"),
    "system": ("system", "slow"),
}


def pytest_collection_modifyitems(config, items):
    missing = real_data_missing()
    for item in items:
        folder = Path(item.path).resolve().relative_to(TESTS).parts[0]
        for name in FOLDER_MARKERS.get(folder, ()):
            item.add_marker(name)
        if missing and item.get_closest_marker("real_data"):
            item.add_marker(pytest.mark.skip(reason=missing))


def bare_modules() -> list[str]:
    return sorted(
        name
        for name in sys.modules
        if name in BARE_NAMES or name.startswith(tuple(f"{bare}." for bare in BARE_NAMES))
    )


def pytest_sessionfinish(session, exitstatus):
    """The session fails if anything imported the bare folders: a second copy of a module."""
    found = bare_modules()
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"bare module names imported (use rasterflow.*): {', '.join(found)}"
        if reporter is not None:
            reporter.write_line(f"ERROR: {message}", red=True)
        else:
            print(f"ERROR: {message}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


@pytest.fixture
def make_config(tmp_path):
    """Factory: `write_config` under tmp_path (or another root)."""

    def make(root: Path | None = None, **overrides) -> Path:
        return write_config(root or tmp_path, **overrides)

    return make


@pytest.fixture
def slurm_cluster():
    reason = slurm_unusable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so Slurm must be usable here: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """One run of the demo's sample (threads site, `cog: true`, products published) for every
    test that only reads it (a `tests.helpers.samples.DemoRun`). A test that changes it uses
    `demo_copy`."""
    from tests.helpers.samples import run_demo_sample  # the engine, only when a test runs it

    return run_demo_sample(tmp_path_factory.mktemp("demo-run"), THREADS_SITE)


@pytest.fixture
def demo_copy(demo_run, tmp_path) -> Path:
    """A private copy of the shared demo run; returns its config path."""
    from tests.helpers.samples import copy_run

    return copy_run(demo_run.sample.root, tmp_path / "demo")


@pytest.fixture
def offline_validator(monkeypatch) -> OfflineValidator:
    """pystac validates with the vendored schemas only (it fails where it would go online)."""
    from pystac.validation import RegisteredValidator

    validator = OfflineValidator()
    monkeypatch.setattr(RegisteredValidator, "_validator", validator)
    return validator
