"""The steps of a run and the rows they leave, defined once.

A tile goes through up to three steps: `rasterize` (z-max: staged polygons -> GeoTIFF),
`parent` (lower zooms: 2x2 reduction of the children's GeoTIFFs) and `webtile` (a level's
GeoTIFFs -> one PNG per statistic). Each leaves one event row, and each GeoTIFF one summary
row per statistic. The columns of those rows, with their types, are listed here and
nowhere else:

- `TASK_EVENT` and `SUMMARY_PART`: what a task returns per tile (columnar, see
  `workflow.tasks`), `EVENT_PART` adds what the driver knows (run, attempt, fingerprint):
  the rows of the journal parts a run writes as it goes (`workflow.records`);
- `EVENT_FILE` and `SUMMARY_FILE`: the files at PDG's names, PDG's columns first with PDG's
  meanings (pdgraster's `RasterTiler.__end_tracking`), rasterflow's after them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict

import pyarrow as pa


class Step(StrEnum):
    RASTERIZE = "rasterize"
    PARENT = "parent"
    WEBTILE = "webtile"

    @property
    def rank(self) -> int:
        """Order in a run and in the event log: rasterize, parent, webtile."""
        return list(Step).index(self)

    @property
    def pdg_type(self) -> str:
        """PDG's event `type` for this step: the RasterTiler method that does it (PDG meant
        to write these and writes `event_type_replacement` instead)."""
        return _PDG_TYPES[self]

    @staticmethod
    def raster(z: int, z_max: int) -> Step:
        """The step that writes the GeoTIFF of a tile at zoom z."""
        return Step.RASTERIZE if z == z_max else Step.PARENT


_PDG_TYPES = {
    Step.RASTERIZE: "geotiffs_from_vectors",
    Step.PARENT: "parent_geotiffs_from_children",
    Step.WEBTILE: "webtiles_from_geotiffs",
}


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    meaning: str


def _schema(*groups: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type) for group in groups for c in group])


STR, INT, FLOAT, HASH = pa.string(), pa.int64(), pa.float64(), pa.uint64()

# -- events ---------------------------------------------------------------------------------
TASK_EVENT = (
    Column("step", STR, "rasterize | parent | webtile"),
    Column("z", INT, "zoom"),
    Column("x", INT, "column"),
    Column("y", INT, "row"),
    Column("status", STR, "ok | failed"),
    Column("start_time", FLOAT, "when the tile's work started, epoch seconds"),
    Column("total_time", FLOAT, "seconds it took"),
    Column("error", STR, "why it failed, naming the file (null when ok)"),
    Column("path", STR, "the file written (web tiles: the PNGs, `;`-joined), or at fault"),
    Column("host", STR, "where it ran"),
    Column("n_polygons", INT, "polygons counted in the tile (null where not counted)"),
    Column("checksum", HASH, "sha256 of the GeoTIFF or PNGs, first 64 bits (0: none)"),
    Column("skipped", STR, "rows skipped by reason, e.g. `2 empty, 1 non-finite`"),
    Column("detail", STR, "the library's own words about a failure"),
)
DRIVER_EVENT = (
    Column("run_id", STR, "the run that wrote the row"),
    Column("attempt", INT, "tries it took"),
    Column("fingerprint", HASH, "the config parts and inputs the step depended on (0: none)"),
)
EVENT_PART = _schema(TASK_EVENT, DRIVER_EVENT)

# PDG's event columns, with the meaning PDG intended. Not copied from PDG's own files: `id`
# is `<built-in function id>` there (the Python builtin, never replaced by the uuid it was
# meant to be), `type` and `start_time` are the placeholders `event_type_replacement` and
# `start_time_replacement`, `total_time` is always empty, and `raster_summary` is never set
# (PDG writes the summary rows to the summary file instead; so does rasterflow).
PDG_EVENT = (
    Column("id", STR, "a unique event id: `{run_id}/{step}/{z}/{x}/{y}`"),
    Column("type", STR, "what ran: PDG's method name for the step (`Step.pdg_type`)"),
    Column("start_time", FLOAT, "epoch seconds"),
    Column("total_time", FLOAT, "seconds"),
    Column("end_time", FLOAT, "epoch seconds"),
    Column("error", STR, "why it failed (empty when ok)"),
    Column("path", STR, "the file written, or the file at fault"),
    Column("raster_summary", STR, "always empty, as in PDG"),
    Column("tile", STR, "`Tile(x=.., y=.., z=..)`"),
    Column("z", INT, "zoom"),
)
OWN_EVENT = (
    Column("run_id", STR, ""), Column("step", STR, ""), Column("x", INT, ""),
    Column("y", INT, ""), Column("status", STR, ""), Column("attempt", INT, ""),
    Column("n_polygons", INT, ""), Column("host", STR, ""),
    Column("fingerprint", STR, "16 hex digits"), Column("checksum", STR, "16 hex digits"),
    Column("skipped", STR, ""), Column("detail", STR, ""),
)  # fmt: skip
EVENT_FILE = _schema(PDG_EVENT, OWN_EVENT)

# -- summary ---------------------------------------------------------------------------------
BAND_STATS = ("min", "max", "mean", "median", "std", "var", "sum")
SUMMARY_PART = _schema((
    Column("stat", STR, "statistic (band) name"), Column("z", INT, ""), Column("x", INT, ""),
    Column("y", INT, ""),
    *(Column(name, FLOAT, f"{name} of the band's finite pixels") for name in BAND_STATS),
    Column("n_nonempty", INT, "finite non-zero pixels"),
    Column("path", STR, "the GeoTIFF"),
    Column("minx", FLOAT, ""), Column("maxx", FLOAT, ""), Column("miny", FLOAT, ""),
    Column("maxy", FLOAT, ""),
))  # fmt: skip
BOUNDS = ("minx", "maxx", "miny", "maxy")  # PDG's order of `bounds`
# PDG's summary columns (pdgraster's Raster.summary, then path, tile, z), then rasterflow's.
SUMMARY_FILE = _schema((
    Column("stat", STR, ""),
    Column("bounds", pa.list_(FLOAT), "[minx, maxx, miny, maxy], PDG's order"),
    *(Column(name, FLOAT, "") for name in BAND_STATS),
    Column("path", STR, ""), Column("tile", STR, "`Tile(x=.., y=.., z=..)`"),
    Column("z", INT, ""), Column("x", INT, ""), Column("y", INT, ""),
    Column("n_nonempty", INT, ""),
))  # fmt: skip


class TileRecord(TypedDict, total=False):
    """One tile's outcome as the per-tile task functions return it (`workflow.tasks`)."""

    step: str
    z: int
    x: int
    y: int
    status: str
    start_time: float
    total_time: float
    error: str | None
    path: str | None
    host: str
    n_polygons: int | None
    checksum: str | None  # 16 hex digits
    skipped: str | None
    detail: str | None
    notes: list[str]
    summary: list[dict]  # `band_summary` rows


def tile_name(z: int, x: int, y: int) -> str:
    """PDG's `tile` column: morecantile's repr of the tile."""
    return f"Tile(x={x}, y={y}, z={z})"
