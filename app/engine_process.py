"""Engines run in a worker process, so that nothing they call can freeze the window.

A thread is not enough: many native libraries the engines use hold Python's GIL for
seconds while they work (pycolmap's mapping, open3d's TSDF integration and meshing,
torch's and mediapipe's imports and graph set-up, scipy's sparse solvers), and while they
hold it the UI thread cannot run a single line: benchmarks/ui_block.py measured stalls of
2-10 s in the multi-view engine and 3 s in the avatar engine's first run. A process has a
GIL of its own, and it runs at a lower priority (``NICE``), so on a machine with two
cores the window still gets the CPU it needs to repaint.

Each :class:`EngineProcess` is one long-lived child (``multiprocessing`` "spawn" context,
no Qt in it) that runs one call at a time; :func:`call` takes an idle one or starts a new
one, so the second job starts without the cost of a new interpreter and imports, and an
engine's models loaded once stay loaded (``warm_up``). What crosses the boundary is
pickled: the function (by name: it must be importable, see :func:`runs_in_process`), its
arguments, the progress reports (throttled in the child), the cancel request, and the
value or the exception with the child's traceback. A child that dies (a crash in native
code) fails the job with a sentence instead of taking the application with it.

Qt-free: the job runner (:mod:`app.jobs`) calls :func:`call` from its pool threads.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import pickle
import queue
import threading
import time
import traceback
from typing import Callable

from engines.api import CancelToken, Cancelled

log = logging.getLogger("app.engine_process")

NICE = 5
"""Added to the children's niceness: the UI process wins the CPU when both want it."""
PROGRESS_HZ = 20.0
"""At most this many progress messages a second cross from a child (plus the last one)."""
CANCEL_GRACE_S = 30.0
"""A child that has not stopped this long after a cancel request is terminated."""

_CTX = mp.get_context("spawn")
_idle: list["EngineProcess"] = []
_all: list["EngineProcess"] = []
_lock = threading.Lock()


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (its ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class NotSendable(Exception):
    """The function or its arguments cannot be pickled: run it in this process instead."""


class ProcessDied(RuntimeError):
    """The worker process ended while running a call (a crash in native code, or killed)."""


def enabled() -> bool:
    """Engines run in worker processes unless ``CAPTURE_STUDIO_ENGINE_PROCESS=0``."""
    return os.environ.get("CAPTURE_STUDIO_ENGINE_PROCESS", "1").strip().lower() not in ("0", "false", "no", "off")


def runs_in_process(fn) -> bool:
    """True when ``fn`` (a function or class) can be named from another process: defined at
    a module's top level (or nested in a top-level class), not in ``__main__``."""
    module = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", "")
    return (
        bool(module) and module not in ("__main__", "__mp_main__") and "<locals>" not in qual and "<lambda>" not in qual
    )


# ----------------------------------------------------------------------------- the wire
def _dump(obj) -> tuple[bytes, list]:
    """(pickle, raw buffers): numpy arrays travel out of band (pickle protocol 5), so that
    neither side copies them through a pickle byte string, and unpickling them on the
    application's side holds its GIL for microseconds, not the time to copy 100 MB."""
    bufs: list = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=bufs.append)
    return data, [b.raw() for b in bufs]


def _recv_obj(conn, body: bytes):
    """The object whose head (after its kind byte) is ``body``; its buffers follow on
    ``conn``, read into writable memory (results can be changed in place)."""
    sizes, data = pickle.loads(body)
    bufs = []
    for n in sizes:
        b = bytearray(n)
        if n:
            conn.recv_bytes_into(b)
        else:
            conn.recv_bytes()
        bufs.append(b)
    return pickle.loads(data, buffers=bufs)


# ----------------------------------------------------------------------------- parent side
class EngineProcess:
    """One worker process; :meth:`call` runs a function in it and waits (off the UI thread)."""

    def __init__(self) -> None:
        cmd_recv, self._cmd = _CTX.Pipe(duplex=False)
        self._evt, evt_send = _CTX.Pipe(duplex=False)
        self.proc = _CTX.Process(
            target=_child_main, args=(cmd_recv, evt_send, NICE), name="capture-studio-engine", daemon=True
        )
        self.proc.start()
        _register_exit_hook()
        cmd_recv.close()
        evt_send.close()
        self.busy = False

    @property
    def alive(self) -> bool:
        return self.proc.is_alive()

    def call(self, fn: Callable, args: tuple, progress: Callable[[float, str], None], cancel: CancelToken):
        """``fn(*args, progress=..., cancel=...)`` in the child; its value, or its exception
        raised here (with the child's traceback as ``__cause__``)."""
        try:
            data, bufs = _dump((fn, args))
        except Exception as e:  # PicklingError, TypeError, AttributeError...
            raise NotSendable(f"{type(e).__name__}: {e}") from None
        self._cmd.send_bytes(b"J" + pickle.dumps(([m.nbytes for m in bufs], data), protocol=5))
        for m in bufs:
            self._cmd.send_bytes(m)
        asked_cancel = None
        while True:
            if cancel.is_set() and asked_cancel is None:
                asked_cancel = time.monotonic()
                self._send(b"C")
            if asked_cancel is not None and time.monotonic() - asked_cancel > CANCEL_GRACE_S:
                log.warning("an engine process ignored a cancel request for %.0f s; terminating it", CANCEL_GRACE_S)
                self.close(kill=True)
                raise Cancelled()
            try:
                ready = self._evt.poll(0.05)
            except (EOFError, OSError):
                ready = True
            if not ready:
                if not self.proc.is_alive():
                    raise self._died()
                continue
            try:
                data = self._evt.recv_bytes()
            except (EOFError, OSError):
                raise self._died() from None
            kind, body = data[:1], data[1:]
            if kind == b"P":
                fraction, message = pickle.loads(body)
                progress(fraction, message)
            elif kind == b"V":
                show = getattr(progress, "preview", None)
                if show is not None:
                    rgb, message = pickle.loads(body)
                    show(rgb, message)
            elif kind == b"D":
                try:
                    return _recv_obj(self._evt, body)
                except (EOFError, OSError):
                    raise self._died() from None
            elif kind == b"X":
                name, message, text, pickled = pickle.loads(body)
                try:
                    exc = pickle.loads(pickled) if pickled is not None else None
                except Exception:  # an exception class that does not unpickle
                    exc = None
                if not isinstance(exc, BaseException):
                    exc = RuntimeError(f"{name}: {message}")
                raise exc from RemoteTraceback(text)

    def _send(self, data: bytes) -> None:
        try:
            self._cmd.send_bytes(data)
        except (OSError, ValueError):
            pass

    def _died(self) -> ProcessDied:
        self.proc.join(1.0)
        code = self.proc.exitcode
        self.close()
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return ProcessDied(
            f"the engine's worker process stopped unexpectedly ({how}); "
            "the application is unaffected, and the next run starts a new one"
        )

    def close(self, kill: bool = False, timeout: float = 5.0) -> None:
        with _lock:
            if self in _idle:
                _idle.remove(self)
            if self in _all:
                _all.remove(self)
        if self.proc.is_alive() and not kill:
            self._send(b"Q")
            self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(2.0)
        for c in (self._cmd, self._evt):
            try:
                c.close()
            except OSError:
                pass


def call(
    fn: Callable,
    args: tuple = (),
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
):
    """Run ``fn(*args, progress=progress, cancel=cancel)`` in an idle worker process (a new
    one when none is idle) and return its value; blocks the calling (pool) thread."""
    progress = progress or (lambda f, m="": None)
    cancel = cancel or CancelToken()
    with _lock:
        while _idle and not _idle[-1].alive:
            _all.remove(_idle.pop())
        host = _idle.pop() if _idle else None
    if host is None:
        host = EngineProcess()
        with _lock:
            _all.append(host)
    try:
        return host.call(fn, args, progress, cancel)
    finally:
        _release(host)  # back to the idle list, unless it died or was terminated


def _release(host: EngineProcess) -> None:
    with _lock:
        if host.alive and host in _all and host not in _idle:
            _idle.append(host)


def start(count: int = 1) -> None:
    """Start worker processes ahead of the first job (their start-up is then hidden)."""
    with _lock:
        missing = max(0, count - len(_idle))
    for _ in range(missing):
        host = EngineProcess()
        with _lock:
            _all.append(host)
            _idle.append(host)


def shutdown(timeout: float = 5.0) -> None:
    """Ask every worker process to quit (terminate those that do not)."""
    with _lock:
        hosts = list(_all)
    for h in hosts:  # all at once, then wait
        h._send(b"Q")
    end = time.monotonic() + timeout
    for h in hosts:
        h.proc.join(max(0.0, end - time.monotonic()))
        h.close(timeout=0.0)


_exit_hook: list = []


def _register_exit_hook() -> None:
    """Quit the children at exit before multiprocessing's own exit handler terminates them
    (SIGTERM: pycolmap's signal handler then prints a stack trace): registered after the
    first child started, when multiprocessing has registered its handler, so it runs first."""
    if not _exit_hook:
        _exit_hook.append(True)
        atexit.register(shutdown)


def run_engine(engine_cls: type, inputs: list, params, progress=None, cancel=None):
    """What a worker process does for an engine job (also callable in-process)."""
    engine_cls.check_inputs(inputs)
    return engine_cls().run(inputs, params, progress, cancel)


def call_plain(fn: Callable, progress=None, cancel=None):
    """``fn()`` in a worker process (a warm-up: models loaded where the engines run)."""
    return fn()


# ----------------------------------------------------------------------------- child side
def _child_main(cmd, evt, nice: int) -> None:
    try:
        os.nice(nice)
    except (OSError, AttributeError):
        pass
    jobs: queue.Queue = queue.Queue()
    current: list[CancelToken | None] = [None]
    send_lock = threading.Lock()

    def send(kind: bytes, obj) -> None:
        data = kind + pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        with send_lock:
            evt.send_bytes(data)

    def send_value(value) -> None:
        # pickled first (a value that cannot be pickled fails here, before anything is sent)
        data, bufs = _dump(value)
        head = b"D" + pickle.dumps(([m.nbytes for m in bufs], data), protocol=5)
        with send_lock:
            evt.send_bytes(head)
            for m in bufs:
                evt.send_bytes(m)

    def listen() -> None:
        while True:
            try:
                data = cmd.recv_bytes()
            except (EOFError, OSError):  # the application is gone: so is this process
                os._exit(0)
            kind = data[:1]
            if kind == b"J":
                try:
                    jobs.put(_recv_obj(cmd, data[1:]))
                except (EOFError, OSError):
                    os._exit(0)
                except Exception as e:  # cannot unpickle the call here (a module missing)
                    jobs.put(e)
            elif kind == b"C":
                tok = current[0]
                if tok is not None:
                    tok.set()
            elif kind == b"Q":
                jobs.put(None)
                return

    threading.Thread(target=listen, name="commands", daemon=True).start()
    while True:
        payload = jobs.get()
        if payload is None:
            # Quit now: the exit handlers (an engine's temporary files) run, the slow
            # teardown of torch/open3d/pycolmap modules does not.
            import atexit as _atexit

            try:
                _atexit._run_exitfuncs()
            finally:
                os._exit(0)
        token = CancelToken()
        current[0] = token
        last = [0.0]
        pending: list = [None]

        def progress(fraction: float, message: str = "") -> None:
            now = time.monotonic()
            if fraction < 1.0 and now - last[0] < 1.0 / PROGRESS_HZ:  # noqa: B023
                pending[0] = (float(fraction), str(message))  # noqa: B023
                return
            last[0], pending[0] = now, None  # noqa: B023
            send(b"P", (float(fraction), str(message)))

        def preview(rgb, message: str = "") -> None:
            import numpy as np

            send(b"V", (np.ascontiguousarray(rgb, dtype=np.uint8), str(message)))

        progress.preview = preview

        try:
            if isinstance(payload, BaseException):
                raise payload
            fn, args = payload
            value = fn(*args, progress=progress, cancel=token)
            if pending[0] is not None:
                send(b"P", pending[0])
            try:
                send_value(value)
            except Exception as e:  # the value cannot be pickled: a bug in what the engine returns
                raise TypeError(f"the result could not be sent back from the worker process: {e}") from e
        except BaseException as e:  # noqa: BLE001 (everything goes back to the parent)
            if pending[0] is not None:
                try:
                    send(b"P", pending[0])
                except Exception:
                    pass
            text = traceback.format_exc()
            try:
                pickled = pickle.dumps(e, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                pickled = None
            send(b"X", (type(e).__name__, str(e), text, pickled))
        finally:
            current[0] = None
