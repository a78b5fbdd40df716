"""`rasterflow submit | job`: send a run to Globus Compute or into a batch allocation."""

from __future__ import annotations

COMMANDS: list = []
