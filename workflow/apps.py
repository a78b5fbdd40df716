"""The one Parsl app: a packed batch call in, packed results out (see `batches`).

Above both `tasks` and `batches`, so the driver can wrap it without loading the
rasterizing libraries: `tasks` is imported inside, on the worker.
"""

from __future__ import annotations

import pickle

APPS = {"rasterize": "rasterize_batch", "parents": "parents_batch", "webtiles": "webtiles_batch",
        "quicklooks": "quicklooks_level", "records": "write_records"}  # fmt: skip


def run_packed(call: bytes) -> bytes:
    """The Parsl app: a batch app's call (`pack_call`) in, its `TileResults` out, as pickle
    bytes. Parsl serializes arguments and results with dill: ~0.7 ms for a config and ~3 ms
    for a batch's results, where pickle takes 0.03 and 0.3 ms, and the driver pays for
    every task. `workflow.tasks` is imported here, in the worker: the driver never loads
    the rasterizing libraries."""
    from rasterflow.workflow import tasks

    app, args = pickle.loads(call)
    results = getattr(tasks, APPS[app])(*args)
    return pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)


def run_packed_once(call: bytes) -> bytes:
    """`run_packed` for a call Parsl tries once (`parsl_session.retry_cost`): the records'
    files at the end, which the driver writes itself when that try fails (a retry of a
    merge that failed would take as long again, minutes at 10^7 tiles)."""
    return run_packed(call)
