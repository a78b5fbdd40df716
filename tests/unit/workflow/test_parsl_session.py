"""The Parsl session of a run, and the Parsl internals it relies on.

`interchanges`, `abandon_cleanup` and `try_count` reach past Parsl's public API: these tests
fail loudly when a Parsl upgrade renames or changes what they use. The in-process ones use
a ThreadPoolExecutor (no processes); the last one starts the real local site once.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import signal
import subprocess
import sys
import weakref
from concurrent.futures import Future
from pathlib import Path

import psutil
import pytest
from parsl import python_app
from parsl.config import Config
from parsl.executors import ThreadPoolExecutor

from rasterflow.executors import parsl_lean
from rasterflow.executors.parsl_configs import parsl_config
from rasterflow.executors.sites import load_site
from rasterflow.executors.warm_pool import WarmServer
from rasterflow.rasterize_core.errors import RunAbortedError
from rasterflow.workflow.apps import run_packed, run_packed_once
from rasterflow.workflow.parsl_session import (
    FinishedTasks,
    ParslSession,
    interchanges,
    retry_cost,
    try_count,
)
from rasterflow.workflow.run import WORKER_PRELOAD


def threads_config(run_dir: Path, retries: int = 0) -> Config:
    return Config(executors=[ThreadPoolExecutor(max_threads=1, label="threads")],
                  run_dir=str(run_dir), retries=retries, retry_handler=retry_cost)  # fmt: skip


def test_a_session_never_started_starts_nothing(tmp_path):
    built = []
    session = ParslSession(lambda: built.append(1) or threads_config(tmp_path / "runinfo"))
    session.close()
    assert not session.started and not built and not (tmp_path / "runinfo").exists()


def test_a_config_function_is_called_at_start(tmp_path):
    built = []
    session = ParslSession(lambda: built.append(1) or threads_config(tmp_path / "runinfo"))
    with session:
        assert built == [1] and python_app(lambda: "ran")().result(timeout=30) == "ran"


def test_start_loads_in_the_background_and_dfk_waits(tmp_path):
    import parsl

    session = ParslSession(threads_config(tmp_path / "runinfo"))
    session.start()
    session.start()  # once only
    try:
        dfk = session.dfk()
        assert parsl.dfk() is dfk and python_app(lambda: 41 + 1)().result(timeout=30) == 42
        assert interchanges(dfk) == []  # threads: no interchange to watch
        session.check()
    finally:
        session.close()
    with pytest.raises(parsl.errors.NoDataFlowKernelError):
        parsl.dfk()


def test_a_failed_load_is_raised_in_the_driver_thread(tmp_path):
    session = ParslSession(object())  # not a Parsl Config
    session.start()
    with pytest.raises(Exception) as caught:
        session.dfk()
    assert not isinstance(caught.value, AssertionError)
    session.close()  # nothing to end


class Payload:
    """A task's result, weakly referable: is it still held?"""


def make_payload():
    return Payload()


def test_finished_tasks_are_freed_as_the_run_goes(tmp_path):
    """Parsl keeps a finished task's result in a reference cycle (its AppFuture and task
    record) that only a full collection frees; the session runs one every few seconds."""
    import parsl

    finished, dfk = FinishedTasks(every_s=0.0), None
    gc.disable()  # no automatic collection to free it by chance
    logging.disable(logging.INFO)  # pytest keeps log records, and Parsl's name the future
    try:
        config = Config(executors=[ThreadPoolExecutor(max_threads=1)],
                        run_dir=str(tmp_path / "runinfo"), initialize_logging=False)  # fmt: skip
        dfk = parsl.load(config)
        finished.start()  # Parsl is loaded: what is alive now is left out of every pass
        assert gc.get_freeze_count() > 0
        future = python_app(make_payload, data_flow_kernel=dfk)()
        result = weakref.ref(future.result(timeout=30))
        dfk.wait_for_current_tasks()
        del future
        held = result() is not None  # (not in an assert: pytest's rewriting holds values)
        assert held  # the driver let go of it; Parsl's cycle did not
        finished.free_when_due()
        freed = result() is None
        assert freed
    finally:
        finished.stop()
        gc.enable()
        logging.disable(logging.NOTSET)
        if dfk is not None:
            dfk.cleanup()
            parsl.clear()
    assert gc.get_freeze_count() == 0


FREEZE_IN_A_FRESH_PROCESS = """
import gc, sys
from parsl.config import Config
from parsl.executors import ThreadPoolExecutor
from rasterflow.workflow.parsl_session import ParslSession
assert "pandas" not in sys.modules
session = ParslSession(Config(executors=[ThreadPoolExecutor(max_threads=1)],
                              run_dir=sys.argv[1], initialize_logging=False))
session.dfk()
import pandas
def walked():  # in a generation the collector's passes walk (frozen objects are not)
    return any(o is pandas.DataFrame for o in gc.get_objects())
print(walked(), gc.get_freeze_count() > 0)
session.check()  # a pass when due, and the interchange check: no executor to lose
session.close()
print(walked(), gc.get_freeze_count() > 0)
"""


def test_a_session_freezes_parsl_and_pandas_and_thaws_at_close(tmp_path):
    """In a process that has not loaded pandas: once Parsl is up, pandas (which pyarrow
    would import at the driver's first results) is frozen with Parsl, out of every pass;
    closing the session gives it back to the collector."""
    out = subprocess.run([sys.executable, "-c", FREEZE_IN_A_FRESH_PROCESS,
                          str(tmp_path / "runinfo")], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True", "False"]


def test_try_count_counts_parsl_retries(tmp_path):
    """`try_id` in Parsl's task record: 0 for the first try, +1 per retry."""
    tally = tmp_path / "tries"

    def flaky(path):
        with open(path, "a") as handle:
            handle.write(".")
        if len(Path(path).read_text()) < 2:
            raise OSError("connection reset")  # transient: retried
        return "done"

    with ParslSession(threads_config(tmp_path / "runinfo", retries=2)):
        first_time = python_app(flaky)(str(tally))
        assert first_time.result(timeout=30) == "done"
        assert try_count(first_time) == 2
        once = python_app(lambda: 1)()
        once.result(timeout=30)
        assert try_count(once) == 1
    done = Future()
    done.set_result(None)
    assert try_count(done) == 1  # a plain future (stub apps): one try


def test_a_call_the_driver_handles_itself_is_tried_once(tmp_path):
    """The records' merge at the end: its failure falls back to the driver at once."""
    unknown = pickle.dumps(("no such app", ()))
    with ParslSession(threads_config(tmp_path / "runinfo", retries=2)) as session:
        retried = python_app(run_packed, data_flow_kernel=session.dfk())(unknown)
        once = python_app(run_packed_once, data_flow_kernel=session.dfk())(unknown)
        for future in (retried, once):
            with pytest.raises(KeyError):
                future.result(timeout=60)
        assert (try_count(retried), try_count(once)) == (3, 1)


EXIT_WITHOUT_CLEANUP = """
import sys
import parsl
from parsl.config import Config
from parsl.executors import ThreadPoolExecutor
from rasterflow.workflow.parsl_session import abandon_cleanup
dfk = parsl.load(Config(executors=[ThreadPoolExecutor(label="threads")], run_dir=sys.argv[1]))
if sys.argv[2] == "abandon":
    abandon_cleanup(dfk)
"""


@pytest.mark.parametrize("how", ["keep", "abandon"])
def test_abandon_cleanup_drops_parsl_exit_hook(tmp_path, how):
    """Parsl registers `dfk.atexit_cleanup` at load (it warns of a DFK left running; older
    Parsl cleaned up, blocking on a dead interchange): after `abandon_cleanup` it is gone."""
    run = subprocess.run([sys.executable, "-c", EXIT_WITHOUT_CLEANUP, str(tmp_path), how],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    (log,) = tmp_path.glob("*/parsl.log")
    warned = "exiting with a DFK still running" in log.read_text()
    assert warned == (how == "keep")


# Sent by value (defined in a module called __main__): workers cannot import tests.
PROBE = """
def probe():
    import os, sys
    preloaded = all(name in sys.modules for name in ("numba", "rasterio", "PIL.Image",
                                                      "rasterflow.workflow.tasks"))
    from rasterflow.workflow.worker_start import lean_pyogrio
    lean_pyogrio()
    import rasterflow.rasterize_core.read
    import psutil
    parent = " ".join(psutil.Process(os.getppid()).cmdline())
    return {"rank": os.environ.get("PARSL_WORKER_RANK"), "pid": os.getpid(),
            "parent": parent, "ppid": os.getppid(), "preloaded": preloaded,
            "pythonpath": os.environ.get("PYTHONPATH", ""), "job": os.environ.get("JOBNAME"),
            "globus": "globus_compute_sdk" in sys.modules,
            "geopandas": "geopandas" in sys.modules, "pyogrio": "pyogrio" in sys.modules}
"""


@pytest.mark.slow
def test_local_site_internals(tmp_path):
    """The real local site: the interchange is found and watched, workers run the warm-up
    first, import Parsl without the Globus Compute SDK and pyogrio without geopandas; a dead
    interchange fails `check()` and `close()` ends every process of the run."""
    namespace = {"__name__": "__main__"}
    exec(PROBE, namespace)
    server = WarmServer([WORKER_PRELOAD])
    session = ParslSession(parsl_config(load_site("local"), tmp_path / "runinfo",
                                        warm_server=server), also_stop=server.stop)  # fmt: skip
    session.start()
    try:
        dfk = session.dfk()
        (interchange,) = interchanges(dfk)
        assert isinstance(interchange, subprocess.Popen) and interchange.poll() is None
        traces = session.traces()
        assert traces["interchange_pid"] == interchange.pid
        assert traces["interchange_started"] == psutil.Process(interchange.pid).create_time()
        seen = python_app(namespace["probe"])().result(timeout=120)
        assert seen["rank"] is not None and seen["pid"] != os.getpid()
        lean = {key: seen[key] for key in ("globus", "geopandas", "pyogrio")}
        assert lean == {"globus": False, "geopandas": False, "pyogrio": True}
        # Forked from the driver's fork server, every library of the tasks already loaded,
        # in the pool's environment (its submit script's JOBNAME), not the server's.
        assert seen["ppid"] == server.process.pid and "forkserver" in seen["parent"]
        assert seen["preloaded"] and str(parsl_lean.FOLDER) in seen["pythonpath"]
        assert seen["job"].startswith("parsl.htex_local.block-")
        assert "JOBNAME" not in psutil.Process(server.process.pid).environ()
        server_process = psutil.Process(server.process.pid)
        session.check()
        os.kill(interchange.pid, signal.SIGKILL)
        interchange.wait(timeout=30)
        with pytest.raises(RunAbortedError, match="interchange .* died"):
            session.check()
        pool = [p for p in psutil.process_iter(["cmdline"])
                if str(tmp_path) in " ".join(p.info["cmdline"] or ())]  # fmt: skip
        assert pool  # the worker pool, still running
        pool += [server_process]
        pool += [child for p in pool for child in p.children(recursive=True)]
    finally:
        session.close()
    left = [p for p in pool if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, [(p.pid, p.ppid(), p.cmdline()[:3]) for p in left]
    assert "globus_compute_sdk" in sys.modules or not _sdk_installed()  # the driver keeps it


def _sdk_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("globus_compute_sdk") is not None
