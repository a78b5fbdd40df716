"""The run's retry policy: deterministic errors are never retried, lost workers are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from parsl.executors.high_throughput.errors import WorkerLost
from pydantic import TypeAdapter

from rasterflow.executors.site_models import Site
from rasterflow.rasterize_core.errors import TileInputError
from rasterflow.workflow.run import RunReport, expected_workers, retry_cost


def test_retry_cost_spends_every_retry_on_deterministic_errors():
    record: dict = {}
    assert retry_cost(TileInputError("/a.gpkg", "corrupt"), record) > 2  # > retries: no retry
    assert retry_cost(TypeError("bug"), record) > 2
    assert retry_cost(WorkerLost(0, "host"), record) == 1
    assert retry_cost(OSError("connection reset"), record) == 1


def report(web_tiles_dir: Path | None) -> RunReport:
    return RunReport(run_id="r", geotiff_dir=Path("/g"), web_tiles_dir=web_tiles_dir,
                     events_csv=Path("/e.csv"), elapsed_s=1.0, ok={"rasterize": 3},
                     failures=[{"step": "rasterize"}])  # fmt: skip


def test_last_line_names_the_web_tiles_only_when_made():
    assert report(Path("/w")).last_line() == (
        "rasterflow: 3 tile steps ok, 1 failed; GeoTIFFs in /g, web tiles in /w, events in /e.csv"
    )
    assert report(None).last_line() == (
        "rasterflow: 3 tile steps ok, 1 failed; GeoTIFFs in /g, events in /e.csv"
    )


@pytest.mark.parametrize(("site", "workers"), [
    ({"kind": "local", "workers": 5}, 5),
    ({"kind": "threads", "max_threads": 3}, 3),
    ({"kind": "slurm", "workers_per_node": 4, "nodes_per_block": 3, "max_blocks": 2}, 24),
    ({"kind": "threads"}, os.cpu_count()),  # "auto"
])  # fmt: skip
def test_batches_are_sized_for_the_workers_each_kind_of_site_brings(site, workers):
    model = TypeAdapter(Site).validate_python({"description": "test", **site}, strict=False)
    assert expected_workers(model) == workers
