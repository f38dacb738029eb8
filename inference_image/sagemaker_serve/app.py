"""The worker's ASGI application: a lean hot path for ``/ping`` and ``/invocations``, FastAPI for the rest.

Why not route everything through FastAPI: its routing, request object and response classes cost ~90 µs
per request on this machine, against ~1 µs for a plain ASGI callable (measured in-process with uvloop, no
network, 20,000 calls each), which would be most of a 1-row request's serving overhead. The two endpoints
SageMaker calls at volume are therefore plain ASGI callables; FastAPI serves ``/execution-parameters``, the
OpenAPI schema (``/openapi.json``, used by the fuzz tests) and ``/docs``. It is imported lazily, on the first
request that needs it, so it adds neither to the cold start nor to the memory of workers that never see such
a request.

Every error leaves through `_send_error` as JSON (``{"error", "status", "message", "request_id"}``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .balance import ConnectionBalancer
from .config import Settings
from .content_types import parse_media_type
from .errors import PayloadTooLarge, ServeError, error_body
from .handler import Context, Handler
from .logs import RequestLog
from .runner import INLINE_MAX_BODY

__all__ = ["ServeApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("sagemaker_serve.app")

_CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
_EMPTY_200 = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
_EMPTY_BODY = {"type": "http.response.body", "body": b""}
_JSON = b"application/json"
_CONNECTION_CLOSE = (b"connection", b"close")


class _ClientGone(Exception):
    """The client disconnected before the request body was complete."""


class ServeApp:
    """One per worker process. `handler` holds the model loaded by the supervisor before the fork."""

    def __init__(self, settings: Settings, handler: Handler) -> None:
        self.settings = settings
        self.handler = handler
        self.ready = False
        self._requests = RequestLog(settings.log_level)
        self._ids = itertools.count(1)
        self._id_prefix = f"{os.getpid():x}-"
        self._runner: Any = None
        self._batcher: Any = None
        self._api: Any = None
        #: Set by the worker when there are several: closes a connection now and then to even them out.
        self.balancer: ConnectionBalancer | None = None

    # ------------------------------------------------------------------ ASGI entry
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path == "/invocations":
                await self._invocations(scope, receive, send)
            elif path == "/ping":
                await self._ping(scope, send)
            else:
                await self._other(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start(self) -> None:
        """Create the model thread (and the batcher) on this worker's event loop."""
        from .runner import ModelThread  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        self._runner = ModelThread(loop, self.settings.timeout_s, inline=self.handler.inline_safe)
        if self.settings.batching and self.handler.batchable:
            from .batching import MicroBatcher  # noqa: PLC0415

            self._batcher = MicroBatcher(
                loop,
                self._runner,
                self.handler.predict,
                self.settings.batch_max_size,
                self.settings.batch_max_wait_s,
            )
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        if self._runner is not None:
            self._runner.close()

    # ------------------------------------------------------------------ /ping
    async def _ping(self, scope: Scope, send: Send) -> None:
        started = time.perf_counter()
        if self.ready:
            await send(_EMPTY_200)
            await send(_EMPTY_BODY)
            status = 200
        else:
            status = 503
            await self._send_error(send, 503, "unavailable", "the server is shutting down", "")
        self._requests.write(scope["method"], "/ping", status, started, "", 0, 0)

    # ------------------------------------------------------------------ /invocations
    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            headers[raw_name.decode("latin-1")] = raw_value.decode("latin-1")
        request_id = (
            headers.get("x-amzn-sagemaker-inference-id")
            or headers.get("x-amzn-requestid")
            or headers.get("x-request-id")
            or f"{self._id_prefix}{next(self._ids):x}"
        )[:128]
        extra: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id.encode("latin-1", "replace"))]
        custom = headers.get(_CUSTOM_ATTRIBUTES)
        if custom is not None:
            extra.append((_CUSTOM_ATTRIBUTES.encode(), custom.encode("latin-1")))
        if self.balancer is not None and self.balancer.should_close():
            extra.append(_CONNECTION_CLOSE)
        status, size_in, size_out = 200, 0, 0
        try:
            if scope["method"] != "POST":
                await self._send_error(
                    send,
                    405,
                    "method_not_allowed",
                    "use POST /invocations",
                    request_id,
                    [(b"allow", b"POST")],
                )
                status = 405
                return
            media = parse_media_type(headers.get("content-type") or "application/json")
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.settings.max_body_bytes:
                raise self._too_large(int(declared))
            handler = self.handler
            handler.check_content_type(media)
            accept = handler.response_type(headers.get("accept"), media)
            body = await self._read_body(receive)
            size_in = len(body)
            context = Context(headers, str(handler.model_dir), request_id)
            if self._batcher is not None:
                prediction = await self._batcher.submit(handler.decode(body, media))
                out, out_type = handler.encode(prediction, accept), accept
            else:
                inline = handler.inline_safe and size_in <= INLINE_MAX_BODY
                out, out_type = await self._runner.run(
                    handler.run, body, media, accept, context, inline=inline
                )
            for key, value in context.response_headers.items():
                if key == _CUSTOM_ATTRIBUTES:
                    extra = [h for h in extra if h[0] != _CUSTOM_ATTRIBUTES.encode()]
                extra.append((key.encode("latin-1"), value.encode("latin-1")))
            size_out = len(out)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", out_type.encode("latin-1")),
                        (b"content-length", str(size_out).encode()),
                        *extra,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": out})
        except ServeError as exc:
            status = exc.status
            size_out = await self._send_error(send, status, exc.code, exc.message, request_id, extra)
        except _ClientGone:
            status = 499
        except Exception:
            log.exception("unexpected error (request %s)", request_id)
            status = 500
            size_out = await self._send_error(
                send,
                500,
                "internal_error",
                "internal server error (details are in the server log)",
                request_id,
                extra,
            )
        finally:
            self._requests.write("POST", "/invocations", status, started, request_id, size_in, size_out)

    def _too_large(self, size: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"request body of {size} bytes exceeds the limit of {self.settings.max_body_bytes} bytes "
            "(SERVE_MAX_REQUEST_BYTES)"
        )

    async def _read_body(self, receive: Receive) -> bytes:
        """Read the body, failing with 413 as soon as it passes the limit: the rest is never buffered."""
        limit = self.settings.max_body_bytes
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise self._too_large(len(body))
            return body
        chunks, size = [body], len(body)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _send_error(  # noqa: PLR0917
        self,
        send: Send,
        status: int,
        code: str,
        message: str,
        request_id: str,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> int:
        body = error_body(status, code, message, request_id or None)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", _JSON),
                    (b"content-length", str(len(body)).encode()),
                    *(extra or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return len(body)

    # ------------------------------------------------------------------ everything else: FastAPI
    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500
        size_out = 0

        async def send_and_record(message: Message) -> None:
            nonlocal status, size_out
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size_out += len(message.get("body", b""))
            await send(message)

        try:
            if self._api is None:
                from .api import build_api  # noqa: PLC0415 - FastAPI is imported on first use only

                self._api = build_api(self.settings)
            await self._api(scope, receive, send_and_record)
        finally:
            path = scope.get("path", "")
            self._requests.write(scope.get("method", "?"), path, status, started, "", 0, size_out)
