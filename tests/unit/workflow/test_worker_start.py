"""What the apps' module imports where: the driver never loads GDAL or numba for wrapping
the apps, a Parsl worker imports pyogrio without geopandas, and the warm-up loads the
kernels. Each import check runs in a fresh interpreter (this one has everything loaded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from rasterflow.rasterize_core import coverage
from rasterflow.workflow.worker_start import LazyModule, deferred, warm_worker

HEAVY = ("pyogrio", "geopandas", "numba", "rasterio", "PIL")

IMPORT_TASKS = """
import json, sys
from rasterflow.workflow import tasks
heavy = sys.argv[2].split(",")
loaded = {name: name in sys.modules for name in heavy}
if sys.argv[1] == "read":
    from rasterflow.workflow.config import parse_config
    tasks.staged_columns(parse_config({}, source="test"))  # the reader's first use
    loaded["after"] = {name: name in sys.modules for name in heavy}
print(json.dumps(loaded))
"""


def imports_of_tasks(then: str, worker: bool) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "PARSL_WORKER_RANK"}
    if worker:
        env["PARSL_WORKER_RANK"] = "0"  # what Parsl sets in each worker process
    run = subprocess.run([sys.executable, "-c", IMPORT_TASKS, then, ",".join(HEAVY)], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_importing_the_apps_loads_no_gdal_numba_or_pillow():
    loaded = imports_of_tasks("nothing", worker=False)
    assert not any(loaded.values()), loaded


def test_a_worker_reads_tiles_with_pyogrio_but_without_geopandas():
    after = imports_of_tasks("read", worker=True)["after"]
    assert after["pyogrio"] and not after["geopandas"]


def test_elsewhere_pyogrio_imports_geopandas_as_usual():
    """Why the worker needs the lean import: pyogrio imports geopandas when installed."""
    after = imports_of_tasks("read", worker=False)["after"]
    assert after["pyogrio"] and after["geopandas"]


def test_warm_worker_loads_the_coverage_kernel_in_this_process():
    assert warm_worker() == os.getpid()
    assert coverage._triplets_kernel.signatures  # loaded (from numba's cache) or compiled


def test_lazy_module_imports_at_first_use(tmp_path, monkeypatch):
    (tmp_path / "lazy_probe_module.py").write_text("VALUE = 42\ndef double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = []
    lazy = LazyModule("lazy_probe_module", before=lambda: calls.append("before"))
    double = deferred(lazy, "double")
    assert double.__name__ == "double" and "lazy_probe_module" not in sys.modules
    results = []
    threads = [threading.Thread(target=lambda: results.append(double(21))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [42] * 4 and lazy.VALUE == 42 and "lazy_probe_module" in sys.modules
    assert calls == ["before"] * 5  # before every access: it must be cheap once done
    monkeypatch.delitem(sys.modules, "lazy_probe_module")
