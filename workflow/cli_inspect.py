"""`rasterflow plan | status | view`: look at a run before, during and after it."""

from __future__ import annotations

COMMANDS: list = []
