"""File I/O: readers and writers in small tables keyed by file extension.

As in trimesh's ``exchange/``, each format is a function plus one table entry, and the
tables hold ``"module:function"`` strings so that nothing heavy is imported until a
format is used. All writers are atomic (:func:`atomic_path`): a failed export never
leaves half a file behind.

Public API
----------
``load_input(paths, prefer)``  -> Image | FocalStack | VideoClip | ImageSet
``export(obj, path)``          -> list of written paths (format from the extension)
``writers()`` / ``readers()``  -> the format tables: the core types' below, plus what each
                                  engine declares (``Engine.writers`` / ``.readers``)
``writer_extensions(obj)``     -> extensions that can export this object (File > Export)
``type_extensions(types)``     -> extensions that can hold results of these types (checked
                                  before a run, so a wrong ``--out`` fails at once)

Safety (see :mod:`engines.io.files` and :mod:`engines.io.limits`): every file read as an
input is protected for the life of the process, so no export replaces it; multi-file
exports are one transaction; failed writes raise :class:`OutputError` naming the target;
readers check declared sizes against one limit policy before allocating.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Iterable

from engines.api import EngineError, Result
from engines.io.files import OutputError, WriteSet, atomic_path, check_output, is_protected, protect  # noqa: F401

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm"}

# The core types' formats: extension -> list of (result type name, "module:function"); the
# function is ``fn(obj, path) -> list[Path]`` and must write through atomic_path. Engines
# add their own result types' formats by declaring ``writers`` (see :func:`writers`).
WRITERS: dict[str, list[tuple[str, str]]] = {
    ".glb": [
        ("Mesh", "engines.io.mesh:write_glb"),
        ("DepthMap", "engines.io.depth:write_depth_mesh_glb"),
    ],
    ".obj": [
        ("Mesh", "engines.io.mesh:write_obj"),
        ("DepthMap", "engines.io.depth:write_depth_mesh_obj"),
    ],
    ".ply": [
        ("Mesh", "engines.io.mesh:write_ply"),
        ("PointCloud", "engines.io.mesh:write_points_ply"),
        ("DepthMap", "engines.io.depth:write_depth_ply"),
    ],
    ".png": [
        ("DepthMap", "engines.io.depth:write_depth_png16"),
        ("Image", "engines.io.images:write_image"),
    ],
    ".npy": [("DepthMap", "engines.io.depth:write_depth_npy")],
    ".mp4": [
        ("VideoResult", "engines.io.video:write_video_result"),
    ],
    ".jpg": [("Image", "engines.io.images:write_image")],
}

# extension -> "module:function" returning a result object (Open in the app, tests)
READERS: dict[str, str] = {
    ".obj": "engines.io.mesh:read_mesh",
    ".glb": "engines.io.mesh:read_mesh",
    ".ply": "engines.io.mesh:read_ply",
    ".npy": "engines.io.depth:read_depth_npy",
}


def _declared(kind: str) -> dict:
    """The engines' declared ``kind`` table (empty when the registry cannot load)."""
    try:
        from engines import registry
    except ImportError:  # pragma: no cover - a stripped-down build without the registry
        return {}
    return registry.contributions(kind)


def writers() -> dict[str, list[tuple[str, str]]]:
    """Every writer: what the engines declare first (their result types are the more
    specific), then the core table."""
    out = {ext: list(v) for ext, v in _declared("writers").items()}
    for ext, table in WRITERS.items():
        out.setdefault(ext, [])
        out[ext] += [v for v in table if v not in out[ext]]
    return out


def readers() -> dict[str, str]:
    """Every reader (File > Open): the engines' declared ones take an extension first."""
    return {**READERS, **_declared("readers")}


def resolve(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _type_names(obj) -> list[str]:
    return [c.__name__ for c in type(obj).__mro__]


def writer_extensions(obj) -> list[str]:
    """Extensions that can export ``obj`` (a result object or a Result)."""
    objs = obj.items if isinstance(obj, Result) else [obj]
    out = []
    for ext, table in writers().items():
        if any(t in _type_names(o) for o in objs for t, _ in table):
            out.append(ext)
    return out


def type_extensions(types: Iterable[type]) -> list[str]:
    """Extensions that can hold a result of any of ``types`` (an engine's ``produces``)."""
    names = {n for t in types for n in (c.__name__ for c in t.__mro__)}
    return [ext for ext, table in writers().items() if any(t in names for t, _ in table)]


def export(obj: Any, path: str | os.PathLike, protect_paths: Iterable = ()) -> list[Path]:
    """Write a result object (or the first suitable item of a Result) to ``path``.

    The format follows the extension. Returns the paths written (an OBJ also writes its
    MTL and texture). Raises EngineError when the object cannot be written in that format,
    when ``path`` is an input file (those read through :func:`load_input` or
    :func:`read`, and ``protect_paths``), and :class:`OutputError` when the file cannot
    be written; either way nothing is left half-written. ``path`` itself may be replaced.
    """
    path = Path(path)
    protect(protect_paths)
    ext = path.suffix.lower()
    all_writers = writers()
    table = all_writers.get(ext)
    if not table:
        raise EngineError(f"Cannot export to '{ext or path.name}': use one of {', '.join(sorted(all_writers))}.")
    if is_protected(path):
        from engines.io.files import refuse_input

        raise refuse_input(path)
    objs = obj.items if isinstance(obj, Result) else [obj]
    if isinstance(obj, Result) and ext in obj.by_extension:
        objs = [obj.by_extension[ext]] + objs
    for o in objs:
        names = _type_names(o)
        for tname, ref in table:
            if tname in names:
                return [Path(p) for p in resolve(ref)(o, path)]
    kinds = ", ".join(type(o).__name__ for o in objs) or "nothing"
    raise EngineError(
        f"A {ext} file cannot hold this result ({kinds}); try {', '.join(writer_extensions(obj)) or 'another format'}."
    )


def read(path: str | os.PathLike):
    """Read a result file (mesh, point cloud, depth, avatar bundle)."""
    path = Path(path)
    ref = readers().get(path.suffix.lower())
    if ref is None:
        raise EngineError(f"Cannot open '{path.name}': unknown format {path.suffix or '(none)'}.")
    obj = resolve(ref)(path)
    protect([path])
    return obj


def classify(path: Path) -> str:
    """'image', 'video', 'folder' or 'unknown' from the path alone."""
    if path.is_dir():
        return "folder"
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    return "unknown"


def load_input(paths: str | os.PathLike | Iterable, prefer: tuple[type, ...] = ()):
    """Load what the user pointed at as an engine input.

    * one image file -> Image
    * one video file -> VideoClip
    * a folder, or several images -> FocalStack when ``prefer`` asks for one (or focus
      distances are found), else ImageSet
    * one file of a type an engine reads as one of the ``prefer`` types (its declared
      ``input_readers``, e.g. an avatar ``.glb`` / ``.zip`` -> Avatar)
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise EngineError("Nothing to import: no file was given.")
    for p in paths:
        if not p.exists():
            raise EngineError(f"{p}: no such file or folder.")
    obj = _load(paths, prefer)
    protect(input_files(paths))
    return obj


def input_files(paths: list[Path]) -> list[Path]:
    """The files behind the inputs (the images of a folder, and any files given)."""
    out = []
    for p in paths:
        if p.is_dir():
            out += [f for f in p.iterdir() if f.is_file()]
        else:
            out.append(p)
    return out


def _load(paths: list[Path], prefer: tuple[type, ...]):
    from engines.types import Avatar, FocalStack, ImageSet  # noqa: F401

    if len(paths) == 1 and classify(paths[0]) == "image":
        from engines.io.images import read_image

        return read_image(paths[0])
    if len(paths) == 1 and classify(paths[0]) == "video":
        from engines.io.video import open_video

        return open_video(paths[0])
    if len(paths) == 1 and paths[0].is_file():
        typed = _declared("input_readers")
        for t in prefer:  # a file an engine reads as one of its input types (an avatar .glb)
            ref = typed.get(t.__name__, {}).get(paths[0].suffix.lower())
            if ref is not None:
                return resolve(ref)(paths[0])
    if len(paths) == 1 and classify(paths[0]) == "unknown":
        raise EngineError(
            f"{paths[0].name}: unknown file type '{paths[0].suffix}'. Import an image "
            f"({', '.join(sorted(IMAGE_EXTS))}), a video ({', '.join(sorted(VIDEO_EXTS))}) or a folder."
        )
    from engines.io.focalstack import find_images, read_focal_stack

    files = find_images(paths)
    if FocalStack in prefer:
        return read_focal_stack(files)
    if ImageSet in prefer:
        return ImageSet(files)
    try:
        return read_focal_stack(files)
    except EngineError:
        return ImageSet(files)
