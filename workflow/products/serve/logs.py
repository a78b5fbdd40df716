"""Structured logs of the server: one JSON line per request, and one per problem.

Access lines: `{"ts", "event": "request", "method", "path", "query", "status", "ms", "bytes",
"client", "pid"}` (pid: the worker process); problem lines (an unreadable GeoTIFF, a bug):
`{"ts", "event": "error", "path", "file", "error"}`. Both go to stderr through the
`rasterflow.serve` logger, as plain lines, so a log collector parses them as they are.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime

LOGGER_NAME = "rasterflow.serve"
log = logging.getLogger(LOGGER_NAME)
PID = os.getpid()  # each worker is its own process (spawned: this module is imported in it)


def setup_logging(stream=None) -> None:
    """JSON lines of the server's logger to stderr (once per process: every worker)."""
    if log.handlers:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def log_event(event: str, **fields) -> None:
    log.info(json.dumps({"ts": _now(), "event": event, **fields}, default=str))


class AccessLog:
    """Pure ASGI middleware (no per-request task or body copy): times each HTTP request
    and logs it when its response has been sent."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        sent = {"status": 500, "bytes": 0}

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
            elif message["type"] == "http.response.body":
                sent["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            client = scope.get("client")
            log_event("request", method=scope["method"], path=scope["path"],
                      query=scope.get("query_string", b"").decode("latin-1"),
                      status=sent["status"], ms=round((time.perf_counter() - started) * 1000, 2),
                      bytes=sent["bytes"], client=client[0] if client else None,
                      pid=PID)  # fmt: skip
