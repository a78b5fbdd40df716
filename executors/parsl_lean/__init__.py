"""A folder put first on `sys.path` of the Parsl processes that rasterflow starts on the
driver's machine (the interchange, and the local worker pool with every process it spawns),
so that their `import parsl` skips the Globus Compute SDK.

`import parsl` imports every executor Parsl has, and with it globus_compute_sdk whenever
that is installed (Parsl issue #3818): about 0.3 s of CPU in each of those processes, four
of them one after another before the first task can run, and none of them ever uses it.
`globus_compute_sdk.py` here only raises ImportError, which Parsl takes as "not installed".
The driver itself, and sites of kind `globus_compute`, import the real SDK as before.
"""

from __future__ import annotations

import os
from pathlib import Path

FOLDER = Path(__file__).resolve().parent

# Run as `python -c INTERCHANGE`: Parsl's interchange, without the SDK.
INTERCHANGE = (
    "import runpy, sys; sys.modules.setdefault('globus_compute_sdk', None); "
    "runpy.run_module('parsl.executors.high_throughput.interchange', run_name='__main__', "
    "alter_sys=True)"
)


def environ() -> dict[str, str]:
    """This process's environment with the folder first on PYTHONPATH, for a Parsl process
    started without a shell (the local pool's workers' fork server)."""
    path = [str(FOLDER), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
