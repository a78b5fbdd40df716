"""A run's Parsl: started early in the background, always ended cleanly.

    session = ParslSession(parsl_config)
    with closing(session):     # ends Parsl if it was started: cleanup, or, with a dead
        session.start()        # interchange, its processes. Once the run knows it has work:
        ...                    # Parsl loads in a thread while the driver plans and sets up
        dfk = session.dfk()    # wait for Parsl (re-raises what failed while loading)
        session.check()        # raises RunAbortedError once an interchange has died (and
                               # frees finished tasks: see `FinishedTasks`)

`with session:` is the short form when Parsl is wanted at once: it starts Parsl, waits for
it, and ends it with the block.

Loading a HighThroughputExecutor starts the interchange, then the worker pool, whose workers
start with rasterflow's libraries loaded (`executors.warm_pool`): a second or two, all of
which overlaps the driver's own work when `start()` comes early. A session that is never
started costs nothing, so a rerun with nothing to do need not start Parsl.

What rasterflow needs from Parsl beyond its public API is gathered at the bottom, in three
small functions (`interchanges`, `abandon_cleanup`, `try_count`);
tests/unit/workflow/test_parsl_session.py fails when a Parsl upgrade breaks one of them.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress
from typing import Any

import psutil

from rasterflow.rasterize_core.errors import ConfigError, RunAbortedError, TileInputError
from rasterflow.workflow.apps import run_packed_once
from rasterflow.workflow.lock import reap_orphans

log = logging.getLogger(__name__)
# pyarrow imports pandas at its first conversion (the driver's first results): loaded with
# Parsl, its objects are frozen with Parsl's (`FinishedTasks`), not walked at every pass.
LOADED_BEFORE_FREEZE = "pandas"


class ParslSession:
    """One Parsl config, loaded at most once, in a background thread. `parsl_config` may be
    a function that builds it: then even Parsl's import waits for `start()`, and what it
    starts beside Parsl (a local pool's fork server) `also_stop` ends after Parsl."""

    def __init__(self, parsl_config: Any, also_stop: Callable[[], None] | None = None):
        self.config = parsl_config
        self._also_stop = also_stop
        self._thread: threading.Thread | None = None
        self._dfk: Any = None
        self._error: BaseException | None = None
        self._finished = FinishedTasks()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Load Parsl in the background (once; later calls do nothing)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._load, name="parsl-start", daemon=True)
            self._thread.start()

    def dfk(self) -> Any:
        """The loaded DataFlowKernel, waiting for it (and starting it) if need be."""
        self.start()
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._finished.start()
        return self._dfk

    def _load(self) -> None:
        try:
            config = self.config() if callable(self.config) else self.config
            import parsl

            self._dfk = parsl.load(config)
            with suppress(ImportError):  # while the pool starts; before the freeze (dfk())
                importlib.import_module(LOADED_BEFORE_FREEZE)
        except BaseException as err:  # noqa: BLE001 - handed to the driver's thread by dfk()
            self._error = err

    def check(self) -> None:
        """Fail the run if an interchange died (killed, OOM): Parsl would wait for it forever.
        The rows so far are in the journal, so a rerun resumes."""
        if self._dfk is None:
            return
        self._finished.free_when_due()
        for proc in interchanges(self._dfk):
            if proc.poll() is not None:
                raise RunAbortedError(
                    f"Parsl's interchange (pid {proc.pid}) died with exit code {proc.returncode}; "
                    "the results so far are kept: rerun to resume"
                )

    def traces(self) -> dict:
        """What a run that finds this driver dead needs to end the Parsl processes it left:
        the run dir (every pool command line names it), the interchange's pid and birth time."""
        dfk = self.dfk()
        pid = next((proc.pid for proc in interchanges(dfk)), None)
        born = psutil.Process(pid).create_time() if pid and psutil.pid_exists(pid) else None
        return {"parsl_run_dir": os.path.abspath(dfk.run_dir), "interchange_pid": pid,
                "interchange_started": born}  # fmt: skip

    def close(self) -> None:
        """End Parsl if it was started (a load under way is waited for first)."""
        if self._thread is None:
            return
        self._thread.join()
        dfk, self._dfk, self._thread = self._dfk, None, None
        self._finished.stop()
        try:
            if dfk is not None:  # else the load failed: nothing of Parsl's is up
                _end(dfk)
        finally:
            if self._also_stop is not None:
                self._also_stop()

    def __enter__(self) -> ParslSession:
        self.dfk()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FinishedTasks:
    """Frees Parsl's finished tasks as the run goes, not in bursts that grow with it.

    A task's `AppFuture` and its task record refer to each other, so a finished task (its
    call's and its results' bytes, ~100 KB a batch) is freed only by the garbage
    collector's full pass, which a driver's heap of imported modules makes rare: the
    driver grew by 15 MB over 24,000 z-max tiles before one came. Once Parsl is loaded the
    objects then alive are frozen (long-lived: modules, Parsl itself), and a full pass every
    `every_s` walks only what came after them: the tasks in flight and what the driver
    holds, about a millisecond for a window of 16 tasks, 12 ms for 4,096 (ThreadPool).
    (Without the freeze a pass walks every module's objects: 50 ms.) The freeze is the
    process's: one session at a time."""

    def __init__(self, every_s: float = 2.0):
        self.every_s = every_s
        self._frozen = False
        self._last = 0.0

    def start(self) -> None:
        if not self._frozen:
            gc.freeze()
            self._frozen, self._last = True, time.monotonic()

    def free_when_due(self) -> None:
        if self._frozen and time.monotonic() - self._last >= self.every_s:
            gc.collect()
            self._last = time.monotonic()

    def stop(self) -> None:
        """Give the frozen objects back to the collector (a process may run again)."""
        if self._frozen:
            gc.unfreeze()
            self._frozen = False


def _end(dfk: Any) -> None:
    import parsl

    try:
        if all(proc.poll() is None for proc in interchanges(dfk)):
            dfk.cleanup()
        else:  # cleanup would block on the dead interchange's channel: end what is ours
            abandon_cleanup(dfk)
            reap_orphans({"parsl_run_dir": os.path.abspath(dfk.run_dir)})
    finally:
        parsl.clear()


def retry_cost(exception: BaseException, task_record: dict) -> float:
    """Parsl retry handler: deterministic errors use up every retry at once, and so does
    any error of a call the driver handles itself (`apps.run_packed_once`)."""
    if task_record.get("func_name") == run_packed_once.__name__:
        return 100.0
    deterministic = (TileInputError, ConfigError, ImportError, TypeError, AttributeError)
    return 100.0 if isinstance(exception, deterministic) else 1.0


# -- Parsl internals: the only places rasterflow reaches past Parsl's public API ------------
def interchanges(dfk: Any) -> list:
    """The interchange processes (`subprocess.Popen`) of the DFK's HighThroughputExecutors,
    whose death Parsl does not notice (it waits on them forever)."""
    from parsl.executors import HighThroughputExecutor

    executors = dfk.executors.values()
    procs = [ex.interchange_proc for ex in executors if isinstance(ex, HighThroughputExecutor)]
    return [proc for proc in procs if proc is not None]


def abandon_cleanup(dfk: Any) -> None:
    """Drop the hook Parsl registered to run at exit for a DFK never cleaned up (one whose
    interchange died: `cleanup()` would block on its channel). Parsl 2026 only warns there;
    older versions cleaned up, and the driver could never exit."""
    atexit.unregister(dfk.atexit_cleanup)


def try_count(future: Future) -> int:
    """How many tries a finished app took (1 + Parsl's retries); 1 for a plain future."""
    from parsl.dataflow.futures import AppFuture

    if not isinstance(future, AppFuture):
        return 1
    return int(future.task_record["try_id"]) + 1
