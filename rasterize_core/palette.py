"""Colours and lookup tables for web tiles.

A palette is either a list of CSS colour strings (the main path, as in PDG configs) or the
name of a built-in colormap. Either becomes a lookup table (LUT): an (n, 4) uint8 RGBA array,
entry k standing for the position k / (n - 1) along the palette.

- CSS colours are parsed with coloraide (as PDG's own tool does): named colours, `#RGB`,
  `#RGBA`, `#RRGGBB`, `#RRGGBBAA`, `rgb()`, `rgba()`, `hsl()` and anything else coloraide
  reads (`lab()`, `oklch()`, `color(display-p3 ...)`). Colours outside sRGB are gamut-mapped
  into it with coloraide's default `fit`, as its `to_string` does.
- A colour list is interpolated in LCh, as PDG does (`Color.interpolate(colors,
  space="lch")`, coloraide's defaults: shorter hue arc, premultiplied alpha), at n evenly
  spaced positions from 0 to 1 inclusive, so the first and last entries are exactly the
  first and last colours. (PDG samples k / 256, which never quite reaches the last colour.)
- A colormap name picks one of a few published maps, stored as evenly spaced sRGB anchors
  and interpolated linearly in sRGB, which is how those maps are defined (matplotlib's
  listed/segmented maps, ColorBrewer ramps): see `known_colormaps()`. Names are
  case-insensitive; a `_r` suffix reverses a map.

Channels are rounded half up from [0, 1] floats to 0..255.
"""

from __future__ import annotations

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
    """[0, 1] floats -> uint8, rounded half up, clipped."""
    scaled = np.floor(np.asarray(values, dtype=np.float64) * 255.0 + 0.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _color_to_rgba(color: Color) -> RGBA:
    srgb = color.convert("srgb").fit("srgb")
    r, g, b = srgb.coords(nans=False)
    a = srgb.alpha(nans=False)
    return tuple(int(v) for v in _to_255([r, g, b, a]))  # type: ignore[return-value]


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


def _resolve_colormap(name: str) -> tuple[str, bool]:
    """(canonical name, reversed) for a colormap name; ValueError listing known names."""
    key = name.strip().lower()
    reverse = key.endswith("_r")
    if reverse:
        key = key[:-2]
    key = _ALIASES.get(key, key)
    if key not in _COLORMAP_ANCHORS:
        hint = ""
        try:
            _parse_color_obj(name)
            hint = f"; for a single colour write a list: [{name!r}]"
        except ValueError:
            pass
        raise ValueError(
            f"unknown colormap {name!r}: known colormaps are "
            f"{', '.join(known_colormaps())} (each also reversed with '_r'){hint}"
        )
    return key, reverse


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
    lut = np.empty((n, 4), dtype=np.uint8)
    if len(parsed) == 1:
        lut[:] = _color_to_rgba(parsed[0])
    else:
        gradient = Color.interpolate(parsed, space="lch")
        for k, t in enumerate(np.linspace(0.0, 1.0, n).tolist()):  # [0.0] when n == 1
            lut[k] = _color_to_rgba(gradient(t))
    lut.setflags(write=False)
    return lut


def build_lut(palette: Sequence[str] | str, n: int = 256) -> np.ndarray:
    """The (n, 4) uint8 RGBA lookup table of a palette (see the module docstring).

    `palette` is a list of >= 1 CSS colours or a colormap name. The array is cached and
    read-only: copy it before changing it. ValueError for an empty list, a colour that does
    not parse (naming its index and text) or an unknown colormap (listing the known ones).
    """
    n = _check_n(n)
    if isinstance(palette, str):
        key, reverse = _resolve_colormap(palette)
        return _colormap_lut(key, reverse, n)
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
