"""Photo camera and head pose from face landmarks.

1. Pose: PnP (OpenCV ``solvePnP``, Levenberg-Marquardt) of the 468 landmarks against
   the MediaPipe canonical face, scaled so that its eye distance is the interpupillary
   distance. The focal length is unknown for photos from the wild, so, as Multi-NeuS does
   for in-the-wild portraits, it starts from an average intrinsics guess (a 50 mm-equivalent
   lens, about 1.4 x the longer image side) and is refined by a 1-D golden-section search
   on the PnP reprojection error, kept within a plausible range of lenses.
2. Shape: the person's own landmarks (MediaPipe's per-landmark depth, in pixel units of
   x) are back-projected along their camera rays at the depth the pose gives, so each
   landmark reprojects onto the pixel where it was detected, then scaled about the camera
   centre (which keeps every projection) so that the iris-to-iris distance is exactly the
   interpupillary distance. Head coordinates are the canonical face's frame
   (x right, y up, z out of the face, metres): ``x_cam = R @ X_head + t``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.avatar.landmarks import LEFT_IRIS, RIGHT_IRIS, FaceLandmarks
from engines.avatar.topology import face_topology

DEFAULT_IPD_M = 0.063
FOCAL_RANGE = (0.6, 4.0)
"""Focal length search range, in units of the longer image side."""


@dataclass
class PhotoCamera:
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    image_size: tuple[int, int]
    pnp_rms_px: float
    """RMS reprojection error of the canonical face after the pose fit (pixels)."""

    def project(self, X: np.ndarray) -> np.ndarray:
        """Head-frame points (N x 3) -> pixel positions (N x 2)."""
        c = X @ self.R.T + self.t
        uv = c[:, :2] / c[:, 2:3]
        return uv * [self.K[0, 0], self.K[1, 1]] + [self.K[0, 2], self.K[1, 2]]

    def as_dict(self) -> dict:
        return {"K": self.K.copy(), "R": self.R.copy(), "t": self.t.copy(), "image_size": tuple(self.image_size)}

    @property
    def yaw_deg(self) -> float:
        """Head yaw seen from the camera (0 = frontal)."""
        fwd = self.R @ np.array([0.0, 0.0, 1.0])  # face normal in camera frame
        return float(np.degrees(np.arctan2(fwd[0], -fwd[2])))


def _K(f: float, w: int, h: int) -> np.ndarray:
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]], np.float64)


def canonical_scaled(ipd: float) -> np.ndarray:
    topo = face_topology()
    c = topo.canonical
    d = np.linalg.norm(c[topo.eye_left].mean(0) - c[topo.eye_right].mean(0))
    return c * (ipd / d)


def _pnp(obj: np.ndarray, img: np.ndarray, K: np.ndarray, guess=None):
    import cv2

    if guess is None:
        ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_SQPNP)
    else:
        ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, guess[0].copy(), guess[1].copy(),
                                      useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, None)
    err = float(np.sqrt(np.mean(np.sum((proj[:, 0] - img) ** 2, 1))))
    return err, rvec, tvec


def fit_camera(lm: FaceLandmarks, ipd: float = DEFAULT_IPD_M, focal_px: float | None = None):
    """Photo camera and the person's 478 landmarks in head coordinates (metres).

    ``focal_px`` fixes the focal length (e.g. from EXIF); otherwise it is searched.
    Returns ``(PhotoCamera, landmarks_head)``.
    """
    import cv2

    w, h = lm.image_size
    obj = canonical_scaled(ipd)
    img = np.ascontiguousarray(lm.xy[:468], np.float64)
    side = float(max(w, h))
    cache: dict[float, tuple] = {}

    def cost(f: float):
        if f not in cache:
            cache[f] = _pnp(obj, img, _K(f, w, h))
        return cache[f][0]

    if focal_px is None:
        # golden-section search on log focal length, starting around a 50 mm-equivalent lens
        lo, hi = np.log(FOCAL_RANGE[0] * side), np.log(FOCAL_RANGE[1] * side)
        g = (np.sqrt(5) - 1) / 2
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        fa, fb = cost(np.exp(a)), cost(np.exp(b))
        for _ in range(18):
            if fa < fb:
                hi, b, fb = b, a, fa
                a = hi - g * (hi - lo)
                fa = cost(np.exp(a))
            else:
                lo, a, fa = a, b, fb
                b = lo + g * (hi - lo)
                fb = cost(np.exp(b))
        f = float(np.exp(a if fa < fb else b))
        # a flat error curve means the photo does not constrain the lens: keep the prior
        if cost(1.4 * side) <= 1.02 * cost(f):
            f = 1.4 * side
    else:
        f = float(focal_px)
    K = _K(f, w, h)
    err, rvec, tvec = cache.get(f) or _pnp(obj, img, K)
    err, rvec, tvec = _pnp(obj, img, K, (rvec, tvec))
    R = cv2.Rodrigues(rvec)[0]
    t = tvec.reshape(3)

    # the person's shape: each landmark on its own camera ray, depth from MediaPipe's z
    depth_canon = (obj @ R.T + t)[:, 2]
    z0 = float(depth_canon.mean())
    zc = lm.z - lm.z[:468].mean()
    depth = z0 + zc * (z0 / f)
    rays = np.column_stack([(lm.xy[:, 0] - K[0, 2]) / f, (lm.xy[:, 1] - K[1, 2]) / f, np.ones(len(lm.xy))])
    cam_pts = rays * depth[:, None]
    scale = ipd / np.linalg.norm(cam_pts[LEFT_IRIS] - cam_pts[RIGHT_IRIS])
    cam_pts *= scale
    # head frame: the canonical frame's rotation, origin where the canonical face best fits
    t = cam_pts[:468].mean(0) - R @ obj.mean(0)
    head = (cam_pts - t) @ R  # R^T (x - t)
    return PhotoCamera(K, R, t, (w, h), err), head
