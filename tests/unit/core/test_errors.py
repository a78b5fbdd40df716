"""The errors module: what a worker raises must travel back to the driver whole."""

from __future__ import annotations

import pickle

from rasterflow.rasterize_core.errors import ConfigError, TileInputError


def test_errors_survive_pickling():
    """An error a worker cannot send back would kill Parsl's result thread (the run hangs)."""
    error = pickle.loads(pickle.dumps(TileInputError("/a.gpkg", "corrupt")))
    assert (error.path, error.reason, str(error)) == ("/a.gpkg", "corrupt", "/a.gpkg: corrupt")
    config_error = pickle.loads(pickle.dumps(ConfigError("c.json", ["z_range: reversed"])))
    assert (config_error.source, config_error.problems) == ("c.json", ["z_range: reversed"])
