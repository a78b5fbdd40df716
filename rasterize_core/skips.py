"""The vocabulary of skipped rows (DESIGN §9) and its short text: what a tile's event row
says (`2 empty, 1 non-finite`) and what a run sums. Plain Python, so the driver reads it
without loading GEOS; the rows are classified in `odd_rows`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# The fixed vocabulary of skip reasons, in the order they are reported.
SKIP_REASONS = {
    "null": "the row has no geometry (NULL)",
    "empty": "an empty geometry: POLYGON EMPTY, an empty collection, an empty point or line",
    "non-finite": "a coordinate (x or y) that is NaN or infinite",
    "unclosed ring": "a ring whose last point is not its first (GEOS refuses to read it)",
    "too few points": "a ring of 1 or 2 points (GEOS refuses to read it), or no outer ring of "
    "4 points or more (closing point included), so no area can be enclosed; a polygon "
    "whose outer ring is fine but a hole is too short is invalid and repaired instead",
    "line": "a LineString, LinearRing or MultiLineString, or a collection holding lines and "
    "no polygon",
    "point": "a Point or MultiPoint, or a collection holding points and no polygon or line",
    "unreadable": "geometry bytes that do not decode (cut short, an unknown geometry type)",
}


def skipped_text(skips: Mapping[str, Sequence[int] | int], rows_named: int = 0) -> str:
    """What was skipped, e.g. `2 empty, 1 non-finite` ("" when nothing was); with
    `rows_named` > 0 each reason also names up to that many of its rows: `2 empty (fid 3, 8)`.
    """
    parts = []
    for reason, ids in skips.items():
        count = ids if isinstance(ids, int) else len(ids)
        text = f"{count} {reason}"
        if rows_named and not isinstance(ids, int):
            more = ", ..." if len(ids) > rows_named else ""
            text += f" (fid {', '.join(map(str, ids[:rows_named]))}{more})"
        parts.append(text)
    return ", ".join(parts)


_SKIP_ITEM = re.compile(rf"(\d+) ({'|'.join(map(re.escape, SKIP_REASONS))})\b")


def parse_skipped(text: str | None) -> dict[str, int]:
    """`skipped_text` read back: {reason: count}."""
    counts: dict[str, int] = {}
    for number, reason in _SKIP_ITEM.findall(text or ""):
        counts[reason] = counts.get(reason, 0) + int(number)
    return counts
