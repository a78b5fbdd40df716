"""A level's value ranges folded batch by batch equal those of all its summary rows at once
(pandas' min of the minima, max of the maxima), NaN and empty levels included."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from rasterflow.workflow.config import load_config
from rasterflow.workflow.value_ranges import fill_stats, fold, level_ranges
from tests.helpers.configs import write_config

values = st.one_of(st.floats(-1e6, 1e6), st.just(math.nan))
rows = st.lists(st.tuples(st.sampled_from(["iwp_count", "iwp_coverage", "other"]), values,
                          values), max_size=60)  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(rows=rows, cuts=st.lists(st.integers(0, 60), max_size=5))
def test_folding_in_batches_is_folding_all_at_once(rows, cuts):
    frame = pd.DataFrame(rows, columns=["stat", "min", "max"])
    observed: dict = {}
    bounds = [0, *sorted(c for c in cuts if c <= len(rows)), len(rows)]
    for start, end in zip(bounds, bounds[1:], strict=False):  # batches as they finish
        part = frame.iloc[start:end]
        fold(observed, part["stat"].to_numpy(), part["min"].to_numpy(), part["max"].to_numpy())
    for stat, group in frame.groupby("stat"):
        low, high = observed[stat]
        assert (math.isinf(low) and group["min"].isna().all()) or low == group["min"].min()
        assert (math.isinf(high) and group["max"].isna().all()) or high == group["max"].max()


def test_level_ranges_from_a_fold_or_a_frame(tmp_path):
    config = load_config(write_config(tmp_path, z_range=[10, 13]))
    assert fill_stats(config, 13) == ["iwp_count"]  # [0, None]; coverage is [0, 1]
    frame = pd.DataFrame({"stat": ["iwp_count", "iwp_count", "iwp_coverage"],
                          "min": [0.0, 2.0, 0.0], "max": [5.0, np.nan, 0.5]})  # fmt: skip
    folded = fold({}, frame["stat"].to_numpy(), frame["min"].to_numpy(), frame["max"].to_numpy())
    expected = {"iwp_count": (0.0, 5.0), "iwp_coverage": (0.0, 1.0)}
    assert level_ranges(config, 13, folded) == expected == level_ranges(config, 13, frame)
    # Nothing observed: the open end falls back to the low end + 1.
    assert level_ranges(config, 13, {})["iwp_count"] == (0.0, 1.0)
