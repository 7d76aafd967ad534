"""Capture Studio's command line: ``python main.py`` (or the installed ``capture-studio``)
starts the app; ``python main.py run ...`` runs an engine headless.

This module imports no Qt: the GUI is imported only when the ``app`` command runs.

    python main.py                                  the GUI
    python main.py engines                          list engines
    python main.py run ENGINE --input P [--input P] --out OUT [--set k=v ...] [--json]
    python main.py run tryon --input person_video=clip.mp4 --input garment_image=shirt.png --out x.mp4
                                                    inputs named by the engine's slots
    python main.py run ENGINE --help                the engine's parameters
    python main.py batch ENGINE --inputs GLOB --out DIR [--workers N | --cluster ADDR]
                                                    many inputs (engines/batch/command.py)

Exit codes: 0 ok, 2 bad input or parameters or an --out that cannot be written (a sentence
on stderr), 130 cancelled (Ctrl-C; nothing half-written is left), 1 a bug (its traceback
goes to the log file, not the terminal). ``--out`` may replace an existing file of that
name; an input file is never replaced.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from contextlib import contextmanager
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
    from engines.api import Choices, Colour, field_marker

    line = f"  {name}={default!r}  ({ann}{rng})\n      {f.description or ''}"
    choices, colour = field_marker(f, Choices), field_marker(f, Colour)
    if choices is not None:
        line += f"\n      one of: {', '.join(choices.allowed())}"
    if colour is not None:
        line += f"\n      #rrggbb or one of: {', '.join([*colour.special, *colour.preset_map()])}"
    return line


def engine_help(engine) -> str:
    fields = engine.Params.model_fields
    lines = [
        f"{engine.name}: {engine.title}",
        (engine.description or (engine.__doc__ or "").strip().split("\n")[0]),
        f"accepts: {', '.join(t.__name__ for t in engine.accepts)} ({engine.min_inputs}-{engine.max_inputs} inputs)",
        f"produces: {', '.join(t.__name__ for t in engine.produces)}",
    ]
    slots = getattr(engine, "slots", ()) or ()
    if slots:
        lines.append("inputs (--input NAME=PATH, or --input PATH to go by type):")
        for s in slots:
            opt = ", optional" if s.optional else ""
            lines.append(f"  {s.name}  ({s.kinds}{opt})" + (f"\n      {s.description}" if s.description else ""))
    lines += [
        "",
        "parameters (--set name=value):" if fields else "parameters: none",
    ]
    lines += [_describe_field(n, f) for n, f in fields.items()]
    return "\n".join(lines)


def cmd_engines(args) -> int:
    from engines import registry

    found = registry.engines()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "title": e.title,
                        "accepts": [t.__name__ for t in e.accepts],
                        "produces": [t.__name__ for t in e.produces],
                        "slots": [
                            {"name": s.name, "accepts": [t.__name__ for t in s.accepts], "optional": s.optional}
                            for s in getattr(e, "slots", ()) or ()
                        ],
                    }
                    for e in found.values()
                ]
            )
        )
        return EXIT_OK
    if not found:
        print("No engines registered.")
    for e in sorted(found.values(), key=lambda e: e.name):
        print(f"{e.name:18s} {e.title}")
        print(
            f"{'':18s} accepts: {', '.join(t.__name__ for t in e.accepts)};"
            f" produces: {', '.join(t.__name__ for t in e.produces)}"
        )
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


EXIT_CANCELLED = 130  # 128 + SIGINT, as shells report a Ctrl-C
OUT_NOTE = (
    "--out PATH: the output file; its extension picks the format. An existing file of that name is\n"
    "replaced, only once the run has succeeded. An input file is never replaced (giving one as --out\n"
    "is refused), and files written beside the output (an OBJ's .mtl and texture, e.g.\n"
    "portrait_texture.png) take names that replace nothing else."
)


def cmd_run(args) -> int:
    """``run``: every way it ends is an exit code and a sentence on stderr.

    0 done; 2 a problem the user can fix (bad input or parameter, an --out that cannot be
    written: read-only folder, a folder of that name, a parent that is a file, a full disk,
    an input given as --out); 130 cancelled (Ctrl-C), with no partial output left; 1 a bug,
    whose traceback goes to the log file only.
    """
    try:
        with _native_stderr_to_log():
            return _run(args)
    except KeyboardInterrupt:
        print("Cancelled.", file=sys.stderr)
        return EXIT_CANCELLED


@contextmanager
def _native_stderr_to_log():
    """Send what native libraries write straight to file descriptor 2 (TFLite's "Created
    TensorFlow Lite XNNPACK delegate", MediaPipe's absl lines, OpenCV warnings) to the log
    file, while our own messages (``sys.stderr``) still reach the terminal. Skipped when
    ``sys.stderr`` is not the process's own (a test capturing it, an embedding host)."""
    import os

    try:
        own = sys.stderr is sys.__stderr__ and sys.__stderr__.fileno() == 2
    except (AttributeError, OSError, ValueError):
        own = False
    log_fh = None
    if own:
        try:
            from app import settings

            path = settings.log_file()
            path.parent.mkdir(parents=True, exist_ok=True)
            log_fh = open(path, "ab")
        except OSError:
            log_fh = None
    if log_fh is None:
        yield
        return
    original = sys.stderr
    original.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding=original.encoding, errors="backslashreplace")
    os.dup2(log_fh.fileno(), 2)
    sys.stderr = terminal
    try:
        yield
    finally:
        try:
            terminal.flush()
        finally:
            sys.stderr = original
            os.dup2(saved, 2)
            os.close(saved)
            terminal.close()
            log_fh.close()


def _log_traceback(what: str) -> Path | None:
    """Append the exception being handled, with its traceback, to the log file (not the terminal)."""
    import traceback

    try:
        from app import settings

        path = settings.log_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} ERROR capture_studio.cli: {what}\n{traceback.format_exc()}\n"
            )
        return path
    except OSError:
        return None


_OUT_HINTS = {
    "is_dir": "give --out a file name, not the name of a folder",
    "parent_is_file": "give --out a path inside a folder",
    "not_writable": "give --out a path in a folder you can write to",
    "disk_full": "free some space, or give --out a path on another disk",
}


def _output_failed(e, out: str) -> int:
    _log_traceback(f"writing {out} failed")
    part = f" (writing {e.path.name})" if Path(e.path).name != Path(out).name else ""
    print(
        f"error: cannot write --out {out}{part}: {e.reason}. Nothing was written; "
        f"{_OUT_HINTS.get(e.kind, 'give --out another path')}.",
        file=sys.stderr,
    )
    return EXIT_BAD_INPUT


def _bug(args, e: BaseException) -> int:
    where = _log_traceback(f"engine {args.engine} failed")
    log_note = f" Details are in the log: {where}" if where else ""
    print(f"error: {args.engine} failed: {type(e).__name__}: {e}.{log_note}", file=sys.stderr)
    return EXIT_FAIL


def _run(args) -> int:
    from engines import io, registry
    from engines.batch import work
    from engines.api import CancelToken, Cancelled, EngineError, make_params
    from engines.io.files import OutputError

    t_start = time.perf_counter()
    if not args.engine:
        print(
            "usage: main.py run ENGINE --input [SLOT=]PATH [--input [SLOT=]PATH ...] --out PATH "
            "[--set name=value ...] [--json] [--quiet]\n"
            "       main.py run ENGINE --help   (the engine's parameters)\n"
            "Engines: see 'main.py engines'.\n" + OUT_NOTE
        )
        return EXIT_OK if args.help else EXIT_BAD_INPUT
    try:
        engine_cls = registry.get(args.engine)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.help:
        print(engine_help(engine_cls))
        print("\n" + OUT_NOTE)
        return EXIT_OK
    if not args.input or not args.out:
        print("error: run needs --input PATH and --out PATH (see --help).", file=sys.stderr)
        return EXIT_BAD_INPUT

    timings: dict[str, float] = {}
    try:
        params = make_params(engine_cls, _parse_sets(args.set))
        out = Path(args.out)
        ext = out.suffix.lower()
        if ext not in io.writers():
            raise EngineError(f"Cannot write '{out.name}': use one of {', '.join(sorted(io.writers()))}.")
        fits = io.type_extensions(engine_cls.produces)
        if engine_cls.produces and ext not in fits:  # refused now, not after the whole run
            kinds = ", ".join(t.__name__ for t in engine_cls.produces)
            raise EngineError(
                f"{engine_cls.name} makes {kinds}, which a {ext} file cannot hold: give --out one of {', '.join(fits)}."
            )
        specs = work.parse_inputs(engine_cls, args.input)  # "slot=path" or a path
        io.protect(io.input_files([Path(p) for _, p in specs]))
        if io.is_protected(out):
            raise EngineError(
                f"--out {out} is one of the inputs; Capture Studio never replaces an input. "
                "Give --out another file name."
            )
        io.check_output(out)
        t0 = time.perf_counter()
        inputs = work.load_inputs(engine_cls, specs)
        timings["load"] = time.perf_counter() - t0
    except OutputError as e:
        return _output_failed(e, args.out)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # a bug in a reader
        return _bug(args, e)

    last = [-1.0]

    def progress(fraction: float, message: str = "") -> None:
        if args.quiet or args.json:
            return
        if fraction - last[0] >= 0.05 or fraction >= 1.0:
            last[0] = fraction
            print(f"[{fraction * 100:5.1f}%] {message}", file=sys.stderr)

    try:
        result, written, ran = work.run_and_export(engine_cls, inputs, params, out, progress, CancelToken())
        timings.update(ran)
    except OutputError as e:
        return _output_failed(e, args.out)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Cancelled:
        print("Cancelled.", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as e:  # a bug: the traceback goes to the log file only
        return _bug(args, e)
    timings["total"] = time.perf_counter() - t_start

    if args.json:
        summary = {
            "engine": engine_cls.name,
            "outputs": [str(p) for p in written],
            "timings": {
                **{k: round(v, 4) for k, v in result.timings.items()},
                **{f"cli_{k}": round(v, 4) for k, v in timings.items()},
            },
            "metrics": {k: work.jsonable(v) for k, v in result.metrics.items()},
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
        description="Capture Studio: photos, focal stacks and videos to 3D. With no command, starts the desktop app.",
    )
    p.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")
    sub = p.add_subparsers(dest="command")
    pe = sub.add_parser("engines", help="list the registered engines")
    pe.add_argument("--json", action="store_true", help="machine-readable list")
    pr = sub.add_parser(
        "run",
        add_help=False,
        help="run an engine headless: run ENGINE --input PATH --out PATH [--set k=v] [--json]",
    )
    pr.add_argument("engine", nargs="?", help="engine name (see 'engines')")
    pr.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="[SLOT=]PATH",
        help="input file or folder; repeat for several inputs. SLOT= puts it in that input of the "
        "engine (e.g. garment_image=shirt.png; run ENGINE --help lists them), else it goes by type",
    )
    pr.add_argument(
        "--out",
        "-o",
        metavar="PATH",
        help="output file; its extension picks the format. An existing file of this name is "
        "replaced (only when the run succeeds); an input file never is, and files written "
        "beside it (an OBJ's .mtl and texture) take names that replace nothing else",
    )
    pr.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="engine parameter (see run ENGINE --help)"
    )
    pr.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    pr.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    pr.add_argument("--help", "-h", action="store_true", help="show the engine's parameters")
    from engines.batch.command import add_arguments as add_batch_arguments

    add_batch_arguments(
        sub.add_parser(
            "batch",
            help="run an engine over many inputs, locally or on a Ray cluster: "
            "batch ENGINE --inputs 'photos/*.jpg' --out DIR [--set k=v] [--workers N | --cluster ADDRESS]",
        )
    )
    pa = sub.add_parser("app", help="start the desktop app (the default)")
    pa.add_argument("files", nargs="*", help="files to import at start")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "engines":
        return cmd_engines(args)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "batch":
        from engines.batch.command import cmd_batch

        return cmd_batch(args, _parse_sets)
    from app.main import run_app

    return run_app(getattr(args, "files", []) or [])


if __name__ == "__main__":
    sys.exit(main())
