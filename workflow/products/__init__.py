"""Products beside a run's outputs: the map page, WMTS capabilities, quick-looks, STAC.

They only read what the engine wrote (files, records, `__updated.json`); `publish` makes
them after a run under one failure policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rasterflow.rasterize_core.errors import RasterflowError
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.products.viewer import write_products
from rasterflow.workflow.run import RunReport

log = logging.getLogger(__name__)


def publish(config: RasterflowConfig, report: RunReport) -> None:
    """Write every product the config asks for. Never fails a finished run: a product that
    cannot be made (no web tiles, no GeoTIFF, a grid the viewer cannot draw) becomes a note
    of the report, and the run's own outcome (its failed tiles, its exit code) stands."""
    makers: list[tuple[str, Callable[[], object]]] = [
        ("viewer, WMTS and quick-looks", lambda: write_products(config, report.ranges))
    ]
    if config.stac:  # pystac and rasterio: imported only for it (`run` imports this first)
        from rasterflow.workflow.products.stac import write_stac

        makers.append(("STAC catalog", lambda: write_stac(config, report.ranges)))
    for name, make in makers:
        try:
            make()
        except RasterflowError as err:
            report.notes.append(f"{name} not written: {err}")
        except Exception as err:  # a bug here must not lose a finished run
            log.exception("%s not written", name)
            report.notes.append(f"{name} not written: {type(err).__name__}: {err}")
