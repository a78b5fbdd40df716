"""A lean RGBA PNG encoder for tiles made per request: no row filter, fast deflate.

Pillow (`webtile.encode_png`) chooses a filter for every row (the sum-of-differences
heuristic), which costs more than the compression itself and, on rasterflow's tiles (flat
areas of a few colours, transparent holes), compresses worse than no filter at all. The
deflate stream is ISA-L's (the `isal` package: SIMD deflate, zlib-compatible output),
else zlib's. Per 256x256 tile, measured on 120 tiles of the synthetic sample (2-core
machine): Pillow at level 1 2.2-4 ms; no filter + zlib level 1 1.3 ms, 27.5 KB; no filter
+ ISA-L level 1 0.32 ms, 29.8 KB. The pixels are the same whatever the encoder: Pillow and
any PNG reader decode each to the same RGBA array.

Compression and CRCs release the GIL, so threads encode in parallel.
"""

from __future__ import annotations

import struct
import types
import zlib

import numpy as np

_deflate: types.ModuleType
try:  # ISA-L: 4x faster than zlib at level 1 (a wheel on Linux, macOS and Windows)
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - platforms without an isal wheel
    _deflate = zlib
DEFLATE_LEVEL = 1  # zlib's fastest; ISA-L's levels are 0-3, 1 compresses about as zlib's 1

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))  # no copy of the data to checksum it
    return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)))


def encode_rgba_png(rgba: np.ndarray, level: int = DEFLATE_LEVEL) -> bytes:
    """An (H, W, 4) uint8 array as a PNG (8-bit RGBA, no interlace, filter 0 on every row)."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"rgba must be an (H, W, 4) uint8 array, got {rgba.shape} {rgba.dtype}")
    height, width, _ = rgba.shape
    raw = np.zeros((height, width * 4 + 1), dtype=np.uint8)  # column 0: filter type 0 (None)
    raw[:, 1:] = rgba.reshape(height, width * 4)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bit, RGBA
    return b"".join((SIGNATURE, _chunk(b"IHDR", header),
                     _chunk(b"IDAT", _deflate.compress(raw.data, level)), _IEND))  # fmt: skip
