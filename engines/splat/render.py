"""Pictures of a trained splat: renders from its photos' cameras, a turntable orbit, and
the exports built on them (turntable MP4, a bundle with renders from every input camera)."""

from __future__ import annotations

import io as _io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.splat.project import View
from engines.types import Camera, Splat


def camera_view(cam: Camera, long_side: int | None = None) -> View:
    """A :class:`View` for one of ``Splat.cameras``, optionally resized to ``long_side``."""
    cam = Camera.from_dict(cam)
    v = View(cam.K, cam.R, cam.t, cam.width, cam.height, cam.name)
    if long_side and max(v.width, v.height) != long_side:
        s = long_side / max(v.width, v.height)
        v = v.scaled(max(1, round(v.width * s)), max(1, round(v.height * s)))
    return v


def render_splat(splat: Splat, views, background=(0.0, 0.0, 0.0), cancel=None) -> list[np.ndarray]:
    """Renders (H x W x 3 uint8) of ``splat`` from each :class:`View`."""
    import torch

    from engines.splat.metrics import to_uint8
    from engines.splat.model import Gaussians
    from engines.splat.project import render

    g = Gaussians.from_splat(splat)
    out = []
    with torch.no_grad():
        for v in views:
            if cancel is not None:
                cancel.raise_if_set()
            out.append(to_uint8(render(g, v, background=background)[0]))
    return out


def orbit_centre(splat: Splat) -> np.ndarray:
    """Where the photos look: the point nearest to every camera's optical axis (an orbit's
    subject), or the Gaussians' median when there are too few cameras to tell."""
    cams = splat.cameras
    if len(cams) >= 3:
        A, b = np.zeros((3, 3)), np.zeros(3)
        for c in cams:
            o, d = c.centre, c.forward
            P = np.eye(3) - np.outer(d, d)
            A += P
            b += P @ o
        if np.linalg.cond(A) < 1e6:
            x = np.linalg.solve(A, b)
            if np.all(np.isfinite(x)):
                return x
    return np.median(splat.positions, 0) if len(splat) else np.zeros(3)


def turntable_views(splat: Splat, frames: int = 120, long_side: int = 480) -> list[View]:
    """Cameras on a circle about +Y around :func:`orbit_centre`, at the photos' mean
    distance and height (the splat's frame is levelled so that +Y is the photos' up)."""
    centre = orbit_centre(splat)
    cams = splat.cameras
    if cams:
        C = np.array([c.centre for c in cams])
        rel = C - centre
        dist = float(np.median(np.linalg.norm(rel, axis=1)))
        height = float(np.median(rel[:, 1]))
        w0, h0 = cams[0].width, cams[0].height
        f0 = float(np.median([c.K[1, 1] / c.height for c in cams]))
        start = float(np.arctan2(rel[0, 0], rel[0, 2]))
    else:
        lo, hi = np.percentile(splat.positions, [5, 95], axis=0) if len(splat) else (-np.ones(3), np.ones(3))
        dist = 1.8 * float(np.linalg.norm(hi - lo))
        height, w0, h0, f0, start = 0.35 * dist, 4, 3, 1.2, 0.0
    s = long_side / max(w0, h0)
    w, h = max(2, round(w0 * s)), max(2, round(h0 * s))
    f = f0 * h
    radius = float(np.sqrt(max(dist**2 - height**2, (0.2 * dist) ** 2)))
    views = []
    for i in range(frames):
        a = start + 2 * np.pi * i / frames
        c = centre + np.array([radius * np.sin(a), height, radius * np.cos(a)])
        cam = Camera.look_at(c, centre, (0.0, 1.0, 0.0), focal_px=f, width=w, height=h)
        views.append(View(cam.K, cam.R, cam.t, w, h, f"turntable_{i:03d}"))
    return views


def write_turntable_mp4(
    splat: Splat, path: str | os.PathLike, frames: int = 120, fps: float = 30.0, long_side: int = 480
) -> list[Path]:
    """An H.264 orbit of the splat (written atomically)."""
    from engines.io.video import VideoWriter

    if len(splat) == 0:
        raise EngineError("The splat is empty: there is nothing to film.")
    views = turntable_views(splat, frames, long_side)
    path = Path(path)
    with VideoWriter(path, fps, (views[0].width, views[0].height)) as writer:
        for v in views:
            writer.write(render_splat(splat, [v])[0])
    return [path]


def write_splat_bundle(splat: Splat, path: str | os.PathLike) -> list[Path]:
    """A .zip to share: ``<name>.ply``, ``cameras.json`` and ``renders/<photo>.png`` from
    every input camera (``held_out`` ones included, marked in cameras.json)."""
    from PIL import Image as PILImage

    from engines.io import atomic_path
    from engines.splat.ply import cameras_json, splat_to_bytes

    path = Path(path)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{path.stem}.ply", splat_to_bytes(splat))
        if splat.cameras:
            z.writestr("cameras.json", json.dumps(cameras_json(splat, f"{path.stem}.ply"), indent=1))
            for cam in splat.cameras:
                img = render_splat(splat, [camera_view(cam, min(max(cam.width, cam.height), 1280))])[0]
                buf = _io.BytesIO()
                PILImage.fromarray(img).save(buf, format="PNG")
                z.writestr(f"renders/{Path(cam.name).stem}.png", buf.getvalue())
    return [path]
