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
    method = "average" if method in INTERPOLATING else method
    if method in _CORNER_REDUCERS:
        corners = [band[r : 2 * h : 2, c : 2 * w : 2] for r in (0, 1) for c in (0, 1)]
        return _CORNER_REDUCERS[method](*corners)
    blocks = band.reshape(h, 2, w, 2).transpose(0, 2, 1, 3).reshape(h, w, 4)
    if method == "mode":
        return _mode(blocks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return _NAN_REDUCERS[method](blocks)


# The common methods work on the four corner views of each block (top-left, top-right,
# bottom-left, bottom-right): ~5x faster than reducing a (h, w, 4) copy along its short last
# axis. Sums add in that order, as numpy's sum over the block axis does (checked bitwise),
# and NaN-skipping is as np.nanmean / nanmin / nanmax: an all-NaN block stays NaN.
def _sum(a, b, c, d):
    return ((a + b) + c) + d


def _average(a, b, c, d):
    corners = (a, b, c, d)
    if not any(np.isnan(x).any() for x in corners):
        return _sum(a, b, c, d) / 4.0
    known = [~np.isnan(x) for x in corners]
    total = _sum(*(np.where(k, x, 0.0) for k, x in zip(known, corners, strict=True)))
    count = _sum(*(k.astype(np.int64) for k in known))
    with np.errstate(invalid="ignore"):
        return total / count


_CORNER_REDUCERS = {
    "sum": _sum,
    "average": _average,
    "min": lambda a, b, c, d: np.fmin(np.fmin(np.fmin(a, b), c), d),
    "max": lambda a, b, c, d: np.fmax(np.fmax(np.fmax(a, b), c), d),
}
_NAN_REDUCERS = {
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
    """(bands, h, w) parent from its children, each band by its own method.

    With even tile sides every 2x2 block lies inside one child, so each child is reduced
    straight into its quadrant (no mosaic four times the parent's size), and a missing
    child's quadrant is the reduction of one empty block.
    """
    present = next(child for child in children if child is not None)
    bands, h, w = present.shape
    if h % 2 or w % 2:
        full = mosaic(children, empty)
        return np.stack([reduce_band(full[i], method) for i, method in enumerate(methods)])
    out = np.empty((bands, h, w), dtype="float64")
    for index, child in enumerate(children):
        row, col = divmod(index, 2)
        quadrant = out[:, row * h // 2 : (row + 1) * h // 2, col * w // 2 : (col + 1) * w // 2]
        for band, method in enumerate(methods):
            if child is None:
                block = np.full((2, 2), empty[band], dtype="float64")
                quadrant[band] = reduce_band(block, method)[0, 0]
            else:
                quadrant[band] = reduce_band(np.asarray(child[band], dtype="float64"), method)
    return out
