"""Stands in for the Globus Compute SDK in rasterflow's local Parsl processes (see
`__init__.py`): Parsl takes the ImportError as "not installed" and skips its executor."""

raise ImportError("globus_compute_sdk is left out of rasterflow's local Parsl processes")
