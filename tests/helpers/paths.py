"""Where the repository, the test data and the test-only executables are."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
PBS_BIN = TESTS / "bin" / "pbs"  # the stand-in qsub/qstat/qdel/mpiexec
STAC_SCHEMAS = TESTS / "data" / "stac-schemas"
TEST_SITES = TESTS / "sites"  # site files for the tests only (not bundled)
THREADS_SITE = str(TEST_SITES / "threads.toml")  # outputs, not process faults, are the point
