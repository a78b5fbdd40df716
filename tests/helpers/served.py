"""Runs for `rasterflow serve` tests, made once per session, and a real server process.

- `served_runs(base)`: the demo's synthetic sample run twice, from the command line as a
  user runs it: `with_png` with web tiles (the pre-rendered PNGs are the truth) and
  `no_png` with `run --no-web-tiles` (what `serve` is for). Made once under `base` (a
  marker file says they are complete), so several test modules share them.
- `Server`: `rasterflow serve CONFIG --port P` as a subprocess on a free loopback port,
  its stderr (the JSON access log) in a file; `get` sends one raw HTTP/1.1 request (the
  path as given, not normalised, so `..` and `%2e%2e` reach the server as written).
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rasterflow.workflow.demo.synthetic import make_sample

RASTERFLOW = str(Path(sys.executable).parent / "rasterflow")
SAMPLE = {"z_range": (10, 13), "tiles": (3, 2), "cells_per_tile": 16, "seed": 11}


@dataclass(frozen=True)
class ServedRuns:
    with_png: Path  # config of the run with pre-rendered PNGs
    no_png: Path  # config of the same sample run with --no-web-tiles


def served_runs(base: Path) -> ServedRuns:
    runs = ServedRuns(base / "with_png" / "config.json", base / "no_png" / "config.json")
    if (base / "complete").exists():
        return runs
    sample = make_sample(base / "with_png", **SAMPLE)
    shutil.copytree(base / "with_png" / "staged", base / "no_png" / "staged")
    text = sample.config_path.read_text().replace(str(base / "with_png"), str(base / "no_png"))
    runs.no_png.write_text(text)
    for config, flags in ((runs.with_png, []), (runs.no_png, ["--no-web-tiles"])):
        done = subprocess.run([RASTERFLOW, "run", str(config), *flags], capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    (base / "complete").write_text("")
    return runs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self):
        return json.loads(self.body)


class Server:
    """A `rasterflow serve` process; use as a context manager."""

    def __init__(self, config: Path, log: Path, workers: int = 1, extra: tuple = ()):
        self.port = free_port()
        self.log_path = log
        self.command = [RASTERFLOW, "serve", str(config), "--port", str(self.port),
                        "--workers", str(workers), *extra]  # fmt: skip
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in __exit__)
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                if self.get("/healthz").status == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise AssertionError(f"server not up in 90 s: {self.log_path.read_text()[-3000:]}")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()

    def get(self, target: str, headers: dict | None = None, method: str = "GET") -> Answer:
        """One request with `target` sent exactly as written (no normalisation)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            conn.endheaders()
            response = conn.getresponse()
            body = response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
        finally:
            conn.close()

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines
