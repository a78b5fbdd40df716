"""The plan as arrays: Morton order (against `tiles.morton_key` tile by tile), every level's
parents, batches cut by bytes as the greedy rule says, each parent batch waiting for exactly
the child batches holding its children; staged listings and `--tiles` lists."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rasterflow.rasterize_core.errors import RasterflowError
from rasterflow.rasterize_core.tiles import Tile, morton_key
from rasterflow.workflow.config import load_config
from rasterflow.workflow.plan import (
    Staged,
    list_staged,
    make_plan,
    morton_keys,
    read_tile_list,
    staged_sources,
)

Z = 10
tile_sets = st.sets(st.tuples(st.integers(0, 2**Z - 1), st.integers(0, 2**Z - 1)),
                    min_size=1, max_size=200)  # fmt: skip
sizes = st.lists(st.integers(0, 5000), min_size=200, max_size=200)


def staged(tiles, byte_sizes, z: int = Z) -> Staged:
    x, y = (np.array(c, dtype=np.int64) for c in zip(*tiles, strict=True))
    n = len(x)
    return Staged("/s/{z}/{x}/{y}.gpkg", np.full(n, z), x, y,
                  np.array(byte_sizes[:n], dtype=np.int64), np.zeros(n, np.int64))  # fmt: skip


def config_for(make_config, z_range=(7, Z)):
    return load_config(make_config(z_range=list(z_range)))


@settings(max_examples=60, deadline=None)
@given(x=st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=50),
       y=st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=50))  # fmt: skip
def test_morton_keys_are_morton_key(x, y):
    n = min(len(x), len(y))
    keys = morton_keys(np.array(x[:n]), np.array(y[:n]))
    assert keys.tolist() == [morton_key(Tile(31, a, b)) for a, b in zip(x[:n], y[:n], strict=True)]


@settings(max_examples=40, deadline=None)
@given(tiles=tile_sets, byte_sizes=sizes, limit=st.integers(1, 20000), most=st.integers(1, 9))
def test_plan_levels_and_batches(tmp_path_factory, tiles, byte_sizes, limit, most):
    config = load_config(_config_file(tmp_path_factory))
    plan = make_plan(config, staged(sorted(tiles), byte_sizes), limit, most)
    top = plan.levels[Z]
    listed = top.tiles()
    assert listed == sorted((Tile(Z, x, y) for x, y in tiles), key=morton_key)
    # z-max batches: the greedy rule, tile by tile.
    by_tile = dict(zip(sorted(tiles), byte_sizes, strict=False))
    assert _batches(top) == _greedy(listed, by_tile, limit, most)
    for z in range(Z - 1, 6, -1):
        level, child = plan.levels[z], plan.levels[z + 1]
        assert level.tiles() == sorted({t.parent() for t in child.tiles()}, key=morton_key)
        owner = {t: b for b, chunk in enumerate(_batches(child)) for t in chunk}
        for b, chunk in enumerate(_batches(level)):
            assert len(chunk) <= most
            needed = {owner[c] for t in chunk for c in t.children() if c in owner}
            assert set(range(level.dep_lo[b], level.dep_hi[b])) == needed


def _config_file(factory):
    from tests.helpers.configs import write_config

    root = factory.mktemp("plan")
    return write_config(root, z_range=[7, Z])


def _batches(level) -> list[list[Tile]]:
    tiles = level.tiles()
    return [tiles[level.cuts[b] : level.cuts[b + 1]] for b in range(level.n_batches)]


def _greedy(tiles, size_of, limit, most) -> list[list[Tile]]:
    batches, current, used = [], [], 0
    for tile in tiles:
        size = size_of[(tile.x, tile.y)]
        if current and (used + size > limit or len(current) >= most):
            batches.append(current)
            current, used = [], 0
        current.append(tile)
        used += size
    return batches + ([current] if current else [])


def test_children_index(make_config):
    config = config_for(make_config)
    tiles = [(8, 8), (9, 8), (8, 9), (11, 9), (40, 41)]
    plan = make_plan(config, staged(tiles, [1] * 5), 1 << 30, 64)
    parents, children = plan.levels[Z - 1], plan.levels[Z]
    where, found = parents.children_index(children)
    for parent, row, present in zip(parents.tiles(), where, found, strict=True):
        got = {children.tiles()[i] for i, ok in zip(row, present, strict=True) if ok}
        assert got == {c for c in parent.children() if (c.x, c.y) in tiles}


def test_listing_keeps_odd_names_and_ignores_the_rest(make_config, tmp_path):
    config = config_for(make_config)
    level = tmp_path / "staged" / "WorldCRS84Quad" / str(Z)
    for name in ("3/4.gpkg", "3/5.gpkg", "07/6.gpkg", "3/README.md", "3/4.gpkg.lock", "x/1.gpkg"):
        (level / name).parent.mkdir(parents=True, exist_ok=True)
        (level / name).write_bytes(b"12345")
    found = list_staged(config)
    tiles = sorted(zip(found.x.tolist(), found.y.tolist(), strict=True))
    assert tiles == [(3, 4), (3, 5), (7, 6)]
    assert found.path(Z, 3, 4) == str(level / "3" / "4.gpkg")
    assert found.path(Z, 7, 6) == str(level / "07" / "6.gpkg")  # as found, not 7/6.gpkg
    assert found.size.tolist() == [5, 5, 5] and (found.mtime > 0).all()
    assert found.odd_paths == {(Z, 7, 6): str(level / "07" / "6.gpkg")}


def test_a_tile_list(make_config, tmp_path):
    """`--tiles`: z/x/y or staged paths, repeats once, missing files and tiles outside the
    grid kept (they fail in the run, with their reason)."""
    config = config_for(make_config)
    present = tmp_path / "staged" / "WorldCRS84Quad" / str(Z) / "3" / "4.gpkg"
    present.parent.mkdir(parents=True)
    present.write_bytes(b"x" * 10)
    listing = tmp_path / "tiles.txt"
    listing.write_text(f"{Z}/3/4\n{present}\n\n# a comment\n{Z}/5/6\n{Z}/5000/1\n9/1/1\n")
    found = read_tile_list(listing, config)
    plan = make_plan(config, found, 1 << 30, 64)
    assert plan.levels[Z].tiles() == [Tile(Z, 3, 4), Tile(Z, 5, 6)]
    assert plan.sizes.tolist() == [10, -1]  # 5/6 is not staged: its task says so
    assert plan.invalid == [Tile(Z, 5000, 1), Tile(9, 1, 1)]
    assert plan.source(Z, 5, 6) == str(tmp_path / "staged" / "WorldCRS84Quad" / "10/5/6.gpkg")
    assert plan.level_size(Z) == 4 and len(plan.levels[Z - 1]) == 2
    empty = tmp_path / "none.txt"
    empty.write_text("nothing here\n")
    with pytest.raises(RasterflowError, match=f"no staged tiles found in {empty}"):
        staged_sources(config, empty)
