"""The avatar's skeleton and skin weights: neck, head, jaw and the two eyes.

Joint positions come from the fitted head itself:

* eyes: the centre of each sclera sphere (least-squares sphere fit), the point the eyeball
  turns about; the eye joints turn by :data:`engines.avatar.arkit.EYE_LOOK_DEG` at an eyeLook
  weight of 1, the same rotation the eyeLook morph targets carry, so joints and shapes agree;
* jaw: the temporomandibular joint, found as the axis the model's own ``jawOpen`` shape
  turns the lower teeth about (a rigid fit of the lower teeth before and after, Horn 1987 /
  Kabsch); its weights follow how far ``jawOpen`` moves each vertex relative to a rigid turn
  about that axis, so the joint and the shape open the same region of the face;
* head: the atlanto-occipital pivot, behind and below the ear (2 cm below the line through
  the jaw joint, 1.5 cm behind it), with the neck joint at the base of the neck; head and
  neck weights blend over the neck.

Joints start with identity rotations (their axes are the head's axes), so an inverse bind
matrix is a translation. Linear blend skinning, at most two joints per vertex.
"""

from __future__ import annotations

import numpy as np

from engines.types import Skeleton

JOINTS = ("Neck", "Head", "Jaw", "LeftEye", "RightEye")
"""Ready Player Me style names (capitalised, so they do not clash with the part meshes in three.js)."""
PARENTS = (-1, 0, 1, 1, 1)


def _kabsch(P: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation with Q ~ P @ R.T + t."""
    pc, qc = P.mean(0), Q.mean(0)
    H = (P - pc).T @ (Q - qc)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    R = Vt.T @ np.diag([1, 1, d]) @ U.T
    return R, qc - pc @ R.T


def _smooth(x, a, b):
    s = np.clip((x - a) / (b - a), 0.0, 1.0)
    return s * s * (3 - 2 * s)


def jaw_axis(V: np.ndarray, jaw_delta: np.ndarray, lower_teeth: np.ndarray) -> tuple[np.ndarray, float]:
    """A point on the jaw's hinge axis (x = 0) and the jawOpen angle (radians), model frame."""
    P = V[lower_teeth].astype(np.float64)
    R, t = _kabsch(P, P + jaw_delta[lower_teeth])
    angle = float(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))
    # fixed points of x -> R x + t on the plane x = 0: solve (R - I) p = -t for (y, z)
    A = (R - np.eye(3))[:, 1:]
    yz = np.linalg.lstsq(A, -t, rcond=None)[0]
    return np.array([0.0, yz[0], yz[1]]), angle


def build_rig(model, V: np.ndarray, scale: float) -> tuple[Skeleton, np.ndarray, np.ndarray]:
    """Skeleton (metres) and per-model-vertex skin (N x 4 joints, N x 4 weights).

    ``V``: the fitted neutral head (N x 3, model cm); ``scale``: cm -> the export's metres.
    """
    from engines.avatar.arkit import eyeball_centre

    n = model.n_vertices
    jaw = model.expressions[model.expression_names.index("jawOpen")].astype(np.float64)
    teeth = model.part("teeth")
    lower_teeth = teeth[np.linalg.norm(jaw[teeth], axis=1) > 1.0]
    jaw_p, jaw_angle = jaw_axis(V, jaw, lower_teeth)
    eyeL, eyeR = eyeball_centre(model, "Left", V), eyeball_centre(model, "Right", V)
    head_p = jaw_p + np.array([0.0, -2.0, -1.5])
    neck_part = model.part("head_and_neck")
    y_low = float(V[neck_part, 1].min())
    neck_p = np.array([0.0, y_low + 2.0, float(np.median(V[neck_part][V[neck_part, 1] < y_low + 3, 2]))])
    pos = np.stack([neck_p, head_p, jaw_p, eyeL, eyeR])

    w_head = _smooth(V[:, 1], y_low + 2.0, head_p[1])
    # jaw weight: jawOpen's displacement over that of a rigid turn about the hinge
    rigid = np.linalg.norm(V - jaw_p, axis=1) * jaw_angle
    w_jaw = np.clip(np.linalg.norm(jaw, axis=1) / np.maximum(rigid, 1e-6), 0.0, 1.0)
    w_jaw[np.linalg.norm(jaw, axis=1) < 0.05] = 0.0
    w_jaw[lower_teeth] = 1.0
    joints = np.zeros((n, 4), np.uint16)
    weights = np.zeros((n, 4), np.float32)
    # head vs neck, then the jaw takes its share of the head's
    joints[:, 0], joints[:, 1] = 1, 0
    weights[:, 0] = w_head * (1 - w_jaw)
    weights[:, 1] = 1 - w_head
    joints[:, 2] = 2
    weights[:, 2] = w_head * w_jaw
    for j, part in ((3, "eyeball_left"), (4, "eyeball_right")):
        ids = model.part(part)
        joints[ids] = [j, 0, 0, 0]
        weights[ids] = [1, 0, 0, 0]
    weights /= np.maximum(weights.sum(1, keepdims=True), 1e-9)
    skel = Skeleton(names=list(JOINTS), parents=np.array(PARENTS), positions=pos * scale)
    return skel, joints, weights


def skinning_matrices(skeleton: Skeleton, rotations: dict[str, np.ndarray]) -> np.ndarray:
    """J x 4 x 4 matrices taking rest positions to posed ones, for joints turned by local
    rotations (3x3, by joint name; missing = rest): world transform times inverse bind."""
    J = len(skeleton.names)
    world = [np.eye(4) for _ in range(J)]
    out = np.empty((J, 4, 4))
    for j in range(J):
        local = np.eye(4)
        local[:3, :3] = rotations.get(skeleton.names[j], np.eye(3))
        parent = skeleton.parents[j]
        local[:3, 3] = skeleton.positions[j] - (skeleton.positions[parent] if parent >= 0 else 0.0)
        world[j] = (world[parent] if parent >= 0 else np.eye(4)) @ local
        inv_bind = np.eye(4)
        inv_bind[:3, 3] = -skeleton.positions[j]
        out[j] = world[j] @ inv_bind
    return out


def pose_vertices(
    V: np.ndarray, skeleton: Skeleton, joints: np.ndarray, weights: np.ndarray, rotations: dict[str, np.ndarray]
) -> np.ndarray:
    """Linear blend skinning: vertices with joints turned by local rotations (3x3, by name)."""
    skin = skinning_matrices(skeleton, rotations)
    Vh = np.c_[V, np.ones(len(V))]
    out = np.zeros((len(V), 3))
    for k in range(4):
        M = skin[joints[:, k]]
        out += weights[:, k : k + 1] * np.einsum("nij,nj->ni", M, Vh)[:, :3]
    return out.astype(np.float32)
