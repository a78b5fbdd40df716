"""Parents equal the 2x2 reduction of their children, computed here pixel by pixel."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rasterflow.rasterize_core.pyramid import build_parent, mosaic, reduce_band

REFERENCE = {  # one 2x2 block's four values -> the parent pixel, written out by hand
    "sum": lambda v: sum(v),
    "average": lambda v: (
        np.mean([x for x in v if not np.isnan(x)]) if any(~np.isnan(v)) else np.nan
    ),
    "min": lambda v: min((x for x in v if not np.isnan(x)), default=np.nan),
    "max": lambda v: max((x for x in v if not np.isnan(x)), default=np.nan),
    "nearest": lambda v: v[0],
}


def block_values(band, row, col):
    return np.array([band[2 * row, 2 * col], band[2 * row, 2 * col + 1],
                     band[2 * row + 1, 2 * col], band[2 * row + 1, 2 * col + 1]])  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(arrays("float64", (6, 8), elements=st.floats(0, 1000, allow_nan=False)))
def test_reduction_matches_hand_written_blocks(band):
    for method, reference in REFERENCE.items():
        parent = reduce_band(band, method)
        for row in range(3):
            for col in range(4):
                expected = reference(block_values(band, row, col))
                assert parent[row, col] == pytest.approx(expected, rel=1e-12), method


def test_mode_median_quartiles():
    band = np.array([[1.0, 1.0, 5.0, 2.0], [3.0, 4.0, 2.0, np.nan]])
    assert reduce_band(band, "mode").tolist() == [[1.0, 2.0]]
    assert reduce_band(band, "median").tolist() == [[2.0, 2.0]]
    assert reduce_band(band, "q1").tolist() == [[1.0, 2.0]]
    assert reduce_band(band, "q3").tolist() == [[3.25, 3.5]]
    assert reduce_band(band, "bilinear").tolist() == reduce_band(band, "average").tolist()


def test_mosaic_places_children_and_fills_missing():
    child = np.arange(8, dtype=float).reshape(2, 2, 2)
    full = mosaic([None, child, None, None], empty=[0.0, np.nan])
    assert full.shape == (2, 4, 4)
    assert full[:, :2, 2:].tolist() == child.tolist()  # top-right
    assert (full[0, 2:, :] == 0).all() and np.isnan(full[1, :, :2]).all()


def test_counts_are_conserved_and_empty_stays_zero():
    rng = np.random.default_rng(1)
    children = [rng.poisson(0.3, (1, 16, 16)).astype(float) for _ in range(3)] + [None]
    parent = build_parent(children, ["sum"], [0.0])
    assert parent.sum() == sum(c.sum() for c in children if c is not None)
    assert (parent[0, 8:, 8:] == 0).all()  # the missing bottom-right child


def test_coverage_average_is_area_fraction():
    full = np.ones((1, 4, 4))  # a child fully covered ...
    parent = build_parent([full, None, None, None], ["average"], [0.0])
    assert parent[0, :2, :2].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert (parent[0, 2:, :] == 0).all()  # ... and three empty ones average to exactly 0
