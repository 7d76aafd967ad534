"""Take files: the animated avatar as GLB, a render as MP4, the curves as JSON.

* GLB (:func:`write_take_glb`): the avatar as :func:`engines.avatar.export.write_avatar_glb`
  writes it (parts with every morph target, skeleton, skin; at rest) plus one animation
  named after the take: the morph weights of every part node (LINEAR keyframes at the
  take's frame times, glTF 2.0 §3.11) and the ``Head`` joint's rotation; with
  ``gaze="joints"`` the ``LeftEye`` / ``RightEye`` rotations too (the eyeLook weights are then
  zeroed, so the eyes do not turn twice). Clip duration = take duration.
* MP4 (:func:`write_take_mp4`): the avatar rendered frame by frame (:mod:`engines.puppet.
  render`), side by side with the source video when ``take.meta["render"]["side_by_side"]``.
* JSON (:func:`write_take_json`): times, names, weights, rotations, tracked flags and timings,
  for other tools.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.types import Take


def _require_avatar(take: Take, path: Path):
    if take.avatar is None:
        raise EngineError(
            f"{path.name}: the take has no avatar to animate; run the puppet with an avatar "
            "(a .glb/.zip avatar or a portrait photo) as the second input."
        )
    return take.avatar


def _frame_weights(take: Take) -> np.ndarray:
    """The take's weights as the avatar shows them (eyeLook left to the joints in joints mode)."""
    w = take.weights.astype(np.float64).copy()
    if take.meta.get("gaze") == "joints":
        w[:, [i for i, n in enumerate(take.names) if n.startswith("eyeLook")]] = 0.0
    return w


def take_animation(take: Take):
    """The take as a :class:`engines.io.gltf.GltfAnimation` for its avatar."""
    from engines.io.gltf import GltfAnimation
    from engines.puppet.retarget import Retargeter

    avatar = take.avatar
    rt = Retargeter(avatar)
    w = _frame_weights(take)
    full = np.zeros((len(take), 52))
    from engines.avatar.arkit import ARKIT_NAMES

    for k, n in enumerate(take.names):
        if n in ARKIT_NAMES:
            full[:, ARKIT_NAMES.index(n)] = w[:, k]
    morph = rt.morph_rows(full)
    joints = set(avatar.skeleton.names) if avatar.skeleton is not None else set()
    rotations = {}
    if "Head" in joints:
        rotations["Head"] = take.head_rotation
    if take.meta.get("gaze") == "joints":
        for k, name in enumerate(("LeftEye", "RightEye")):
            if name in joints:
                rotations[name] = take.eye_rotation[:, k]
    return GltfAnimation(name=take.name, times=take.times - take.times[0], morph_weights=morph, rotations=rotations)


def write_take_glb(take: Take, path) -> list[Path]:
    """The avatar with the take as its animation (one GLB)."""
    from engines.avatar.export import _bound_to_head, _hair_mesh
    from engines.io.gltf import write_glb

    path = Path(path)
    avatar = _require_avatar(take, path)
    if len(take) < 2:
        raise EngineError(f"{path.name}: the take has {len(take)} frame; an animation needs at least two.")
    skel = avatar.skeleton
    meshes = [_bound_to_head(m, skel) for m in (avatar.mesh, *avatar.extra_meshes, *_hair_mesh(avatar))]
    return write_glb(meshes, path, skeleton=skel, morph_weights={}, animations=[take_animation(take)])


def render_frames(take: Take, size: int = 480, side_by_side: bool | None = None, progress=None, cancel=None):
    """Yield the MP4's RGB frames: the avatar posed per frame (and the source beside it)."""
    import cv2

    from engines.puppet.render import framing_camera, render_shaded
    from engines.puppet.retarget import Retargeter
    from engines.puppet.rotation import matrix_from_quat

    avatar = take.avatar
    opts = dict(take.meta.get("render") or {})
    sbs = opts.get("side_by_side", False) if side_by_side is None else side_by_side
    size = int(opts.get("size", size))
    rt = Retargeter(avatar)
    from engines.avatar.arkit import ARKIT_NAMES

    idx = [take.names.index(n) if n in take.names else -1 for n in ARKIT_NAMES]
    W = _frame_weights(take)
    heads = matrix_from_quat(take.head_rotation)
    eyes = matrix_from_quat(take.eye_rotation)
    joints_gaze = take.meta.get("gaze") == "joints"
    K, R, t = framing_camera(avatar, (size, size))
    src = None
    if sbs and take.source is not None and Path(take.source).is_file():
        from engines.io.video import iter_frames

        src = iter_frames(take.source)
    for i in range(len(take)):
        if cancel is not None:
            cancel.raise_if_set()
        w = np.array([W[i, k] if k >= 0 else 0.0 for k in idx])
        V = rt.vertices(w, heads[i], (eyes[i, 0], eyes[i, 1]) if joints_gaze else None)
        img = render_shaded(avatar, V, K, R, t, (size, size))
        if src is not None:
            frame = next(src, None)
            if frame is not None:
                h, fw = frame.shape[:2]
                frame = cv2.resize(frame, (max(2, round(fw * size / h)), size), interpolation=cv2.INTER_AREA)
                img = np.concatenate([frame, img], 1)
        if progress is not None:
            progress((i + 1) / len(take), f"Rendering frame {i + 1} of {len(take)}")
        yield img


def write_take_mp4(take: Take, path) -> list[Path]:
    """An H.264 MP4 of the avatar performing the take (at the take's frame rate)."""
    from engines.io.video import VideoWriter

    path = Path(path)
    _require_avatar(take, path)
    frames = render_frames(take)
    first = next(frames)
    h, w = first.shape[:2]
    with VideoWriter(path, take.fps, (w, h)) as writer:
        writer.write(first)
        for f in frames:
            if f.shape[:2] != (h, w):  # the source ended early: pad the render alone
                f = np.pad(f, ((0, 0), (w - f.shape[1], 0), (0, 0)), constant_values=128)[:h, :w]
            writer.write(f)
    return [path]


def take_summary(take: Take) -> dict:
    """Figures for ``--json``: frames, missed, duration, per-stage ms, the moving curves."""
    out = {
        "frames": len(take),
        "missed": take.missed,
        "duration_s": round(take.duration, 4),
        "fps": round(float(take.fps), 4),
    }
    for k, v in take.timings.items():
        if len(v):
            out[f"{k}_ms"] = {
                "mean": round(float(np.mean(v)), 3),
                "p50": round(float(np.median(v)), 3),
                "p95": round(float(np.percentile(v, 95)), 3),
                "max": round(float(np.max(v)), 3),
            }
    std = take.weights.std(0)
    curves = {}
    for k in np.argsort(-std)[:12]:
        c = take.weights[:, k]
        if std[k] < 1e-3:
            break
        curves[take.names[k]] = {
            "min": round(float(c.min()), 3),
            "max": round(float(c.max()), 3),
            "mean": round(float(c.mean()), 3),
            "std": round(float(std[k]), 3),
        }
    out["curves"] = curves
    from engines.puppet.rotation import matrix_from_quat, yaw_pitch_roll

    ypr = np.array([yaw_pitch_roll(R) for R in matrix_from_quat(take.head_rotation)])
    out["head_deg"] = {
        k: {"min": round(float(ypr[:, j].min()), 2), "max": round(float(ypr[:, j].max()), 2)}
        for j, k in enumerate(("yaw", "pitch", "roll"))
    }
    return out


def write_take_json(take: Take, path) -> list[Path]:
    """The take's curves as JSON (times in seconds, weights by name, quaternions x, y, z, w)."""
    from engines.io import atomic_path

    path = Path(path)
    doc = {
        "format": "capture-studio-take",
        "version": 1,
        "name": take.name,
        "fps": take.fps,
        "source": str(take.source) if take.source else None,
        "names": list(take.names),
        "times": np.round(take.times, 5).tolist(),
        "weights": np.round(take.weights, 4).tolist(),
        "head_rotation": np.round(take.head_rotation, 6).tolist(),
        "eye_rotation": np.round(take.eye_rotation, 6).tolist(),
        "tracked": take.tracked.tolist(),
        "timings_ms": {k: np.round(v, 3).tolist() for k, v in take.timings.items()},
        "summary": take_summary(take),
        "meta": {k: v for k, v in take.meta.items() if k != "render"},
    }
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(doc, default=str))
    return [path]
