"""The worker's model thread: model code runs here, one call at a time, with a per-request timeout.

Why a thread and not inline on the event loop: a predict that runs on the loop blocks ``/ping`` and every
other connection of that worker for its whole duration, and a timeout could only come from SIGALRM, which
interrupts whatever the loop happens to be doing. With one dedicated thread the loop stays free: ``/ping``
answers during a long predict, and a request that exceeds the timeout is answered 504 on time. The price,
measured here: the hand-off costs ~25-35 µs per request in isolation (uvloop; a ``ThreadPoolExecutor`` costs
~55 µs), about 2% of the iris forest's ~1.3 ms ``predict``; the whole serving overhead, measured with a model
whose predict does nothing, is ~130-160 µs of CPU per request against ~55-80 µs for a bare uvicorn app. An
inline variant measured side by side (same run, interleaved) was not consistently faster on this shared
2-core machine: rounds differed by more than the variants did.

On timeout the thread is also interrupted: an exception is raised inside it at the next Python bytecode, so a
runaway Python loop in user code stops and the worker serves the next request. A call that is stuck inside
one long C function (a huge numpy operation, ``time.sleep(100)``) cannot be interrupted; its request still
gets its 504 on time, and later requests of that worker wait until the call returns.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import PredictTimeout

__all__ = ["ModelThread"]

log = logging.getLogger("sagemaker_serve.runner")


class _Interrupted(BaseException):
    """Raised inside the model thread when its call timed out. BaseException, so ``except Exception`` in
    user code does not swallow it."""


@dataclass(slots=True, eq=False)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    expired: bool = False
    retried: bool = field(default=False)


class ModelThread:
    """Runs callables on one background thread; `call` awaits the result with an optional timeout."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self._loop = loop
        self._timeout_s = timeout_s
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._current: _Job | None = None
        self._thread = threading.Thread(target=self._run, name="model", daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        job = _Job(fn, args, self._loop.create_future())
        self._queue.put(job)
        timer = self._loop.call_later(self._timeout_s, self._expire, job) if self._timeout_s > 0 else None
        try:
            return await job.future
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, job: _Job) -> None:
        if job.future.done():
            return
        job.expired = True
        job.future.set_exception(
            PredictTimeout(
                f"the model did not answer within {self._timeout_s:g} s (SAGEMAKER_MODEL_SERVER_TIMEOUT)"
            )
        )
        # The lock guarantees the interrupt is aimed at this job while it runs, never at a later one.
        with self._lock:
            if self._current is job and self._thread.ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread.ident), ctypes.py_object(_Interrupted)
                )
                log.warning("model call timed out after %g s; interrupting it", self._timeout_s)

    def close(self) -> None:
        self._queue.put(None)

    def _settle(self, job: _Job, ok: bool, value: Any) -> None:
        if job.future.done():
            return
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)

    def _run(self) -> None:
        while True:
            try:
                job = self._queue.get()
                if job is None:
                    return
                if job.expired:
                    continue
                with self._lock:
                    self._current = job
                try:
                    value, ok = job.fn(*job.args), True
                except _Interrupted:
                    with self._lock:
                        self._current = None
                    if not job.expired and not job.retried:
                        # An interrupt aimed at an earlier call landed late: run this one again.
                        job.retried = True
                        self._queue.put(job)
                    continue
                except BaseException as exc:
                    value, ok = exc, False
                with self._lock:
                    self._current = None
                self._loop.call_soon_threadsafe(self._settle, job, ok, value)
            except _Interrupted:
                # An interrupt that arrived after its call had already finished: nothing to do.
                continue
            except RuntimeError:
                # The event loop is closed (worker shutting down).
                return
