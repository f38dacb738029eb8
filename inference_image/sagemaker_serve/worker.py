"""A worker process: uvicorn serving `app.ServeApp` on the listening socket the supervisor handed it."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import socket
from types import FrameType
from typing import Any

from .balance import ConnectionBalancer, SharedCounts
from .config import Settings
from .handler import Handler

__all__ = ["event_loop", "run_worker"]

log = logging.getLogger("sagemaker_serve.worker")
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGTERM this worker if the supervisor dies (even by SIGKILL), so none is orphaned."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def event_loop(settings: Settings, handler: Handler) -> str:
    """uvicorn's event loop for this worker: the standard library's when model calls run inline on it.

    uvloop is the faster loop, but it serves connections unfairly while its callbacks block: with a 1.4 ms
    busy handler, 64 keep-alive connections and one worker, p99 was 1.37 s under uvloop against 136 ms under
    asyncio at the same throughput (p50 ~90 ms for both; measured here with wrk) — some connections wait
    through a dozen rounds. The default pipeline predicts inline on the loop (`runner.ModelThread.run`), so it
    gets the fair loop; when every model call goes to the model thread (user code, micro-batching), the loop
    never blocks for long and uvloop's lower overhead wins."""
    inline = handler.inline_safe and not (settings.batching and handler.batchable)
    return "asyncio" if inline else "auto"


def run_worker(  # noqa: PLR0917
    settings: Settings,
    handler: Handler,
    sock: socket.socket,
    index: int,
    parent: int,
    connections: SharedCounts | None = None,
) -> int:
    """Serve until SIGTERM, then drain: stop accepting, finish in-flight requests, exit 0."""
    stop_early: list[int] = []
    servers: list[Any] = []

    def early_stop(signum: int, frame: FrameType | None) -> None:
        # A SIGTERM forwarded before uvicorn installs its own handler must still stop this worker.
        stop_early.append(signum)
        for server in servers:
            server.should_exit = True

    signal.signal(signal.SIGTERM, early_stop)
    signal.signal(signal.SIGINT, early_stop)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    _die_with_parent(parent)
    gc.enable()

    import uvicorn  # noqa: PLC0415 - already imported by the supervisor before the fork

    from .app import ServeApp  # noqa: PLC0415

    app = ServeApp(settings, handler)
    config = uvicorn.Config(
        app,
        loop=event_loop(settings, handler),
        http="auto",
        interface="asgi3",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=int(settings.keep_alive_s),
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
    )
    server = uvicorn.Server(config)
    servers.append(server)
    # uvicorn keeps this worker's open connections in `server_state.connections` (a set its protocols add
    # themselves to and discard on close); without it (another uvicorn), the kernel's hash alone balances.
    open_connections = getattr(getattr(server, "server_state", None), "connections", None)
    if connections is not None and len(connections) > 1 and isinstance(open_connections, set):
        app.balancer = ConnectionBalancer(connections, index, open_connections.__len__)
    log.info("worker %d (pid %d) serving", index, os.getpid())
    if stop_early:
        return 0
    server.run(sockets=[sock])
    log.info("worker %d (pid %d) stopped", index, os.getpid())
    return 0
