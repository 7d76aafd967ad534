"""Known-truth performances: an avatar rendered with chosen ARKit weight curves and head
rotations, for the puppet's tests and benchmark (analysis by synthesis: the tracker must
give back the curves the renderer was given).

The clip: :func:`truth_curves` (a neutral start for calibration, then jaw opening, blinks of
each eye at different times - three frames closed, as fast as real blinks -, smiles of each
side out of phase, an inner-brow raise, head yaw and pitch of up to 15 and 10 degrees),
rendered by :func:`render_clip` with the numpy rasteriser (:func:`engines.avatar.raster.
render_textured`) from a camera that frames the face (a talking-head shot: the face about
half the frame wide), the head turned rigidly about its ``Head`` joint, as :func:`engines.avatar.quality.
render_from_photo_camera` turns it.
"""
from __future__ import annotations

import numpy as np

from engines.avatar.arkit import ARKIT_NAMES
from engines.puppet.rotation import from_yaw_pitch_roll

CURVE_NAMES = ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight", "browInnerUp")
BACKGROUND = (128, 128, 128)


def _bump(x, centre, half_width, peak=1.0):
    """A smooth raised-cosine bump."""
    u = np.clip((x - centre) / half_width, -1.0, 1.0)
    return peak * 0.5 * (1 + np.cos(np.pi * u))


def _blink(i, start, closed=3, ramp=2):
    """A blink: ``ramp`` frames closing, ``closed`` frames shut, ``ramp`` frames opening."""
    out = np.zeros(len(i))
    for k in range(ramp):
        out[i == start + k] = (k + 1) / (ramp + 1)
        out[i == start + ramp + closed + k] = 1 - (k + 1) / (ramp + 1)
    out[(i >= start + ramp) & (i < start + ramp + closed)] = 1.0
    return out


def truth_curves(n_frames: int = 60, neutral_frames: int = 8) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(weights by name (each n_frames long), yaw degrees, pitch degrees) of the known-truth
    performance. The first ``neutral_frames`` are the rest face looking into the camera."""
    i = np.arange(n_frames)
    x = np.clip((i - neutral_frames) / max(n_frames - neutral_frames - 1, 1), 0, 1)  # 0..1 over the motion
    on = i >= neutral_frames
    w = {
        "jawOpen": _bump(x, 0.25, 0.2, 0.6) + _bump(x, 0.75, 0.1, 0.4),
        "eyeBlinkLeft": _blink(i, neutral_frames + round(0.15 * (n_frames - neutral_frames)))
        + _blink(i, neutral_frames + round(0.7 * (n_frames - neutral_frames))),
        "eyeBlinkRight": _blink(i, neutral_frames + round(0.15 * (n_frames - neutral_frames)))
        + _blink(i, neutral_frames + round(0.45 * (n_frames - neutral_frames))),
        "mouthSmileLeft": _bump(x, 0.5, 0.3, 0.8),
        "mouthSmileRight": _bump(x, 0.65, 0.3, 0.7),
        "browInnerUp": _bump(x, 0.4, 0.25, 0.8),
    }
    w = {k: np.where(on, np.clip(v, 0, 1), 0.0) for k, v in w.items()}
    yaw = np.where(on, 15.0 * np.sin(2 * np.pi * x), 0.0)
    pitch = np.where(on, 10.0 * np.sin(2 * np.pi * 1.5 * x + 0.5) * np.minimum(1.0, 4 * x), 0.0)
    return w, yaw, pitch


def framing_camera(avatar, size: tuple[int, int], face_fraction: float = 0.5):
    """(K, R, t) looking straight at the face, which spans ``face_fraction`` of the width."""
    from engines.puppet.solve import R_FRONTAL, avatar_landmarks

    w, h = size
    L = avatar_landmarks(avatar)
    V = avatar.mesh.vertices.astype(np.float64)
    if L is None:  # not an ICT avatar: the front of the head
        c = V.mean(0)
        c[2] = V[:, 2].max()
        width = float(np.ptp(V[:, 0])) * 0.8
    else:
        c = L[:468].mean(0)
        width = float(np.ptp(L[:468, 0]))
    f = 1.2 * max(w, h)
    d = f * width / (face_fraction * w)
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
    R = R_FRONTAL.copy()
    t = -R @ c + np.array([0.0, 0.0, d])
    return K, R, t


def posed_vertices(avatar, weights: dict[str, float], head_R: np.ndarray | None = None,
                   eye_R: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The avatar's vertices for blendshape weights, eyes turned by the rig's skinning
    (:func:`engines.avatar.rig.pose_vertices`), the head turned rigidly about its joint."""
    from engines.avatar.rig import pose_vertices

    m = avatar.mesh
    V = m.vertices.astype(np.float64).copy()
    for k, v in weights.items():
        if v and k in m.morph_targets:
            V += float(v) * m.morph_targets[k]
    if eye_R and avatar.skeleton is not None and m.joints is not None:
        V = pose_vertices(V, avatar.skeleton, m.joints, m.weights, eye_R)
    if head_R is not None:
        # the whole head turned rigidly about the Head joint (the skin's neck blend would bend
        # the chin less than the brow, and "the head's rotation" would then have no single value)
        sk = avatar.skeleton
        c = sk.positions[sk.names.index("Head")] if sk is not None and "Head" in sk.names else V.mean(0)
        V = (V - c) @ np.asarray(head_R, np.float64).T + c
    return V


def render_clip(avatar, n_frames: int = 60, size: tuple[int, int] = (320, 320), neutral_frames: int = 8):
    """Frames (list of H x W x 3 uint8) of the known-truth performance, and the truth:
    ``{"weights": {name: (T,)}, "yaw": (T,), "pitch": (T,), "camera": (K, R, t)}``."""
    from engines.avatar.raster import render_textured

    w, yaw, pitch = truth_curves(n_frames, neutral_frames)
    K, R, t = framing_camera(avatar, size)
    m = avatar.mesh
    frames = []
    for i in range(n_frames):
        V = posed_vertices(avatar, {k: v[i] for k, v in w.items()}, from_yaw_pitch_roll(yaw[i], pitch[i]))
        img, _ = render_textured(V, m.faces, m.uv, m.texture, K, R, t, size, BACKGROUND)
        frames.append(img)
    return frames, {"weights": w, "yaw": yaw, "pitch": pitch, "camera": (K, R, t)}


def weights_matrix(weights: dict[str, np.ndarray], n: int) -> np.ndarray:
    """n x 52 in ARKIT_NAMES order from curves by name."""
    out = np.zeros((n, len(ARKIT_NAMES)), np.float32)
    for k, v in weights.items():
        out[:, ARKIT_NAMES.index(k)] = v
    return out
