"""`rasterflow job`: run the whole driver inside one Slurm or PBS allocation."""

from __future__ import annotations

COMMANDS: list = []
