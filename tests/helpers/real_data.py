"""PDG's real staged tiles in ../shared (read in place). Tests that read them carry
`@pytest.mark.real_data`; tests/conftest.py skips them, with this reason, when it is absent."""

from __future__ import annotations

from .paths import REPO

REAL_DATA = REPO.parent / "shared" / "data" / "pdg-iwp-staged"
REAL_POLYGONS = 14281  # unique staging_identifier values in the four tiles


def real_data_missing() -> str | None:
    """Why the real tiles cannot be read here, or None."""
    return None if REAL_DATA.is_dir() else f"real staged tiles not found at {REAL_DATA}"
