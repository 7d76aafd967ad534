"""Rotations as the puppet stores and exports them: 3x3 matrices, unit quaternions
``(x, y, z, w)`` (glTF 2.0 §3.5.3 order), rotation vectors, and yaw/pitch/roll.

Head frame: +X the subject's left, +Y up, +Z where the face looks (the avatar's frame).
``yaw`` turns the face towards +X (the subject's left), ``pitch`` raises it (towards +Y),
``roll`` tilts the head towards the subject's left shoulder; ``R = Ry(yaw) Rx(-pitch) Rz(roll)``.
The mean of rotations is the chordal L2 mean (Hartley, Trumpf, Dai and Li, "Rotation
Averaging", IJCV 2013, §5.3): the projection of the summed matrices onto SO(3).
"""

from __future__ import annotations

import numpy as np


def quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """... x 3 x 3 rotations -> ... x 4 unit quaternions (x, y, z, w), w >= 0."""
    R = np.asarray(R, np.float64)
    shape = R.shape[:-2]
    m = R.reshape(-1, 3, 3)
    q = np.empty((len(m), 4))
    tr = np.trace(m, axis1=1, axis2=2)
    # Shepperd's method: pick the largest of w, x, y, z to divide by (numerically stable)
    cand = np.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], 1)
    k = cand.argmax(1)
    for i in range(len(m)):
        a = m[i]
        if k[i] == 0:
            s = np.sqrt(1.0 + tr[i]) * 2
            q[i] = [(a[2, 1] - a[1, 2]) / s, (a[0, 2] - a[2, 0]) / s, (a[1, 0] - a[0, 1]) / s, 0.25 * s]
        elif k[i] == 1:
            s = np.sqrt(max(1.0 + a[0, 0] - a[1, 1] - a[2, 2], 1e-12)) * 2
            q[i] = [0.25 * s, (a[0, 1] + a[1, 0]) / s, (a[0, 2] + a[2, 0]) / s, (a[2, 1] - a[1, 2]) / s]
        elif k[i] == 2:
            s = np.sqrt(max(1.0 + a[1, 1] - a[0, 0] - a[2, 2], 1e-12)) * 2
            q[i] = [(a[0, 1] + a[1, 0]) / s, 0.25 * s, (a[1, 2] + a[2, 1]) / s, (a[0, 2] - a[2, 0]) / s]
        else:
            s = np.sqrt(max(1.0 + a[2, 2] - a[0, 0] - a[1, 1], 1e-12)) * 2
            q[i] = [(a[0, 2] + a[2, 0]) / s, (a[1, 2] + a[2, 1]) / s, 0.25 * s, (a[1, 0] - a[0, 1]) / s]
    q *= np.where(q[:, 3:4] < 0, -1.0, 1.0)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.reshape(*shape, 4)


def matrix_from_quat(q: np.ndarray) -> np.ndarray:
    """... x 4 quaternions (x, y, z, w) -> ... x 3 x 3 rotations."""
    q = np.asarray(q, np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def rotvec_from_matrix(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> rotation vector (axis * angle, radians)."""
    R = np.asarray(R, np.float64)
    c = np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)
    th = np.arccos(c)
    v = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if th < 1e-8:
        return v / 2
    if np.pi - th < 1e-6:  # half turn: the axis from the symmetric part
        A = (R + np.eye(3)) / 2
        ax = A[np.argmax(np.diag(A))]
        return ax / np.linalg.norm(ax) * th
    return v * (th / (2 * np.sin(th)))


def matrix_from_rotvec(r: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues' formula, as the head fit uses)."""
    from engines.avatar.fit import _rodrigues

    return _rodrigues(np.asarray(r, np.float64))


def _axis(axis: int, a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    if axis == 0:
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == 1:
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def from_yaw_pitch_roll(yaw_deg: float, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """The head rotation for yaw (face towards +X), pitch (face up) and roll, degrees."""
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    return _axis(1, y) @ _axis(0, -p) @ _axis(2, r)


def yaw_pitch_roll(R: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a head rotation (the inverse of :func:`from_yaw_pitch_roll`)."""
    R = np.asarray(R, np.float64)
    yaw = np.arctan2(R[0, 2], R[2, 2])
    pitch = np.arcsin(np.clip(R[1, 2], -1.0, 1.0))
    roll = np.arctan2(R[1, 0], R[1, 1])
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(roll))


def project_to_rotation(M: np.ndarray) -> np.ndarray:
    """The rotation nearest a 3x3 matrix (Frobenius norm)."""
    U, _, Vt = np.linalg.svd(np.asarray(M, np.float64))
    d = np.sign(np.linalg.det(U @ Vt))
    return U @ np.diag([1.0, 1.0, d]) @ Vt


def mean_rotation(Rs: np.ndarray) -> np.ndarray:
    """Chordal L2 mean of N x 3 x 3 rotations."""
    return project_to_rotation(np.asarray(Rs, np.float64).sum(0))
