"""The per-item function of a batch, the same in a local worker process and in a Ray task.

:func:`process_item` takes a task (a small dict of plain values: engine name, input
paths, parameters, output folder and format) and returns an outcome dict; it never raises
for a bad item. Its work is :func:`run_to_file`, the steps of ``main.py run``: load each
input with :func:`engines.io.load_input`, check them against the engine, run it, export
with :func:`engines.io.export` (atomic: a transaction whose temporaries a killed worker
leaves hidden and the next write sweeps away).

Inputs and outputs go by path, not by value: every worker must see the same files at the
same paths (one machine, or a folder shared by every node of a cluster).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
import traceback
from pathlib import Path

from engines.api import (
    CancelToken,
    Cancelled,
    EngineError,
    Progress,
    bind_inputs,
    make_params,
    no_progress,
    unknown_slot_error,
)

_engine_classes: dict[tuple[str, str | None], type] = {}


def engine_ref(engine_cls: type) -> str:
    """``module:Class``, how a worker that did not register the engine imports it."""
    return f"{engine_cls.__module__}:{engine_cls.__qualname__}"


def load_engine(name: str, ref: str | None = None) -> type:
    """The engine class in this process: imported from ``ref`` when it can be (engines a
    test or script registered at run time), else looked up in the registry by name."""
    key = (name, ref)
    if key in _engine_classes:
        return _engine_classes[key]
    from engines import registry

    cls = None
    if ref and not ref.startswith("__main__:"):
        try:
            cls = registry._load_ref(ref)
        except Exception:
            cls = None
        if cls is not None and (registry.engine_problem(cls) or cls.name != name):
            cls = None
    if cls is None:
        cls = registry.get(name)
    _engine_classes[key] = cls
    return cls


_SLOT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_input(engine_cls: type, spec) -> tuple[str | None, str]:
    """``(slot name or None, path)`` from a command-line input: ``garment_image=shirt.png``
    names the engine's ``garment_image`` slot, a plain ``shirt.png`` goes by type. A path
    that exists is taken as it is, even with an ``=`` in its name. Raises EngineError for a
    name that is not one of the engine's slots (listing them)."""
    if isinstance(spec, tuple):
        name, path = spec
        return (name or None), str(path)
    text = str(spec)
    name, sep, rest = text.partition("=")
    if not sep or not _SLOT_NAME.fullmatch(name):
        return None, text
    if name in {s.name for s in getattr(engine_cls, "slots", ()) or ()}:
        return name, rest
    if os.path.exists(text):
        return None, text
    raise unknown_slot_error(engine_cls, name)


def parse_inputs(engine_cls: type, specs) -> list[tuple[str | None, str]]:
    """:func:`parse_input` of each, refusing a slot named twice."""
    out = [parse_input(engine_cls, s) for s in specs]
    names = [n for n, _ in out if n]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise EngineError(f"The {twice[0]} input is given twice; give one file per input.")
    return out


def load_inputs(engine_cls: type, input_paths):
    """The engine's inputs read from ``input_paths`` and bound to its slots (``Inputs``, a
    list). Each is a path, ``"slot=path"`` or ``(slot, path)``: a named one is read as a type
    its slot takes, the others as types the engine accepts, and bound by type
    (:func:`engines.api.bind_inputs`). Raises :class:`EngineError` for a bad input."""
    from engines import io

    slots = {s.name: s for s in getattr(engine_cls, "slots", ()) or ()}
    positional, named = [], {}
    for name, path in parse_inputs(engine_cls, input_paths):
        if name:
            named[name] = io.load_input(path, prefer=slots[name].accepts)
        else:
            positional.append(io.load_input(path, prefer=engine_cls.accepts))
    return bind_inputs(engine_cls, positional, named)


def run_and_export(
    engine_cls: type,
    inputs: list,
    params,
    out: Path,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
):
    """Run the engine on loaded inputs and export its result to ``out``.

    Returns ``(result, written_paths, timings)`` with ``run``/``export`` seconds.
    """
    from engines import io

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    result = engine_cls().run(inputs, params, progress, cancel or CancelToken())
    timings["run"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    written = io.export(result, out)  # load_input protected the inputs: no export replaces one
    timings["export"] = time.perf_counter() - t0
    return result, written, timings


def run_to_file(
    engine_cls: type,
    input_paths,
    params,
    out: Path,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
):
    """Load the inputs, run the engine, export its result to ``out``: one batch item, and
    ``main.py run`` (which calls the two halves itself, to tell a bad input from a failed run).

    Returns ``(result, written_paths, timings)`` with ``load``/``run``/``export`` seconds.
    Raises :class:`EngineError` for anything the user can fix.
    """
    t0 = time.perf_counter()
    inputs = load_inputs(engine_cls, input_paths)
    load = time.perf_counter() - t0
    result, written, timings = run_and_export(engine_cls, inputs, params, out, progress, cancel)
    return result, written, {"load": load, **timings}


def jsonable(v):
    """Plain JSON values from what engines put in metrics (numpy scalars and arrays, paths)."""
    import numpy as np

    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size <= 64 else f"array{list(v.shape)}"
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    if isinstance(v, float) and v != v:
        return None  # NaN is not JSON
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def process_item(task: dict) -> dict:
    """Run one batch item; return its outcome (never raises for a bad item).

    ``task``: ``item``, ``engine``, ``engine_ref``, ``params`` (a dict), ``inputs`` (paths),
    optionally ``slots`` (the slot name of each input, or None: bound by type), ``out``
    (folder), ``format`` (extension). The outcome: ``status`` ``done`` (with
    ``outputs``: names and sizes, ``metrics``, ``notes``) or ``failed`` (with ``error_kind``
    ``input`` for a problem the user can fix, ``error`` for a bug, and ``message``), and
    ``timings``, ``stage_timings``, ``host``, ``pid``.
    """
    t_start = time.perf_counter()
    host = socket.gethostname()
    outcome: dict = {"item": task["item"], "host": host, "pid": os.getpid(), "started": time.time()}
    out_dir = Path(task["out"])
    try:
        engine_cls = load_engine(task["engine"], task.get("engine_ref"))
        params = make_params(engine_cls, task["params"])
        missing = [p for p in task["inputs"] if not os.path.exists(p)]
        if missing:
            raise EngineError(
                f"{missing[0]}: no such file or folder on {host}. Every worker needs the "
                "inputs at the same path (on a cluster: a folder shared by all nodes)."
            )
        if not out_dir.is_dir():
            raise EngineError(
                f"The output folder {out_dir} does not exist on {host}. On a cluster every "
                "node needs the output folder at the same path (a shared folder)."
            )
        target = out_dir / f"{task['item']}{task['format']}"
        names = task.get("slots") or [None] * len(task["inputs"])
        result, written, timings = run_to_file(engine_cls, list(zip(names, task["inputs"])), params, target)
        outcome.update(
            status="done",
            outputs=[{"name": os.path.relpath(p, out_dir), "bytes": os.path.getsize(p)} for p in written],
            metrics=jsonable(result.metrics),
            notes=list(result.notes),
            stage_timings={k: round(float(v), 4) for k, v in result.timings.items()},
        )
    except EngineError as e:
        outcome.update(status="failed", error_kind="input", message=str(e))
        timings = {}
    except Cancelled:
        outcome.update(status="failed", error_kind="cancelled", message="Cancelled.")
        timings = {}
    except Exception as e:  # a bug in an engine: the item fails, the batch goes on
        outcome.update(
            status="failed", error_kind="error", message=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()
        )
        timings = {}
    timings["total"] = time.perf_counter() - t_start
    outcome["timings"] = {k: round(v, 4) for k, v in timings.items()}
    outcome["finished"] = time.time()
    return outcome


def init_local_worker(threads: int, log_path: str | None) -> None:
    """Set up a local worker process: Ctrl-C is the batch's to handle (it stops the
    workers), math libraries get ``threads`` threads each so N workers do not
    oversubscribe the cores, and the engines' chatter (TensorFlow Lite, MediaPipe) goes
    to the batch log rather than over the progress bar."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(var, str(max(1, int(threads))))
    if log_path:
        try:
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            return
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
