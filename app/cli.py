"""Capture Studio's command line: ``python main.py`` (or the installed ``capture-studio``)
starts the app; ``python main.py run ...`` runs an engine headless.

This module imports no Qt: the GUI is imported only when the ``app`` command runs.

    python main.py                                  the GUI
    python main.py engines                          list engines
    python main.py run ENGINE --input P [--input P] --out OUT [--set k=v ...] [--json]
    python main.py run ENGINE --help                the engine's parameters

Exit codes: 0 ok, 2 bad input or parameters (message on stderr), 1 failure.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def _describe_field(name, f) -> str:
    ann = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
    default = f.default
    extra = []
    for m in f.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                extra.append(f"{sym}{getattr(m, attr)}")
    rng = f" [{', '.join(extra)}]" if extra else ""
    return f"  {name}={default!r}  ({ann}{rng})\n      {f.description or ''}"


def engine_help(engine) -> str:
    fields = engine.Params.model_fields
    lines = [
        f"{engine.name}: {engine.title}",
        (engine.description or (engine.__doc__ or "").strip().split("\n")[0]),
        f"accepts: {', '.join(t.__name__ for t in engine.accepts)}"
        f" ({engine.min_inputs}-{engine.max_inputs} inputs)",
        f"produces: {', '.join(t.__name__ for t in engine.produces)}",
        "",
        "parameters (--set name=value):" if fields else "parameters: none",
    ]
    lines += [_describe_field(n, f) for n, f in fields.items()]
    return "\n".join(lines)


def cmd_engines(args) -> int:
    from engines import registry

    found = registry.engines()
    if args.json:
        print(json.dumps([
            {"name": e.name, "title": e.title,
             "accepts": [t.__name__ for t in e.accepts], "produces": [t.__name__ for t in e.produces]}
            for e in found.values()
        ]))
        return EXIT_OK
    if not found:
        print("No engines registered.")
    for e in sorted(found.values(), key=lambda e: e.name):
        print(f"{e.name:18s} {e.title}")
        print(f"{'':18s} accepts: {', '.join(t.__name__ for t in e.accepts)};"
              f" produces: {', '.join(t.__name__ for t in e.produces)}")
    for p in registry.problems:
        print(f"(skipped plug-in) {p}", file=sys.stderr)
    return EXIT_OK


def _parse_sets(items: list[str]) -> dict[str, str]:
    from engines.api import EngineError

    out = {}
    for item in items:
        if "=" not in item:
            raise EngineError(f"--set expects name=value, got '{item}'.")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def _jsonable(v):
    import numpy as np

    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    return v


def cmd_run(args) -> int:
    from engines import io, registry
    from engines.api import CancelToken, Cancelled, EngineError, make_params

    t_start = time.perf_counter()
    if not args.engine:
        print("usage: main.py run ENGINE --input PATH [--input PATH ...] --out PATH "
              "[--set name=value ...] [--json] [--quiet]\n"
              "       main.py run ENGINE --help   (the engine's parameters)\n"
              "Engines: see 'main.py engines'.")
        return EXIT_OK if args.help else EXIT_BAD_INPUT
    try:
        engine_cls = registry.get(args.engine)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.help:
        print(engine_help(engine_cls))
        return EXIT_OK
    if not args.input or not args.out:
        print("error: run needs --input PATH and --out PATH (see --help).", file=sys.stderr)
        return EXIT_BAD_INPUT

    timings: dict[str, float] = {}
    try:
        params = make_params(engine_cls, _parse_sets(args.set))
        out = Path(args.out)
        if out.suffix.lower() not in io.WRITERS:
            raise EngineError(f"Cannot write '{out.name}': use one of {', '.join(sorted(io.WRITERS))}.")
        t0 = time.perf_counter()
        inputs = [io.load_input(p, prefer=engine_cls.accepts) for p in args.input]
        engine_cls.check_inputs(inputs)
        timings["load"] = time.perf_counter() - t0
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT

    last = [-1.0]

    def progress(fraction: float, message: str = "") -> None:
        if args.quiet or args.json:
            return
        if fraction - last[0] >= 0.05 or fraction >= 1.0:
            last[0] = fraction
            print(f"[{fraction * 100:5.1f}%] {message}", file=sys.stderr)

    try:
        t0 = time.perf_counter()
        result = engine_cls().run(inputs, params, progress, CancelToken())
        timings["run"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        written = io.export(result, out)
        timings["export"] = time.perf_counter() - t0
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return EXIT_FAIL
    except Exception as e:  # a bug: keep the traceback in the log
        logging.getLogger("capture_studio").exception("engine %s failed", args.engine)
        print(f"error: {args.engine} failed: {e}", file=sys.stderr)
        return EXIT_FAIL
    timings["total"] = time.perf_counter() - t_start

    if args.json:
        summary = {
            "engine": engine_cls.name,
            "outputs": [str(p) for p in written],
            "timings": {**{k: round(v, 4) for k, v in result.timings.items()},
                        **{f"cli_{k}": round(v, 4) for k, v in timings.items()}},
            "metrics": {k: _jsonable(v) for k, v in result.metrics.items()},
            "notes": result.notes,
            "params": params.model_dump(mode="json"),
        }
        print(json.dumps(summary, default=str))
    else:
        for n in result.notes:
            print(f"note: {n}", file=sys.stderr)
        for p in written:
            print(p)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="capture-studio",
        description="Capture Studio: photos, focal stacks and videos to 3D. "
        "With no command, starts the desktop app.",
    )
    p.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")
    sub = p.add_subparsers(dest="command")
    pe = sub.add_parser("engines", help="list the registered engines")
    pe.add_argument("--json", action="store_true", help="machine-readable list")
    pr = sub.add_parser(
        "run", add_help=False,
        help="run an engine headless: run ENGINE --input PATH --out PATH [--set k=v] [--json]",
    )
    pr.add_argument("engine", nargs="?", help="engine name (see 'engines')")
    pr.add_argument("--input", "-i", action="append", default=[], metavar="PATH",
                    help="input file or folder; repeat for several inputs")
    pr.add_argument("--out", "-o", metavar="PATH", help="output file; its extension picks the format")
    pr.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="engine parameter (see run ENGINE --help)")
    pr.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    pr.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    pr.add_argument("--help", "-h", action="store_true", help="show the engine's parameters")
    pa = sub.add_parser("app", help="start the desktop app (the default)")
    pa.add_argument("files", nargs="*", help="files to import at start")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command == "engines":
        return cmd_engines(args)
    if args.command == "run":
        return cmd_run(args)
    from app.main import run_app

    return run_app(getattr(args, "files", []) or [])


if __name__ == "__main__":
    sys.exit(main())
