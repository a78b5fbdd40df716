"""The compiled simplicity check is sound: a ring it calls valid, GEOS calls valid too."""

import numpy as np
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rasterflow.rasterize_core.validity import find_invalid

coordinate = st.floats(-1.0, 1.0, allow_nan=False).map(lambda v: round(v, 3))


def flat_of(polygons):
    """The flat ring arrays `find_invalid` reads (one ring per polygon)."""
    rings = [np.asarray(p.exterior.coords) for p in polygons]
    coords = np.concatenate(rings)
    ring_offsets = np.concatenate([[0], np.cumsum([len(r) for r in rings])])
    geom_ring_offsets = np.arange(len(rings) + 1)
    return coords, ring_offsets, None, geom_ring_offsets, np.arange(len(rings))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(coordinate, coordinate), min_size=3, max_size=9))
@example([(0, 0), (1, 1), (1, 0), (0, 1)])  # bow-tie
@example([(0, 0), (1, 0), (1, 1), (0, 1)])  # square
@example([(0, 0), (2, 0), (1, 0), (1, 1)])  # an edge folding back on itself
def test_checked_validity_equals_geos(points):
    polygon = shapely.Polygon(points)
    invalid = find_invalid(np.array([polygon], dtype=object), flat_of([polygon]))
    assert bool(invalid[0]) == (not polygon.is_valid)
