"""`rasterflow`: each command parses its arguments and calls one library function.

Exit codes: 0 success (for `run`: every tile ok); 1 the run finished but some
tiles failed (listed); 2 bad config or usage (nothing run). Commands live in the
modules beside this one and never import it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import warnings

import click

from rasterflow.workflow.cli import inspect, jobs, remote, run, serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug lines.")
def main(verbose: bool) -> None:
    """Exact, resumable rasterization of PDG staged vector tiles, as a Parsl workflow."""
    # Our own logger only: Parsl writes its debug log into the run directory.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("rasterflow")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    warnings.filterwarnings("default", module="rasterflow")


for module in (run, inspect, remote, jobs, serve):
    for command in module.COMMANDS:
        main.add_command(command)


def entry() -> None:
    """The `rasterflow` command (and `python -m rasterflow`): `main`, then the exit
    handlers, then the process ends without the interpreter's teardown, which frees every
    object of every module loaded (Parsl, pyarrow, pandas...): 0.3 s after a run whose
    files are all written and closed. A command that leaves a thread running exits the
    usual way, which waits for it."""
    try:
        main(prog_name="rasterflow")
    except SystemExit as done:
        code = _exit_code(done.code)
    else:  # pragma: no cover - click's standalone mode always exits
        code = 0
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        sys.exit(code)
    atexit._run_exitfuncs()
    with contextlib.suppress(OSError):  # a closed pipe: nothing more to say
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _exit_code(code: object) -> int:
    """As `sys.exit` takes it: None is 0, a number is itself, anything else is printed."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    entry()
