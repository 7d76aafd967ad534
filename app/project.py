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
* Inputs are stored as paths (absolute), re-read when the project is opened; focus
  distances typed in by the user are kept so a focal stack re-opens the same way.

Autosave writes the same format to ``settings.autosave_path()``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.api import EngineError, Result

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
        """Write the project file and its results folder; atomic per file."""
        path = Path(path)
        if path.suffix != SUFFIX and not path.name.endswith(".json"):
            path = path.with_name(path.name + SUFFIX)
        rdir = results_dir(path)
        rdir.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": FORMAT, "version": VERSION, "saved": time.time(),
            "engine": self.engine, "params": self.params,
            "inputs": [
                {"kind": e.kind, "paths": [str(p) for p in e.paths], "label": e.label,
                 "focus_distances": e.focus_distances}
                for e in self.inputs
            ],
            "results": [],
        }
        keep = set()
        for i, r in enumerate(self.results, 1):
            name = f"result_{i:03d}.npz"
            arrays: dict[str, np.ndarray] = {}
            tree = encode(_with_copied_videos(r.result, rdir, i), arrays, "r", rdir)
            _atomic_npz(rdir / name, arrays)
            keep.add(name)
            doc["results"].append({
                "engine": r.engine, "params": r.params, "label": r.label, "input": r.input,
                "created": r.created, "file": f"{rdir.name}/{name}", "tree": tree,
            })
        for old in rdir.glob("result_*.npz"):
            if old.name not in keep:
                old.unlink()
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=_json_default), encoding="utf-8")
        os.replace(tmp, path)
        if remember:
            self.path, self.dirty = path, False
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Project":
        """Read a project file; inputs come back as entries to re-load (``obj`` None)."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise EngineError(f"Cannot open project {path.name}: {e.strerror or e}.") from None
        except ValueError:
            raise EngineError(f"{path.name} is not a Capture Studio project (not valid JSON).") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise EngineError(f"{path.name} is not a Capture Studio project file.")
        if int(doc.get("version", 0)) > VERSION:
            raise EngineError(f"{path.name} was saved by a newer Capture Studio; update to open it.")
        p = cls()
        p.engine = doc.get("engine")
        p.params = dict(doc.get("params") or {})
        for e in doc.get("inputs", []):
            p.inputs.append(InputEntry(e["kind"], list(e["paths"]), e.get("label", ""),
                                       e.get("focus_distances")))
        for r in doc.get("results", []):
            f = path.parent / r["file"]
            try:
                with np.load(f, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            except (OSError, ValueError) as e:
                raise EngineError(
                    f"{path.name}: its result file {r['file']} is missing or damaged ({e}). "
                    f"Keep the {results_dir(path).name} folder next to the project file."
                ) from None
            result = decode(r["tree"], arrays, f.parent)
            p.results.append(ResultEntry(result, r.get("engine", ""), r.get("params", {}),
                                         r.get("label", ""), r.get("input"),
                                         r.get("created", time.time())))
        p.path, p.dirty = path, False
        return p


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


def _atomic_npz(path: Path, arrays: dict) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _with_copied_videos(result: Result, rdir: Path, index: int) -> Result:
    """A shallow copy whose VideoResults point at MP4 copies inside the results folder."""
    from engines.types import VideoResult

    items = []
    for j, it in enumerate(result.items):
        if isinstance(it, VideoResult) and it.path is not None and Path(it.path).exists():
            dst = rdir / f"result_{index:03d}_{j}{Path(it.path).suffix or '.mp4'}"
            if Path(it.path).resolve() != dst.resolve():
                shutil.copy2(it.path, dst)
            it = dataclasses.replace(it, path=dst)
        items.append(it)
    return dataclasses.replace(result, items=items)


# -- a lossless, pickle-free encoding of engine results ---------------------------------
def _types() -> dict[str, type]:
    import engines.types as t

    out = {c.__name__: c for c in vars(t).values()
           if isinstance(c, type) and dataclasses.is_dataclass(c)}
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
        return {"__type__": type(obj).__name__,
                "fields": {f.name: encode(getattr(obj, f.name), arrays, f"{key}.{f.name}", base)
                           for f in dataclasses.fields(obj)}}
    if isinstance(obj, dict):
        return {"__dict__": [[str(k), encode(v, arrays, f"{key}[{k}]", base)]
                             for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [encode(v, arrays, f"{key}[{i}]", base) for i, v in enumerate(obj)],
                "tuple": isinstance(obj, tuple)}
    raise TypeError(f"cannot save a {type(obj).__name__} ({key}) in a project")


def decode(tree, arrays: dict, base: Path | None = None):
    if isinstance(tree, dict):
        if "__array__" in tree:
            return arrays[tree["__array__"]]
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
    """Re-read an input from its paths (runs in a worker thread)."""
    from engines import io
    from engines.types import FocalStack, ImageSet

    paths = [Path(p) for p in entry.paths]
    if entry.kind == "FocalStack":
        if entry.focus_distances:
            from engines.io.focalstack import find_images, read_focal_stack

            return read_focal_stack(find_images(paths), distances=list(entry.focus_distances))
        return io.load_input(paths, prefer=(FocalStack,))
    if entry.kind == "ImageSet":
        return io.load_input(paths, prefer=(ImageSet,))
    return io.load_input(paths)
