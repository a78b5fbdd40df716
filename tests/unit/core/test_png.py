"""The lean PNG encoder: Pillow decodes what it writes to exactly the array it was given."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from rasterflow.rasterize_core import png


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.mode == "RGBA"
        return np.asarray(image)


@pytest.mark.parametrize("shape", [(256, 256), (128, 128), (3, 5), (1, 1)])
def test_pillow_decodes_the_same_pixels(shape):
    rng = np.random.default_rng(sum(shape))
    rgba = rng.integers(0, 256, (*shape, 4), dtype=np.uint8)
    rgba[: shape[0] // 2, :, 3] = 0  # transparent rows, as around data
    assert np.array_equal(decoded(png.encode_rgba_png(rgba)), rgba)


def test_flat_tile_is_small_and_valid():
    rgba = np.zeros((256, 256, 4), dtype=np.uint8)
    data = png.encode_rgba_png(rgba)
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
    assert len(data) < 2_000
    assert np.array_equal(decoded(data), rgba)


def test_zlib_fallback_gives_the_same_pixels(monkeypatch):
    rgba = np.random.default_rng(3).integers(0, 256, (64, 32, 4), dtype=np.uint8)
    monkeypatch.setattr(png, "_deflate", zlib)
    assert np.array_equal(decoded(png.encode_rgba_png(rgba)), rgba)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 4), np.float32),
                                 np.zeros((4, 4), np.uint8)])  # fmt: skip
def test_rejects_what_is_not_rgba(bad):
    with pytest.raises(ValueError, match="uint8"):
        png.encode_rgba_png(bad)
