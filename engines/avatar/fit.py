"""Fitting the ICT head model to one photo's landmarks: pose, focal, identity, expression.

The model: ``X(a, e) = neutral + sum_i a_i Identity_i + sum_k e_k ARKit_k`` at the 478
MediaPipe landmarks (barycentric correspondence, :mod:`engines.avatar.correspondence`),
with identity coefficients under a unit Gaussian prior (the modes are one standard
deviation each) and expression weights bounded to [0, 1] and kept sparse.

The energy is the landmark reprojection error, as in the analysis-by-synthesis 3DMM fits
of Blanz & Vetter (SIGGRAPH 1999) and the landmark terms of DECA (Feng et al., SIGGRAPH
2021) and MICA (Zielonka et al., ECCV 2022), without their photometric terms:

    E = sum_j w_j rho(|pi(R X_j + t) - x_j|^2) + lambda_z sum_j (depth_j - z_j)^2
        + lambda_id |a|^2 + lambda_e |e - s|^2 + lambda_1 sum e

with ``pi`` a pinhole with focal ``f`` (fitted under a weak prior, or from EXIF), ``s`` the
Face Landmarker's ARKit scores for the photo (start and regulariser), ``z`` MediaPipe's
relative landmark depths as a weak shape cue, and ``rho`` the Huber loss through iteratively
re-weighted least squares (robust to the landmarks a turned face gets wrong); the face
contour (which slides along the silhouette when the head turns) gets a low weight.

Minimisation alternates, as the FLAME fits of the thesis and of Zielonka et al. do:
(1) pose and focal by Levenberg-Marquardt on six rotation/translation parameters and
log-focal, (2) the coefficients in closed form: with the pose fixed, multiplying the
projection by each landmark's depth makes the residual linear in ``(a, e)`` (the
direct-linear-transform trick), solved with the expression bounds by a small active-set
least squares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from engines.avatar.arkit import ARKIT_NAMES

FIT_EXPRESSIONS = tuple(n for n in ARKIT_NAMES if n != "tongueOut")
"""Shapes fitted to landmarks (the tongue has no landmark)."""
N_IDENTITY = 100


@dataclass
class FitOptions:
    n_identity: int = N_IDENTITY
    identity_prior: float = 60.0
    """lambda_id, in px^2 at an inter-ocular distance of 100 px."""
    expression_prior: float = 6.0e2
    """lambda_e: pull towards the Face Landmarker's scores."""
    expression_sparsity: float = 10.0
    depth_weight: float = 0.0
    contour_weight: float = 0.2
    brow_weight: float = 1.0
    """Weight of the eyebrow landmarks (MediaPipe puts them on the brow hair, whose place on
    the skin varies from person to person more than the eyes' or the mouth's)."""
    huber_iod: float = 0.03
    """Huber threshold as a fraction of the inter-ocular distance."""
    iterations: int = 6
    focal_px: float | None = None
    """Fixed focal length in pixels (EXIF); None = fitted."""
    focal_prior_fov_deg: float = 40.0
    """Horizontal-or-vertical (longest side) field of view the focal prior centres on."""
    focal_prior: float = 2.0
    """Weight of the log-focal prior (pixels^2 of landmark error per unit log-focal^2, per landmark)."""


@dataclass
class HeadFit:
    identity: np.ndarray
    """Identity coefficients (n_identity,)."""
    expression: np.ndarray
    """ARKit weights (52,) in ARKIT_NAMES order (tongueOut from the scores)."""
    R: np.ndarray
    t: np.ndarray
    """Head (model, cm) -> camera: x_cam = R @ X + t (OpenCV camera: x right, y down, z forward)."""
    K: np.ndarray
    image_size: tuple[int, int]
    rms_px: float
    weights: np.ndarray
    """Final robust weight per landmark."""
    history: list = field(default_factory=list)

    @property
    def yaw_deg(self) -> float:
        """Head turn about the vertical axis (0 = facing the camera)."""
        fwd = self.R @ np.array([0.0, 0.0, 1.0])  # model forward in the camera frame (towards camera: -z)
        return float(np.degrees(np.arctan2(fwd[0], -fwd[2])))

    def expression_dict(self) -> dict[str, float]:
        return {n: float(w) for n, w in zip(ARKIT_NAMES, self.expression) if w > 1e-3}


@lru_cache(maxsize=1)
def _contour_landmarks() -> np.ndarray:
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    return np.array(sorted({i for e in FACEMESH_FACE_OVAL for i in e}), np.int64)


@lru_cache(maxsize=1)
def _brow_landmarks() -> np.ndarray:
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_LEFT_EYEBROW, FACEMESH_RIGHT_EYEBROW

    return np.array(sorted({i for e in FACEMESH_LEFT_EYEBROW | FACEMESH_RIGHT_EYEBROW for i in e}), np.int64)


@lru_cache(maxsize=4)
def landmark_model(n_identity: int = N_IDENTITY):
    """Mean (478x3), identity (n x 478 x 3) and expression (51 x 478 x 3) at the landmarks, cm."""
    from engines.avatar.arkit import arkit_basis
    from engines.avatar.correspondence import landmark_basis, landmark_points
    from engines.avatar.ict import load_model

    m = load_model()
    mean = landmark_points(m.neutral).astype(np.float64)
    ident = landmark_basis(m.identity[:n_identity]).astype(np.float64)
    B = arkit_basis()
    sel = [ARKIT_NAMES.index(n) for n in FIT_EXPRESSIONS]
    expr = landmark_basis(B[sel]).astype(np.float64)
    return mean, ident, expr


def _rodrigues(r: np.ndarray) -> np.ndarray:
    th = np.linalg.norm(r)
    if th < 1e-12:
        return np.eye(3)
    k = r / th
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * K @ K


def _project(X, R, t, f, c):
    Xc = X @ R.T + t
    return Xc[:, :2] / Xc[:, 2:3] * f + c, Xc


def _pose_step(X, xy, w, R, t, f, c, fixed_f, f0, opt, iters=8):
    """Levenberg-Marquardt on (rotation increment, t, log f) for fixed shape X."""
    lam = 1e-3
    logf = np.log(f)

    def residual(dr, tt, lf):
        Rn = _rodrigues(dr) @ R
        p, _ = _project(X, Rn, tt, np.exp(lf), c)
        r = ((p - xy) * np.sqrt(w)[:, None]).ravel()
        if not fixed_f:
            r = np.r_[r, np.sqrt(opt.focal_prior * len(X)) * (lf - np.log(f0)) * 10.0]
        return r

    dr = np.zeros(3)
    r0 = residual(dr, t, logf)
    cost = r0 @ r0
    npar = 6 if fixed_f else 7
    for _ in range(iters):
        x0 = np.r_[dr, t, logf]
        J = np.empty((len(r0), npar))
        for k in range(npar):
            h = 1e-6 if k < 3 else (1e-4 * max(1.0, abs(x0[k])) if k < 6 else 1e-6)
            x1 = x0.copy()
            x1[k] += h
            J[:, k] = (residual(x1[:3], x1[3:6], x1[6] if npar == 7 else logf) - r0) / h
        A = J.T @ J
        g = J.T @ r0
        while True:
            step = -np.linalg.solve(A + lam * np.diag(np.diag(A) + 1e-9), g)
            x1 = x0.copy()
            x1[:npar] += step
            r1 = residual(x1[:3], x1[3:6], x1[6] if npar == 7 else logf)
            c1 = r1 @ r1
            if c1 < cost:
                dr, t, r0, cost, lam = x1[:3], x1[3:6], r1, c1, max(lam / 3, 1e-7)
                if npar == 7:
                    logf = x1[6]
                break
            lam *= 4
            if lam > 1e6:
                break
        if lam > 1e6 or np.linalg.norm(step) < 1e-9:
            break
    return _rodrigues(dr) @ R, t, float(np.exp(logf))


def _bounded_lsq(A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, rounds: int = 8) -> np.ndarray:
    """min |Ax - b|^2 with lo <= x <= hi (an active-set loop over the normal equations)."""
    H = A.T @ A
    g = A.T @ b
    n = len(g)
    free = np.ones(n, bool)
    x = np.zeros(n)
    for _ in range(rounds):
        x_fixed = np.where(free, 0.0, x)
        rhs = g[free] - H[np.ix_(free, ~free)] @ x_fixed[~free]
        xf = np.linalg.solve(H[np.ix_(free, free)] + 1e-9 * np.eye(free.sum()), rhs)
        x[free] = xf
        out = free & ((x < lo) | (x > hi))
        # release fixed variables whose gradient points inside the box
        grad = H @ x - g
        release = ~free & (((x <= lo) & (grad < 0)) | ((x >= hi) & (grad > 0)))
        if not out.any() and not release.any():
            break
        x = np.clip(x, lo, hi)
        free = (free & ~out) | release
    return np.clip(x, lo, hi)


def fit_head(
    xy: np.ndarray,
    image_size: tuple[int, int],
    z: np.ndarray | None = None,
    scores: dict[str, float] | None = None,
    options: FitOptions | None = None,
) -> HeadFit:
    """Fit pose, focal, identity and expression to 478 landmarks (photo pixels)."""
    import cv2

    from engines.avatar.arkit import scores_vector

    opt = options or FitOptions()
    xy = np.asarray(xy, np.float64)[:478]
    w_img, h_img = image_size
    c = np.array([(w_img - 1) / 2.0, (h_img - 1) / 2.0])
    mean, ident, expr = landmark_model(opt.n_identity)
    nI, nE = len(ident), len(expr)
    s_all = scores_vector(scores)
    s = np.array([s_all[ARKIT_NAMES.index(n)] for n in FIT_EXPRESSIONS], np.float64)
    iod = float(np.linalg.norm(xy[468] - xy[473])) if len(xy) > 473 else float(np.ptp(xy[:, 0])) / 2.5
    iod = max(iod, 1.0)
    unit = (iod / 100.0) ** 2  # priors are given at 100 px between the eyes
    f0 = 0.5 * max(w_img, h_img) / np.tan(np.radians(opt.focal_prior_fov_deg) / 2)
    f = float(opt.focal_px) if opt.focal_px else f0
    base_w = np.ones(len(xy))
    base_w[_contour_landmarks()] = opt.contour_weight
    base_w[_brow_landmarks()] = opt.brow_weight

    a = np.zeros(nI)
    e = s.copy()
    X = mean + np.tensordot(e, expr, 1)
    K0 = np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1.0]])
    ok, rvec, tvec = cv2.solvePnP(X.astype(np.float64), xy, K0, None, flags=cv2.SOLVEPNP_EPNP)
    R = cv2.Rodrigues(rvec)[0] if ok else np.diag([1.0, -1.0, -1.0])
    t = tvec.ravel() if ok else np.array([0, 0, 60.0])
    if (X @ R.T + t)[:, 2].min() <= 0:  # EPnP put the head behind the camera
        R, t = np.diag([1.0, -1.0, -1.0]), np.array([0.0, 0.0, 60.0])
    w = base_w.copy()
    history = []
    for _it in range(opt.iterations):
        R, t, f = _pose_step(X, xy, w, R, t, f, c, opt.focal_px is not None, f0, opt)
        # -- coefficients, pose fixed: linear rows (f R0 + (c - u) R2) . X / Zc
        Xc = X @ R.T + t
        Z = Xc[:, 2]
        rows_x = f * R[0][None, :] + (c[0] - xy[:, 0])[:, None] * R[2][None, :]  # 478 x 3
        rows_y = f * R[1][None, :] + (c[1] - xy[:, 1])[:, None] * R[2][None, :]
        sw = np.sqrt(w) / Z
        basis = np.concatenate([ident, expr], 0)  # (nI + nE) x 478 x 3
        Ax = np.einsum("jd,kjd->jk", rows_x, basis) * sw[:, None]
        Ay = np.einsum("jd,kjd->jk", rows_y, basis) * sw[:, None]
        bx = -(rows_x * mean).sum(1) * sw - (f * t[0] + (c[0] - xy[:, 0]) * t[2]) * sw
        by = -(rows_y * mean).sum(1) * sw - (f * t[1] + (c[1] - xy[:, 1]) * t[2]) * sw
        A_list, b_list = [Ax, Ay], [bx, by]
        if z is not None and opt.depth_weight > 0:
            # weak-perspective relative depth: f / Zbar * (R2 . (X_j - Xbar)) ~ z_j - zbar
            zz = np.asarray(z, np.float64)[:478]
            Zbar = Z.mean()
            r2 = f / Zbar * R[2]
            Bc = basis - basis.mean(1, keepdims=True)
            Az = np.einsum("d,kjd->jk", r2, Bc) * np.sqrt(opt.depth_weight)
            bz = ((zz - zz.mean()) - (mean - mean.mean(0)) @ r2) * np.sqrt(opt.depth_weight)
            A_list.append(Az)
            b_list.append(bz)
        lam_id = opt.identity_prior * unit
        lam_e = opt.expression_prior * unit
        P = np.zeros((nI + nE, nI + nE))
        P[np.arange(nI), np.arange(nI)] = np.sqrt(lam_id)
        P[nI + np.arange(nE), nI + np.arange(nE)] = np.sqrt(lam_e)
        pb = np.r_[np.zeros(nI), np.sqrt(lam_e) * (s - opt.expression_sparsity * unit / (2 * lam_e))]
        A = np.concatenate(A_list + [P], 0)
        b = np.concatenate(b_list + [pb])
        lo = np.r_[np.full(nI, -4.0), np.zeros(nE)]
        hi = np.r_[np.full(nI, 4.0), np.ones(nE)]
        sol = _bounded_lsq(A, b, lo, hi)
        a, e = sol[:nI], sol[nI:]
        X = mean + np.tensordot(a, ident, 1) + np.tensordot(e, expr, 1)
        # -- robust weights (Huber through IRLS)
        p, _ = _project(X, R, t, f, c)
        r = np.linalg.norm(p - xy, axis=1)
        delta = opt.huber_iod * iod
        w = base_w * np.where(r <= delta, 1.0, delta / np.maximum(r, 1e-9))
        history.append(float(np.sqrt(np.mean(r**2))))
    R, t, f = _pose_step(X, xy, w, R, t, f, c, opt.focal_px is not None, f0, opt)
    p, _ = _project(X, R, t, f, c)
    rms = float(np.sqrt(np.mean(np.sum((p - xy) ** 2, 1))))
    full_e = s_all.astype(np.float64).copy()
    for k, n in enumerate(FIT_EXPRESSIONS):
        full_e[ARKIT_NAMES.index(n)] = e[k]
    K = np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1.0]])
    return HeadFit(
        identity=a.astype(np.float32),
        expression=full_e.astype(np.float32),
        R=R,
        t=t,
        K=K,
        image_size=(int(w_img), int(h_img)),
        rms_px=rms,
        weights=w,
        history=history,
    )


def identity_vertices(identity: np.ndarray) -> np.ndarray:
    """The full ICT-topology neutral head (N x 3, cm) for identity coefficients."""
    from engines.avatar.ict import load_model

    m = load_model()
    a = np.asarray(identity, np.float32)
    return m.neutral + np.tensordot(a, m.identity[: len(a)], 1)
