"""``main.py batch``: the options, the progress bar and the exit codes of a batch.

    main.py batch ENGINE --inputs 'portraits/*.jpg' --out results/ [--set name=value ...]
    main.py batch tryon --inputs 'clips/*.mp4' --inputs garment.png --out tryons/
    main.py batch tryon --inputs person_video='clips/*.mp4' --inputs garment_image=shirt.png --out tryons/
    main.py batch puppet --manifest takes.csv --out takes/ --format .mp4
    main.py batch avatar --inputs portraits/ --out results/ --cluster ray://head:10001

Exit codes: 0 every item done, 2 some items failed or the batch could not start (the
message on stderr, the items in ``summary.csv``), 130 interrupted (rerun to resume).
:mod:`app.cli` adds the sub-command; this module stays free of Qt like the rest of
:mod:`engines.batch`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

EXIT_OK, EXIT_ITEMS_FAILED, EXIT_INTERRUPTED = 0, 2, 130


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("engine", help="engine name (see 'engines'; its parameters: run ENGINE --help)")
    p.add_argument(
        "--inputs",
        "-i",
        action="append",
        default=[],
        metavar="[SLOT=]PATTERN",
        help="inputs: a glob ('portraits/*.jpg', '**' for sub-folders), a folder or a file; "
        "repeat once per engine input, later ones paired with the first by file name "
        "(a single file is used for every item). SLOT= names the engine input it fills "
        "(e.g. person_video='clips/*.mp4'; run ENGINE --help lists them), else it goes by type",
    )
    p.add_argument(
        "--manifest",
        metavar="CSV",
        help="instead of --inputs: a CSV with columns input[,input2...][,id], or columns named as the "
        "engine's inputs (e.g. performance_video,avatar[,id]), one row per item",
    )
    p.add_argument(
        "--out",
        "-o",
        required=True,
        metavar="DIR",
        help="output folder: <item><format> per item, records/, summary.csv, batch.log",
    )
    p.add_argument("--format", metavar="EXT", help="output format, e.g. .glb (default: the engine's first)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="engine parameter, the same for every item (see run ENGINE --help)",
    )
    p.add_argument(
        "--workers", "-j", type=int, metavar="N", help="local worker processes (default: the number of cores)"
    )
    p.add_argument(
        "--cluster",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run as Ray tasks on a cluster: ray://HOST:10001, HOST:6379 or auto; "
        "with no address, RAY_ADDRESS (needs the 'cluster' extra)",
    )
    p.add_argument(
        "--cpus-per-task",
        type=float,
        metavar="N",
        help="CPUs per item: Ray's num_cpus on a cluster (default 1); threads per worker locally",
    )
    p.add_argument("--retry-failed", action="store_true", help="run again the items that failed last time")
    p.add_argument(
        "--worker-retries",
        type=int,
        default=1,
        metavar="N",
        help="times an item is retried when its worker dies (default 1)",
    )
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


def _clock(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class TerminalProgress:
    """A progress bar on stderr (one line redrawn on a terminal, a line per item in a log):
    items ended / to run, failures, the rate in items per minute and the time left."""

    def __init__(self, stream=None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.ended = self.failed = self.to_run = 0
        self.t0 = time.perf_counter()

    def start(self, total: int, to_run: int, skipped: int, backend: str) -> None:
        self.to_run, self.t0 = to_run, time.perf_counter()
        if not self.quiet:
            where = "this machine" if backend == "local" else "the Ray cluster"
            msg = f"{total} item(s): {skipped} already complete or skipped, {to_run} to run on {where}"
            print(msg, file=self.stream, flush=True)

    def line(self) -> str:
        el = time.perf_counter() - self.t0
        rate = self.ended / el * 60 if el > 0 and self.ended else 0.0
        eta = (self.to_run - self.ended) / (rate / 60) if rate else None
        width = 24
        fill = int(width * self.ended / max(self.to_run, 1))
        return (
            f"[{'#' * fill}{'.' * (width - fill)}] {self.ended}/{self.to_run}"
            f"  {self.failed} failed  {rate:.1f} items/min"
            f"  ETA {_clock(eta) if eta is not None else '--'}  ({_clock(el)})"
        )

    def item(self, row: dict) -> None:
        self.ended += 1
        self.failed += row["status"] != "done"
        if self.quiet:
            return
        if self.tty:
            if row["status"] != "done":
                print(f"\r\x1b[Kfailed {row['item']}: {row['message']}", file=self.stream)
            print(f"\r\x1b[K{self.line()}", end="" if self.ended < self.to_run else "\n", file=self.stream, flush=True)
        else:
            what = "done" if row["status"] == "done" else f"failed: {row['message']}"
            print(f"{self.line()}  {row['item']} {what}", file=self.stream, flush=True)


def cmd_batch(args, parse_sets) -> int:
    """Run ``main.py batch``; ``parse_sets`` turns the ``--set`` list into a dict (the
    command line's own parser, shared with ``run``)."""
    from pathlib import Path

    from engines.api import EngineError
    from engines.batch.runner import BatchOptions, run_batch

    def on_term(signum, frame):  # a scheduler's SIGTERM stops the batch like Ctrl-C
        raise KeyboardInterrupt

    try:
        old_term = signal.signal(signal.SIGTERM, on_term)
        # Ctrl-C stops the batch even when a library loaded earlier in this process put
        # its own SIGINT handler in place; a shell that ignores SIGINT (nohup) is obeyed.
        old_int = signal.getsignal(signal.SIGINT)
        if old_int is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    except ValueError:  # not the main thread
        old_term = old_int = None
    try:
        options = BatchOptions(
            out=Path(args.out),
            inputs=args.inputs,
            manifest=Path(args.manifest) if args.manifest else None,
            params=parse_sets(args.set),
            format=args.format,
            workers=args.workers,
            cluster=args.cluster,
            cpus_per_task=args.cpus_per_task,
            retry_failed=args.retry_failed,
            worker_retries=args.worker_retries,
        )
        if args.workers is not None and args.workers < 1:
            raise EngineError("--workers must be 1 or more.")
        summary = run_batch(args.engine, options, TerminalProgress(quiet=args.quiet or args.json))
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    except KeyboardInterrupt:
        print("interrupted before the batch started", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if old_int is not None and old_int is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, old_int)
    if args.json:
        print(json.dumps(summary.as_json(), default=str))
    else:
        ipm = f", {summary.items_per_minute} items/min" if summary.items_per_minute else ""
        print(
            f"{summary.engine}: {summary.done} done, {summary.failed} failed, {summary.not_run} not run "
            f"of {summary.total} ({summary.ran} ran, {summary.skipped} skipped{ipm}, "
            f"{summary.seconds:.1f} s). Summary: {summary.summary_csv}",
            file=sys.stderr,
        )
        for f in summary.failures[:20]:
            print(f"  failed {f['item']}: {f['message']}", file=sys.stderr)
        if len(summary.failures) > 20:
            print(f"  ... and {len(summary.failures) - 20} more in {summary.summary_csv}", file=sys.stderr)
        if summary.interrupted:
            print("interrupted: run the same command again to resume.", file=sys.stderr)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_ITEMS_FAILED if summary.failed else EXIT_OK
