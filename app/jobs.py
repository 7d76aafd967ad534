"""Background jobs: a QThreadPool of QRunnable workers reporting through Qt signals.

The pattern is superqt's ``_qthreading`` / napari's workers: a QRunnable is not a QObject,
so each worker carries a small QObject whose signals are emitted from the pool thread and
delivered, queued, on the UI thread. Cancellation is cooperative: every job gets a
:class:`engines.api.CancelToken` that the engine checks between stages. The runner owns
its pool (so heavy work can be limited to one thread) and waits for its workers when
the application quits.

Engines run in a worker *process* (:mod:`app.engine_process`) when their class can be
named from one: native code in them (pycolmap, open3d, torch, mediapipe) holds the GIL
for seconds, which a thread cannot hide from the UI. The pool thread waits on the process
and relays its progress; the value arrives as before. ``engine_processes=False`` (or
``CAPTURE_STUDIO_ENGINE_PROCESS=0``) keeps them in the pool threads.

:meth:`JobRunner.call` runs a function in the pool and waits for it in a local event
loop, so a caller that needs the value at once (Save project) gets it while the window
keeps repainting and its timers keep running.

Signals (all carry the job id first):
``started(id)``, ``progress(id, fraction, message)``, ``finished(id, value)``,
``failed(id, message, details)`` and ``cancelled(id)``. Exactly one of finished /
failed / cancelled arrives per job. A job cancelled while it was finishing is reported
as cancelled and its value dropped, so a cancelled job never leaves a result.
"""

from __future__ import annotations

import itertools
import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QEventLoop, QObject, QRunnable, QThreadPool, Signal, Slot

from app import engine_process
from engines.api import CancelToken, Cancelled, EngineError

log = logging.getLogger("app.jobs")

# At most this many progress signals per second per job (plus the last report): an
# engine may report in a tight loop, every signal costs the UI thread a slot call, and
# every repaint of a window holding the OpenGL 3D view costs a composition of the whole
# window (25-35 ms with software GL on 2 busy cores, benchmarks/viewport.py's empty
# scene): 5 a second keep a progress bar moving and the window free.
PROGRESS_HZ = 5.0
# At most one preview image a second per job reaches the UI.
PREVIEW_INTERVAL_S = 1.0

_NOTHING = object()
JobFn = Callable[[Callable[[float, str], None], CancelToken], Any]


@dataclass
class Job:
    id: int
    title: str
    kind: str
    token: CancelToken = field(default_factory=CancelToken)
    state: str = "queued"  # queued, running, done, failed, cancelled
    fraction: float = 0.0
    message: str = ""
    started_at: float = 0.0
    meta: dict = field(default_factory=dict)


class _WorkerSignals(QObject):
    started = Signal(int)
    progress = Signal(int, float, str)
    finished = Signal(int, object)
    failed = Signal(int, str, str)
    cancelled = Signal(int)
    preview = Signal(int, object, str)


class _Worker(QRunnable):
    def __init__(self, job: Job, fn: JobFn, signals: _WorkerSignals) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.job, self.fn, self.signals = job, fn, signals
        self._last_emit = 0.0
        self._pending: tuple[float, str] | None = None
        self._last_preview = 0.0

    def _preview(self, rgb, message: str = "") -> None:
        """An engine's picture of its work so far (a splat's render): at most one a second."""
        now = time.monotonic()
        if now - self._last_preview < PREVIEW_INTERVAL_S:
            return
        self._last_preview = now
        self.signals.preview.emit(self.job.id, rgb, str(message))

    def _reporter(self):
        """The ``progress`` callable handed to the job, with a ``preview`` attribute (the
        engines' optional way to send an image, see engines/splat/engine.py)."""

        def progress(fraction: float, message: str = "") -> None:
            self._progress(fraction, message)

        progress.preview = self._preview
        return progress

    def _progress(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        fraction = min(max(float(fraction), 0.0), 1.0)
        # Throttle: an engine may report thousands of times a second. The latest report
        # is kept and delivered with the next one let through, or when the job ends.
        if fraction < 1.0 and now - self._last_emit < 1.0 / PROGRESS_HZ:
            self._pending = (fraction, str(message))
            return
        self._last_emit, self._pending = now, None
        self.signals.progress.emit(self.job.id, fraction, str(message))

    def _flush(self) -> None:
        if self._pending is not None:
            fraction, message = self._pending
            self._pending = None
            self.signals.progress.emit(self.job.id, fraction, message)

    def run(self) -> None:  # runs on a pool thread
        job, sig = self.job, self.signals
        if job.token.is_set():
            sig.cancelled.emit(job.id)
            return
        sig.started.emit(job.id)
        try:
            try:
                value = self.fn(self._reporter(), job.token)
            finally:
                self._flush()
        except Cancelled:
            sig.cancelled.emit(job.id)
            return
        except EngineError as e:
            log.info("job %s (%s): %s", job.id, job.title, e)
            sig.failed.emit(job.id, str(e), "")
            return
        except Exception as e:  # a bug: the traceback goes to the log file
            details = traceback.format_exc()
            log.error("job %s (%s) failed:\n%s", job.id, job.title, details)
            sig.failed.emit(job.id, f"{job.title} failed: {type(e).__name__}: {e}", details)
            return
        if job.token.is_set():
            sig.cancelled.emit(job.id)
        else:
            sig.finished.emit(job.id, value)


class _Captured:
    """An exception raised by a :meth:`JobRunner.call` function, carried back as a value so
    that the caller gets the exception itself (an OSError stays an OSError)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    @staticmethod
    def run(fn, progress, cancel):
        try:
            return fn(progress, cancel)
        except Cancelled:
            raise
        except Exception as e:
            return _Captured(e)


class JobRunner(QObject):
    """Runs callables off the UI thread; see the module docstring for the signals."""

    started = Signal(int)
    progress = Signal(int, float, str)
    finished = Signal(int, object)
    failed = Signal(int, str, str)
    cancelled = Signal(int)
    added = Signal(int)
    preview = Signal(int, object, str)  # job id, RGB uint8 array (H, W, 3), caption

    def __init__(
        self, parent: QObject | None = None, max_threads: int = 2, engine_processes: bool | None = None
    ) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._signals: dict[int, _WorkerSignals] = {}
        self._callbacks: dict[int, tuple] = {}
        self.engine_processes = engine_process.enabled() if engine_processes is None else bool(engine_processes)
        self.prepare_result: Callable[[Any], None] | None = None
        """Called in the pool thread with each engine Result before it is delivered: work
        the UI thread would otherwise do when the result arrives (thumbnails, display
        geometry; :func:`app.display.prepare_result`). Errors in it are logged, not fatal."""

    # -- submitting --------------------------------------------------------------------
    def submit(
        self, fn: JobFn, title: str, kind: str = "task", on_done=None, on_error=None, meta: dict | None = None
    ) -> Job:
        """Run ``fn(progress, cancel)`` in the pool and return its :class:`Job`.

        ``on_done(value)`` / ``on_error(message, details)`` are called on the UI thread.
        """
        job = Job(next(self._ids), title, kind, meta=dict(meta or {}))
        sig = _WorkerSignals()
        sig.started.connect(self._on_started)
        sig.progress.connect(self._on_progress)
        sig.finished.connect(self._on_finished)
        sig.failed.connect(self._on_failed)
        sig.cancelled.connect(self._on_cancelled)
        sig.preview.connect(self._on_preview)
        self.jobs[job.id] = job
        self._signals[job.id] = sig
        self._callbacks[job.id] = (on_done, on_error)
        self.added.emit(job.id)
        self.pool.start(_Worker(job, fn, sig))
        return job

    def run_engine(
        self, engine_cls: type, inputs: list, params, on_done=None, on_error=None, meta: dict | None = None
    ) -> Job:
        """Run an engine; the value delivered by ``finished`` is its Result."""

        in_process = self.engine_processes and engine_process.runs_in_process(engine_cls)

        def work(progress, cancel):
            engine_cls.check_inputs(inputs)
            result = _NOTHING
            if in_process:
                try:
                    result = engine_process.call(
                        engine_process.run_engine, (engine_cls, inputs, params), progress, cancel
                    )
                except engine_process.NotSendable as e:  # e.g. an input holding an open file
                    log.info("%s runs in this process: %s", engine_cls.name, e)
            if result is _NOTHING:
                result = engine_cls().run(inputs, params, progress, cancel)
            cancel.raise_if_set()
            if self.prepare_result is not None:
                try:
                    self.prepare_result(result)
                except Exception:  # display preparation is an optimisation
                    log.warning("preparing %s's result for display failed", engine_cls.name, exc_info=True)
            return result

        return self.submit(
            work,
            engine_cls.title or engine_cls.name,
            "engine",
            on_done,
            on_error,
            meta={"engine": engine_cls.name, "process": in_process, **(meta or {})},
        )

    def warm_up(self, fn: Callable[[], Any], title: str, kind: str = "warm-up") -> Job:
        """Run ``fn()`` where engines run (a worker process, when they run in one), so the
        models it loads are ready for the first engine job and this process stays light."""
        if self.engine_processes and engine_process.runs_in_process(fn):
            return self.submit(
                lambda progress, cancel: engine_process.call(engine_process.call_plain, (fn,), progress, cancel),
                title,
                kind,
                meta={"process": True},
            )
        return self.submit(lambda progress, cancel: fn(), title, kind, meta={"process": False})

    def call(self, fn: JobFn, title: str, kind: str = "task", meta: dict | None = None):
        """Run ``fn(progress, cancel)`` in the pool and return its value (or raise its
        exception) once it is done. The wait is a local event loop that leaves out user
        input: the window repaints, timers and other jobs' signals are served, and the UI
        thread is never blocked for the length of the call."""
        box: dict = {}
        loop = QEventLoop()

        def done(value):
            box["value"] = value
            loop.quit()

        def failed(message, details):
            box["error"] = (message, details)
            loop.quit()

        job = self.submit(
            lambda progress, cancel: _Captured.run(fn, progress, cancel),
            title,
            kind,
            on_done=done,
            on_error=failed,
            meta={"uncancellable": True, **(meta or {})},
        )
        cancelled = lambda jid: loop.quit() if jid == job.id else None  # noqa: E731
        self.cancelled.connect(cancelled)
        try:
            while job.state in ("queued", "running"):
                loop.exec(QEventLoop.ExcludeUserInputEvents)
        finally:
            self.cancelled.disconnect(cancelled)
        if "value" in box:
            value = box["value"]
            if isinstance(value, _Captured):
                raise value.error
            return value
        if job.state == "cancelled":
            raise Cancelled()
        raise RuntimeError(box.get("error", ("the job ended without a value", ""))[0])

    def cancel(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.state in ("queued", "running") and not job.meta.get("uncancellable"):
            job.token.set()
            job.message = "Cancelling..."

    def cancel_all(self) -> None:
        for jid in list(self.jobs):
            self.cancel(jid)

    def active(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.state in ("queued", "running")]

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until every worker is done (True) or the timeout passes (False)."""
        return self.pool.waitForDone(timeout_ms)

    @Slot()
    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel everything and wait for the workers (connected to aboutToQuit)."""
        self.cancel_all()
        done = self.pool.waitForDone(timeout_ms)
        if not done:
            log.warning("some jobs did not stop within %d ms of quitting", timeout_ms)
        return done

    # -- worker signals, on the UI thread ------------------------------------------------
    def _on_started(self, jid: int) -> None:
        job = self.jobs[jid]
        job.state, job.started_at = "running", time.monotonic()
        self.started.emit(jid)

    def _on_progress(self, jid: int, fraction: float, message: str) -> None:
        job = self.jobs[jid]
        if job.state != "running":
            return
        job.fraction, job.message = fraction, message
        self.progress.emit(jid, fraction, message)

    def _on_preview(self, jid: int, rgb, message: str) -> None:
        job = self.jobs[jid]
        if job.state == "running":
            self.preview.emit(jid, rgb, message)

    def _finish(self, jid: int, state: str) -> tuple:
        job = self.jobs[jid]
        job.state = state
        sig = self._signals.pop(jid, None)
        if sig is not None:
            sig.deleteLater()
        return self._callbacks.pop(jid, (None, None))

    def _on_finished(self, jid: int, value) -> None:
        on_done, _ = self._finish(jid, "done")
        self.jobs[jid].fraction = 1.0
        if on_done is not None:
            on_done(value)
        self.finished.emit(jid, value)

    def _on_failed(self, jid: int, message: str, details: str) -> None:
        _, on_error = self._finish(jid, "failed")
        self.jobs[jid].message = message
        if on_error is not None:
            on_error(message, details)
        self.failed.emit(jid, message, details)

    def _on_cancelled(self, jid: int) -> None:
        self._finish(jid, "cancelled")
        self.jobs[jid].message = "Cancelled"
        self.cancelled.emit(jid)
