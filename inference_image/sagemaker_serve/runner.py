"""Where model code runs: on the worker's model thread, or inline on the event loop when that is cheap.

The model thread: model code runs there, one call at a time, with a per-request timeout. While it runs, the
event loop stays free: ``/ping`` answers during a long predict, and a request that exceeds the timeout is
answered 504 on time. On timeout the thread is also interrupted: an exception is raised inside it at the next
Python bytecode, so a runaway Python loop in user code stops and the worker serves the next request. A call
stuck inside one long C function (a huge numpy operation, ``time.sleep(100)``) cannot be interrupted; its
request still gets its 504 on time, and later requests of that worker wait until the call returns.

The hand-off has a price, measured here: ~25-35 µs per request in isolation (uvloop; a
``ThreadPoolExecutor`` costs ~55 µs), and under saturation, with the event-loop thread and the model thread
trading the GIL, ~10% of throughput: 1-row iris requests, 2 workers, 3 interleaved rounds on a quiet machine
gave 1,171/1,104 req/s (16/64 connections) through the thread against 1,313/1,233 inline, i.e. ~1,600-1,700
against ~1,430-1,520 µs of server CPU per request.

So the default pipeline (our decoders, ``model.predict``, our encoders; no user code) runs **inline** when
all of these hold: the body is at most `INLINE_MAX_BODY`, the model thread is idle, and recent calls took
less than `INLINE_MAX_S` on average. Blocking the loop for a few milliseconds is harmless (``/ping`` has a
2 s budget) on a loop that serves its ready connections in turn, which is why such a worker runs the standard
library's event loop rather than uvloop (`worker.event_loop`). Its timeout comes from SIGALRM, which
interrupts the call at the next bytecode (and interrupts sleeps). Everything else, user code in particular
(whose cost is unknown and may depend on the input), goes through the thread; so does the first call, until
a duration has been measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import PredictTimeout

__all__ = ["INLINE_MAX_BODY", "INLINE_MAX_S", "ModelThread", "call_cost"]

log = logging.getLogger("sagemaker_serve.runner")

#: Largest body whose default-pipeline predict may run inline (bounds the rows, hence the predict's cost).
INLINE_MAX_BODY = 64 * 1024
#: Inline only while recent calls averaged less than this many seconds.
INLINE_MAX_S = 0.005
_EWMA_WEIGHT = 0.3
#: A call that spent this much longer waiting than computing is measured by its wall time (see `call_cost`).
_WAITED_S = 0.05


def call_cost(wall_s: float, cpu_s: float) -> float:
    """What a call costs the worker, for the inline decision: its CPU time, or its wall time if it waited.

    On a busy machine the scheduler stretches the wall time of a 1 ms ``predict`` to 10-15 ms now and then (2
    cores shared by two workers and the clients, measured here); that is not the call's cost, and counting it
    moved workers to the slower thread path under exactly the load where speed matters. A call that sleeps or
    waits on I/O shows little CPU time but a long wall time, and is counted by the latter."""
    return wall_s if wall_s - cpu_s > _WAITED_S else cpu_s


class _Interrupted(BaseException):
    """Raised inside a model call that timed out. BaseException, so ``except Exception`` in user code does
    not swallow it."""


@dataclass(slots=True, eq=False)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    expired: bool = False
    retried: bool = field(default=False)
    finished: bool = False  # set on the loop by the first `_settle`: later ones are ignored


class ModelThread:
    """Runs model calls one at a time: on a background thread (`call`), or inline (`run_inline`) when
    `can_inline` says that is cheap. Either way a call that exceeds `timeout_s` fails with 504."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float, *, inline: bool = False) -> None:
        self._loop = loop
        self._timeout_s = timeout_s
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._current: _Job | None = None
        self._pending = 0  # calls handed to the thread that it has not finished yet
        self._idle = asyncio.Event()  # set while _pending == 0
        self._idle.set()
        self._recent_s: float | None = None  # moving average of call durations; None until measured
        self._in_inline = False
        # An inline call's timeout needs SIGALRM, which only the main thread can handle.
        self._inline = inline and (timeout_s <= 0 or threading.current_thread() is threading.main_thread())
        if self._inline and timeout_s > 0:
            signal.signal(signal.SIGALRM, self._on_alarm)
        self._thread = threading.Thread(target=self._run, name="model", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ inline, on the event loop
    def can_inline(self) -> bool:
        recent = self._recent_s
        return self._inline and self._pending == 0 and recent is not None and recent < INLINE_MAX_S

    async def run(self, fn: Callable[..., Any], *args: Any, inline: bool) -> Any:
        """Run a call where it is cheapest: inline when `inline` is allowed and recent calls were fast (after
        letting the model thread finish what it holds, so calls never overlap), else on the model thread.
        Without the wait, a steady stream of requests would keep the thread busy and never switch."""
        recent = self._recent_s
        if inline and self._inline and recent is not None and recent < INLINE_MAX_S:
            deadline = self._loop.time() + (self._timeout_s or 60.0)
            while self._pending and (left := deadline - self._loop.time()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), left)
            if not self._pending:
                return self.run_inline(fn, *args)
        return await self.call(fn, *args)

    def run_inline(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn` on the calling (event-loop) thread, its timeout enforced by SIGALRM."""
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return self._inline_call(fn, args)
        except _Interrupted:
            log.warning("inline model call timed out after %g s; interrupted", self._timeout_s)
            raise self._timeout_error() from None
        finally:
            self._observe(call_cost(time.perf_counter() - started, time.thread_time() - cpu))

    def _inline_call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        timed = self._timeout_s > 0
        self._in_inline = True
        if timed:
            signal.setitimer(signal.ITIMER_REAL, self._timeout_s)
        try:
            return fn(*args)
        finally:
            self._in_inline = False  # first: from here on an alarm is ignored
            if timed:
                signal.setitimer(signal.ITIMER_REAL, 0)

    def _on_alarm(self, signum: int, frame: object) -> None:
        if self._in_inline:
            raise _Interrupted

    def _observe(self, seconds: float) -> None:
        recent = self._recent_s
        self._recent_s = seconds if recent is None else recent + _EWMA_WEIGHT * (seconds - recent)

    def _timeout_error(self) -> PredictTimeout:
        return PredictTimeout(
            f"the model did not answer within {self._timeout_s:g} s (SAGEMAKER_MODEL_SERVER_TIMEOUT)"
        )

    # ------------------------------------------------------------------ on the model thread
    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        job = _Job(fn, args, self._loop.create_future())
        self._pending += 1
        self._idle.clear()
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
        job.future.set_exception(self._timeout_error())
        # The lock guarantees the interrupt is aimed at this job while it runs, never at a later one.
        with self._lock:
            if self._current is job and self._thread.ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread.ident), ctypes.py_object(_Interrupted)
                )
                log.warning("model call timed out after %g s; interrupting it", self._timeout_s)

    def close(self) -> None:
        self._queue.put(None)

    def _settle(self, job: _Job, ok: bool, value: Any, seconds: float | None = None) -> None:
        """On the loop: the thread is done with `job` (finished, failed, interrupted or skipped)."""
        if job.finished:
            return
        job.finished = True
        self._pending -= 1
        if not self._pending:
            self._idle.set()
        if seconds is not None:
            self._observe(seconds)
        if job.future.done():
            return
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value if value is not None else self._timeout_error())

    def _run(self) -> None:
        job: _Job | None = None
        while True:
            try:
                job = self._queue.get()
                if job is None:
                    return
                if job.expired:
                    self._loop.call_soon_threadsafe(self._settle, job, False, None)
                    continue
                with self._lock:
                    self._current = job
                started, cpu = time.perf_counter(), time.thread_time()
                try:
                    value, ok = job.fn(*job.args), True
                except _Interrupted:
                    with self._lock:
                        self._current = None
                    if not job.expired and not job.retried:
                        # An interrupt aimed at an earlier call landed late: run this one again.
                        job.retried = True
                        self._queue.put(job)
                    else:
                        elapsed = call_cost(time.perf_counter() - started, time.thread_time() - cpu)
                        self._loop.call_soon_threadsafe(self._settle, job, False, None, elapsed)
                    continue
                except BaseException as exc:
                    value, ok = exc, False
                elapsed = call_cost(time.perf_counter() - started, time.thread_time() - cpu)
                with self._lock:
                    self._current = None
                self._loop.call_soon_threadsafe(self._settle, job, ok, value, elapsed)
            except _Interrupted:
                # An interrupt that arrived after its call had returned (it is aimed only at a running call,
                # and lands before the next `get`): make sure that call is accounted for; `_settle` ignores
                # a second report.
                if job is not None:
                    self._loop.call_soon_threadsafe(self._settle, job, False, None)
                continue
            except RuntimeError:
                # The event loop is closed (worker shutting down).
                return
