"""Palette parsing and lookup tables, checked against independent references: CSS colour
definitions, the CIE L* formula, the colours in PDG's committed web tiles, published
colormap samples.

PDG_* values are what pdgraster's `Palette` gives (its code run with coloraide 0.10, the
version its committed web tiles were made with); PDG_IWP_TILES are read off PDG's own PNGs
(`../shared/data/pdg-iwp-staged-pdgraster`, coverage band, index = int(v * 255))."""

from __future__ import annotations

import numpy as np
import pytest
from coloraide import Color

from rasterflow.rasterize_core.palette import (
    build_lut,
    is_valid_palette,
    known_colormaps,
    parse_color,
)


def hex_rgb(text: str) -> tuple[int, int, int]:
    return tuple(int(text[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


# ---------------------------------------------------------------- parse_color


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("red", (255, 0, 0, 255)),
        ("RED", (255, 0, 0, 255)),
        ("  red ", (255, 0, 0, 255)),
        ("rebeccapurple", (0x66, 0x33, 0x99, 255)),
        ("transparent", (0, 0, 0, 0)),
        ("#f00", (255, 0, 0, 255)),
        ("#f008", (255, 0, 0, 135)),  # PDG: alpha 0.53333 * 255 = 135.999, truncated
        ("#1e90ff", (0x1E, 0x90, 0xFF, 255)),
        ("#66339952", (0x66, 0x33, 0x99, 0x52)),
        ("#FFFFFF00", (255, 255, 255, 0)),
        ("rgb(10, 20, 30)", (10, 20, 30, 255)),
        ("rgba(255, 0, 0, 0.5)", (255, 0, 0, 127)),  # PDG truncates 127.5
        ("rgb(0 128 255 / 25%)", (0, 128, 255, 63)),  # 63.75
        ("rgb(102 51 153 / 0.1)", (102, 51, 153, 25)),  # 25.5, as in PDG's IWP tiles
        ("hsl(120, 100%, 50%)", (0, 255, 0, 255)),
        ("hsl(240 100% 50% / 0)", (0, 0, 255, 0)),
    ],
)
def test_parse_color_css_forms(text, expected):
    assert parse_color(text) == expected


def test_parse_color_out_of_gamut_is_fitted_into_srgb():
    # coloraide 0.x's lch-chroma mapping, as PDG paints it (not a plain clip to (255, 0, 0))
    assert parse_color("color(display-p3 1 0 0)") == (250, 55, 0, 255)
    assert parse_color("lch(85% 100 85)") == (255, 204, 0, 255)


@pytest.mark.parametrize("text", ["notacolour", "#12345", "#ggg", "", "   ", "rgb(1, 2", "red x"])
def test_parse_color_rejects_with_the_text(text):
    with pytest.raises(ValueError) as info:
        parse_color(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("value", [None, 123, ["red"]])
def test_parse_color_rejects_non_strings(value):
    with pytest.raises(ValueError, match="expected a CSS colour string"):
        parse_color(value)


# ---------------------------------------------------------------- colour lists


# Entry k of PDG's table stands for k / 256 (so the last entry is one step short of the
# last colour); colours from pdgraster's Palette and PDG's committed PNGs.
PDG_IWP_TILES = {  # ["rgb(102 51 153 / 0.1)", "lch(85% 100 85)"], read off PDG's PNGs
    0: (102, 51, 153, 25), 1: (103, 50, 153, 26), 64: (195, 31, 144, 82),
    128: (255, 53, 105, 140), 200: (255, 147, 70, 204), 240: (255, 187, 3, 240),
    255: (255, 203, 0, 254),
}  # fmt: skip
PDG_TRANSLUCENT = {  # ["#66339952", "#ffcc00"]
    0: (102, 51, 153, 82), 1: (103, 50, 153, 82), 64: (190, 41, 143, 125),
    128: (250, 69, 109, 168), 255: (255, 202, 0, 254),
}  # fmt: skip
PDG_BLACK_WHITE = {0: (0, 0, 0, 255), 1: (1, 1, 1, 255), 64: (59, 59, 59, 255),
                   128: (118, 118, 118, 255), 255: (253, 253, 253, 255)}  # fmt: skip


@pytest.mark.parametrize(
    ("palette", "expected"),
    [
        (["rgb(102 51 153 / 0.1)", "lch(85% 100 85)"], PDG_IWP_TILES),
        (["#66339952", "#ffcc00"], PDG_TRANSLUCENT),
        (["#000000", "#ffffff"], PDG_BLACK_WHITE),
    ],
)
def test_colour_lists_as_pdg_paints_them(palette, expected):
    lut = build_lut(palette)
    assert lut.shape == (256, 4) and lut.dtype == np.uint8
    for index, rgba in expected.items():
        assert tuple(lut[index]) == rgba, index


def test_translucent_first_colour_is_not_premultiplied():
    # At coverage 0.25 PDG shows a purple-pink, alpha 82: the colours interpolate on their
    # own, alpha on its own (premultiplying would pull the hue towards the opaque end).
    rgba = build_lut(["rgb(102 51 153 / 0.1)", "lch(85% 100 85)"])[64]
    premultiplied = Color.interpolate(
        ["rgb(102 51 153 / 0.1)", "lch(85% 100 85)"], space="lch", premultiplied=True
    )(0.25).convert("srgb")
    assert tuple(rgba) == (195, 31, 144, 82)
    assert abs(int(rgba[1]) - round(premultiplied["green"] * 255)) > 50


def test_black_white_midpoint_is_cie_lstar_50():
    # Interpolating black -> white in LCh moves L* linearly: the midpoint has L* = 50.
    # CIE: Y = ((L* + 16) / 116)^3 (L* > 8); sRGB: 1.055 Y^(1/2.4) - 0.055.
    y = ((50 + 16) / 116) ** 3
    grey = int((1.055 * y ** (1 / 2.4) - 0.055) * 255)  # 118.92, truncated as in PDG
    assert grey == 118  # not 127, the sRGB midpoint
    mid = build_lut(["#000000", "#ffffff"], n=2)[1]  # entry 1 of 2 stands for 1/2
    assert tuple(mid) == (grey, grey, grey, 255)


def test_three_colours_hit_the_middle_colour_at_the_midpoint():
    palette = ["#ff0000", "#00ff00", "#0000ff"]
    assert tuple(build_lut(palette, n=2)[1]) == (0, 255, 0, 255)
    lut = build_lut(palette)
    assert tuple(lut[128]) == (0, 255, 0, 255)  # 128 / 256
    assert tuple(lut[0]) == (255, 0, 0, 255)


def test_lch_midpoint_is_pdgs_and_not_srgb():
    mid = build_lut(["red", "blue"], n=2)[1].astype(int)
    assert tuple(mid) == (196, 0, 121, 255)  # pdgraster: LCh, gamut-mapped
    srgb_mid = np.array([128, 0, 128])
    assert np.abs(mid[:3] - srgb_mid).max() > 20


def test_alpha_kept_at_low_end_and_interpolated():
    lut = build_lut(["#66339952", "#ffffff"])
    assert tuple(lut[0]) == (0x66, 0x33, 0x99, 0x52)
    alpha = lut[:, 3].astype(int)
    assert np.all(np.diff(alpha) >= 0)
    assert abs(alpha[128] - (0x52 + 255) / 2) <= 1  # position 128/256 = 0.5


def test_single_colour_is_constant():
    lut = build_lut(["#12345678"], n=16)
    assert lut.shape == (16, 4)
    assert np.all(lut == np.array([0x12, 0x34, 0x56, 0x78], dtype=np.uint8))


def test_lut_size_and_caching():
    assert build_lut(["red", "blue"], n=2).tolist() == [[255, 0, 0, 255], [196, 0, 121, 255]]
    assert build_lut(["red", "blue"], n=1).shape == (1, 4)
    a = build_lut(("red", "blue"))
    assert build_lut(["red", "blue"]) is a  # cached on the tuple of colours
    assert not a.flags.writeable
    with pytest.raises(ValueError, match="LUT size"):
        build_lut(["red"], n=0)


def test_bad_colour_in_list_is_named_with_its_index():
    with pytest.raises(ValueError) as info:
        build_lut(["red", "blu"])
    assert "'blu'" in str(info.value) and "[1]" in str(info.value)


@pytest.mark.parametrize("palette", [[], ["red", 3], 42, None, b"viridis"])
def test_bad_palette_shapes(palette):
    with pytest.raises(ValueError):
        build_lut(palette)


# ---------------------------------------------------------------- colormaps


# Published quartile samples (0, 1/4, 1/2, 3/4, 1) of matplotlib's maps.
QUARTILES = {
    "viridis": ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"],
    "plasma": ["#0d0887", "#7e03a8", "#cc4778", "#f89540", "#f0f921"],
    "magma": ["#000004", "#51127c", "#b73779", "#fc8961", "#fcfdbf"],
    "inferno": ["#000004", "#57106e", "#bc3754", "#f98e09", "#fcffa4"],
    "cividis": ["#00204d", "#3d4c6b", "#7c7b78", "#bcaf6f", "#ffe945"],
}


@pytest.mark.parametrize("name", sorted(QUARTILES))
def test_colormaps_follow_published_samples(name):
    lut = build_lut(name, n=5)
    expected = np.array([hex_rgb(h) for h in QUARTILES[name]])
    assert np.abs(lut[:, :3].astype(int) - expected).max() <= 6  # within ~2%
    assert np.all(lut[:, 3] == 255)


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("greys", "#ffffff", "#000000"),
        ("grays", "#ffffff", "#000000"),
        ("gray", "#000000", "#ffffff"),
        ("grey", "#000000", "#ffffff"),
        ("blues", "#f7fbff", "#08306b"),
        ("Reds", "#fff5f0", "#67000d"),
        ("YlOrRd", "#ffffcc", "#800026"),
        ("viridis_r", "#fde725", "#440154"),
    ],
)
def test_colormap_ends(name, first, last):
    lut = build_lut(name)
    assert lut.shape == (256, 4)
    assert tuple(lut[0, :3]) == hex_rgb(first)
    assert tuple(lut[-1, :3]) == hex_rgb(last)


def test_every_known_colormap_builds():
    names = known_colormaps()
    assert {"viridis", "magma", "inferno", "plasma", "cividis", "greys", "gray"} <= set(names)
    for name in names:
        lut = build_lut(name)
        assert lut.shape == (256, 4) and lut.dtype == np.uint8


def test_greys_is_monotone():
    lum = build_lut("greys")[:, 0].astype(int)
    assert np.all(np.diff(lum) <= 0)


def test_unknown_colormap_lists_known_names():
    with pytest.raises(ValueError) as info:
        build_lut("jet")
    message = str(info.value)
    assert "'jet'" in message and "viridis" in message and "ylorrd" in message


def test_single_colour_string_is_that_colour():
    # pdgraster: a palette string that is no colormap but a colour paints everything in it
    assert np.all(build_lut("red") == np.array([255, 0, 0, 255], dtype=np.uint8))
    assert np.all(build_lut("#12345678", n=4) == build_lut(["#12345678"], n=4))


# ---------------------------------------------------------------- is_valid_palette


def test_is_valid_palette():
    assert is_valid_palette(["#000", "#fff"]) is None
    assert is_valid_palette(["#66339952"]) is None
    assert is_valid_palette("viridis") is None
    assert "'#zzz'" in is_valid_palette(["#fff", "#zzz"])
    assert "empty" in is_valid_palette([])
    assert "unknown colormap" in is_valid_palette("nope")
    assert is_valid_palette({"a": 1}) is not None
