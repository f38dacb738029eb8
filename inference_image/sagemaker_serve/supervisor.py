"""The supervisor: listen at once, load the model once, fork the workers, replace dead ones, drain on SIGTERM.

Why hand-rolled and not gunicorn + uvicorn-worker (``--preload`` also loads once and forks, and replaces dead
workers): gunicorn shares one listening socket between its workers, and with asyncio workers that socket
balances badly — each worker's accept loop takes every queued connection at once, so a client's keep-alive
connections pile onto one worker while the other idles (measured here: the naive uvicorn ``--workers 2``
peer served 16 keep-alive connections from one worker at ~1/2 the capacity). It also cannot answer ``/ping``
with 503 during a slow load: the port only opens once the app is loaded. What this module needs from a process
manager is ~150 lines, and it gets the rest right:

- **Listen first**: the listening sockets exist within ~100 ms of start (only the standard library is imported
  by then), and `LoadingResponder` answers 503 on them while the model loads.
- **One socket per worker** (``SO_REUSEPORT``): the kernel spreads new connections across the workers by hash,
  and the supervisor keeps every socket open, so a replaced worker inherits the same socket and the
  connections queued on it while it was down are not lost.
- **Fork after load**: the model and every import are loaded once, then ``gc.freeze()`` moves them out of the
  garbage collector's reach (its passes would otherwise write to every object's header and un-share the pages)
  and ``os.fork()`` gives each worker the same physical pages, copy-on-write. N workers cost little more than
  one in memory, and the workers start in milliseconds.
- **Replace dead workers**: a worker that exits or is killed is forked again from the loaded supervisor.
- **Drain**: SIGTERM (or SIGINT) is forwarded to every worker; each stops accepting, finishes its in-flight
  requests within ``SERVE_GRACEFUL_TIMEOUT`` (20 s; SageMaker sends SIGKILL 30 s after SIGTERM) and exits.

Caveat of fork-after-load: a ``model_fn`` that starts threads (some frameworks do) forks them away; such
models should start their threads lazily, in the worker.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any

from .balance import SharedCounts
from .config import Settings
from .logs import setup_logging
from .responder import LoadingResponder

__all__ = ["run"]

log = logging.getLogger("sagemaker_serve.supervisor")

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


class _Stop(BaseException):
    """SIGTERM/SIGINT arrived while the model was loading."""


class BindError(OSError):
    pass


def bind_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on one port, each with SO_REUSEPORT (one per worker).

    SO_REUSEPORT would also let a second server started on the same port silently share its traffic, so a
    plain socket probes the port first: it can only bind when nobody else is listening there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:
        probe = socket.socket(family, socket.SOCK_STREAM)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
        except OSError as exc:
            raise BindError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
        finally:
            probe.close()
    sockets: list[socket.socket] = []
    for _ in range(count):
        # Say IPPROTO_TCP explicitly: asyncio's loop only sets TCP_NODELAY on accepted connections whose
        # socket names it, and without it a response written in two parts (head, body) waits for the
        # client's delayed ACK: 40 ms a request (uvloop sets TCP_NODELAY either way).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            for other in sockets:
                other.close()
            raise BindError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
        port = sock.getsockname()[1]  # port 0: the first socket picks one, the others join it
        sock.listen(2048)
        sockets.append(sock)
    return sockets


def _limit_threads(workers: int) -> None:
    """Give native thread pools (OpenMP, OpenBLAS, MKL) a fair share of the CPUs per worker, unless the user
    chose: N workers each running CPU-count threads would oversubscribe the machine."""
    share = str(max(1, (os.cpu_count() or 1) // workers))
    for name in _THREAD_VARS:
        os.environ.setdefault(name, share)


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sockets: list[socket.socket] = []
        self.workers: dict[int, int] = {}  # pid -> socket index
        #: Open connections per worker, for `balance.ConnectionBalancer` (shared memory, made before forking).
        self.connections = SharedCounts(settings.workers)
        self.started: dict[int, float] = {}  # socket index -> last fork time
        self.handler: Any = None
        self.pid = os.getpid()
        #: Exit code when `load` returns False: 1 for a failed load, 0 for a stop signal.
        self.exit_code = 1

    # ---------------------------------------------------------------- phase 1: listen and load
    def load(self) -> bool:
        """Bind, answer 503 while loading, load. False when the load failed or a stop signal arrived."""
        settings = self.settings
        self.sockets = bind_sockets(settings.host, settings.port, settings.workers)
        port = self.sockets[0].getsockname()[1]
        log.info(
            "listening on %s:%d with %d worker socket(s); loading the model from %s",
            settings.host,
            port,
            settings.workers,
            settings.model_dir,
        )
        responder = LoadingResponder(self.sockets)
        responder.start()

        def stop_loading(signum: int, frame: FrameType | None) -> None:
            raise _Stop

        previous = {sig: signal.signal(sig, stop_loading) for sig in (signal.SIGTERM, signal.SIGINT)}
        started = time.perf_counter()
        try:
            _limit_threads(settings.workers)
            from .handler import LoadError, load_handler  # noqa: PLC0415

            try:
                self.handler = load_handler(
                    settings.model_dir,
                    settings.program,
                    settings.default_accept,
                    forest_fast_path=settings.forest_fast_path,
                )
                self.handler.warm_up()
                # Everything the workers need, imported once here so that the workers share it and do not
                # each import it after the fork (uvicorn picks these protocol modules at start-up).
                import uvicorn  # noqa: PLC0415
                import uvicorn.lifespan.on  # noqa: PLC0415

                from . import app, codecs, runner, worker  # noqa: F401, PLC0415

                with contextlib.suppress(ImportError):  # the fast paths, when installed
                    import uvicorn.loops.uvloop  # noqa: PLC0415
                    import uvicorn.protocols.http.httptools_impl  # noqa: F401, PLC0415

                if settings.batching:
                    from . import batching  # noqa: F401, PLC0415
            except LoadError as exc:
                log.error("cannot serve: %s", exc, exc_info=exc.__cause__ is not None)
                return False
            except ImportError as exc:  # a dependency of the server itself is missing from the image
                log.error("cannot serve: %s", exc, exc_info=True)
                return False
        except _Stop:
            log.info("stop signal while loading; exiting")
            self.exit_code = 0
            return False
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            responder.stop()
        log.info(
            "model ready after %.2f s (answered %d request(s) with 503 meanwhile)",
            time.perf_counter() - started,
            responder.answered,
        )
        return True

    # ---------------------------------------------------------------- phase 2: workers
    def _fork(self, index: int) -> None:
        self.started[index] = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                for i, sock in enumerate(self.sockets):
                    if i != index:
                        sock.close()
                from .handler import Handler  # noqa: PLC0415
                from .worker import run_worker  # noqa: PLC0415

                assert isinstance(self.handler, Handler)
                code = run_worker(
                    self.settings, self.handler, self.sockets[index], index, self.pid, self.connections
                )
            except BaseException:
                log.exception("worker %d crashed", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.workers[pid] = index

    def _reap(self, stopping: bool) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            index = self.workers.pop(pid, None)
            if index is None:
                continue
            self.connections[index] = 0  # its connections died with it
            if stopping:
                log.info("worker %d (pid %d) exited: %s", index, pid, _describe(status))
                continue
            log.error("worker %d (pid %d) died (%s); starting a replacement", index, pid, _describe(status))
            if time.monotonic() - self.started.get(index, 0.0) < 1.0:
                time.sleep(1.0)  # crash loop: do not fork as fast as the CPU allows
            self._fork(index)

    def serve(self) -> int:
        watched = {signal.SIGCHLD, *_STOP_SIGNALS}
        signal.pthread_sigmask(signal.SIG_BLOCK, watched)
        # The documented recipe for fork servers: GC disabled since start-up, frozen right before the fork,
        # enabled in the children. No full collection first: it costs ~80 ms of cold start for little memory.
        gc.freeze()
        for index in range(len(self.sockets)):
            self._fork(index)
        log.info("serving with %d worker(s): %s", len(self.workers), sorted(self.workers))
        while True:
            info = signal.sigtimedwait(watched, 1.0)
            self._reap(stopping=False)
            if info is not None and info.si_signo in _STOP_SIGNALS:
                return self._drain(signal.Signals(info.si_signo).name)

    def _drain(self, why: str) -> int:
        log.info("%s: draining %d worker(s)", why, len(self.workers))
        for pid in list(self.workers):
            _signal(pid, signal.SIGTERM)
        # New connections now get refused instead of queueing on sockets nobody will accept from.
        for sock in self.sockets:
            sock.close()
        deadline = time.monotonic() + self.settings.graceful_timeout_s + 3.0
        while self.workers and time.monotonic() < deadline:
            signal.sigtimedwait({signal.SIGCHLD}, 0.2)
            self._reap(stopping=True)
        for pid in list(self.workers):
            log.error("worker pid %d did not stop in time; killing it", pid)
            _signal(pid, signal.SIGKILL)
        while self.workers:
            signal.sigtimedwait({signal.SIGCHLD}, 0.2)
            self._reap(stopping=True)
        log.info("stopped")
        return 0


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def run(settings: Settings) -> int:
    """Run the server until SIGTERM; return the process exit code."""
    setup_logging(settings.log_level)
    # Imports and unpickling create many objects; collecting during them only costs time at start-up.
    gc.disable()
    supervisor = Supervisor(settings)
    try:
        if not supervisor.load():
            return supervisor.exit_code
    except BindError as exc:
        log.error("%s", exc.strerror)
        return 1
    return supervisor.serve()
