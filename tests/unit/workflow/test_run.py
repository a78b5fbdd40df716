"""The run's retry policy: deterministic errors are never retried, lost workers are."""

from __future__ import annotations

from parsl.executors.high_throughput.errors import WorkerLost

from rasterflow.rasterize_core.errors import TileInputError
from rasterflow.workflow.run import retry_cost


def test_retry_cost_spends_every_retry_on_deterministic_errors():
    record: dict = {}
    assert retry_cost(TileInputError("/a.gpkg", "corrupt"), record) > 2  # > retries: no retry
    assert retry_cost(TypeError("bug"), record) > 2
    assert retry_cost(WorkerLost(0, "host"), record) == 1
    assert retry_cost(OSError("connection reset"), record) == 1
