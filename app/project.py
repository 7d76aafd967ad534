"""The open document: inputs, engine parameters and results; saved as a project file.

File format (Qt-free, so scripts can read it):

* ``NAME.capstudio`` is JSON: ``{"format": "capture-studio-project", "version": 1,
  "inputs": [{"kind", "paths", "label", "focus_distances"}], "engine": name,
  "params": {engine: {field: value}}, "results": [{"engine", "params", "label",
  "input", "file", "tree"}]}``.
* Results are saved next to it in ``NAME.results/``: one ``result_NNN.npz`` per result
  holding every numpy array of the :class:`engines.api.Result` (no pickle), while the
  JSON ``tree`` records the dataclass structure (type names, scalars, strings, which
  array key goes where). This is lossless for every type in :mod:`engines.types`
  (textures, morph targets, confidence, intrinsics), unlike an export format. A
  VideoResult's MP4 is copied into the folder.
* Inputs are stored as paths, absolute (``paths``) and relative to the project file
  (``relative_paths``), re-read when the project is opened; focus distances typed in by
  the user are kept so a focal stack re-opens the same way.

Opening is forgiving where it can be and exact where it must be:

* The JSON is validated against pydantic models (:class:`ProjectDoc`); a damaged file
  (missing keys, wrong types, wrong nesting) is an :class:`EngineError` with a sentence
  naming the field, never a raw exception.
* A moved or renamed project opens: result files are looked for where the project file
  says and in the results folder named after the project file as it is now; inputs at
  their absolute path, else relative to the project file.
* One missing or damaged result does not make the project unopenable: the rest opens,
  and :attr:`Project.problems` lists what could not be, naming the folders looked in.
* Result arrays are read through the I/O layer's limit policy
  (:func:`engines.io.limits.load_npz`), so a small ``.npz`` declaring gigabytes is refused
  before anything is allocated.

Saving is one transaction (:class:`engines.io.files.WriteSet`): every ``.npz`` and the
JSON are written to temporaries first and renamed together, the JSON last.

Autosave writes the same format to ``settings.autosave_path()``; :func:`remove_project_files`
removes a project file with its results folder, :func:`set_aside` renames both out of the
way (a damaged autosave).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from engines.api import EngineError, Result

log = logging.getLogger("app.project")

FORMAT = "capture-studio-project"
VERSION = 1
SUFFIX = ".capstudio"


@dataclass
class InputEntry:
    kind: str
    """Type name of the loaded input: Image, FocalStack, VideoClip or ImageSet."""
    paths: list[str]
    label: str = ""
    focus_distances: list[float] | None = None
    obj: Any = None
    thumbnail: np.ndarray | None = None


@dataclass
class ResultEntry:
    result: Result
    engine: str
    params: dict = field(default_factory=dict)
    label: str = ""
    input: int | None = None
    created: float = field(default_factory=time.time)
    thumbnail: np.ndarray | None = field(default=None, repr=False, compare=False)
    """The picture in the Results list (not saved; made again when shown)."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore")


class InputDoc(_Doc):
    kind: str
    paths: list[str]
    relative_paths: list[str | None] | None = None
    label: str = ""
    focus_distances: list[float] | None = None


class ResultDoc(_Doc):
    file: str
    tree: dict[str, Any]
    engine: str = ""
    params: dict[str, Any] = {}
    label: str = ""
    input: int | None = None
    created: float | None = None


class ProjectDoc(_Doc):
    """The project file's JSON, as validated when it is opened."""

    format: Literal["capture-studio-project"]
    version: int
    engine: str | None = None
    params: dict[str, dict[str, Any]] = {}
    inputs: list[InputDoc] = []
    results: list[ResultDoc] = []


def _damaged(path: Path, e: ValidationError) -> EngineError:
    errs = e.errors()
    first = errs[0]
    where = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in first["loc"]).lstrip(".") or "the file"
    more = f" (and {len(errs) - 1} more problem{'s' if len(errs) > 2 else ''})" if len(errs) > 1 else ""
    return EngineError(
        f"{path.name} is damaged and cannot be opened: {where}: {first['msg'].lower()}{more}. "
        "Open a backup copy of the project, or import the inputs again."
    )


class Project:
    def __init__(self) -> None:
        self.inputs: list[InputEntry] = []
        self.results: list[ResultEntry] = []
        self.engine: str | None = None
        self.params: dict[str, dict] = {}
        self.path: Path | None = None
        self.dirty = False
        self.revision = 0
        """Bumped on every change; autosave skips a revision it has already written."""
        self.problems: list[str] = []
        """What :meth:`load` could not open (missing or damaged results), one sentence each."""

    @property
    def empty(self) -> bool:
        return not self.inputs and not self.results

    def touch(self) -> None:
        self.dirty = True
        self.revision += 1

    def add_input(self, entry: InputEntry) -> int:
        self.inputs.append(entry)
        self.touch()
        return len(self.inputs) - 1

    def remove_input(self, row: int) -> None:
        """Drop an input; results made from it keep their data but no longer point at
        it, and those made from later inputs follow their input's new row."""
        del self.inputs[row]
        for r in self.results:
            if r.input == row:
                r.input = None
            elif r.input is not None and r.input > row:
                r.input -= 1
        self.touch()

    def add_result(self, entry: ResultEntry) -> int:
        self.results.append(entry)
        self.touch()
        return len(self.results) - 1

    # -- saving ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, remember: bool = True) -> Path:
        """Write the project file and its results folder as one transaction.

        Safe to call from a worker thread while the UI goes on (File > Save runs it through
        :meth:`app.jobs.JobRunner.call`): what is written is the project as it was when the
        save began, and a change made meanwhile keeps the project marked as changed."""
        from engines.io.files import WriteSet

        revision = self.revision
        inputs, results = list(self.inputs), list(self.results)
        engine, params = self.engine, {k: dict(v) for k, v in self.params.items()}
        path = Path(path)
        if path.suffix != SUFFIX and not path.name.endswith(".json"):
            path = path.with_name(path.name + SUFFIX)
        rdir = results_dir(path)
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "saved": time.time(),
            "engine": engine,
            "params": params,
            "inputs": [
                {
                    "kind": e.kind,
                    "paths": [str(p) for p in e.paths],
                    "relative_paths": [_relative(p, path.parent) for p in e.paths],
                    "label": e.label,
                    "focus_distances": e.focus_distances,
                }
                for e in inputs
            ],
            "results": [],
        }
        keep = set()
        with WriteSet() as ws:
            for i, r in enumerate(results, 1):
                name = f"result_{i:03d}.npz"
                arrays: dict[str, np.ndarray] = {}
                tree = encode(_with_copied_videos(r.result, rdir, i, ws), arrays, "r", rdir)
                np.savez_compressed(ws.add(rdir / name), **arrays)
                keep.add(name)
                doc["results"].append(
                    {
                        "engine": r.engine,
                        "params": r.params,
                        "label": r.label,
                        "input": r.input,
                        "created": r.created,
                        "file": f"{rdir.name}/{name}",
                        "tree": tree,
                    }
                )
            ws.add(path, main=True).write_text(json.dumps(doc, indent=1, default=_json_default), encoding="utf-8")
        if rdir.is_dir():
            for old in rdir.glob("result_*.npz"):
                if old.name not in keep:
                    old.unlink()
        if remember:
            self.path = path
            self.dirty = self.revision != revision  # changed while it was being written
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Project":
        """Read a project file; inputs come back as entries to re-load (``obj`` None).

        Raises EngineError with a sentence when the file cannot be a project; results that
        cannot be read are left out and described in :attr:`problems`.
        """
        from engines.io import limits

        path = Path(path)
        try:
            text = limits.read_json_text(path, "the project file")
        except FileNotFoundError:
            raise EngineError(f"Cannot open project {path}: no such file.") from None
        except IsADirectoryError:
            raise EngineError(f"Cannot open project {path}: it is a folder, not a project file.") from None
        except OSError as e:
            raise EngineError(f"Cannot open project {path.name}: {e.strerror or e}.") from None
        except UnicodeDecodeError:
            raise EngineError(f"{path.name} is not a Capture Studio project (not a text file).") from None
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            raise EngineError(f"{path.name} is not a Capture Studio project (not valid JSON).") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise EngineError(f"{path.name} is not a Capture Studio project file.")
        if isinstance(raw.get("version"), (int, float)) and raw["version"] > VERSION:
            raise EngineError(f"{path.name} was saved by a newer Capture Studio; update to open it.")
        try:
            doc = ProjectDoc.model_validate(raw)
        except ValidationError as e:
            raise _damaged(path, e) from None
        p = cls()
        p.engine = doc.engine
        p.params = {k: dict(v) for k, v in doc.params.items()}
        for e in doc.inputs:
            p.inputs.append(InputEntry(e.kind, _input_paths(e, path), e.label, e.focus_distances))
        budget = limits.Budget(path, limits.current().project_bytes, "its results together")
        for n, r in enumerate(doc.results, 1):
            what = f"result {n}" + (f" ({r.label})" if r.label else "")
            try:
                f = _result_file(path, r.file, what)
                arrays = limits.load_npz(
                    f, f, limits.Budget(f, min(limits.current().max_bytes, budget.limit - budget.used))
                )
                budget.take(sum(a.nbytes for a in arrays.values()))
                result = _decode_result(r.tree, arrays, f.parent, path, what)
            except EngineError as e:
                msg = str(e)
                p.problems.append(msg if msg.startswith(f"{path.name}:") else f"{path.name}: {what}: {msg}")
                continue
            p.results.append(
                ResultEntry(
                    result,
                    r.engine,
                    r.params,
                    r.label,
                    r.input if r.input is not None and 0 <= r.input < len(p.inputs) else None,
                    r.created if r.created is not None else time.time(),
                )
            )
        p.path, p.dirty = path, False
        return p


def _relative(p, folder: Path) -> str | None:
    try:
        return os.path.relpath(os.path.abspath(p), os.path.abspath(folder))
    except ValueError:  # another drive (Windows)
        return None


def _input_paths(e: InputDoc, project: Path) -> list[str]:
    """Each input where it is now: the saved absolute path, else relative to the project file."""
    rel = list(e.relative_paths or [])
    out = []
    for i, p in enumerate(e.paths):
        r = rel[i] if i < len(rel) else None
        if not Path(p).exists() and r and (project.parent / r).exists():
            p = str((project.parent / r).resolve())
        out.append(p)
    return out


def _result_file(project: Path, file: str, what: str) -> Path:
    """The results file of one result: where the project file says, else in the results
    folder named after the project file as it is now (the project was renamed)."""
    rel = PurePosixPath(file.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or rel.suffix != ".npz":
        raise EngineError(
            f"{project.name}: {what} points at {file}, which is not a results file in the project's "
            "folder; it was left out."
        )
    here = results_dir(project)
    for cand in (project.parent / rel, here / rel.name):
        if cand.is_file():
            return cand
    looked = here.name if rel.parent.name in ("", here.name) else f"{here.name} and {rel.parent}"
    raise EngineError(
        f"{project.name}: {what} is missing: {rel.name} is not in {looked} next to the project file. "
        f"Keep the results folder beside the project file, named {here.name}."
    )


def _decode_result(tree, arrays, base: Path, project: Path, what: str) -> Result:
    try:
        result = decode(tree, arrays, base)
    except EngineError as e:
        raise EngineError(f"{project.name}: {what} could not be read: {e}") from None
    except MemoryError:
        raise EngineError(f"{project.name}: {what} could not be read: not enough memory.") from None
    except Exception as e:  # damaged or hostile content; the traceback goes to the log
        log.info("damaged result in %s", project, exc_info=True)
        raise EngineError(f"{project.name}: {what} is damaged ({type(e).__name__}: {e}); it was left out.") from None
    if not isinstance(result, Result):
        raise EngineError(f"{project.name}: {what} is damaged (it holds no result); it was left out.")
    return result


def remove_project_files(path: str | os.PathLike) -> None:
    """Delete a project file and its results folder (the autosave, after a clean exit)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    rdir = results_dir(path)
    if rdir.is_dir():
        shutil.rmtree(rdir, ignore_errors=True)


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a (damaged) project file and its results folder out of the way, keeping both
    for inspection; returns the new name of the project file."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    ext = next((x for x in (SUFFIX, ".json") if path.name.endswith(x)), "")
    stem = path.name[: len(path.name) - len(ext)]
    k, new = 1, path.with_name(f"{stem}.damaged-{stamp}{path.name[len(stem) :]}")
    while new.exists() or results_dir(new).exists():
        k += 1
        new = path.with_name(f"{stem}.damaged-{stamp}-{k}{path.name[len(stem) :]}")
    rdir = results_dir(path)
    os.replace(path, new)
    if rdir.is_dir():
        os.replace(rdir, results_dir(new))
    return new


def results_dir(project_path: Path) -> Path:
    stem = project_path.name
    for suffix in (SUFFIX, ".json"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return project_path.with_name(stem + ".results")


def _json_default(v):
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"cannot save {type(v).__name__} in a project")


def _with_copied_videos(result: Result, rdir: Path, index: int, ws=None) -> Result:
    """A shallow copy whose VideoResults point at MP4 copies inside the results folder
    (copied as part of the write ``ws`` when one is given)."""
    from engines.types import VideoResult

    items = []
    for j, it in enumerate(result.items):
        if isinstance(it, VideoResult) and it.path is not None and Path(it.path).exists():
            dst = rdir / f"result_{index:03d}_{j}{Path(it.path).suffix or '.mp4'}"
            if Path(it.path).resolve() != dst.resolve():
                if ws is not None:
                    shutil.copy2(it.path, ws.add(dst))
                else:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(it.path, dst)
            it = dataclasses.replace(it, path=dst)
        items.append(it)
    return dataclasses.replace(result, items=items)


# -- a lossless, pickle-free encoding of engine results ---------------------------------
def _types() -> dict[str, type]:
    import engines.types as t

    out = {c.__name__: c for c in vars(t).values() if isinstance(c, type) and dataclasses.is_dataclass(c)}
    out["Result"] = Result
    return out


def encode(obj, arrays: dict, key: str, base: Path | None = None):
    """JSON tree for ``obj``; numpy arrays go into ``arrays`` under unique keys."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(f"cannot save an object array ({key})")
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Path):
        if base is not None and obj.parent.resolve() == base.resolve():
            return {"__path__": obj.name, "relative": True}
        return {"__path__": str(obj)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            "__type__": type(obj).__name__,
            "fields": {
                f.name: encode(getattr(obj, f.name), arrays, f"{key}.{f.name}", base) for f in dataclasses.fields(obj)
            },
        }
    if isinstance(obj, dict):
        return {"__dict__": [[str(k), encode(v, arrays, f"{key}[{k}]", base)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {
            "__list__": [encode(v, arrays, f"{key}[{i}]", base) for i, v in enumerate(obj)],
            "tuple": isinstance(obj, tuple),
        }
    raise TypeError(f"cannot save a {type(obj).__name__} ({key}) in a project")


def decode(tree, arrays: dict, base: Path | None = None):
    if isinstance(tree, dict):
        if "__array__" in tree:
            key = tree["__array__"]
            if not isinstance(key, str) or key not in arrays:
                raise EngineError(f"the array {key!r} is not in its results file")
            return arrays[key]
        if "__path__" in tree:
            p = Path(tree["__path__"])
            return (base / p) if tree.get("relative") and base is not None else p
        if "__type__" in tree:
            cls = _types().get(tree["__type__"])
            if cls is None:
                raise EngineError(f"Unknown result type {tree['__type__']} in the project.")
            names = {f.name for f in dataclasses.fields(cls) if f.init}
            values = {k: decode(v, arrays, base) for k, v in tree["fields"].items()}
            obj = cls(**{k: v for k, v in values.items() if k in names})
            for k, v in values.items():
                if k not in names:
                    setattr(obj, k, v)
            return obj
        if "__dict__" in tree:
            return {k: decode(v, arrays, base) for k, v in tree["__dict__"]}
        if "__list__" in tree:
            items = [decode(v, arrays, base) for v in tree["__list__"]]
            return tuple(items) if tree.get("tuple") else items
    return tree


# -- inputs ------------------------------------------------------------------------------
def load_entry(entry: InputEntry):
    """Re-read an input from its paths (runs in a worker thread).

    Every failure is an EngineError naming the input: a damaged entry, a missing file,
    an unreadable one; an unexpected error keeps its traceback in the log.
    """
    try:
        return _load_entry(entry)
    except EngineError:
        raise
    except MemoryError:
        raise EngineError(f"{entry.label or 'An input'}: not enough memory to read it again.") from None
    except Exception as e:
        log.info("re-reading input %r failed", entry.label, exc_info=True)
        raise EngineError(
            f"{entry.label or 'An input'} could not be read again ({type(e).__name__}: {e}). Import it again."
        ) from None


def _load_entry(entry: InputEntry):
    from engines import io
    from engines.types import FocalStack, ImageSet

    if not entry.paths or not all(isinstance(p, (str, os.PathLike)) for p in entry.paths):
        raise EngineError(f"{entry.label or 'An input'} has no file paths in the project; import it again.")
    paths = [Path(p) for p in entry.paths]
    if entry.kind == "FocalStack":
        if entry.focus_distances:
            from engines.io.focalstack import find_images, read_focal_stack

            return read_focal_stack(find_images(paths), distances=list(entry.focus_distances))
        return io.load_input(paths, prefer=(FocalStack,))
    if entry.kind == "ImageSet":
        return io.load_input(paths, prefer=(ImageSet,))
    return io.load_input(paths)
