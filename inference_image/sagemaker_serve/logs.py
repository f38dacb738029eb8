"""JSON log lines on stderr: the server's own messages through `logging`, and one line per request.

The per-request line skips the logging framework (records, handlers, formatters cost ~10-20 µs): it is one
pre-formatted string and one ``write(2)``, which is atomic for lines under PIPE_BUF, so workers sharing stderr
never interleave within a line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import traceback

__all__ = ["JsonFormatter", "RequestLog", "setup_logging"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(doc, separators=(",", ":"))  # same shape as the request lines


def setup_logging(level: int) -> None:
    """Route every logger (ours and uvicorn's) to one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # library warnings become JSON lines too
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # uvicorn's per-connection chatter is noise at INFO; our own request line replaces its access log.
    logging.getLogger("uvicorn.error").setLevel(max(level, logging.WARNING))


class RequestLog:
    """Writes the one-line-per-request record: method, path, status, latency, request id, sizes, worker."""

    def __init__(self, level: int) -> None:
        self.info = level <= logging.INFO
        self.errors = level <= logging.ERROR
        self.pid = os.getpid()

    def write(  # noqa: PLR0917 - positional on purpose: called once per request on the hot path
        self,
        method: str,
        path: str,
        status: int,
        started: float,
        request_id: str,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        level = "ERROR" if status >= 500 else "INFO"
        if not (self.info or (status >= 500 and self.errors)):
            return
        latency_ms = (time.perf_counter() - started) * 1000.0
        line = (
            f'{{"ts":{time.time():.3f},"level":"{level}","logger":"request","pid":{self.pid},'
            f'"method":"{method}","path":{json.dumps(path)},"status":{status},"latency_ms":{latency_ms:.3f},'
            f'"request_id":{json.dumps(request_id)},"bytes_in":{bytes_in},"bytes_out":{bytes_out}}}\n'
        )
        with contextlib.suppress(OSError):
            os.write(2, line.encode())
