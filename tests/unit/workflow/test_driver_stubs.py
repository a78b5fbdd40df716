"""The driver against stub apps on a thread pool (no Parsl): parents only after their
children, web tiles only after their level with its folded ranges, a lost batch split into
tiles, levels with nothing in them, and a rerun with nothing to do that launches nothing."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rasterflow.rasterize_core.errors import RunAbortedError
from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.batches import pack
from rasterflow.workflow.config import load_config
from rasterflow.workflow.driver import Driver
from rasterflow.workflow.layout import geotiff_path, webtile_path, webtiles_on_disk
from rasterflow.workflow.plan import Staged, make_plan
from rasterflow.workflow.progress import RunProgress
from rasterflow.workflow.records import RunRecords, write_files

Z_RANGE = (8, 10)


class StubApps:
    """Batch apps that write empty output files and report made-up rows, checking as they
    are called that the driver keeps the order of the levels."""

    def __init__(self, config, lose: set[Tile] = frozenset()):
        self.config, self.lose = config, lose
        self.pool = ThreadPoolExecutor(2)
        self.lock = threading.Lock()
        self.done: set[Tile] = set()  # raster tiles made
        self.ended: set[Tile] = set()  # raster tiles tried (made, or lost)
        self.calls: list[tuple[str, int, int]] = []  # (step, z, tiles)
        self.ranges: dict[int, dict] = {}
        self.wrote_records = False
        self.futures: list = []

    def rasterize(self, batch, sources, config):
        assert all(Path(s).name == f"{t.y}.gpkg" for s, t in zip(sources, batch.tiles(),
                                                                   strict=True))  # fmt: skip
        return self._go(self._raster, "rasterize", batch)

    def parents(self, batch, config):
        with self.lock:  # every child that will ever exist was made before its parent
            for tile in batch.tiles():
                for child in tile.children():
                    assert child in self.ended or child not in self.planned
        return self._go(self._raster, "parent", batch)

    def webtiles(self, batch, config, ranges):
        with self.lock:
            assert all(t in self.ended for t in batch.tiles())
            self.ranges[batch.z] = ranges
        return self._go(self._webtiles, batch)

    def quicklooks(self, z, config):
        with self.lock:  # every web tile of the level was drawn before its quick-looks
            drawn = {(x, y) for x, y in webtiles_on_disk(self.config, config.stat_names[0], z)}
            assert drawn >= {(t.x, t.y) for t in self.done if t.z == z}
            self.calls.append(("quicklooks", z, len(drawn)))
        return self._go(lambda: [])

    def records(self, config):
        with self.lock:  # once, after every batch is back
            assert all(f.done() for f in self.futures) and not self.wrote_records
            self.wrote_records = True
        return self.pool.submit(write_files, config)

    def _go(self, work, *args):
        self.futures.append(self.pool.submit(work, *args))
        return self.futures[-1]

    def _raster(self, step: str, batch):
        tiles = batch.tiles()
        try:
            return self._made(step, batch.z, tiles)
        finally:
            with self.lock:
                self.ended |= set(tiles)

    def _made(self, step: str, z: int, tiles: list[Tile]):
        if len(tiles) > 1 and self.lose & set(tiles):
            raise OSError("worker lost")  # the whole batch is lost
        if self.lose & set(tiles):
            raise OSError(f"worker lost again on {tiles[0]}")
        records = []
        for tile in tiles:
            path = geotiff_path(self.config, tile)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            summary = [{"stat": name, "bounds": [0.0, 0.0, 1.0, 1.0], "min": 0.0,
                        "max": float(tile.x + tile.y), "path": str(path), "z": tile.z,
                        "x": tile.x, "y": tile.y, "n_nonempty": 1}
                       for name in self.config.stat_names]  # fmt: skip
            records.append({"step": step, "z": tile.z, "x": tile.x, "y": tile.y,
                            "status": "ok", "path": str(path), "summary": summary,
                            "checksum": f"{tile.x * 1000 + tile.y + 1:016x}"})  # fmt: skip
        with self.lock:
            self.done |= set(tiles)
            self.calls.append((step, z, len(tiles)))
        return pack(records, range(len(records)))

    def _webtiles(self, batch):
        records, positions = [], []
        for position, tile in enumerate(batch.tiles()):
            if not geotiff_path(self.config, tile).exists():
                continue  # as the real app: no GeoTIFF, no web tile, no row
            positions.append(position)
            for name in self.config.stat_names:
                path = webtile_path(self.config, tile, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            records.append({"step": "webtile", "z": tile.z, "x": tile.x, "y": tile.y,
                            "status": "ok", "checksum": "00000000000000aa"})  # fmt: skip
        with self.lock:
            self.calls.append(("webtile", batch.z, len(records)))
        return pack(records, positions)


def staged(tiles: list[tuple[int, int]], z: int = Z_RANGE[1]) -> Staged:
    x, y = (np.array(c, dtype=np.int64) for c in zip(*tiles, strict=True))
    n = len(tiles)
    template = "/staged/{z}/{x}/{y}.gpkg"
    return Staged(template, np.full(n, z), x, y, np.full(n, 1000), np.arange(n))


def drive(config, tiles, apps=None, batch_tiles: int = 3, launch=None, watch=None):
    plan = make_plan(config, staged(tiles), 1 << 40, batch_tiles)
    records = RunRecords(config)
    found = records.open()
    apps = apps or StubApps(config)
    apps.planned = {Tile(z, x, y) for z, level in plan.levels.items()
                    for x, y in zip(level.x.tolist(), level.y.tolist(), strict=True)}  # fmt: skip
    driver = Driver(config, plan, records, found, "run-1", RunProgress(live=False), window=4,
                    launch=launch or (lambda: apps), watch=watch or (lambda: None))  # fmt: skip
    driver.run()
    driver.finish_records()
    return driver, apps


@pytest.fixture
def config(make_config, tmp_path):
    return load_config(
        make_config(z_range=list(Z_RANGE), filename_config=str(tmp_path / "config.json"))
    )


BLOCK = [(x, y) for x in range(200, 206) for y in range(100, 104)]  # 24 tiles at z10


def test_levels_in_order_with_folded_ranges(config):
    driver, apps = drive(config, BLOCK)
    assert {step for step, _, _ in apps.calls} == {"rasterize", "parent", "webtile",
                                                   "quicklooks"}  # fmt: skip
    assert sorted(c for c in apps.calls if c[0] == "quicklooks") == [
        ("quicklooks", 8, 2),
        ("quicklooks", 9, 6),
        ("quicklooks", 10, 24),
    ]  # once per level
    # iwp_count's range is [0, None]: the top end is the level's largest maximum, which the
    # stubs make x + y of each tile; iwp_coverage's [0, 1] is kept.
    assert apps.ranges == {
        z: {"iwp_count": (0.0, top), "iwp_coverage": (0.0, 1.0)}
        for z, top in ((10, 205 + 103), (9, 102 + 51), (8, 51 + 25))
    }
    events = pd.read_csv(config.filename_rasterization_events)
    assert len(events) == len(BLOCK) + 6 + 2 + 24 + 6 + 2  # rasterize, parents, web tiles
    assert not events.duplicated(["step", "z", "x", "y"]).any()
    assert (events["run_id"] == "run-1").all() and driver.ranges.keys() == {8, 9, 10}
    assert apps.wrote_records  # by a worker, not the driver


class RecordsLost(StubApps):
    def records(self, config):
        def lost():
            raise OSError("worker lost")

        return self.pool.submit(lost)


class RecordsElsewhere(StubApps):
    def records(self, config):  # a worker that sees another folder: no journal there
        return self.pool.submit(lambda: None)


class ExecutorDies(StubApps):
    def records(self, config):
        self.wrote_records = True
        return Future()  # never done: the interchange died with the task

    def watch(self):
        if self.wrote_records:
            raise RunAbortedError("Parsl's interchange died")


@pytest.mark.parametrize(("kind", "says"), [
    (RecordsLost, "could not write the event log and summary (OSError: worker lost)"),
    (RecordsElsewhere, "did not find this run's journal"),
    (ExecutorDies, "could not write the event log and summary (RunAbortedError: Parsl's "),
])  # fmt: skip
def test_records_a_worker_did_not_write_are_written_by_the_driver(config, caplog, kind, says):
    apps = kind(config)
    drive(config, BLOCK, apps, watch=getattr(apps, "watch", None))
    events = pd.read_csv(config.filename_rasterization_events)
    assert len(events) == len(BLOCK) + 6 + 2 + 24 + 6 + 2
    summary = pd.read_csv(config.filename_rasters_summary)
    assert len(summary) == 2 * (len(BLOCK) + 6 + 2)  # two statistics per GeoTIFF
    assert says in caplog.text


def test_a_lost_batch_runs_tile_by_tile(config):
    bad = Tile(10, 201, 101)
    apps = StubApps(config, lose={bad})
    drive(config, BLOCK, apps)
    events = pd.read_csv(config.filename_rasterization_events)
    row = events[(events["step"] == "rasterize") & (events["x"] == 201) & (events["y"] == 101)]
    assert row["status"].tolist() == ["failed"]
    assert row["error"].iloc[0].startswith("batch lost: OSError: worker lost again")
    assert (events[events["status"] == "ok"]["step"] == "rasterize").sum() == len(BLOCK) - 1
    singles = [n for step, z, n in apps.calls if step == "rasterize" and n == 1]
    assert len(singles) == 2  # the lost batch's other two tiles, alone


def test_empty_levels_are_closed(config):
    """Every staged tile is outside the grid: failed rows, no task, ranges for each level."""
    driver, apps = drive(config, [(5000, 3), (5001, 3)])
    assert apps.calls == [] and driver.ranges.keys() == {8, 9, 10}
    assert not apps.wrote_records  # no worker started: the driver wrote them
    events = pd.read_csv(config.filename_rasterization_events)
    assert events["status"].tolist() == ["failed", "failed"]
    assert events["error"].str.contains("is outside WorldCRS84Quad").all()


def test_a_rerun_with_nothing_to_do_launches_nothing(config):
    drive(config, BLOCK)
    first = pd.read_csv(config.filename_rasterization_events)

    def launch():
        raise AssertionError("a rerun with nothing to do launched the executor")

    driver, _ = drive(config, BLOCK, launch=launch)
    assert not driver.started_executor
    assert pd.read_csv(config.filename_rasterization_events).equals(first)
    # One GeoTIFF gone: it and its web tile are redone; the same bytes (checksum) again, so
    # the parents above stay as they are.
    geotiff_path(config, Tile(10, 203, 102)).unlink()
    driver, apps = drive(config, BLOCK)
    assert driver.started_executor
    assert sorted(apps.calls) == [("quicklooks", 10, 24), ("rasterize", 10, 1),
                                  ("webtile", 10, 1)]  # fmt: skip
