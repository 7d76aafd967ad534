"""Focal stacks: photos of one scene focused at different distances.

The focus distance of each frame (metres) comes from, in this order:

1. ``distances`` given by the caller (the import dialog's table);
2. a sidecar ``focus.json`` in the photos' folder, either
   ``{"image_0.jpg": 0.3, "image_1.jpg": 0.85, ...}`` or
   ``{"focus_distances": [0.3, 0.85, ...]}`` (in sorted file-name order);
3. the file names, ``<anything>_<metres>.<ext>`` such as ``image_3_0.85.jpg`` (the
   convention of HybridDepth's tools; Ganj et al., "HybridDepth", WACV 2025); the number
   must have a decimal point, so ``IMG_2889.jpg`` is not read as 2889 m;
4. EXIF ``SubjectDistance``;
5. XMP ``aux:ApproximateFocusDistance`` (metres), which Adobe Camera Raw and Lightroom
   write from the lens data of most cameras, read from the XMP packet as it sits in the
   file (JPEG APP1, TIFF/DNG tag, PNG iTXt).

Frames are returned nearest focus first. Intrinsics come from an ``"intrinsics"`` 3x3
matrix in focus.json, else from EXIF when the focal length in 35 mm terms, or the focal
length plus the focal-plane resolution, is known.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from engines.api import EngineError
from engines.io import IMAGE_EXTS
from engines.io.limits import read_json_text
from engines.types import FocalStack

_NAME_DISTANCE = re.compile(r"_(\d+\.\d+)\s*m?$", re.IGNORECASE)
_HOW = (
    'Put a focus.json beside the photos, e.g. {"image_0.jpg": 0.3, "image_1.jpg": 0.85}, '
    "or name the files like image_0_0.30.jpg (distance in metres before the extension)."
)
_FULL_FRAME_DIAGONAL_MM = float(np.hypot(36.0, 24.0))


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def find_images(paths: str | os.PathLike | Iterable) -> list[Path]:
    """Image files from a folder (sorted by name, numbers in order) or a list of files/folders."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(
                (
                    f
                    for f in p.iterdir()
                    if f.is_file() and f.suffix.lower() in IMAGE_EXTS and not f.name.startswith(".")
                ),
                key=_natural_key,
            )
        elif p.suffix.lower() in IMAGE_EXTS:
            if not p.exists():
                raise EngineError(f"{p}: no such file. Check the path or choose the files again.")
            files.append(p)
    if not files:
        where = ", ".join(Path(p).name for p in paths) or "the selection"
        raise EngineError(f"No images found in {where}. Choose a folder or files in {', '.join(sorted(IMAGE_EXTS))}.")
    return files


def _sidecar_intrinsics(folder: Path) -> np.ndarray | None:
    """A 3x3 ``"intrinsics"`` matrix from focus.json (as engines.depth.synth writes it)."""
    try:
        data = json.loads(read_json_text(folder / "focus.json"))
        K = np.asarray(data.get("intrinsics"), np.float64) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError, EngineError):
        return None
    return K if K is not None and K.shape == (3, 3) and np.isfinite(K).all() and K[0, 0] > 0 else None


def _from_json(files: list[Path], notes: list[str]) -> list[float] | None:
    sidecar = files[0].parent / "focus.json"
    if not sidecar.exists():
        return None
    try:
        data = json.loads(read_json_text(sidecar, "focus.json"))
    except (OSError, ValueError) as e:
        raise EngineError(f"{sidecar}: not valid JSON ({e}). {_HOW}") from None
    if isinstance(data, dict) and "focus_distances" in data:
        vals = data["focus_distances"]
        names = data.get("files")
        if names:
            data = dict(zip(names, vals))
        else:
            if not isinstance(vals, list) or len(vals) != len(files):
                raise EngineError(
                    f"{sidecar.name}: focus_distances has {len(vals) if isinstance(vals, list) else 'no'} "
                    f"values but there are {len(files)} photos. Give one distance per photo, in file-name order."
                )
            notes.append(f"Focus distances from {sidecar.name}.")
            return [_number(v, sidecar) for v in vals]
    if not isinstance(data, dict):
        raise EngineError(f"{sidecar.name}: expected a JSON object. {_HOW}")
    missing = [f.name for f in files if f.name not in data]
    if missing:
        raise EngineError(
            f"{sidecar.name}: no focus distance for {', '.join(missing[:5])}"
            f'{" and more" if len(missing) > 5 else ""}. Add them (metres), e.g. "{missing[0]}": 0.85.'
        )
    notes.append(f"Focus distances from {sidecar.name}.")
    return [_number(data[f.name], sidecar) for f in files]


def _number(v, src: Path) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        raise EngineError(f"{src.name}: '{v}' is not a distance in metres. {_HOW}") from None


def _from_names(files: list[Path]) -> list[float] | None:
    found = [_NAME_DISTANCE.search(f.stem) for f in files]
    return [float(m.group(1)) for m in found] if all(found) else None


def _from_exif(files: list[Path]) -> list[float] | None:
    from engines.io.images import _open, read_exif

    out = []
    for f in files:
        with _open(f) as im:
            d = read_exif(im).get("SubjectDistance")
        # 0 means unknown and 0xFFFFFFFF means infinity in EXIF.
        if not isinstance(d, float) or not (0 < d < 4e9):
            return None
        out.append(d)
    return out


_XMP_FOCUS = re.compile(rb"ApproximateFocusDistance(?:\s*=\s*[\"']|>)\s*([0-9.]+)(?:/([0-9.]+))?")


def _xmp_focus_distance(path: Path, limit: int = 1 << 20) -> float | None:
    """``aux:ApproximateFocusDistance`` from the XMP packet in the first ``limit`` bytes."""
    with open(path, "rb") as fh:
        m = _XMP_FOCUS.search(fh.read(limit))
    if not m:
        return None
    try:
        value = float(m.group(1)) / (float(m.group(2)) if m.group(2) else 1.0)
    except (ValueError, ZeroDivisionError):
        return None
    # 4294967295 (and anything near it) stands for infinity.
    return value if 0 < value < 1e6 else None


def _from_xmp(files: list[Path]) -> list[float] | None:
    out = [_xmp_focus_distance(f) for f in files]
    return out if all(d is not None for d in out) else None


def intrinsics_from_exif(exif: dict, size: tuple[int, int]) -> np.ndarray | None:
    """Pinhole K (pixels) for an image of ``size`` (w, h) from EXIF focal-length tags."""
    w, h = size
    f_px = None
    f35 = exif.get("FocalLengthIn35mmFilm")
    if isinstance(f35, float) and f35 > 0:
        # The 35 mm equivalent is defined on the diagonal of a 36 x 24 mm frame.
        f_px = f35 / _FULL_FRAME_DIAGONAL_MM * float(np.hypot(w, h))
    else:
        f_mm, xres = exif.get("FocalLength"), exif.get("FocalPlaneXResolution")
        unit_mm = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}.get(int(exif.get("FocalPlaneResolutionUnit", 2) or 2))
        if isinstance(f_mm, float) and f_mm > 0 and isinstance(xres, float) and xres > 0 and unit_mm:
            px_per_mm = xres / unit_mm
            full_w = exif.get("PixelXDimension")
            # Resolution refers to the sensor's full image; scale to what we loaded.
            scale = w / full_w if isinstance(full_w, float) and full_w > 0 else 1.0
            f_px = f_mm * px_per_mm * scale
    if not f_px:
        return None
    return np.array([[f_px, 0, (w - 1) / 2], [0, f_px, (h - 1) / 2], [0, 0, 1]], np.float64)


def read_focal_stack(files, distances=None) -> FocalStack:
    """Read a focal stack from a folder or image files (see the module docstring)."""
    from engines.io.images import read_image

    files = find_images(files)
    if len(files) < 2:
        raise EngineError(
            f"A focal stack needs at least 2 photos focused at different distances; got only {files[0].name}."
        )
    notes: list[str] = []
    if distances is not None:
        dist = [float(d) for d in distances]
        if len(dist) != len(files):
            raise EngineError(f"Got {len(dist)} focus distances for {len(files)} photos; give one per photo.")
    else:
        dist = _from_json(files, notes)
        if dist is None:
            dist = _from_names(files)
            if dist is not None:
                notes.append("Focus distances from the file names.")
        if dist is None:
            dist = _from_exif(files)
            if dist is not None:
                notes.append("Focus distances from EXIF SubjectDistance.")
        if dist is None:
            dist = _from_xmp(files)
            if dist is not None:
                notes.append("Focus distances from XMP ApproximateFocusDistance (Adobe lens data).")
        if dist is None:
            raise EngineError(
                f"Focus distances are missing for the {len(files)} photos in {files[0].parent.name or '.'}. {_HOW}"
            )
    bad = [f.name for f, d in zip(files, dist) if not (np.isfinite(d) and d > 0)]
    if bad:
        raise EngineError(f"Focus distance must be a positive number of metres; check {', '.join(bad)}.")
    seen: dict[float, Path] = {}
    for f, d in zip(files, dist):
        if d in seen:
            raise EngineError(
                f"{seen[d].name} and {f.name} have the same focus distance ({d:g} m); "
                "each photo of a focal stack must be focused at a different distance. Remove one or fix its distance."
            )
        seen[d] = f
    images = [read_image(f) for f in files]
    sizes = {im.size for im in images}
    if len(sizes) > 1:
        ref = images[0]
        odd = [im for im in images if im.size != ref.size]
        raise EngineError(
            f"The photos of a focal stack must all be the same size: {ref.path.name} is {ref.size[0]}x{ref.size[1]} but "  # noqa: E501
            + ", ".join(f"{im.path.name} is {im.size[0]}x{im.size[1]}" for im in odd[:3])
            + ". Remove the odd ones or resize them to match."
        )
    frames = [im.pixels for im in images]
    if len({(f.ndim, f.dtype.str, f.shape[2:]) for f in frames}) > 1 or any(
        f.ndim == 3 and f.shape[2] == 4 for f in frames
    ):
        frames = [im.rgb8() for im in images]
    for im in images:
        notes += im.notes
    order = np.argsort(dist, kind="stable")
    exif = images[0].exif
    K = _sidecar_intrinsics(files[0].parent)
    if K is not None and not any(im.notes for im in images):
        notes.append("Intrinsics from focus.json.")
    else:
        K = intrinsics_from_exif(exif, images[0].size)
    return FocalStack(
        frames=[frames[i] for i in order],
        focus_distances=np.asarray(dist, np.float64)[order],
        intrinsics=K,
        paths=[files[i] for i in order],
        exif=exif,
        notes=notes,
    )
