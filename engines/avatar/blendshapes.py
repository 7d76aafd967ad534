"""A named blendshape basis on the avatar's topology, built from the person's own landmarks.

Each shape is one FACS action unit (Ekman & Friesen, "Facial Action Coding System", 1978),
named in the ARKit style and split left/right where the unit is often one-sided. A shape is
a displacement field on the 468 face landmarks (head frame, metres): control landmarks get
a displacement vector (amplitudes from typical action-unit excursions, millimetres) and
their neighbours follow with a Gaussian falloff (Shepard-normalised radial basis
interpolation, the classic way to sculpt blendshapes from sparse handles; Lewis et al.,
"Practice and Theory of Blendshape Facial Models", Eurographics STAR 2014). Eyelid closure
moves each upper-lid landmark onto its lower-lid partner; the jaw is a rotation about a
hinge in front of the ears, weighted over the chin and lower lip. The fields are then
carried to the subdivided face, the skull (fading over the first rings) and the mouth and
eye pockets, so the whole closed head deforms without cracks.

"Left" and "right" are the subject's: left is +x in head coordinates.
"""
from __future__ import annotations

import numpy as np

from engines.avatar.head import BAG_RINGS, HeadTemplate

MM = 0.001
# eyelid pairs (upper, lower), subject's right eye (-x) and left eye (+x)
LIDS = {
    "R": [(246, 7), (161, 163), (160, 144), (159, 145), (158, 153), (157, 154), (173, 155)],
    "L": [(466, 249), (388, 390), (387, 373), (386, 374), (385, 380), (384, 381), (398, 382)],
}
CREASE = {"R": [247, 30, 29, 27, 28, 56, 190], "L": [467, 260, 259, 257, 258, 286, 414]}
BROW_INNER = {"R": [107, 66, 55, 65], "L": [336, 296, 285, 295]}
BROW_OUTER = {"R": [70, 63, 46, 53], "L": [300, 293, 276, 283]}
BROW_MID = {"R": [105, 52], "L": [334, 282]}
CORNER = {"R": [61, 78, 62, 76], "L": [291, 308, 292, 306]}
CHEEK = {"R": [50, 101, 118, 117, 123], "L": [280, 330, 347, 346, 352]}
NOSE_WING = {"R": [129, 49, 48, 102, 64], "L": [358, 279, 278, 331, 294]}
UPPER_LIP = [185, 40, 39, 37, 0, 267, 269, 270, 409, 191, 80, 81, 82, 13, 312, 311, 310, 415]
LOWER_LIP = [146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324]
SIDE = {"L": 1.0, "R": -1.0}

SHAPE_NAMES = [
    "browInnerUp", "browOuterUp_L", "browOuterUp_R", "browDown_L", "browDown_R",
    "eyeBlink_L", "eyeBlink_R", "eyeWide_L", "eyeWide_R", "eyeSquint_L", "eyeSquint_R",
    "cheekRaise_L", "cheekRaise_R", "noseWrinkle_L", "noseWrinkle_R",
    "mouthSmile_L", "mouthSmile_R", "mouthFrown_L", "mouthFrown_R",
    "mouthStretch_L", "mouthStretch_R", "mouthDimple_L", "mouthDimple_R",
    "mouthPress", "mouthPucker", "upperLipRaise", "lowerLipDepress", "jawOpen",
]
ACTION_UNITS = {
    "browInnerUp": "AU1", "browOuterUp": "AU2", "browDown": "AU4", "eyeWide": "AU5",
    "cheekRaise": "AU6", "eyeSquint": "AU7", "noseWrinkle": "AU9", "upperLipRaise": "AU10",
    "mouthSmile": "AU12", "mouthDimple": "AU14", "mouthFrown": "AU15", "lowerLipDepress": "AU16",
    "mouthPucker": "AU18", "mouthStretch": "AU20", "mouthPress": "AU24", "jawOpen": "AU26",
    "eyeBlink": "AU45",
}


def _field(L: np.ndarray, controls: dict[int, np.ndarray], sigma: float) -> np.ndarray:
    """Shepard-normalised Gaussian interpolation of control displacements, fading away."""
    idx = np.array(list(controls))
    vec = np.array([controls[i] for i in idx], np.float64)
    d2 = ((L[:, None, :] - L[idx][None]) ** 2).sum(-1)
    w = np.exp(-0.5 * d2 / sigma**2)
    return (w @ vec) / np.maximum(w.sum(1, keepdims=True), 1.0)


def _same(idxs, v) -> dict[int, np.ndarray]:
    return {i: np.asarray(v, float) for i in idxs}


def _smoothstep(x, a, b):
    t = np.clip((x - a) / (b - a), 0, 1)
    return t * t * (3 - 2 * t)


def landmark_shapes(L: np.ndarray) -> dict[str, np.ndarray]:
    """The basis on the 468 landmarks: name -> 468 x 3 displacement (metres)."""
    L = L[:468]
    width = abs(L[454, 0] - L[234, 0])
    s_brow, s_eye, s_mouth = 0.085 * width, 0.05 * width, 0.11 * width
    out: dict[str, np.ndarray] = {}
    out["browInnerUp"] = _field(L, _same(BROW_INNER["L"] + BROW_INNER["R"], [0, 6 * MM, 0.5 * MM]), s_brow)
    for k, sx in SIDE.items():
        out[f"browOuterUp_{k}"] = _field(L, {**_same(BROW_OUTER[k], [0, 5 * MM, 0]),
                                             **_same(BROW_MID[k], [0, 2.5 * MM, 0])}, s_brow)
        out[f"browDown_{k}"] = _field(L, {**_same(BROW_INNER[k], [-sx * 2.5 * MM, -4.5 * MM, 0.5 * MM]),
                                          **_same(BROW_MID[k], [-sx * MM, -3.5 * MM, 0]),
                                          **_same(BROW_OUTER[k], [0, -2.5 * MM, 0])}, s_brow)
        blink = {u: 0.92 * (L[lo] - L[u]) for u, lo in LIDS[k]}
        blink.update({lo: 0.08 * (L[u] - L[lo]) for u, lo in LIDS[k]})
        crease = np.mean([blink[u] for u, _ in LIDS[k]], 0)
        blink.update(_same(CREASE[k], 0.35 * crease))
        out[f"eyeBlink_{k}"] = _field(L, blink, 0.6 * s_eye)
        out[f"eyeWide_{k}"] = _field(L, {**_same([u for u, _ in LIDS[k]], [0, 2.5 * MM, 0.3 * MM]),
                                         **_same(CREASE[k], [0, 1.5 * MM, 0])}, 0.6 * s_eye)
        out[f"eyeSquint_{k}"] = _field(L, {**_same([lo for _, lo in LIDS[k]], [0, 1.6 * MM, 0.3 * MM]),
                                           **_same([u for u, _ in LIDS[k]], [0, -0.8 * MM, 0])}, 0.6 * s_eye)
        out[f"cheekRaise_{k}"] = _field(L, {**_same(CHEEK[k], [0, 3.0 * MM, 1.0 * MM]),
                                            **_same([lo for _, lo in LIDS[k]], [0, 1.2 * MM, 0.2 * MM])}, 1.2 * s_eye)
        out[f"noseWrinkle_{k}"] = _field(L, {**_same(NOSE_WING[k], [0, 2.5 * MM, 0.3 * MM]),
                                             **_same(BROW_INNER[k], [0, -1.5 * MM, 0])}, s_eye)
        c = CORNER[k]
        out[f"mouthSmile_{k}"] = _field(L, _same(c, [sx * 5.0 * MM, 7.5 * MM, -3.0 * MM]), s_mouth)
        out[f"mouthFrown_{k}"] = _field(L, _same(c, [sx * 0.5 * MM, -5.0 * MM, -0.5 * MM]), s_mouth)
        out[f"mouthStretch_{k}"] = _field(L, _same(c, [sx * 6.0 * MM, -1.0 * MM, -2.0 * MM]), s_mouth)
        out[f"mouthDimple_{k}"] = _field(L, _same(c, [sx * 1.5 * MM, 0.6 * MM, -4.0 * MM]), 0.8 * s_mouth)
    inner_up = [191, 80, 81, 82, 13, 312, 311, 310, 415]
    inner_lo = [95, 88, 178, 87, 14, 317, 402, 318, 324]
    out["mouthPress"] = _field(L, {**_same(inner_up, [0, -1.2 * MM, -0.5 * MM]), **_same(inner_lo, [0, 1.2 * MM, -0.5 * MM]),
                                   **_same([0, 37, 267], [0, -1.0 * MM, -1.0 * MM]),
                                   **_same([17, 84, 314], [0, 1.0 * MM, -1.0 * MM])}, 0.6 * s_mouth)
    pucker = {i: np.array([-np.sign(L[i, 0]) * 3.0 * MM * min(1.0, abs(L[i, 0]) / (0.15 * width)), 0, 5.0 * MM])
              for i in UPPER_LIP + LOWER_LIP}
    pucker.update({i: np.array([-np.sign(L[i, 0]) * 7.0 * MM, 0, 2.0 * MM]) for i in CORNER["L"] + CORNER["R"]})
    out["mouthPucker"] = _field(L, pucker, 0.6 * s_mouth)
    out["upperLipRaise"] = _field(L, _same([0, 37, 267, 39, 269, 40, 270], [0, 3.0 * MM, 0.5 * MM]), 0.6 * s_mouth)
    out["lowerLipDepress"] = _field(L, _same([17, 84, 314, 181, 405], [0, -3.0 * MM, 0.5 * MM]), 0.6 * s_mouth)
    out["jawOpen"] = _jaw(L, width)
    return {n: out[n] for n in SHAPE_NAMES}


def _jaw(L: np.ndarray, width: float) -> np.ndarray:
    """Rotation of the lower face about a hinge in front of the ears (14 degrees), plus the
    forward glide of the condyle (8 mm) that keeps the chin from swinging back too far."""
    from engines.avatar.topology import face_topology

    hinge = np.array([0.0, 0.5 * (L[234, 1] + L[454, 1]), 0.5 * (L[234, 2] + L[454, 2]) - 0.01])
    y_m = 0.5 * (L[61, 1] + L[291, 1])
    w = _smoothstep(-(L[:, 1] - y_m), 0.003, 0.014)
    w *= 1 - _smoothstep(np.abs(L[:, 0]), 0.36 * width, 0.5 * width)
    faces = face_topology().faces
    nb = np.zeros((len(L), len(L)))
    for a, b in ((0, 1), (1, 2), (2, 0)):
        nb[faces[:, a], faces[:, b]] = nb[faces[:, b], faces[:, a]] = 1
    nb /= np.maximum(nb.sum(1, keepdims=True), 1)
    lip_lo, lip_up = np.array(LOWER_LIP), np.array(UPPER_LIP)
    for _ in range(3):
        w[lip_lo], w[lip_up] = 1.0, 0.0
        w = 0.5 * w + 0.5 * nb @ w
    w[lip_lo], w[lip_up] = 1.0, 0.0
    w[[61, 291, 78, 308]] = 0.45
    a = np.radians(14.0)
    rel = L - hinge
    rot = np.stack([rel[:, 0], rel[:, 1] * np.cos(a) - rel[:, 2] * np.sin(a),
                    rel[:, 1] * np.sin(a) + rel[:, 2] * np.cos(a)], 1)
    return (rot - rel + np.array([0.0, 0.0, 0.008])) * w[:, None]


def spread_to_head(tpl: HeadTemplate, d468: np.ndarray) -> np.ndarray:
    """A landmark displacement field carried to every head vertex (N x 3, float32)."""
    d = tpl.sub2.linear(tpl.sub1.linear(d468))
    out = np.zeros((tpl.n_vertices, 3), np.float64)
    out[: tpl.n_face] = d
    rings = tpl.skull_idx.shape[0]
    fall = np.clip(1 - np.arange(rings) / (0.3 * rings), 0, 1) ** 2
    oval = d[tpl.oval]
    out[tpl.skull_idx[1:]] = fall[1:, None, None] * oval[None]
    for key in ("L", "R", "mouth"):
        # the mouth's flaps (ring 1) move with their lip; deeper rings lag behind
        follow = np.array([1.0, 1.0 if key == "mouth" else 0.8, 0.45, 0.15])[: BAG_RINGS + 1]
        loop = d[tpl.eye[key]] if key != "mouth" else d[tpl.mouth]
        out[tpl.bag_idx[key]] = follow[:, None, None] * loop[None]
    return out.astype(np.float32)


def build_basis(tpl: HeadTemplate, L: np.ndarray) -> dict[str, np.ndarray]:
    """name -> N x 3 per-vertex offsets (metres) for the whole head."""
    return {name: spread_to_head(tpl, d) for name, d in landmark_shapes(L).items()}
