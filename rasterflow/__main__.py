"""`python -m rasterflow`: the same command line as `rasterflow`."""

from rasterflow.workflow.cli import main

main(prog_name="rasterflow")
