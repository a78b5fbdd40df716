"""`rasterflow serve` as a real server process, against real runs of the synthetic sample.

Truth: the PNGs the batch renderer wrote (decoded with Pillow), tiles coloured here by the
core functions (`palette.build_lut`, `webtile.colorize`), GeoTIFF pixels read with rasterio.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import psutil
import pytest
import rasterio
from PIL import Image

from rasterflow.rasterize_core import palette, webtile
from rasterflow.rasterize_core.tiles import Tile, xy_bounds
from rasterflow.workflow.config import load_config
from rasterflow.workflow.layout import geotiff_path
from rasterflow.workflow.products.viewer_data import existing_tiles, geotiff_tiles
from tests.helpers.served import RASTERFLOW, Server, served_runs

COUNT, COVER, WIDTH = "iwp_count", "iwp_coverage", "mean_width"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return served_runs(tmp_path_factory.getbasetemp() / "served-runs")


@pytest.fixture(scope="module")
def config(runs):
    return load_config(runs.with_png)


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    with Server(runs.with_png, tmp_path_factory.mktemp("serve-log") / "serve.log") as running:
        yield running


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA"))


def png_pixels(path: Path) -> np.ndarray:
    return pixels(path.read_bytes())


def tile_url(config, stat: str, tile: Tile, query: str = "") -> str:
    return f"/tiles/{stat}/{config.tms_id}/{tile.z}/{tile.x}/{tile.y}.png{query}"


def core_render(config, stat: str, tile: Tile, palette_spec, val_range) -> np.ndarray:
    """The tile coloured by the batch renderer's own functions."""
    index = config.stat_names.index(stat)
    spec = config.statistics[index]
    with rasterio.open(geotiff_path(config, tile)) as dataset:
        band = dataset.read(index + 1, out_dtype="float64")
    return webtile.colorize(band, val_range, palette.build_lut(palette_spec), spec.nodata_val,
                            palette.parse_color(spec.nodata_color))  # fmt: skip


def all_png_tiles(config):
    for stat in config.stat_names:
        for z, level in existing_tiles(config, [stat]).items():
            for x, y in sorted(level):
                yield stat, Tile(z, x, y)


# -- tiles ------------------------------------------------------------------------------------
def test_served_tiles_have_the_prerendered_pixels(server, config):
    checked = 0
    for stat, tile in all_png_tiles(config):
        answer = server.get(tile_url(config, stat, tile))
        assert answer.status == 200 and answer.headers["content-type"] == "image/png"
        expected = png_pixels(Path(config.dir_web_tiles) / stat / config.tms_id /
                              str(tile.z) / str(tile.x) / f"{tile.y}.png")  # fmt: skip
        assert np.array_equal(pixels(answer.body), expected), (stat, tile)
        checked += 1
    assert checked == 3 * sum(len(level) for level in geotiff_tiles(config).values()) > 30


def test_recoloured_tiles_equal_the_core_render(server, config):
    tile = Tile(config.z_max, *sorted(geotiff_tiles(config)[config.z_max])[0])
    answer = server.get(tile_url(config, COVER, tile, "?palette=viridis&range=0,0.5"))
    assert answer.status == 200
    expected = core_render(config, COVER, tile, "viridis", (0, 0.5))
    assert np.array_equal(pixels(answer.body), expected)
    listed = tile_url(config, WIDTH, tile, "?palette=%23000000,rgb(255,%20136,%200),%23fff")
    repeated = tile_url(config, WIDTH, tile, "?palette=%23000000&palette=rgb(255,136,0)"
                                             "&palette=%23fff")  # fmt: skip
    listed, repeated = server.get(listed), server.get(repeated)
    expected = core_render(config, WIDTH, tile, ["#000000", "rgb(255, 136, 0)", "#fff"],
                           load_ranges(config)[tile.z][WIDTH])  # fmt: skip
    assert np.array_equal(pixels(listed.body), expected)
    assert np.array_equal(pixels(repeated.body), expected)
    assert not np.array_equal(expected, core_render(config, WIDTH, tile, "viridis", (0, 30)))


def load_ranges(config):
    from rasterflow.workflow.products.viewer_data import updated_config_ranges

    return updated_config_ranges(config)


def test_empty_tile_where_no_geotiff_exists(server, config):
    free = Tile(config.z_max, 0, 0)
    assert not geotiff_path(config, free).exists()
    answer = server.get(tile_url(config, COUNT, free))
    assert answer.status == 200
    image = pixels(answer.body)
    assert image.shape == (*config.tile_size, 4) and not image[..., 3].any()


def test_cache_headers_and_revalidation(server, config):
    tile = Tile(config.z_max, *sorted(geotiff_tiles(config)[config.z_max])[0])
    first = server.get(tile_url(config, COUNT, tile))
    etag = first.headers["etag"]
    assert etag.startswith('"') and "max-age" in first.headers["cache-control"]
    assert server.get(tile_url(config, COUNT, tile)).headers["etag"] == etag  # stable
    again = server.get(tile_url(config, COUNT, tile), {"If-None-Match": etag})
    assert again.status == 304 and again.body == b"" and again.headers["etag"] == etag
    assert server.get(tile_url(config, COUNT, tile), {"If-None-Match": f"W/{etag}"}).status == 304
    assert server.get(tile_url(config, COUNT, tile), {"If-None-Match": '"other"'}).status == 200
    head = server.get(tile_url(config, COUNT, tile), method="HEAD")
    assert head.status == 200 and head.body == b"" and head.headers["etag"] == etag
    recoloured = server.get(tile_url(config, COUNT, tile, "?palette=magma"))
    others = {recoloured.headers["etag"], server.get(tile_url(config, COVER, tile)).headers["etag"]}
    assert etag not in others and len(others) == 2


# -- only the run's files; bad requests ----------------------------------------------------------
def test_paths_that_leave_the_outputs_get_404(server, config):
    first = sorted(geotiff_tiles(config)[config.z_max])[0]
    run_file = geotiff_path(config, Tile(config.z_max, *first))
    relative = run_file.relative_to(Path(config.dir_geotiff).parent)
    targets = [
        "/tiles/../../../../etc/passwd", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
        "/tiles/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"/tiles/{COUNT}/{config.tms_id}/13/..%2F..%2F..%2F..%2Fetc/passwd.png",
        f"/tiles/{COUNT}/%2Fetc%2Fpasswd/13/0/0.png", f"/tiles/%2Fetc/{config.tms_id}/13/0/0.png",
        f"/tiles/..%2F..%2Fgeotiff/{config.tms_id}/13/0/0.png", "//etc/passwd", "/etc/passwd",
        f"/tiles//etc/passwd/{config.tms_id}/13/0/0.png", f"/{relative}", f"/{run_file}",
        f"{server.url}/../../../etc/passwd", f"{server.url}/%2e%2e/%2e%2e/etc/passwd",  # absolute
        f"/tiles/{COUNT}/{config.tms_id}/-1/0/0.png", f"/tiles/{COUNT}/{config.tms_id}/13/0/0.tif",
        f"/tiles/{COUNT}/{config.tms_id}/13/{2**20}/0.png",  # outside the grid
        f"/tiles/nope/{config.tms_id}/13/0/0.png", f"/tiles/{COUNT}/WebMercatorQuad/13/0/0.png",
    ]  # fmt: skip
    for target in targets:
        answer = server.get(target)
        assert answer.status == 404, (target, answer)
        assert b"root:" not in answer.body and b"II*\x00" not in answer.body
        assert answer.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("query, words", [
    ("?palette=virdis", "unknown colormap"), ("?palette=%23000,notacolour", "notacolour"),
    ("?range=1", "two numbers"), ("?range=5,1", "reversed"), ("?range=nan,1", "finite"),
    ("?pallete=viridis", "unknown parameter pallete"),
])  # fmt: skip
def test_bad_tile_parameters_get_400(server, config, query, words):
    answer = server.get(tile_url(config, COUNT, Tile(13, 0, 0), query))
    assert answer.status == 400 and words in answer.json()["error"]


@pytest.mark.parametrize("query, words", [
    ("", "one pair"), ("?lon=1", "one pair"), ("?lon=1&lat=2&x=3&y=4", "one pair"),
    ("?lon=abc&lat=1", "not a number"), ("?lon=500&lat=1", "outside"),
    ("?lon=1&lat=2&z=99", "z='99'"), ("?lon=1&lat=2&z=-1", "a level of the run"),
    ("?lon=1&lat=2&when=now", "unknown parameter when"),
])  # fmt: skip
def test_bad_point_parameters_get_400(server, query, words):
    answer = server.get(f"/point{query}")
    assert answer.status == 400 and words in answer.json()["error"]


def test_only_reads(server, config):
    assert server.get("/healthz", method="POST").status == 405
    assert server.get(tile_url(config, COUNT, Tile(13, 0, 0)), method="DELETE").status == 405


def test_binds_loopback_by_default(server):
    listening = [c.laddr for c in psutil.Process(server.process.pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]  # fmt: skip
    assert listening and all(address.ip == "127.0.0.1" for address in listening)


def test_unreadable_geotiffs_answer_500_and_a_log_line(runs, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(runs.with_png.parent, copy)
    config_path = copy / "config.json"
    config_path.write_text(runs.with_png.read_text().replace(str(runs.with_png.parent), str(copy)))
    broken = load_config(config_path)
    tiles = sorted(geotiff_tiles(broken)[broken.z_max])
    truncated, empty, fine = (Tile(broken.z_max, *xy) for xy in tiles[:3])
    data = geotiff_path(broken, truncated).read_bytes()
    geotiff_path(broken, truncated).write_bytes(data[: len(data) // 3])
    geotiff_path(broken, empty).write_bytes(b"")
    with Server(config_path, tmp_path / "serve.log") as server:
        for tile in (truncated, empty):
            answer = server.get(tile_url(broken, COUNT, tile))
            assert answer.status == 500, answer
            assert str(geotiff_path(broken, tile)) in answer.json()["error"]
        west, south, east, north = xy_bounds(broken.tms_id, empty)
        point = server.get(f"/point?x={(west + east) / 2}&y={(south + north) / 2}")
        assert point.status == 500 and str(geotiff_path(broken, empty)) in point.json()["error"]
        assert server.get(tile_url(broken, COUNT, fine)).status == 200  # still serving
        assert server.get("/healthz").status == 200
        for tile in (truncated, empty):
            path = str(geotiff_path(broken, tile))
            line = logged(server, lambda line, path=path: line.get("file") == path)
            assert line["event"] == "error" and "cannot be read" in line["error"]


# -- points ----------------------------------------------------------------------------------
def rasterio_values(config, tile: Tile, x: float, y: float) -> list:
    with rasterio.open(geotiff_path(config, tile)) as dataset:
        row, col = dataset.index(x, y)
        values = dataset.read(window=((row, row + 1), (col, col + 1)), out_dtype="float64")
    return [None if np.isnan(v) else float(v) for v in values[:, 0, 0]]


def test_point_values_are_the_geotiff_pixels(server, config):
    rng = np.random.default_rng(5)
    tiles = sorted(geotiff_tiles(config)[config.z_max])
    for x_tile, y_tile in tiles:
        west, south, east, north = xy_bounds(config.tms_id, Tile(config.z_max, x_tile, y_tile))
        for lon, lat in rng.uniform((west, south), (east, north), (4, 2)).tolist():
            body = server.get(f"/point?lon={lon!r}&lat={lat!r}&z=11").json()
            assert [level["z"] for level in body["levels"]] == [13, 11]
            for level in body["levels"]:
                tile = Tile(*level["tile"])
                assert level["exists"] and tile.x == x_tile >> (13 - tile.z)
                values = [level["values"][name] for name in config.stat_names]
                assert values == rasterio_values(config, tile, lon, lat), (lon, lat, tile)
            same = server.get(f"/point?x={lon!r}&y={lat!r}&z=11").json()  # the grid's CRS
            assert same["levels"] == body["levels"]
    nowhere = server.get("/point?lon=0.5&lat=0.5").json()["levels"][0]
    assert not nowhere["exists"] and set(nowhere["values"].values()) == {None}


# -- the other addresses ------------------------------------------------------------------------
def test_wmts_capabilities_point_at_the_server(server, config):
    answer = server.get("/WMTSCapabilities.xml")
    assert answer.status == 200
    root = ET.fromstring(answer.body)
    ns = {"w": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1"}
    templates = {layer.find("ows:Identifier", ns).text:
                 layer.find("w:ResourceURL", ns).get("template")
                 for layer in root.iter(f"{{{ns['w']}}}Layer")}  # fmt: skip
    path = f"{config.tms_id}/{{TileMatrix}}/{{TileCol}}/{{TileRow}}.png"
    assert templates == {stat: f"{server.url}/tiles/{stat}/{path}" for stat in config.stat_names}


def test_gdal_reads_the_wmts_layer(server, config):
    """GDAL's WMTS driver (what QGIS uses) opens the document and reads tiles through it."""
    tile = Tile(config.z_max, *sorted(geotiff_tiles(config)[config.z_max])[0])
    expected = png_pixels(Path(config.dir_web_tiles) / COVER / config.tms_id / str(tile.z) /
                          str(tile.x) / f"{tile.y}.png")  # fmt: skip
    with (
        rasterio.Env(GDAL_HTTP_TIMEOUT=20),
        rasterio.open(f"WMTS:{server.url}/WMTSCapabilities.xml,layer={COVER}") as dataset,
    ):
        assert dataset.count == 4  # RGBA
        window = dataset.window(*xy_bounds(config.tms_id, tile)).round_offsets().round_lengths()
        assert (window.width, window.height) == tuple(reversed(config.tile_size))  # full res
        drawn = np.moveaxis(dataset.read(window=window), 0, -1)
    assert np.array_equal(drawn, expected)


def logged(server, wanted, timeout_s: float = 10.0) -> dict:
    """The last log line for which `wanted(line)` holds (lines are written once the
    answer has gone out, so wait for it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [line for line in server.log_lines() if wanted(line)]
        if found or time.monotonic() > deadline:
            assert found, "no such log line"
            return found[-1]
        time.sleep(0.1)


def test_healthz_and_access_log(server, config):
    body = server.get("/healthz").json()
    assert body == {"status": "ok", "tms": config.tms_id, "statistics": config.stat_names}
    server.get(tile_url(config, COUNT, Tile(13, 0, 0), "?range=0,1.5"))
    line = logged(server, lambda line: line.get("query") == "range=0,1.5")
    assert line["event"] == "request" and line["method"] == "GET" and line["status"] == 200
    assert line["path"] == f"/tiles/{COUNT}/{config.tms_id}/13/0/0.png"
    assert 0 <= line["ms"] < 10_000 and line["bytes"] > 0 and line["client"] == "127.0.0.1"
    server.get("/no/such/thing")
    assert logged(server, lambda line: line.get("path") == "/no/such/thing")["status"] == 404


def test_no_web_tiles_run_is_served_as_its_pngs_would_be(runs, config, tmp_path):
    """`run --no-web-tiles` writes no PNG, but its ranges; `serve` colours its tiles exactly
    as the same run with web tiles pre-rendered them."""
    bare = load_config(runs.no_png)
    assert not list(Path(bare.dir_web_tiles).rglob("*.png"))
    assert bare.updated_config_path().exists()
    with Server(runs.no_png, tmp_path / "serve.log") as server:
        for stat, tile in all_png_tiles(config):
            answer = server.get(tile_url(bare, stat, tile))
            expected = png_pixels(Path(config.dir_web_tiles) / stat / config.tms_id /
                                  str(tile.z) / str(tile.x) / f"{tile.y}.png")  # fmt: skip
            assert np.array_equal(pixels(answer.body), expected), (stat, tile)
        page = server.get("/")
        assert page.status == 200 and b'"server":{"point":"point"' in page.body


def test_worker_processes_serve_and_stop_with_the_server(runs, config, tmp_path):
    """`--workers 2` (the default): both processes answer; SIGTERM ends them all."""
    with Server(runs.with_png, tmp_path / "serve.log", workers=2) as server:
        supervisor = psutil.Process(server.process.pid)
        deadline = time.monotonic() + 30
        while len(listening(supervisor, server.port)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # a worker that is up but not listening yet would get nothing
        workers = supervisor.children(recursive=True)
        assert len(listening(supervisor, server.port)) == 2
        for stat, tile in list(all_png_tiles(config))[:30]:  # a connection each
            assert server.get(tile_url(config, stat, tile)).status == 200
        logged(server, lambda line: line.get("path", "").endswith(f"/{tile.y}.png"))
        answered = {
            line["pid"]
            for line in server.log_lines()
            if line["event"] == "request" and line["path"].startswith("/tiles/")
        }
        assert len(answered) == 2  # the kernel spreads connections over both (SO_REUSEPORT)
    gone, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive


def listening(supervisor: psutil.Process, port: int) -> list[psutil.Process]:
    """The supervisor's worker processes that listen on `port` (each its own socket)."""
    found = []
    for worker in supervisor.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                   for c in worker.net_connections("tcp")):  # fmt: skip
                found.append(worker)
    return found


def test_a_port_in_use_is_refused(runs, server, tmp_path):
    """Workers bind with SO_REUSEPORT, but a second server never joins a port in use."""
    for workers in ("1", "2"):
        done = subprocess.run([RASTERFLOW, "serve", str(runs.with_png), "--port",
                               str(server.port), "--workers", workers],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode != 0, done.stderr
        assert server.get("/healthz").status == 200  # the first goes on
