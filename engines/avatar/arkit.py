"""The 52 ARKit blendshapes on the ICT head model.

Apple's ARKit ``ARFaceAnchor.BlendShapeLocation`` names, spelt as Ready Player Me avatars
and MediaPipe's Face Landmarker blendshape scores spell them (``eyeBlinkLeft``,
``mouthSmileRight``, ``browInnerUp``, ``cheekPuff``, ``tongueOut``...), so an exported GLB
drives ARKit / MediaPipe face-tracking rigs unchanged.

The ICT Face Model (Li et al., CVPR 2020) provides 53 shapes named after ARKit's with
``_L``/``_R`` suffixes. Three differences are bridged here:

* ``browInnerUp`` and ``cheekPuff`` are one shape each in ARKit and two halves in ICT:
  the sum of the halves;
* ``tongueOut`` is absent from ICT: made from the tongue geometry (the lower gums-and-tongue
  vertices inside the lower dental arch, moved forward and down with a weight that grows
  from the root to the tip), so the tongue comes out between the lips;
* ICT's ``eyeLook*`` shapes move the lids only. ARKit's mean the eyes turn, so each also
  rotates its eyeball about the eyeball centre by :data:`EYE_LOOK_DEG` (baked as linear
  deltas, exact at weight 1); the rig's eye joints turn by the same angles
  (:mod:`engines.avatar.rig`), so shapes and joints agree.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

ARKIT_NAMES: tuple[str, ...] = (
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeLookDownLeft",
    "eyeLookDownRight",
    "eyeLookInLeft",
    "eyeLookInRight",
    "eyeLookOutLeft",
    "eyeLookOutRight",
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "noseSneerLeft",
    "noseSneerRight",
    "tongueOut",
)
"""The 52 ARKit blendshape names, in MediaPipe's score order."""

EYE_LOOK_DEG = {"Up": 25.0, "Down": 30.0, "In": 30.0, "Out": 35.0}
"""How far an eye turns at weight 1 of its eyeLook shape (degrees)."""

TONGUE_OUT_CM = 2.6
"""Forward travel of the tongue tip at tongueOut = 1 (cm)."""


def ict_name(arkit: str) -> str | tuple[str, str] | None:
    """The ICT shape(s) behind an ARKit name (a pair for the split shapes, None for tongueOut)."""
    if arkit in ("browInnerUp", "cheekPuff"):
        return arkit + "_L", arkit + "_R"
    if arkit == "tongueOut":
        return None
    if arkit in ("jawLeft", "jawRight", "mouthLeft", "mouthRight"):  # whole-jaw/mouth moves, not halves
        return arkit
    for side, suf in (("Left", "_L"), ("Right", "_R")):
        if arkit.endswith(side):
            return arkit[: -len(side)] + suf
    return arkit


def _smooth(x, a, b):
    s = np.clip((x - a) / (b - a), 0.0, 1.0)
    return s * s * (3 - 2 * s)


def tongue_vertices(model) -> tuple[np.ndarray, np.ndarray]:
    """Tongue vertex indices and their root-to-tip weight (0 at the root, 1 at the tip)."""
    from scipy.spatial import cKDTree

    v = model.neutral
    g, t = model.part("gums_and_tongue"), model.part("teeth")
    jaw = model.expressions[model.expression_names.index("jawOpen")]
    lower_g = g[np.linalg.norm(jaw[g], axis=1) > 1.0]
    lower_t = t[np.linalg.norm(jaw[t], axis=1) > 1.0]
    d, nearest = cKDTree(v[lower_t]).query(v[lower_g])
    inside = np.abs(v[lower_t][nearest, 0]) > np.abs(v[lower_g, 0]) + 0.15
    tongue = lower_g[(d > 0.35) & inside]
    z = v[tongue, 2]
    w = _smooth(z, z.min() + 0.25 * (z.max() - z.min()), z.max())
    return tongue, w.astype(np.float32)


def _rotation(axis: np.ndarray, deg: float) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    th = np.radians(deg)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * K @ K


def eye_look_rotation(side: str, direction: str, weight: float = 1.0) -> np.ndarray:
    """3x3 rotation of the ``side`` ('Left'/'Right', the subject's) eye for an eyeLook shape.

    Head frame: +X is the subject's left, +Y up, +Z forward (where the face looks).
    """
    deg = EYE_LOOK_DEG[direction] * weight
    if direction == "Up":
        return _rotation([-1, 0, 0], deg)  # gaze +Z tilts towards +Y
    if direction == "Down":
        return _rotation([1, 0, 0], deg)
    # "Out" turns the left eye towards +X (its own side), "In" towards the nose
    towards_plus_x = (direction == "Out") == (side == "Left")
    return _rotation([0, 1, 0], deg if towards_plus_x else -deg)


def eyeball_centre(model, side: str, vertices: np.ndarray | None = None) -> np.ndarray:
    """Centre of rotation of an eyeball: the centre of its sclera sphere (least squares)."""
    v = model.neutral if vertices is None else vertices
    p = v[model.part("sclera_left" if side == "Left" else "sclera_right")].astype(np.float64)
    # sphere fit |p - c|^2 = r^2 -> linear in (c, r^2 - |c|^2)
    A = np.c_[2 * p, np.ones(len(p))]
    sol = np.linalg.lstsq(A, (p * p).sum(1), rcond=None)[0]
    return sol[:3]


@lru_cache(maxsize=1)
def arkit_basis() -> np.ndarray:
    """52 x N x 3 float32 ARKit blendshape deltas on the ICT topology (cm), in ARKIT_NAMES order."""
    from engines.avatar.ict import load_model

    m = load_model()
    E = m.expressions
    idx = {n: i for i, n in enumerate(m.expression_names)}
    out = np.zeros((len(ARKIT_NAMES), m.n_vertices, 3), np.float32)
    for k, name in enumerate(ARKIT_NAMES):
        src = ict_name(name)
        if isinstance(src, tuple):
            out[k] = E[idx[src[0]]] + E[idx[src[1]]]
        elif src is not None:
            out[k] = E[idx[src]]
    tongue, w = tongue_vertices(m)
    k = ARKIT_NAMES.index("tongueOut")
    out[k, tongue, 2] = TONGUE_OUT_CM * w
    out[k, tongue, 1] = -0.5 * w
    for side, part in (("Left", "eyeball_left"), ("Right", "eyeball_right")):
        ids = m.part(part)
        c = eyeball_centre(m, side)
        p = m.neutral[ids].astype(np.float64) - c
        for direction in EYE_LOOK_DEG:
            Rm = eye_look_rotation(side, direction)
            out[ARKIT_NAMES.index(f"eyeLook{direction}{side}"), ids] = (p @ Rm.T - p).astype(np.float32)
    return out


def scores_vector(scores: dict[str, float] | None) -> np.ndarray:
    """52 weights in ARKIT_NAMES order from a name -> score dict (missing = 0)."""
    if not scores:
        return np.zeros(len(ARKIT_NAMES), np.float32)
    return np.array([float(scores.get(n, 0.0)) for n in ARKIT_NAMES], np.float32)
