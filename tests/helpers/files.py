"""Fingerprints of output files."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digests(root: Path, pattern: str = "*.tif") -> dict[str, str]:
    """sha256 of every file under root matching pattern, keyed by its path below root."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob(pattern))
    }
