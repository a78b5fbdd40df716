"""Colours and lookup tables for web tiles, painted as PDG paints them.

A palette is either a list of CSS colour strings (the main path, as in PDG configs), one
colour string, or the name of a built-in colormap. Either becomes a lookup table (LUT): an
(n, 4) uint8 RGBA array.

- CSS colours are parsed with coloraide, as pdgraster's `Palette` does: named colours,
  `#RGB[A]`, `#RRGGBB[AA]`, `rgb()`/`rgba()` (space or comma syntax, `/ alpha`), `hsl()`,
  `lab()`, `lch()`, `oklch()`, `color(display-p3 ...)`.
- A colour list is interpolated as pdgraster's committed web tiles show (pdgraster pins
  coloraide 0.x): in CIE LCh (D50), shorter hue arc, alpha interpolated on its own (not
  premultiplied), entry k at position k / n (so the last entry is one step short of the
  last colour, as in PDG). A colour outside sRGB is brought in by coloraide 0.x's
  `lch-chroma` gamut mapping (chroma bisection until the clipped colour is within
  delta-E 2000 of 2). Channels go to 0..255 through pdgraster's own path: the colour as a
  CSS string (3 significant digits, alpha 5 decimals), then truncated, not rounded
  (`rgb(102 51 153 / 0.1)` is (102, 51, 153, 25)). Checked against PDG's committed PNGs.
- A colormap name picks one of a few published maps, stored as evenly spaced sRGB anchors
  and interpolated linearly in sRGB, which is how those maps are defined (matplotlib's
  listed/segmented maps, ColorBrewer ramps): see `known_colormaps()`. Names are
  case-insensitive; a `_r` suffix reverses a map. Entry k stands for k / (n - 1), as entry k
  of a 256-colour map does in PDG's `colormaps` library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from coloraide import Color

RGBA = tuple[int, int, int, int]

# Evenly spaced anchors of each map, first to last.
# viridis (11), magma, inferno, plasma, cividis (10): viridisLite's viridis(n, option=...),
# sampled from the same 256-entry tables as matplotlib's _cm_listed.py.
# greys, blues, reds, ylorrd: ColorBrewer's 9-class sequential schemes (Brewer, colorbrewer2.org).
# gray: matplotlib's "gray", black to white (note: "greys" runs white to black, as in
# ColorBrewer and matplotlib's "Greys").
_COLORMAP_ANCHORS: dict[str, tuple[str, ...]] = {
    "viridis": (
        "#440154", "#482576", "#414487", "#35608d", "#2a788e", "#21908c",
        "#22a884", "#43bf71", "#7ad151", "#bbdf27", "#fde725",
    ),
    "magma": (
        "#000004", "#180f3e", "#451077", "#721f81", "#9f2f7f",
        "#cd4071", "#f1605d", "#fd9567", "#fec98d", "#fcfdbf",
    ),
    "inferno": (
        "#000004", "#1b0c42", "#4b0c6b", "#781c6d", "#a52c60",
        "#cf4446", "#ed6925", "#fb9a06", "#f7d03c", "#fcffa4",
    ),
    "plasma": (
        "#0d0887", "#47039f", "#7301a8", "#9c179e", "#bd3786",
        "#d8576b", "#ed7953", "#fa9e3b", "#fdc926", "#f0f921",
    ),
    "cividis": (
        "#00204d", "#00336f", "#39486b", "#575c6d", "#707173",
        "#8a8779", "#a69d75", "#c4b56c", "#e4cf5b", "#ffea46",
    ),
    "greys": (
        "#ffffff", "#f0f0f0", "#d9d9d9", "#bdbdbd", "#969696",
        "#737373", "#525252", "#252525", "#000000",
    ),
    "gray": ("#000000", "#ffffff"),
    "blues": (
        "#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6",
        "#4292c6", "#2171b5", "#08519c", "#08306b",
    ),
    "reds": (
        "#fff5f0", "#fee0d2", "#fcbba1", "#fc9272", "#fb6a4a",
        "#ef3b2c", "#cb181d", "#a50f15", "#67000d",
    ),
    "ylorrd": (
        "#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c",
        "#fc4e2a", "#e31a1c", "#bd0026", "#800026",
    ),
}  # fmt: skip
_ALIASES = {"grays": "greys", "grey": "gray"}


def known_colormaps() -> list[str]:
    """Every colormap name `build_lut` accepts (each also with a `_r` suffix)."""
    return sorted([*_COLORMAP_ANCHORS, *_ALIASES])


def _to_255(values) -> np.ndarray:
    """[0, 1] floats -> uint8, rounded half up, clipped (colormap anchors)."""
    scaled = np.floor(np.asarray(values, dtype=np.float64) * 255.0 + 0.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)


# coloraide 0.x's gamut mapping, `lch-chroma`: bisect chroma in LCh (D50) until the clipped
# colour is within delta-E 2000 of LIMIT; EPSILON is the bisection's chroma resolution.
_FIT_LIMIT = 2.0
_FIT_EPSILON = 0.01
# Channels that should be whole (255 * 102/255) come back from the LCh round trip as
# 101.99999999: nudge them before truncating (PDG's coloraide gets its own anchors right).
_ROUND_TRIP = 1e-7


def _color_to_rgba(color: Color) -> RGBA:
    """pdgraster's `Palette.__coloraide_to_rgba__`: sRGB, gamut-mapped, as a CSS string of
    3 significant digits (alpha: 5 decimals), each number truncated to an integer."""
    srgb = color.convert("srgb")
    if not all(0.0 <= v <= 1.0 for v in srgb.coords(nans=False)):
        srgb = _fit_lch_chroma(srgb)
    channels = [int(_css_digits(v * 255.0 + _ROUND_TRIP, 3)) for v in srgb.coords(nans=False)]
    alpha = int(_css_digits(srgb.alpha(nans=False), 5) * 255)
    return (channels[0], channels[1], channels[2], alpha)


def _fit_lch_chroma(srgb: Color) -> Color:
    """An out-of-gamut sRGB colour brought in as coloraide 0.x's `lch-chroma` does."""
    mapped = srgb.convert("lch")
    if not 0.0 < mapped["lightness"] < 100.0:
        mapped["chroma"] = 0.0
        return mapped.convert("srgb").clip()
    low, high = 0.0, mapped["chroma"]
    clipped = mapped.convert("srgb").clip()
    if mapped.delta_e(clipped, method="2000", space="lab") < _FIT_LIMIT:
        return clipped
    while high - low > _FIT_EPSILON:
        if mapped.delta_e(clipped, method="2000", space="lab") < _FIT_LIMIT:
            low = mapped["chroma"]
        else:
            high = mapped["chroma"]
        mapped["chroma"] = (high + low) * 0.5
        clipped = mapped.convert("srgb").clip()
    return clipped


def _css_digits(value: float, precision: int) -> float:
    """coloraide 0.x's number formatting: `precision` significant digits, except that a
    number with at least that many integer digits keeps its integer part (truncated)."""
    whole = int(value)
    digits = 0 if whole == 0 else int(math.log10(abs(whole))) + 1
    if digits >= precision:
        return float(whole)
    scale = 10.0 ** (precision - digits)
    return math.floor(value * scale + 0.5) / scale


def _parse_color_obj(text: object) -> Color:
    if not isinstance(text, str):
        raise ValueError(f"colour {text!r}: expected a CSS colour string")
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"colour {text!r}: empty string")
    try:
        return Color(stripped)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"colour {text!r} does not parse: expected a CSS colour name, #RGB[A], "
            f"#RRGGBB[AA], rgb()/rgba() or hsl() ({exc})"
        ) from None


@lru_cache(maxsize=1024)
def _parse_color_cached(text: str) -> RGBA:
    return _color_to_rgba(_parse_color_obj(text))


def parse_color(text: str) -> RGBA:
    """A CSS colour string -> (r, g, b, a), each 0..255. ValueError naming `text` if it
    does not parse."""
    if not isinstance(text, str):
        raise ValueError(f"colour {text!r}: expected a CSS colour string")
    return _parse_color_cached(text)


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"LUT size must be an integer >= 1, got {n!r}")
    return int(n)


def _resolve_colormap(name: str) -> tuple[str, bool] | None:
    """(canonical name, reversed) for a colormap name, None if it is not one."""
    key = name.strip().lower()
    reverse = key.endswith("_r")
    if reverse:
        key = key[:-2]
    key = _ALIASES.get(key, key)
    return (key, reverse) if key in _COLORMAP_ANCHORS else None


def _one_colour_or_colormap(name: str, n: int) -> np.ndarray:
    """A palette given as one string: a colormap, else (as in pdgraster) one colour."""
    resolved = _resolve_colormap(name)
    if resolved is not None:
        return _colormap_lut(*resolved, n)
    try:
        _parse_color_obj(name)
    except ValueError:
        raise ValueError(
            f"unknown colormap {name!r}: known colormaps are "
            f"{', '.join(known_colormaps())} (each also reversed with '_r'), or give CSS "
            "colours"
        ) from None
    return _colors_lut((name,), n)


@lru_cache(maxsize=64)
def _colormap_lut(key: str, reverse: bool, n: int) -> np.ndarray:
    anchors = np.array(
        [_parse_color_cached(c)[:3] for c in _COLORMAP_ANCHORS[key]], dtype=np.float64
    )
    if reverse:
        anchors = anchors[::-1]
    positions = np.linspace(0.0, 1.0, n)  # [0.0] when n == 1
    stops = np.linspace(0.0, 1.0, len(anchors))
    lut = np.empty((n, 4), dtype=np.uint8)
    for channel in range(3):
        lut[:, channel] = _to_255(np.interp(positions, stops, anchors[:, channel] / 255.0))
    lut[:, 3] = 255
    lut.setflags(write=False)
    return lut


@lru_cache(maxsize=64)
def _colors_lut(colors: tuple[str, ...], n: int) -> np.ndarray:
    parsed = []
    for i, text in enumerate(colors):
        try:
            parsed.append(_parse_color_obj(text))
        except ValueError as exc:
            raise ValueError(f"palette item [{i}]: {exc}") from None
    if len(parsed) == 1:  # pdgraster interpolates a colour with itself
        parsed = parsed * 2
    gradient = Color.interpolate(parsed, space="lch", premultiplied=False, hue="shorter")
    lut = np.array([_color_to_rgba(gradient(k / n)) for k in range(n)], dtype=np.uint8)
    lut.setflags(write=False)
    return lut


def build_lut(palette: Sequence[str] | str, n: int = 256) -> np.ndarray:
    """The (n, 4) uint8 RGBA lookup table of a palette (see the module docstring).

    `palette` is a list of >= 1 CSS colours, one colour, or a colormap name. The array is
    cached and read-only: copy it before changing it. ValueError for an empty list, a colour
    that does not parse (naming its index and text) or an unknown name (listing the known
    colormaps).
    """
    n = _check_n(n)
    if isinstance(palette, str):
        return _one_colour_or_colormap(palette, n)
    if isinstance(palette, Sequence) and not isinstance(palette, (bytes, bytearray)):
        colors = tuple(palette)
        if not colors:
            raise ValueError("palette is an empty list: give at least one colour")
        for i, item in enumerate(colors):
            if not isinstance(item, str):
                raise ValueError(
                    f"palette item [{i}] is {type(item).__name__} {item!r}, not a colour string"
                )
        return _colors_lut(colors, n)
    raise ValueError(
        f"palette must be a list of CSS colours or a colormap name, "
        f"got {type(palette).__name__} {palette!r}"
    )


def is_valid_palette(palette: object) -> str | None:
    """None if `palette` can be built into a LUT, else a one-line reason (for the config
    validator, which prefixes the key path)."""
    try:
        build_lut(palette)  # type: ignore[arg-type]
    except ValueError as exc:
        return str(exc)
    return None
