"""Known-truth performances: an avatar rendered with chosen ARKit weight curves and head
rotations, for the puppet's tests and benchmark (analysis by synthesis: the tracker must
give back the curves the renderer was given).

The clip: :func:`truth_curves`, a range-of-motion take (the rest face for calibration, an
expression block - jaw opening, blinks of each eye at different times, three frames closed as
fast as real blinks, a left then a right smile, an inner-brow raise - then head yaw and pitch of
up to 12 and 8 degrees with a jaw opening and a blink on the way),
rendered by :func:`render_clip` with the numpy rasteriser (:mod:`engines.avatar.raster`, the
texture with Lambertian shading from a light at the camera) from a camera that frames the face (a talking-head shot: the face about
half the frame wide), the head turned rigidly about its ``Head`` joint, as :func:`engines.avatar.quality.
render_from_photo_camera` turns it.
"""  # noqa: E501

from __future__ import annotations

import numpy as np

from engines.avatar.arkit import ARKIT_NAMES
from engines.puppet.render import BACKGROUND, framing_camera  # noqa: F401  (re-exported)
from engines.puppet.rotation import from_yaw_pitch_roll

CURVE_NAMES = ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight", "browInnerUp")
YAW_DEG, PITCH_DEG = 12.0, 8.0
"""Head motion of the known-truth performance: a talking head's range (yaw +-12, pitch +-8)."""


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
    performance, a range-of-motion take as facial-capture sessions record them: the rest face
    (``neutral_frames``, for calibration), an expression block (jaw, blinks of both and of
    each eye, a left then a right smile, an inner-brow raise) with a slight head sway, then a
    head block (yaw +-12, pitch +-8 degrees) with a jaw opening and a blink on the way."""
    i = np.arange(n_frames, dtype=np.float64)
    span = n_frames - neutral_frames
    e0, e1 = neutral_frames, neutral_frames + round(0.55 * span)  # expression block [e0, e1)

    def at(frac):  # a frame number at a fraction of the expression block
        return e0 + frac * (e1 - e0)

    hw = (e1 - e0) / 6
    w = {
        "jawOpen": _bump(i, at(0.15), hw, 0.6) + _bump(i, e1 + 0.6 * (n_frames - e1), (n_frames - e1) / 6, 0.4),
        "eyeBlinkLeft": _blink(i, round(at(0.25))) + _blink(i, round(at(0.8))),
        "eyeBlinkRight": _blink(i, round(at(0.25)))
        + _blink(i, round(at(0.55)))
        + _blink(i, e1 + round(0.3 * (n_frames - e1))),
        "mouthSmileLeft": _bump(i, at(0.45), hw, 0.8),
        "mouthSmileRight": _bump(i, at(0.75), hw, 0.7),
        "browInnerUp": _bump(i, at(0.6), 1.2 * hw, 0.8),
    }
    w = {k: np.clip(np.where(i >= neutral_frames, v, 0.0), 0, 1) for k, v in w.items()}
    sway = np.clip((i - e0) / (e1 - e0), 0, 1)
    head = np.clip((i - e1) / max(n_frames - 1 - e1, 1), 0, 1)
    in_head = i >= e1
    yaw = np.where(in_head, YAW_DEG * np.sin(2 * np.pi * head), 3.0 * np.sin(2 * np.pi * sway))
    pitch = np.where(in_head, PITCH_DEG * np.sin(2 * np.pi * 1.5 * head + 0.5) * np.minimum(1.0, 4 * head), 0.0)
    yaw[i < neutral_frames] = 0.0
    return w, yaw, pitch


def posed_vertices(
    avatar, weights: dict[str, float], head_R: np.ndarray | None = None, eye_R: dict[str, np.ndarray] | None = None
) -> np.ndarray:
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


def render_clip(
    avatar,
    n_frames: int = 60,
    size: tuple[int, int] = (320, 320),
    neutral_frames: int = 8,
    shading: float = 0.6,
    curves=None,
):
    """Frames (list of H x W x 3 uint8) of the known-truth performance, and the truth:
    ``{"weights": {name: (T,)}, "yaw": (T,), "pitch": (T,), "camera": (K, R, t)}``.
    ``curves``: (weights, yaw, pitch) to render instead of :func:`truth_curves`."""
    w, yaw, pitch = curves if curves is not None else truth_curves(n_frames, neutral_frames)
    from engines.puppet.render import render_shaded

    K, R, t = framing_camera(avatar, size)
    frames = []
    for i in range(len(yaw)):
        V = posed_vertices(avatar, {k: v[i] for k, v in w.items()}, from_yaw_pitch_roll(yaw[i], pitch[i]))
        frames.append(render_shaded(avatar, V, K, R, t, size, shading))
    return frames, {"weights": w, "yaw": yaw, "pitch": pitch, "camera": (K, R, t)}


def weights_matrix(weights: dict[str, np.ndarray], n: int) -> np.ndarray:
    """n x 52 in ARKIT_NAMES order from curves by name."""
    out = np.zeros((n, len(ARKIT_NAMES)), np.float32)
    for k, v in weights.items():
        out[:, ARKIT_NAMES.index(k)] = v
    return out
