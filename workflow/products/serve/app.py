"""The HTTP application of `rasterflow serve` (Starlette, run by uvicorn).

- `/tiles/{stat}/{tms}/{z}/{x}/{y}.png`: the tile coloured from its GeoTIFF (`?palette=`,
  `?range=` override the config's); an empty tile where no GeoTIFF exists; ETag, and
  If-None-Match -> 304;
- `/point?lon=&lat=` or `?x=&y=`, optional `&z=`: every statistic's value there at z-max
  (and at z), JSON;
- `/`: the map viewer, tiles from this server, palette and range controls;
- `/WMTSCapabilities.xml`: WMTS 1.0.0 capabilities pointing at this server;
- `/palette?palette=`: a palette's legend colours, JSON (the viewer's controls);
- `/healthz`: `{"status": "ok", ...}` while the GeoTIFF folder is there.

Only the routes above exist: a path that names anything else (`..`, `%2e%2e`, an absolute
path, a statistic or grid the config does not have) is 404. Bad parameters are 400 with a
message; an unreadable GeoTIFF is 500 naming the file, and a log line; the server goes on.
"""

from __future__ import annotations

import hashlib
import os
import time
import traceback
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rasterflow.rasterize_core.errors import ParameterError, RasterflowError, TileInputError
from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow.config import RasterflowConfig, load_config
from rasterflow.workflow.products.serve.logs import AccessLog, log_event, setup_logging
from rasterflow.workflow.products.serve.render import (
    GDAL_OPTIONS,
    PointReader,
    TileFiles,
    empty_png,
    render_png,
)
from rasterflow.workflow.products.serve.styles import (
    TILE_PARAMETERS,
    StyleBook,
    check_parameters,
    parse_palette,
    parse_range,
)

ENV_CONFIG = "RASTERFLOW_SERVE_CONFIG"  # how uvicorn's worker processes find the config
TILE_CACHE_CONTROL = "public, max-age=60"  # then revalidated with the ETag (a 304 is cheap)
PAGE_TTL_S = 30.0  # the page and the WMTS document list the tiles: rescanned at most this often
POINT_PARAMETERS = ("lon", "lat", "x", "y", "z")


class Product:
    """What the server reads, set up once per worker: the config, its GeoTIFFs, the styles
    (lookup tables and ranges, cached), the point reader, the empty tile."""

    def __init__(self, config: RasterflowConfig):
        self.config = config
        self.files = TileFiles(config)
        self.styles = StyleBook(config)
        self.points = PointReader(config, self.files)
        self.empty = empty_png(config.tile_size)
        self.empty_etag = '"e-' + hashlib.blake2b(self.empty, digest_size=8).hexdigest() + '"'
        self._documents: dict[str, tuple[float, bytes]] = {}

    async def document(self, name: str, make) -> bytes:
        """A page or document, made in a thread (it scans the tiles) and kept PAGE_TTL_S."""
        made_at, body = self._documents.get(name, (0.0, b""))
        if time.monotonic() - made_at > PAGE_TTL_S:
            body = await run_in_threadpool(make)
            if len(self._documents) >= 16:  # names hold the Host header: keep a few only
                self._documents.clear()
            self._documents[name] = (time.monotonic(), body)
        return body


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def answers(endpoint):
    """Errors to responses: ParameterError 400; an unreadable GeoTIFF 500 naming it; another
    RasterflowError 500 with its message; any other error 500 (a bug: traceback in the log).
    All but the first are logged. The server never stops for a request."""

    async def wrapped(request: Request):
        try:
            return await endpoint(request)
        except ParameterError as err:
            return error(400, str(err))
        except TileInputError as err:
            log_event("error", path=request.url.path, file=err.path, error=str(err),
                      detail=err.detail)  # fmt: skip
            return error(500, str(err))
        except RasterflowError as err:  # e.g. a grid the map page cannot draw: say why
            log_event("error", path=request.url.path, error=str(err))
            return error(500, str(err))
        except Exception as err:  # a bug: log it whole, answer briefly
            log_event("error", path=request.url.path, error=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc())  # fmt: skip
            return error(500, f"internal error ({type(err).__name__}); see the server's log")

    wrapped.__name__ = endpoint.__name__
    return wrapped


# -- tiles -----------------------------------------------------------------------------
async def tile(request: Request) -> Response:
    product: Product = request.app.state.product
    params = request.path_params
    stat, tms = params["stat"], params["tms"]
    if not product.styles.knows(stat) or tms != product.config.tms_id:
        layers = ", ".join(product.config.stat_names)
        return error(404, f"no layer {stat}/{tms}: layers are {layers} on {product.config.tms_id}")
    query = request.query_params
    check_parameters(query.keys(), TILE_PARAMETERS)
    style = product.styles.style(stat, params["z"], parse_palette(query.getlist("palette")),
                                 parse_range(query.get("range")))  # fmt: skip
    path = product.files.path(Tile(params["z"], params["x"], params["y"]))
    if path is None:
        return error(404, f"tile {params['z']}/{params['x']}/{params['y']} is outside "
                          f"{product.config.tms_id}")  # fmt: skip
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return _png(request, product.empty, product.empty_etag)
    mark = f"{style.digest}:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"
    etag = '"t-' + hashlib.blake2b(mark.encode(), digest_size=12).hexdigest() + '"'
    if _not_modified(request, etag):
        return _png(request, None, etag)
    # Inline, on the event loop: the work holds the GIL most of the time (rasterio's Python
    # side, colorize), so two threads render 577 tiles/s where one renders 539 (measured);
    # worker processes use the cores instead.
    return _png(request, render_png(path, style), etag)


def _not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in tags or "*" in tags


def _png(request: Request, body: bytes | None, etag: str) -> Response:
    headers = {"ETag": etag, "Cache-Control": TILE_CACHE_CONTROL,
               "X-Content-Type-Options": "nosniff"}  # fmt: skip
    if body is None:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="image/png", headers=headers)


# -- points and palettes ---------------------------------------------------------------
async def point(request: Request) -> Response:
    product: Product = request.app.state.product
    query = request.query_params
    check_parameters(query.keys(), POINT_PARAMETERS)
    config = product.config
    given = {name for name in ("lon", "lat", "x", "y") if name in query}
    if given not in ({"lon", "lat"}, {"x", "y"}):
        raise ParameterError("give lon=&lat= (degrees) or x=&y= (in the grid's CRS), one pair")
    numbers = {name: _number(query, name) for name in given}
    z = _level(query["z"], config) if "z" in query else config.z_max
    where = product.points.locate(**numbers)
    levels = sorted({config.z_max, z}, reverse=True)
    found = [product.points.level(where, lz) for lz in levels]  # inline, as tiles are
    return JSONResponse({"lon": where.lon, "lat": where.lat, "x": where.x, "y": where.y,
                         "tms": config.tms_id, "levels": found})  # fmt: skip


def _number(query, name: str) -> float:
    text = query.get(name)
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ParameterError(f"{name}={text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ParameterError(f"{name}={text!r} must be a finite number")
    return value


def _level(text: str, config: RasterflowConfig) -> int:
    if not text.isdigit() or not config.z_min <= int(text) <= config.z_max:
        raise ParameterError(f"z={text!r}: a level of the run, {config.z_min} to {config.z_max}")
    return int(text)


async def palette(request: Request) -> Response:
    from rasterflow.workflow.products.viewer_data import palette_colors

    check_parameters(request.query_params.keys(), ("palette",))
    key = parse_palette(request.query_params.getlist("palette"))
    if key is None:
        raise ParameterError("give palette=NAME or palette=COLOUR,COLOUR,...")
    colours = palette_colors(list(key) if isinstance(key, tuple) else key)
    return JSONResponse({"palette": key, "colors": colours})


async def healthz(request: Request) -> Response:
    product: Product = request.app.state.product
    if not os.path.isdir(product.files.root):
        return error(503, f"the GeoTIFF folder {product.files.root} is not there")
    return JSONResponse({"status": "ok", "tms": product.config.tms_id,
                         "statistics": product.config.stat_names})  # fmt: skip


# -- the viewer and the WMTS document ----------------------------------------------------
def server_tile_path(config: RasterflowConfig, stat: str, z: str, x: str, y: str) -> str:
    """A tile's address below the server's root (the order is fixed: stat/tms/z/x/y)."""
    return f"tiles/{quote(stat, safe='')}/{quote(config.tms_id, safe='')}/{z}/{x}/{y}.png"


async def viewer(request: Request) -> Response:
    from rasterflow.workflow.products.serve.pages import server_page

    product: Product = request.app.state.product
    check_parameters(request.query_params.keys(), ())
    body = await product.document("viewer", lambda: server_page(product.config, server_tile_path))
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


async def wmts(request: Request) -> Response:
    from rasterflow.workflow.products.serve.pages import server_wmts

    product: Product = request.app.state.product
    check_parameters(request.query_params.keys(), ("service", "request", "version"))
    base_url = str(request.base_url)
    body = await product.document(f"wmts {base_url}", lambda: server_wmts(
        product.config, base_url, server_tile_path))  # fmt: skip
    return Response(body, media_type="application/xml", headers={"Cache-Control": "no-cache"})


# -- the application ------------------------------------------------------------------
async def not_found(request: Request, exc) -> Response:
    return error(404, f"nothing at {request.url.path}")


async def not_allowed(request: Request, exc) -> Response:
    return error(405, f"{request.method} is not served here: this server only reads")


def create_app(config: RasterflowConfig) -> AccessLog:
    """The Starlette app of the run, wrapped in the access log (an ASGI app)."""
    import rasterio

    # One GDAL environment for the worker's event-loop thread, where tiles are read: without
    # it every rasterio.open sets up and tears down a default one (0.1-0.3 ms a tile).
    rasterio.Env(**GDAL_OPTIONS).__enter__()
    setup_logging()
    routes = [
        Route("/tiles/{stat}/{tms}/{z:int}/{x:int}/{y:int}.png", answers(tile)),
        Route("/point", answers(point)),
        Route("/palette", answers(palette)),
        Route("/healthz", answers(healthz)),
        Route("/WMTSCapabilities.xml", answers(wmts)),
        Route("/", answers(viewer)),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    app.state.product = Product(config)
    return AccessLog(app)


def app_from_environment():
    """uvicorn's factory in each worker process: the config named by RASTERFLOW_SERVE_CONFIG."""
    return create_app(load_config(os.environ[ENV_CONFIG]))
