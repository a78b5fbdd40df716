"""`python -m rasterflow`: the same command line as `rasterflow`."""

from rasterflow.workflow.cli import entry

entry()
