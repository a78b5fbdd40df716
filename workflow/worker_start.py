"""A Parsl worker's start, kept cheap: imports only where they are needed, kernels warm.

- `LazyModule` and `deferred` let `workflow/tasks.py` name what its apps use at the top
  while importing it at first use: the driver, which imports the apps only to wrap them,
  never loads pyogrio, numba or rasterio, and a worker loads what its first task needs.
- `lean_pyogrio` runs before the first import of the tile reader: in a Parsl worker it
  imports pyogrio with geopandas hidden. pyogrio imports geopandas whenever it is installed,
  only for `read_dataframe`/`write_dataframe`, which no worker calls (tiles are read with
  `read_arrow` + shapely). pandas stays: pyarrow itself imports it to turn the geometry
  column into a numpy array. Elsewhere (the driver, tests, the demo's sample generator,
  which writes with geopandas) nothing changes.
- `warm_worker` loads the coverage kernels from numba's on-disk cache (`cache=True`:
  compiled once per installation; a new process then only loads them, ~0.3 s of numba's
  own start-up). A local pool's fork server runs it, after loading every lazy module of
  `workflow.tasks` (`workflow.worker_preload`), so the workers forked from it start warm.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any


def in_parsl_worker() -> bool:
    """Inside a Parsl HighThroughputExecutor worker (Parsl sets PARSL_WORKER_RANK there)."""
    return "PARSL_WORKER_RANK" in os.environ


def lean_pyogrio() -> None:
    """In a Parsl worker, import pyogrio without geopandas (see the module's docstring)."""
    if in_parsl_worker():
        pyogrio_without_geopandas()


def pyogrio_without_geopandas() -> None:
    if "pyogrio" in sys.modules or "geopandas" in sys.modules:
        return
    sys.modules["geopandas"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import pyogrio  # noqa: F401
    finally:
        del sys.modules["geopandas"]  # a later `import geopandas` works as usual


class LazyModule:
    """A module imported at its first attribute access, after `before()` if given.
    Thread-safe: each access goes through `importlib.import_module` (a dict lookup once
    imported), which waits for an import under way in another thread."""

    def __init__(self, name: str, before: Callable[[], None] | None = None):
        self._name = name
        self._before = before

    def load(self) -> Any:
        """The module, imported now if it is not yet."""
        if self._before is not None:
            self._before()
        return importlib.import_module(self._name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.load(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def deferred(module: LazyModule, name: str) -> Callable[..., Any]:
    """A function (or class) of a lazy module, callable before the module is imported."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(module, name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


def warm_worker() -> int:
    """Run the exact-coverage kernels once on a tiny polygon with a hole; return the pid."""
    import numpy as np
    import shapely

    from rasterflow.rasterize_core.coverage import coverage_triplets

    ring = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]
    hole = [(0.5, 0.5), (1.5, 0.5), (1.5, 1.5), (0.5, 1.5)]
    coverage_triplets(np.array([shapely.Polygon(ring, [hole])]), (0.0, 0.0, 2.0, 2.0), (3, 3))
    return os.getpid()
