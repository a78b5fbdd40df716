"""Parent tiles: the 2x2 block reduction of the mosaic of up to four children.

Computed in numpy, exactly: an aligned 2x2 reduction has nothing to
interpolate, so there is no warp noise and an empty pixel stays exactly 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

INTERPOLATING = frozenset({"bilinear", "cubic", "cubic_spline", "lanczos", "gauss"})
RESAMPLING_METHODS = frozenset(
    {"sum", "average", "min", "max", "mode", "nearest", "median", "q1", "q3"} | INTERPOLATING
)


def mosaic(children: Sequence[np.ndarray | None], empty: Sequence[float]) -> np.ndarray:
    """(bands, 2h, 2w) from 4 children (tl, tr, bl, br; None = missing = empty tile).

    `empty` gives each band's empty value (0 for counts and sums, NaN otherwise).
    """
    present = next(child for child in children if child is not None)
    bands, h, w = present.shape
    out = np.empty((bands, 2 * h, 2 * w), dtype="float64")
    out[:] = np.asarray(empty, dtype="float64")[:, None, None]
    for index, child in enumerate(children):
        if child is not None:
            row, col = divmod(index, 2)
            out[:, row * h : (row + 1) * h, col * w : (col + 1) * w] = child
    return out


def reduce_band(band: np.ndarray, method: str) -> np.ndarray:
    """Halve a (2h, 2w) band by its resampling method over each 2x2 block."""
    h, w = band.shape[0] // 2, band.shape[1] // 2
    if method == "nearest":
        return band[::2, ::2].copy()
    blocks = band.reshape(h, 2, w, 2).transpose(0, 2, 1, 3).reshape(h, w, 4)
    if method == "sum":
        return blocks.sum(axis=2)
    if method == "mode":
        return _mode(blocks)
    reducer = _NAN_REDUCERS["average" if method in INTERPOLATING else method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return reducer(blocks)


_NAN_REDUCERS = {
    "average": lambda b: np.nanmean(b, axis=2),
    "min": lambda b: np.nanmin(b, axis=2),
    "max": lambda b: np.nanmax(b, axis=2),
    "median": lambda b: np.nanmedian(b, axis=2),
    "q1": lambda b: np.nanquantile(b, 0.25, axis=2),
    "q3": lambda b: np.nanquantile(b, 0.75, axis=2),
}


def _mode(blocks: np.ndarray) -> np.ndarray:
    """Most frequent non-NaN value of each block; ties go to the smallest value."""
    ordered = np.sort(blocks, axis=2)  # NaN sorts last
    best = np.full(blocks.shape[:2], np.nan)
    best_count = np.zeros(blocks.shape[:2], dtype="int64")
    for candidate in range(4):
        value = ordered[:, :, candidate]
        count = (ordered == value[:, :, None]).sum(axis=2)
        better = (count > best_count) & ~np.isnan(value)
        best = np.where(better, value, best)
        best_count = np.where(better, count, best_count)
    return best


def build_parent(
    children: Sequence[np.ndarray | None], methods: Sequence[str], empty: Sequence[float]
) -> np.ndarray:
    """(bands, h, w) parent from its children, each band by its own method."""
    full = mosaic(children, empty)
    return np.stack([reduce_band(full[i], method) for i, method in enumerate(methods)])
