"""Every config key a PDG version knew, and the defaults PDG writes back: one place.

Where the list comes from (PermafrostDiscoveryGateway repositories, read version by version):
- viz-staging `pdgstaging/ConfigManager.py` `defaults`, which pdgraster (viz-raster) reads
  its config through: at 012140d (early 2022: folders, `ext_*`, `prop_*`, grid, statistics),
  b6f7879 (2022-04-06: `deduplicate` and the neighbour options), 0d02d61 (`deduplicate_at`,
  `deduplicate_method`, footprints, the `filename_*` keys) and 7e4ef95 (2023-03: `version`,
  `dir_3dtiles`, `prop_duplicated`, `geometricError`, `z_coord`, the footprint clip keys);
- viz-workflow `pdgworkflow/ConfigManager.py` `defaults` at 1215fdf and at main 4fc284e
  (`title`, `doi`, `overwrite`, the `enable_*` switches, `generate_wmtsCapabilities`);
- viz-workflow's scripts (`PRODUCTION_IWP_CONFIG.py` at 03c715a, `IN_PROGRESS_VIZ_WORKFLOW.py`,
  `docker-parsl-workflow/workflow_config.py`), which add `dir_output` and the per-node copies
  of the folders: `dir_<folder>_local`, `dir_<folder>_remote`, `dir_staged_remote_merged`.
  Those scripts show 7 of them; the same convention is accepted for PDG's 6 folders.
pdgraster's Palette and WebImage read `palette`, `nodata_val` and `nodata_color` of a
statistic; no PDG version had any other statistic key.

Keys that no PDG version had stay refused (`clip_to_footprint`, `zrange`, `enable_staging`).
"""

from __future__ import annotations

from typing import Any

_FOLDERS = ("input", "staged", "geotiff", "web_tiles", "3dtiles", "footprints")

# Top-level keys of any PDG version (staging, raster, 3D tiles, workflow and its scripts).
PDG_KEYS = frozenset(
    {
        # folders and files
        "dir_input", "dir_staged", "dir_geotiff", "dir_web_tiles", "dir_3dtiles",
        "dir_footprints", "dir_output", "filename_staging_summary",
        "filename_rasterization_events", "filename_rasters_summary", "filename_config",
        "ext_input", "ext_staged", "ext_web_tiles", "ext_footprints",
        # columns staging adds
        "prop_centroid_x", "prop_centroid_y", "prop_area", "prop_tile", "prop_centroid_tile",
        "prop_filename", "prop_identifier", "prop_centroid_within_tile", "prop_duplicated",
        # staging, grid and rasterization
        "input_crs", "simplify_tolerance", "tms_id", "tile_path_structure", "z_range",
        "tile_size", "statistics", "overwrite",
        # deduplication (`deduplicate` was `deduplicate_at`'s name in April 2022)
        "deduplicate", "deduplicate_at", "deduplicate_method", "deduplicate_keep_rules",
        "deduplicate_overlap_tolerance", "deduplicate_overlap_both",
        "deduplicate_centroid_tolerance", "deduplicate_distance_crs",
        "deduplicate_clip_to_footprint", "deduplicate_clip_method",
        # 3D tiles and the workflow
        "version", "geometricError", "z_coord", "title", "doi", "enable_stager",
        "enable_raster", "enable_raster_parents", "enable_web_tiles", "enable_web_tiles_parents",
        "enable_3dtiles", "generate_wmtsCapabilities",
        # viz-workflow's per-node folder copies
        *(f"dir_{folder}_{where}" for folder in _FOLDERS for where in ("local", "remote")),
        "dir_staged_remote_merged",
    }
)  # fmt: skip

# Keys of one statistic (pdgraster); rasterflow uses every one of them.
PDG_STATISTIC_KEYS = frozenset(
    {"name", "weight_by", "property", "aggregation_method", "resampling_method", "val_range",
     "z_config", "palette", "nodata_val", "nodata_color"}
)  # fmt: skip

# PDG's two default statistics, as its ConfigManager defines them (no palette: pdgraster's
# Palette then paints white to black; nodata 0 is transparent).
DEFAULT_STATISTICS: tuple[dict[str, Any], ...] = (
    {"name": "polygon_count", "weight_by": "count", "property": "centroids_per_pixel",
     "aggregation_method": "sum", "resampling_method": "sum", "val_range": [0, None],
     "nodata_val": 0, "nodata_color": "#ffffff00"},
    {"name": "coverage", "weight_by": "area", "property": "area_per_pixel_area",
     "aggregation_method": "sum", "resampling_method": "average", "val_range": [0, 1],
     "nodata_val": 0, "nodata_color": "#ffffff00"},
)  # fmt: skip

# pdgraster's Palette: the colours of a statistic without `palette`, the colour of NaN
# (and of `nodata_val`) when `nodata_color` is omitted.
DEFAULT_PALETTE = ("#FFFFFF", "#000000")
DEFAULT_NODATA_COLOR = "#ffffff00"

# `pdgworkflow.ConfigManager.defaults` at viz-workflow main (4fc284e), in its order: PDG
# merges them under every config (`defaults | config`, shallow) and writes the result to
# `<filename_config>__updated.json`.
PDG_DEFAULTS: dict[str, Any] = {
    "version": None, "dir_geotiff": "geotiff", "dir_web_tiles": "web_tiles",
    "dir_3dtiles": "3dtiles", "dir_staged": "staged", "dir_input": "input",
    "dir_footprints": "footprints", "filename_staging_summary": "staging_summary.csv",
    "filename_rasterization_events": "rasterization_events.csv",
    "filename_rasters_summary": "rasters_summary.csv", "filename_config": "config.json",
    "title": "Placeholder Title", "doi": "doi/placeholder", "ext_web_tiles": ".png",
    "ext_input": ".shp", "ext_staged": ".gpkg", "ext_footprints": ".gpkg",
    "prop_centroid_x": "staging_centroid_x", "prop_centroid_y": "staging_centroid_y",
    "prop_area": "staging_area", "prop_tile": "staging_tile",
    "prop_centroid_tile": "staging_centroid_tile", "prop_filename": "staging_filename",
    "prop_identifier": "staging_identifier",
    "prop_centroid_within_tile": "staging_centroid_within_tile",
    "prop_duplicated": "staging_duplicated", "input_crs": None, "simplify_tolerance": 0.0001,
    "tms_id": "WGS1984Quad", "tile_path_structure": ["style", "tms", "z", "x", "y"],
    "z_range": [0, 13], "tile_size": [256, 256], "statistics": list(DEFAULT_STATISTICS),
    "geometricError": None, "z_coord": 0, "deduplicate_at": None, "deduplicate_method": None,
    "deduplicate_keep_rules": [], "deduplicate_overlap_tolerance": 0.5,
    "deduplicate_overlap_both": True, "deduplicate_centroid_tolerance": None,
    "deduplicate_distance_crs": "EPSG:3857", "deduplicate_clip_to_footprint": True,
    "deduplicate_clip_method": "intersects", "overwrite": False, "enable_raster": True,
    "enable_web_tiles": True, "enable_stager": True, "enable_3dtiles": True,
    "enable_raster_parents": True, "enable_web_tiles_parents": True,
    "generate_wmtsCapabilities": True,
}  # fmt: skip
