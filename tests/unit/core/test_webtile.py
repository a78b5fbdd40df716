"""Colouring bands and writing PNG web tiles atomically."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from rasterflow.rasterize_core import atomic
from rasterflow.rasterize_core.palette import build_lut
from rasterflow.rasterize_core.webtile import colorize, encode_png, write_png_atomic

NODATA = (1, 2, 3, 4)
BW = ["#000000", "#ffffff"]


def ramp_lut(n: int = 256) -> np.ndarray:
    """A hand-made LUT whose red channel is the entry's index: shows which entry was used."""
    lut = np.zeros((n, 4), dtype=np.uint8)
    lut[:, 0] = np.arange(n)
    lut[:, 3] = 255
    return lut


def red_index(band, val_range, nodata_val=None):
    return colorize(np.asarray(band, dtype=np.float64), val_range, ramp_lut(), nodata_val, NODATA)[
        ..., 0
    ]


# ---------------------------------------------------------------- colorize


def test_black_white_known_values():
    band = np.array([[0.0, 1.0], [-5.0, 7.0], [np.nan, -9999.0]])
    rgba = colorize(band, (0.0, 1.0), build_lut(BW), -9999.0, NODATA)
    assert rgba.shape == (3, 2, 4) and rgba.dtype == np.uint8
    assert tuple(rgba[0, 0]) == (0, 0, 0, 255)
    assert tuple(rgba[0, 1]) == (253, 253, 253, 255)  # last entry: 255/256 white, as PDG
    assert tuple(rgba[1, 0]) == (0, 0, 0, 255)  # below range: first colour
    assert tuple(rgba[1, 1]) == (253, 253, 253, 255)  # above range: last colour
    assert tuple(rgba[2, 0]) == NODATA  # NaN
    assert tuple(rgba[2, 1]) == NODATA  # nodata_val


def test_linear_scaling_truncates_as_pdg():
    # index = int((v - lo) * (255 / (hi - lo))), pdgraster's WebImage, computed by hand
    band = [[10.0, 10.01, 10.02, 15.0, 20.0, 19.99, 12.5]]
    expected = [0, 0, 0, 127, 255, 254, 63]  # 0.255, 0.51, 127.5, 254.745, 63.75
    assert red_index(band, (10.0, 20.0)).tolist() == [expected]


def test_infinities_clip_to_the_ends():
    assert red_index([[-np.inf, np.inf]], (0.0, 1.0)).tolist() == [[0, 255]]


def test_equal_range_ends_map_to_the_top_colour():
    band = [[4.0, 5.0, 6.0, np.nan]]
    rgba = colorize(np.array(band), (5.0, 5.0), ramp_lut(), None, NODATA)
    assert rgba[0, :, 0].tolist()[:3] == [0, 255, 255]
    assert tuple(rgba[0, 3]) == NODATA


def test_nodata_matches_in_float32():
    band = np.array([[0.1, 0.2]], dtype=np.float32)
    rgba = colorize(band, (0.0, 1.0), ramp_lut(), 0.1, NODATA)
    assert tuple(rgba[0, 0]) == NODATA
    assert rgba[0, 1, 0] == 51  # 0.2 * 255 = 51.0000008 in float32


def test_integer_band_and_nodata():
    band = np.array([[0, 5, 10, 255]], dtype=np.uint8)
    rgba = colorize(band, (0, 10), ramp_lut(11), 255, NODATA)
    assert rgba[0, :3, 0].tolist() == [0, 5, 10]
    assert tuple(rgba[0, 3]) == NODATA


def test_nodata_none_and_nan_nodata_val():
    band = np.array([[0.0, np.nan]])
    for nodata_val in (None, float("nan")):
        rgba = colorize(band, (0.0, 1.0), ramp_lut(), nodata_val, NODATA)
        assert rgba[0, 0, 0] == 0 and tuple(rgba[0, 1]) == NODATA


def test_input_not_modified():
    band = np.array([[np.nan, 3.0, -1.0]])
    before = band.copy()
    colorize(band, (0.0, 1.0), ramp_lut(), -1.0, NODATA)
    np.testing.assert_array_equal(band, before)


@pytest.mark.parametrize("val_range", [(1.0, 0.0), (0.0, float("nan")), (0.0, float("inf"))])
def test_bad_ranges_rejected(val_range):
    with pytest.raises(ValueError, match="val_range"):
        colorize(np.zeros((2, 2)), val_range, ramp_lut(), None, NODATA)


def test_bad_lut_rejected():
    with pytest.raises(ValueError, match="lut"):
        colorize(np.zeros((2, 2)), (0, 1), np.zeros((4, 3), dtype=np.uint8), None, NODATA)


finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    band=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
        elements=st.one_of(st.floats(-1e9, 1e9), st.floats(allow_nan=True, allow_infinity=True)),
    ),
    lo=finite,
    width=st.one_of(st.just(0.0), st.floats(1e-300, 1e6)),
)
def test_property_shape_dtype_and_greyscale_monotone(band, lo, width):
    hi = lo + width
    rgba = colorize(band, (lo, hi), build_lut(BW), None, NODATA)
    assert rgba.shape == (*band.shape, 4)
    assert rgba.dtype == np.uint8
    valid = ~np.isnan(band)
    assert np.all(rgba[~valid] == np.array(NODATA, dtype=np.uint8))
    values = band[valid]
    grey = rgba[valid][:, 0].astype(int)
    assert np.all(rgba[valid][:, 3] == 255)
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(grey[order]) >= 0)  # brighter for larger values
    if hi > lo:
        assert np.all(grey[values <= lo] == 0)
    assert np.all(grey[values >= hi] == build_lut(BW)[-1, 0])  # the last entry


# ---------------------------------------------------------------- PNG


def random_rgba(shape=(256, 256), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(*shape, 4), dtype=np.uint8)


def test_png_round_trip_exact(tmp_path):
    rgba = random_rgba()
    rgba[:10, :10, 3] = 0  # fully transparent pixels keep their colour too
    target = tmp_path / "viridis" / "WGS1984Quad" / "3" / "1" / "2.png"
    assert write_png_atomic(target, rgba) == target.read_bytes()
    with Image.open(target) as image:
        assert image.format == "PNG" and image.mode == "RGBA"
        assert image.size == (256, 256)
        np.testing.assert_array_equal(np.asarray(image), rgba)
    assert os.listdir(target.parent) == ["2.png"]


def test_png_128_and_non_square(tmp_path):
    for shape in [(128, 128), (3, 5)]:
        rgba = random_rgba(shape, seed=1)
        path = tmp_path / f"{shape[0]}x{shape[1]}.png"
        write_png_atomic(path, rgba)
        with Image.open(path) as image:
            np.testing.assert_array_equal(np.asarray(image), rgba)


def test_colorize_to_png(tmp_path):
    band = np.linspace(0, 1, 256 * 256).reshape(256, 256)
    band[0, 0] = np.nan
    rgba = colorize(band, (0, 1), build_lut("viridis"), None, (0, 0, 0, 0))
    write_png_atomic(tmp_path / "t.png", rgba)
    with Image.open(tmp_path / "t.png") as image:
        back = np.asarray(image)
    np.testing.assert_array_equal(back, rgba)
    assert tuple(back[0, 0]) == (0, 0, 0, 0)


def test_encode_rejects_wrong_arrays():
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4, 4), dtype=np.float32))


def test_overwrite_replaces_whole_file(tmp_path):
    target = tmp_path / "t.png"
    write_png_atomic(target, random_rgba((8, 8), seed=1))
    second = random_rgba((8, 8), seed=2)
    write_png_atomic(target, second)
    with Image.open(target) as image:
        np.testing.assert_array_equal(np.asarray(image), second)
    assert os.listdir(tmp_path) == ["t.png"]


def test_failing_encode_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    target = tmp_path / "out" / "t.png"
    with pytest.raises(OSError, match="disk full"):
        write_png_atomic(target, random_rgba((8, 8)))
    assert not target.exists()
    assert not target.parent.exists() or os.listdir(target.parent) == []


def test_failing_rename_leaves_no_temp_and_keeps_old_target(tmp_path, monkeypatch):
    target = tmp_path / "t.png"
    old = random_rgba((8, 8), seed=3)
    write_png_atomic(target, old)
    old_bytes = target.read_bytes()

    def boom(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError, match="rename failed"):
        write_png_atomic(target, random_rgba((8, 8), seed=4))
    assert os.listdir(tmp_path) == ["t.png"]
    assert target.read_bytes() == old_bytes


def test_failing_write_leaves_no_target(tmp_path, monkeypatch):
    def boom(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError):
        write_png_atomic(tmp_path / "t.png", random_rgba((8, 8)))
    assert os.listdir(tmp_path) == []
