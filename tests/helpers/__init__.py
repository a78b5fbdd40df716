"""Shared test helpers: paths, config and sample builders, independent truth (shapely per pixel,
digests), processes and the CI's Slurm. Tests import these modules, never conftest or each other."""
