"""Palette parsing and lookup tables, checked against independent references: CSS colour
definitions, the CIE L* formula, coloraide's own interpolation, published colormap samples."""

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
        ("#f008", (255, 0, 0, 0x88)),
        ("#1e90ff", (0x1E, 0x90, 0xFF, 255)),
        ("#66339952", (0x66, 0x33, 0x99, 0x52)),
        ("#FFFFFF00", (255, 255, 255, 0)),
        ("rgb(10, 20, 30)", (10, 20, 30, 255)),
        ("rgba(255, 0, 0, 0.5)", (255, 0, 0, 128)),  # 127.5 rounds half up
        ("rgb(0 128 255 / 25%)", (0, 128, 255, 64)),  # 63.75
        ("hsl(120, 100%, 50%)", (0, 255, 0, 255)),
        ("hsl(240 100% 50% / 0)", (0, 0, 255, 0)),
    ],
)
def test_parse_color_css_forms(text, expected):
    assert parse_color(text) == expected


def test_parse_color_out_of_gamut_is_fitted_into_srgb():
    rgba = parse_color("color(display-p3 1 0 0)")
    assert all(0 <= v <= 255 for v in rgba)
    assert rgba[0] == 255 and rgba[3] == 255


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


def test_black_white_ends_are_exact():
    lut = build_lut(["#000000", "#ffffff"])
    assert lut.shape == (256, 4) and lut.dtype == np.uint8
    assert tuple(lut[0]) == (0, 0, 0, 255)
    assert tuple(lut[-1]) == (255, 255, 255, 255)


def test_black_white_midpoint_is_cie_lstar_50():
    # Interpolating black -> white in LCh moves L* linearly: the midpoint has L* = 50.
    # CIE: Y = ((L* + 16) / 116)^3 (L* > 8); sRGB: 1.055 Y^(1/2.4) - 0.055.
    y = ((50 + 16) / 116) ** 3
    grey = round((1.055 * y ** (1 / 2.4) - 0.055) * 255)
    assert grey == 119  # not 128, the sRGB midpoint
    mid = build_lut(["#000000", "#ffffff"], n=3)[1]
    assert tuple(mid) == (grey, grey, grey, 255)


def test_three_colours_hit_the_middle_colour_at_the_midpoint():
    palette = ["#ff0000", "#00ff00", "#0000ff"]
    assert tuple(build_lut(palette, n=3)[1]) == (0, 255, 0, 255)
    assert tuple(build_lut(palette, n=257)[128]) == (0, 255, 0, 255)
    lut = build_lut(palette, n=257)
    assert tuple(lut[0]) == (255, 0, 0, 255)
    assert tuple(lut[256]) == (0, 0, 255, 255)


def test_lch_midpoint_matches_coloraide_and_not_srgb():
    mid = build_lut(["red", "blue"], n=3)[1].astype(int)
    ref = Color.interpolate(["red", "blue"], space="lch")(0.5).convert("srgb").fit("srgb")
    ref_rgb = np.array([round(c * 255) for c in ref.coords(nans=False)])
    assert np.abs(mid[:3] - ref_rgb).max() <= 1
    assert mid[3] == 255
    srgb_mid = np.array([128, 0, 128])
    assert np.abs(mid[:3] - srgb_mid).max() > 20


def test_alpha_kept_at_low_end_and_interpolated():
    lut = build_lut(["#66339952", "#ffffff"])
    assert tuple(lut[0]) == (0x66, 0x33, 0x99, 0x52)
    assert tuple(lut[-1]) == (255, 255, 255, 255)
    alpha = lut[:, 3].astype(int)
    assert np.all(np.diff(alpha) >= 0)
    assert abs(alpha[128] - (0x52 + 255) / 2) <= 2  # position 128/255 ~ 0.502


def test_single_colour_is_constant():
    lut = build_lut(["#12345678"], n=16)
    assert lut.shape == (16, 4)
    assert np.all(lut == np.array([0x12, 0x34, 0x56, 0x78], dtype=np.uint8))


def test_lut_size_and_caching():
    assert build_lut(["red", "blue"], n=2).tolist() == [[255, 0, 0, 255], [0, 0, 255, 255]]
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


def test_single_colour_string_gets_a_hint():
    with pytest.raises(ValueError, match=r"\['red'\]"):
        build_lut("red")


# ---------------------------------------------------------------- is_valid_palette


def test_is_valid_palette():
    assert is_valid_palette(["#000", "#fff"]) is None
    assert is_valid_palette(["#66339952"]) is None
    assert is_valid_palette("viridis") is None
    assert "'#zzz'" in is_valid_palette(["#fff", "#zzz"])
    assert "empty" in is_valid_palette([])
    assert "unknown colormap" in is_valid_palette("nope")
    assert is_valid_palette({"a": 1}) is not None
