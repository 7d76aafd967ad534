"""A batch from start to end: plan the items, skip the complete ones, run the rest on local
worker processes or on a Ray cluster, record each item as it ends, write ``summary.csv``.

The driver (this process) is the only writer of records and of the summary; workers write
only their item's outputs. An interrupt (Ctrl-C) stops the workers, writes the summary of
what ended and leaves every finished item recorded: the same command resumes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engines.api import EngineError, make_params
from engines.batch import items as _items
from engines.batch import records as rec
from engines.batch.work import engine_ref, init_local_worker, parse_inputs, process_item


@dataclass
class BatchOptions:
    out: Path
    inputs: list[str] = field(default_factory=list)
    """One pattern per engine input (glob, folder or file); paired by name. ``slot=pattern``
    puts that input in the engine's slot of that name (else inputs go by type)."""
    manifest: Path | None = None
    params: dict = field(default_factory=dict)
    format: str | None = None
    """Output extension (``.glb``); default: the first the engine's result can be written as."""
    workers: int | None = None
    """Local worker processes; default: the number of cores."""
    cluster: str | None = None
    """A Ray address (``ray://HOST:10001``, ``HOST:6379``, ``auto``); ``""`` means RAY_ADDRESS;
    None runs on this machine."""
    cpus_per_task: float | None = None
    retry_failed: bool = False
    worker_retries: int = 1


@dataclass
class BatchSummary:
    engine: str
    out: Path
    backend: str
    workers: int
    format: str
    total: int = 0
    done: int = 0
    failed: int = 0
    ran: int = 0
    skipped: int = 0
    not_run: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    items_per_minute: float | None = None
    summary_csv: Path | None = None
    cluster: dict = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        d = {
            k: getattr(self, k)
            for k in (
                "engine",
                "backend",
                "workers",
                "format",
                "total",
                "done",
                "failed",
                "ran",
                "skipped",
                "not_run",
                "interrupted",
                "items_per_minute",
            )
        }
        d.update(
            out=str(self.out),
            seconds=round(self.seconds, 3),
            summary_csv=str(self.summary_csv) if self.summary_csv else None,
            failures=self.failures,
        )
        if self.cluster:
            d["cluster"] = self.cluster
        return d


class BatchProgress(Protocol):
    def start(self, total: int, to_run: int, skipped: int, backend: str) -> None: ...
    def item(self, row: dict) -> None: ...


class _Silent:
    def start(self, total, to_run, skipped, backend):
        pass

    def item(self, row):
        pass


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def output_format(engine_cls: type, fmt: str | None) -> str:
    from engines import io

    usable = io.type_extensions(engine_cls.produces)
    if not usable:
        raise EngineError(f"{engine_cls.name} results cannot be written to a file, so they cannot be batched.")
    if not fmt:
        return usable[0]
    fmt = fmt.lower() if fmt.startswith(".") else f".{fmt.lower()}"
    if fmt not in usable:
        raise EngineError(f"{engine_cls.title} results cannot be written as {fmt}; use one of {', '.join(usable)}.")
    return fmt


class _Lock:
    """One batch at a time per output folder (two would both write the same records)."""

    def __init__(self, out: Path) -> None:
        self.path, self.f = out / ".batch.lock", None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; the user keeps the folders apart
            return self
        self.f = open(self.path, "a+")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.close()
            self.f = None
            raise EngineError(
                f"Another batch is writing to {self.path.parent}; wait for it to end or choose another --out."
            ) from None
        return self

    def __exit__(self, *exc):
        if self.f is not None:
            self.f.close()  # closing releases the lock
        return False


def _failed_record(base: dict, message: str, kind: str, attempts: int = 0) -> dict:
    return {
        **base,
        "status": "failed",
        "error_kind": kind,
        "message": message,
        "attempts": attempts,
        "outputs": [],
        "timings": {},
        "finished": time.time(),
    }


def run_batch(engine, options: BatchOptions, progress: BatchProgress | None = None) -> BatchSummary:
    """Run ``engine`` (a name or an engine class) over the inputs in ``options``.

    Raises :class:`EngineError` for a problem with the batch as a whole (unknown engine,
    bad parameter, no inputs, an output folder in use); problems with single items are
    recorded and counted in the summary. ``KeyboardInterrupt`` is caught: the summary
    then says ``interrupted``.
    """
    from engines import registry

    progress = progress or _Silent()
    t_start = time.perf_counter()
    engine_cls = registry.get(engine) if isinstance(engine, str) else engine
    params = make_params(engine_cls, options.params).model_dump(mode="json")
    fmt = output_format(engine_cls, options.format)
    out = Path(options.out).absolute()
    if out.exists() and not out.is_dir():
        raise EngineError(f"--out must be a folder; {out} is a file.")
    slot_names: list[str | None] = []
    if options.manifest:  # its columns: input, input2... or the engine's slot names
        plan = _items.from_manifest(options.manifest, [s.name for s in getattr(engine_cls, "slots", ()) or ()])
    else:
        parsed = parse_inputs(engine_cls, list(options.inputs))  # "slot=pattern" or a pattern
        slot_names = [n for n, _ in parsed] if any(n for n, _ in parsed) else []
        plan = _items.from_patterns([p for _, p in parsed], exclude=out)
    n_in = {len(i.inputs) for i in plan if i.problem is None}
    for n in n_in:
        if not engine_cls.min_inputs <= n <= engine_cls.max_inputs:
            want = (
                str(engine_cls.min_inputs)
                if engine_cls.min_inputs == engine_cls.max_inputs
                else f"{engine_cls.min_inputs} to {engine_cls.max_inputs}"
            )
            raise EngineError(
                f"{engine_cls.title} takes {want} input(s) per item; the batch gives {n} "
                f"(repeat --inputs once per input, or use a manifest)."
            )
    if options.cluster is None:
        backend, workers = "local", max(1, int(options.workers or default_workers()))
    else:
        backend, workers = "ray", 0
    summary = BatchSummary(engine_cls.name, out, backend, workers, fmt, total=len(plan))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EngineError(f"Cannot create the output folder {out}: {e.strerror or e}.") from None

    with _Lock(out):
        # -- plan: what is complete, what runs --------------------------------------------
        base: dict[str, dict] = {}
        final: dict[str, dict | None] = {}  # the record each item ends this run with
        this_run: dict[str, str] = {}
        todo = []
        for item in plan:
            b = {"item": item.id, "engine": engine_cls.name, "params": params, "format": fmt}
            problem = item.problem
            old = rec.read_record(out, item.id)
            inputs = []
            if problem is None:
                try:
                    inputs = [
                        _items.describe_input(p, known)
                        for p, known in zip(item.inputs, (old or {}).get("inputs") or [None] * len(item.inputs))
                    ]
                except OSError as e:
                    problem = f"{e.filename or item.inputs[0]}: {e.strerror or 'cannot be read'}."
            b["inputs"] = inputs or [{"path": str(p), "sha256": None} for p in item.inputs]
            for entry, slot in zip(b["inputs"], item.slots or slot_names):
                if slot:
                    entry["slot"] = slot
            hashes = [i["sha256"] for i in b["inputs"]]
            base[item.id] = b
            if problem is not None:
                final[item.id] = _failed_record(b, problem, "input")
                rec.write_record(out, final[item.id])
                this_run[item.id] = "not runnable"
                continue
            if rec.is_current(old, engine_cls.name, params, fmt, hashes, [e.get("slot") for e in b["inputs"]]):
                if old.get("status") == "done" and rec.outputs_present(old, out):
                    final[item.id], this_run[item.id] = old, "skipped (complete)"
                    continue
                if old.get("status") == "failed" and not options.retry_failed:
                    final[item.id], this_run[item.id] = old, "skipped (failed before; --retry-failed reruns it)"
                    continue
            todo.append(item)
            final[item.id], this_run[item.id] = None, "not run"
        summary.skipped = len(plan) - len(todo)

        # -- run ---------------------------------------------------------------------------
        ref = engine_ref(engine_cls)
        tasks = [
            {
                "item": i.id,
                "engine": engine_cls.name,
                "engine_ref": ref,
                "params": params,
                "inputs": [str(p) for p in i.inputs],
                "slots": list(i.slots) if i.slots else (slot_names or None),
                "out": str(out),
                "format": fmt,
            }
            for i in todo
        ]
        t_run = time.perf_counter()
        runner = stream = None
        try:
            if tasks:
                if backend == "local":
                    from engines.batch.pool import LocalPool

                    workers = summary.workers = min(workers, len(tasks))
                    threads = options.cpus_per_task or max(1, default_workers() // workers)
                    runner = LocalPool(
                        workers,
                        init_local_worker,
                        (int(threads), str(out / rec.LOG)),
                        worker_retries=options.worker_retries,
                    )
                    stream = runner.run(process_item, tasks)
                else:
                    from engines.batch.cluster import RayCluster

                    runner = RayCluster(
                        options.cluster or None, options.cpus_per_task or 1.0, worker_retries=options.worker_retries
                    )
                    summary.cluster = runner.describe()
                    summary.workers = runner.slots()
                    stream = runner.run(process_item, tasks, name=lambda t: f"batch:{t['item']}")
                progress.start(len(plan), len(tasks), summary.skipped, backend)
                for fin in stream:
                    iid = fin.task["item"]
                    if fin.value is not None:
                        outcome = dict(fin.value)
                        r = {**base[iid], **outcome, "attempts": fin.attempts}
                    else:
                        r = _failed_record(
                            base[iid], fin.lost or fin.error or "lost", "worker" if fin.lost else "error", fin.attempts
                        )
                    rec.write_record(out, r)
                    final[iid], this_run[iid] = r, "ran"
                    summary.ran += 1
                    progress.item(rec.summary_row(iid, r, "ran"))
            else:
                progress.start(len(plan), 0, summary.skipped, backend)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            if stream is not None:
                stream.close()  # an interrupt outside the stream's own wait: stop the workers now
            if runner is not None:
                runner.close()
        run_s = time.perf_counter() - t_run
        if summary.ran and run_s > 0:
            summary.items_per_minute = round(summary.ran / run_s * 60.0, 2)

        # -- summary -----------------------------------------------------------------------
        from engines.io.files import sweep_stale

        for folder in (out, out / rec.RECORDS):
            sweep_stale(folder)  # temporaries of workers killed mid-export (their process is gone)
        for item in plan:
            row = rec.summary_row(item.id, final[item.id], this_run[item.id])
            summary.rows.append(row)
            if row["status"] == "done":
                summary.done += 1
            elif row["status"] == "failed":
                summary.failed += 1
                summary.failures.append({"item": item.id, "kind": row["error_kind"], "message": row["message"]})
            else:
                summary.not_run += 1
        summary.summary_csv = rec.write_summary(out, summary.rows)
    summary.seconds = time.perf_counter() - t_start
    return summary
