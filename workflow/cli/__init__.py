"""`rasterflow`: each command parses its arguments and calls one library function.

Exit codes: 0 success (for `run`: every tile ok); 1 the run finished but some
tiles failed (listed); 2 bad config or usage (nothing run). Commands live in the
modules beside this one and never import it.
"""

from __future__ import annotations

import logging
import sys
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

if __name__ == "__main__":
    main()
