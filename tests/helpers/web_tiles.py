"""Hand-made web tiles and a config over them, for the map page without a run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.config import parse_config
from rasterflow.workflow.layout import webtile_path
from rasterflow.workflow.products.wmts import NS


def synthetic_tiles(root: Path, tile_size: int, tiles: dict[Tile, tuple], structure=None):
    """A config over hand-made web tiles: each a solid colour, its right half transparent."""
    raw = {"dir_staged": str(root / "staged"), "dir_geotiff": str(root / "geotiff"),
           "dir_web_tiles": str(root / "web"), "filename_config": str(root / "config.json"),
           "filename_rasterization_events": str(root / "events.csv"),
           "filename_rasters_summary": str(root / "summary.csv"),
           "tms_id": "WorldCRS84Quad", "z_range": [0, 2], "tile_size": [tile_size, tile_size],
           "statistics": [{"name": "cover", "weight_by": "area",
                           "property": "area_per_pixel_area", "val_range": [0, 1]}]}  # fmt: skip
    if structure:
        raw["tile_path_structure"] = structure
    config = parse_config(raw)
    for tile, colour in tiles.items():
        rgba = np.zeros((tile_size, tile_size, 4), dtype=np.uint8)
        rgba[:, : tile_size // 2] = colour
        path = webtile_path(config, tile, "cover")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgba).save(path)
    return config


def wmts_tag(path: str) -> str:
    """`wmts:Contents/ows:Identifier` -> ElementTree's `{uri}name` path."""
    return re.sub(r"(\w+):(\w+)", lambda m: f"{{{NS[m.group(1)]}}}{m.group(2)}", path)


def config_over_fake_tiles(root: Path, **overrides):
    raw = {"dir_web_tiles": str(root / "web"), "tms_id": "WorldCRS84Quad", "z_range": [2, 3],
           "statistics": [{"name": "n", "weight_by": "count", "property": "centroids_per_pixel"}],
           **overrides}  # fmt: skip
    config = parse_config(raw)
    height, width = config.tile_size
    for tile in (Tile(3, 5, 2), Tile(3, 6, 2), Tile(2, 2, 1), Tile(2, 3, 1)):
        path = webtile_path(config, tile, "n")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGBA", (width, height), (200, 0, 0, 255)).save(path)
    return config
