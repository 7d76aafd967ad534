"""Per-frame expression and head pose for a fixed identity: the tracking half of the avatar fit.

:func:`engines.avatar.fit.fit_head` fits pose, focal, identity and expression to one photo
(~40 ms). A performance changes only the pose and the expression from frame to frame, so here
the identity and the focal length stay fixed and each frame solves

    E(R, t, e) = sum_j w_j |pi(R X_j(e) + t) - x_j|^2 + lambda_s |e - s|^2
                 + lambda_p |e - e_prev|^2 + lambda_1 sum e,      0 <= e <= 1,
    X(e) = X_neutral + sum_k e_k B_k   (the 478 landmarks of the head, its ARKit basis there)

warm-started from the previous frame, as model-based face trackers do (the blendshape
trackers of Weise, Bouaziz, Li and Pauly, "Realtime Performance-Based Facial Animation",
SIGGRAPH 2011, and Cao, Weng, Lin and Zhou, "3D Shape Regression for Real-time Facial
Animation", SIGGRAPH 2013, solve this bounded least squares per frame; here on the Face
Landmarker's 478 points). ``s`` are the Face Landmarker's own ARKit scores (Grishchenko et al.
2022), calibrated like the landmarks, a pull that keeps the shapes the landmarks barely see
(cheekPuff, tongue) where the network puts them; ``w_j`` are Huber weights (IRLS).

Minimisation: Gauss-Newton on the rotation increment, the translation and the weights
together, each step one box-constrained linear least squares
(:func:`engines.avatar.fit._bounded_lsq`), 3 steps a frame (2-4 ms). The photo fit alternates
pose and coefficients instead; here that converges too slowly (pitch and the brow / jaw
shapes trade off: on exact landmarks two alternations left 1.2 degrees of pitch and a 0.7
correlation on browInnerUp, the joint step recovers both exactly). The first frame starts from
EPnP and :func:`engines.avatar.fit._pose_step` (Levenberg-Marquardt on the pose); the ICT model
at the landmarks comes from :func:`engines.avatar.fit.landmark_model`.

Two measured corrections for the landmarker:

* neutral calibration in the landmark domain (:meth:`ExpressionSolver.adapt_neutral`): the
  rest frames' detections become the rest landmarks (RMS at rest 1.8 px -> 0.1 px at 77 px
  between the eyes), so the detector's offsets and the performer's resting face do not read
  as expression;
* gaze from the irises only and blinks also from the eye aspect ratio: on a shut eye the
  landmarker closes the lid points only 50-80 % and moves the iris points down with the lid,
  which the linear solve otherwise reads as half a blink plus "looking down".

The identity comes from one of two places:

* :meth:`ExpressionSolver.for_avatar`: the avatar's own rest landmarks and morph targets
  (an avatar in the ICT render layout), the "avatar's identity";
* :meth:`ExpressionSolver.for_performer`: :func:`fit_head` on the performer's first tracked
  frame, which also gives the focal length (works for anyone in front of the camera).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from engines.avatar.arkit import ARKIT_NAMES
from engines.avatar.fit import (
    FIT_EXPRESSIONS,
    FitOptions,
    _bounded_lsq,
    _contour_landmarks,
    _pose_step,
    _rodrigues,
    fit_head,
    landmark_model,
)

R_FRONTAL = np.diag([1.0, -1.0, -1.0])
"""Model (x left-of-subject, y up, z forward) to an OpenCV camera (x right, y down, z ahead)
for a face looking straight into the camera."""


@dataclass
class SolveOptions:
    score_prior: float = 300.0
    """lambda_s: pull towards the Face Landmarker's scores, px^2 at 100 px between the eyes."""
    blink_score_prior: float = 30.0
    """lambda_s for eyeBlinkLeft/Right: the lids are the best-seen motion of the face (the
    landmarker's blink scores under-read closed eyes), so the landmarks decide."""
    blink_from_lids: tuple[float, float] | None = (0.2, 0.7)
    """Blink also read from the eye aspect ratio (Soukupova and Cech, "Real-Time Eye Blink
    Detection using Facial Landmarks", CVWW 2016) against the rest face's: a closure of the
    first value reads 0, of the second 1, and the blink is the larger of that and the solve's.
    The landmarker closes the lid points by only 50-80 % on a shut eye, which the linear solve
    reads as half a blink. None = the solve alone."""
    temporal_prior: float = 5.0
    """lambda_p: pull towards the previous frame's weights (px^2 at 100 px IOD)."""
    sparsity: float = 60.0
    """lambda_1 (px^2 at 100 px IOD): small spurious weights go to 0 (the landmarker moves both
    mouth corners for a one-sided smile; without it half of it leaks to the other side)."""
    contour_weight: float = 0.2
    """Weight of the face-oval landmarks (they slide along the silhouette as the head turns)."""
    iris_weight: float = 1.0
    """Weight of the ten iris landmarks (scaled down further as the eyes close)."""
    rigid_emphasis: float = 0.0
    """Landmarks that expressions move little weigh more: w_j = 1 / (1 + k * m_j^2), with
    m_j the RMS movement of landmark j over the basis shapes in inter-ocular distances."""
    huber_iod: float = 0.03
    """Huber threshold as a fraction of the inter-ocular distance."""
    iterations: int = 3
    """Gauss-Newton steps per frame (two more on the first frame)."""
    pose_iterations: int = 4
    """Levenberg-Marquardt steps of the pose-only solve (the raw-scores mode)."""
    score_only: tuple[str, ...] = ("cheekPuff",)
    """Shapes the landmarks barely see: taken from the scores as they are."""


@dataclass
class Solution:
    weights: np.ndarray
    """52 weights in :data:`ARKIT_NAMES` order (tongueOut and ``score_only`` from the scores)."""
    R: np.ndarray
    """Model -> camera rotation (OpenCV camera)."""
    t: np.ndarray
    """Model -> camera translation (model units)."""
    focal_px: float
    rms_px: float
    ms: float


def _avatar_landmark_map(avatar) -> tuple[np.ndarray, np.ndarray] | None:
    """(478 x 3 render-vertex indices, 478 x 3 barycentrics) of the MediaPipe landmarks on an
    avatar in the ICT render layout (the avatar engine's), or None for any other mesh."""
    from engines.avatar.correspondence import landmark_map
    from engines.avatar.ict import render_layout

    lay = render_layout()
    if len(avatar.mesh.vertices) != len(lay.src) or len(avatar.mesh.faces) != len(lay.faces):
        return None
    if not np.array_equal(avatar.mesh.faces, lay.faces):
        return None
    inv = np.full(int(lay.src.max()) + 1, -1, np.int64)
    inv[lay.src] = np.arange(len(lay.src))
    vi, b = landmark_map()
    ids = inv[vi]
    if (ids < 0).any():
        return None
    return ids, b


def avatar_landmarks(avatar, vertices: np.ndarray | None = None) -> np.ndarray | None:
    """The 478 landmarks on an ICT-layout avatar (its rest pose, or ``vertices``), or None."""
    m = _avatar_landmark_map(avatar)
    if m is None:
        return None
    ids, b = m
    V = avatar.mesh.vertices if vertices is None else np.asarray(vertices)
    return np.einsum("ij,ijk->ik", b.astype(np.float64), V[ids].astype(np.float64))


EAR_POINTS = {"Left": (362, 385, 387, 263, 373, 380), "Right": (33, 160, 158, 133, 153, 144)}
"""Eye aspect ratio points p1..p6 per eye (the subject's own side; corners p1, p4)."""


def eye_aspect_ratio(xy: np.ndarray, side: str) -> float:
    """(|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|): about 0.3 open, near 0 shut."""
    p1, p2, p3, p4, p5, p6 = (np.asarray(xy[i], np.float64) for i in EAR_POINTS[side])
    return float((np.linalg.norm(p2 - p6) + np.linalg.norm(p3 - p5)) / (2 * max(np.linalg.norm(p1 - p4), 1e-9)))


class ExpressionSolver:
    """Bounded least-squares expression + pose per frame for a fixed neutral shape.

    ``neutral``: 478 x 3 landmarks at rest; ``basis``: len(FIT_EXPRESSIONS) x 478 x 3 deltas
    (same units). ``focal_px``: fixed focal length; None = set by :meth:`solve`'s first call
    (a 40 degree field of view over the longer side, the fit's prior) unless set before.
    """

    def __init__(
        self,
        neutral: np.ndarray,
        basis: np.ndarray,
        focal_px: float | None = None,
        options: SolveOptions | None = None,
        identity_source: str = "given",
    ):
        self.neutral = np.asarray(neutral, np.float64)
        self.basis = np.asarray(basis, np.float64).copy()
        if self.basis.shape != (len(FIT_EXPRESSIONS), 478, 3) or self.neutral.shape != (478, 3):
            raise ValueError(
                f"neutral must be 478 x 3 and basis {len(FIT_EXPRESSIONS)} x 478 x 3, "
                f"got {self.neutral.shape} and {self.basis.shape}"
            )
        self.options = options or SolveOptions()
        self.focal_px = focal_px
        self.rest_ear = {side: eye_aspect_ratio(self.neutral[:, :2] * [1, -1], side) for side in ("Left", "Right")}
        """The rest face's eye aspect ratios (the model's, until :meth:`adapt_neutral` measures them)."""
        self.score_offsets: np.ndarray | None = None
        """The scores' resting offsets (52, ARKIT_NAMES order), set by :meth:`adapt_neutral`."""
        self.identity_source = identity_source
        # iris-to-iris distance of the model (for the Huber scale and the prior units)
        self._sel = np.array([ARKIT_NAMES.index(n) for n in FIT_EXPRESSIONS])
        # Gaze is read from the irises alone: the eyeLook shapes also lower or raise the lids
        # (ICT's shapes do, as real lids follow the eyes), and with that at the lid landmarks a
        # closing eye reads as "looking down" instead of a blink (the landmarker moves the iris
        # points down with the lid). At the landmarks they keep only the eyeball turn.
        self._look = np.array([k for k, n in enumerate(FIT_EXPRESSIONS) if n.startswith("eyeLook")], np.int64)
        self.basis[self._look, :468] = 0.0
        self._blink = [FIT_EXPRESSIONS.index("eyeBlinkLeft"), FIT_EXPRESSIONS.index("eyeBlinkRight")]
        self._score_only = np.array(
            [FIT_EXPRESSIONS.index(n) for n in self.options.score_only if n in FIT_EXPRESSIONS], np.int64
        )
        self._free = np.setdiff1d(np.arange(len(FIT_EXPRESSIONS)), self._score_only)
        base_w = np.ones(478)
        base_w[_contour_landmarks()] = self.options.contour_weight
        base_w[468:478] = self.options.iris_weight
        if self.options.rigid_emphasis:
            iod_m = float(np.linalg.norm(self.neutral[468] - self.neutral[473]))
            move = np.sqrt((self.basis**2).sum(2).mean(0)) / iod_m
            base_w = base_w / (1.0 + self.options.rigid_emphasis * move**2)
        self._base_w = base_w
        self.reset()

    # -- construction ------------------------------------------------------------------
    @classmethod
    def for_avatar(cls, avatar, focal_px: float | None = None, options: SolveOptions | None = None):
        """The avatar's own identity: its rest landmarks and its ARKit morph targets there.
        None when the avatar is not in the ICT render layout (made by another tool)."""
        m = _avatar_landmark_map(avatar)
        if m is None or any(n not in avatar.mesh.morph_targets for n in FIT_EXPRESSIONS):
            return None
        ids, b = m
        bb = b.astype(np.float64)
        V = avatar.mesh.vertices.astype(np.float64)
        neutral = np.einsum("ij,ijk->ik", bb, V[ids])
        basis = np.stack(
            [np.einsum("ij,ijk->ik", bb, avatar.mesh.morph_targets[n][ids].astype(np.float64)) for n in FIT_EXPRESSIONS]
        )
        return cls(neutral, basis, focal_px, options, identity_source="avatar")

    @classmethod
    def for_identity(
        cls, identity: np.ndarray | None, focal_px: float | None = None, options: SolveOptions | None = None
    ):
        """The ICT model (cm) with identity coefficients (None = the mean head)."""
        mean, ident, expr = landmark_model()
        neutral = mean.copy()
        if identity is not None:
            a = np.asarray(identity, np.float64)
            neutral = mean + np.tensordot(a, ident[: len(a)], 1)
        return cls(neutral, expr, focal_px, options, identity_source="given" if identity is not None else "mean")

    @classmethod
    def for_performer(
        cls,
        xy: np.ndarray,
        image_size: tuple[int, int],
        z: np.ndarray | None = None,
        scores: dict | None = None,
        options: SolveOptions | None = None,
    ):
        """Identity and focal length fitted to one frame of the performer (:func:`fit_head`)."""
        fit = fit_head(xy, image_size, z, scores, FitOptions())
        s = cls.for_identity(fit.identity, float(fit.K[0, 0]), options)
        s.identity_source = "performer"
        s.R, s.t = fit.R.copy(), fit.t.copy()
        s.e = np.array([fit.expression[k] for k in s._sel], np.float64)
        return s

    def adapt_neutral(self, samples, rounds: int = 2, scores=None) -> float:
        """Neutral calibration in the landmark domain: move the rest landmarks so that the
        performer's resting frames are explained with every weight at 0.

        ``samples``: ``(xy, image_size)`` of frames where the performer rests. Each round fits
        the rigid pose to each sample and moves every landmark, within its depth plane, onto
        its detection's camera ray; the offsets are averaged over the samples (in the head
        frame). This is the neutral adaptation of online face trackers (Bouaziz, Wang and
        Pauly, "Online Modeling for Realtime Facial Animation", SIGGRAPH 2013, who adapt the
        whole blendshape model; here only the neutral): the landmark model's systematic
        offsets from the detector and the performer's resting expression stop reading as
        expression. ``scores``: the Face Landmarker's scores on the same frames (dicts); their
        median becomes the scores' own resting offset, taken off before they serve as the prior
        (else the prior would pull the calibrated rest face back to the uncalibrated scores).
        Returns the RMS reprojection error (px) at rest before the adaptation.
        """
        from engines.avatar.arkit import scores_vector

        self.rest_ear = {
            side: float(np.median([eye_aspect_ratio(xy, side) for xy, _ in samples])) for side in ("Left", "Right")
        }
        if scores is not None:
            sc = [scores_vector(x) for x in scores if x]
            if sc:
                self.score_offsets = np.median(np.array(sc, np.float64), 0)
        samples = [(np.asarray(xy, np.float64)[:478], tuple(sz)) for xy, sz in samples]
        if not samples:
            return float("nan")
        first_rms = None
        for _ in range(rounds):
            D, rms = [], []
            for xy, (w_img, h_img) in samples:
                c = np.array([(w_img - 1) / 2.0, (h_img - 1) / 2.0])
                if self.focal_px is None:
                    self.focal_px = 0.5 * max(w_img, h_img) / np.tan(np.radians(FitOptions().focal_prior_fov_deg) / 2)
                f = float(self.focal_px)
                X = self.neutral
                self._init_pose(X, xy, np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1.0]]))
                R, t, _f = _pose_step(X, xy, self._base_w, self.R, self.t, f, c, True, f, FitOptions(), iters=10)
                Xc = X @ R.T + t
                rms.append(np.sqrt(np.mean(np.sum((Xc[:, :2] / Xc[:, 2:3] * f + c - xy) ** 2, 1))))
                ray = np.c_[(xy - c) / f, np.ones(len(xy))]
                D.append((ray * Xc[:, 2:3] - Xc) @ R)  # camera-frame offsets back in the head frame
            if first_rms is None:
                first_rms = float(np.mean(rms))
            self.neutral = self.neutral + np.mean(D, 0)
        self.reset()
        return first_rms

    def reset(self) -> None:
        """Forget the previous frame (the next solve starts from PnP)."""
        self.R: np.ndarray | None = None
        self.t: np.ndarray | None = None
        self.e: np.ndarray | None = None
        self.w = self._base_w.copy()

    # -- per frame ---------------------------------------------------------------------
    def _init_pose(self, X: np.ndarray, xy: np.ndarray, K: np.ndarray) -> None:
        import cv2

        ok, rvec, tvec = cv2.solvePnP(X, xy, K, None, flags=cv2.SOLVEPNP_EPNP)
        R = cv2.Rodrigues(rvec)[0] if ok else R_FRONTAL.copy()
        t = tvec.ravel() if ok else np.array([0.0, 0.0, 10.0 * np.ptp(X[:, 0])])
        if (X @ R.T + t)[:, 2].min() <= 0:
            R, t = R_FRONTAL.copy(), np.array([0.0, 0.0, 10.0 * np.ptp(X[:, 0])])
        self.R, self.t = R, t

    def frame_inputs(self, xy, image_size: tuple[int, int], scores: dict | None):
        """(landmarks, principal point, focal, ARKit score vector) of one frame; the focal is
        fixed on the first frame (the prior's field of view unless given)."""
        from engines.avatar.arkit import scores_vector

        xy = np.asarray(xy, np.float64)[:478]
        w_img, h_img = image_size
        c = np.array([(w_img - 1) / 2.0, (h_img - 1) / 2.0])
        if self.focal_px is None:
            self.focal_px = 0.5 * max(w_img, h_img) / np.tan(np.radians(FitOptions().focal_prior_fov_deg) / 2)
        return xy, c, float(self.focal_px), scores_vector(scores).astype(np.float64)

    def solve(self, xy: np.ndarray, image_size: tuple[int, int], scores: dict | None = None) -> Solution:
        """Weights and pose for one frame's 478 landmarks (pixels, pixel-centre convention)."""
        t0 = time.perf_counter()
        opt = self.options
        xy, c, f, s_all = self.frame_inputs(xy, image_size, scores)
        if self.score_offsets is not None:
            w0 = np.clip(self.score_offsets, 0.0, 0.95)
            s_all = np.clip((s_all - w0) / (1.0 - w0), 0.0, 1.0)
        s = s_all[self._sel]
        iod = max(float(np.linalg.norm(xy[468] - xy[473])), 1.0)
        unit = (iod / 100.0) ** 2
        first = self.R is None
        e = s.copy() if self.e is None else self.e.copy()
        e_prev = e.copy()
        X = self.neutral + np.tensordot(e, self.basis, 1)
        if first:
            K = np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1.0]])
            self._init_pose(X, xy, K)
            self.R, self.t, _f = _pose_step(X, xy, self.w, self.R, self.t, f, c, True, f, FitOptions(), iters=8)
        R, t, w = self.R, self.t, self.w
        free, so = self._free, self._score_only
        if len(so):
            e[so] = s[so]
        B = self.basis[free]
        n = len(free)
        lam_s, lam_p, lam_1 = opt.score_prior * unit, opt.temporal_prior * unit, opt.sparsity * unit
        lam_s = np.full(len(free), lam_s)
        lam_s[np.isin(free, self._blink)] = opt.blink_score_prior * unit
        lam = lam_s + lam_p
        target = (lam_s * s[free] + lam_p * e_prev[free] - lam_1 / 2) / lam
        lo = np.r_[np.full(6, -1e3), np.zeros(n)]
        hi = np.r_[np.full(6, 1e3), np.ones(n)]
        nv = 6 + n
        prior_rows = np.zeros((nv, nv))
        # (a little damping on the pose step, below)
        prior_rows[6 + np.arange(n), 6 + np.arange(n)] = np.sqrt(lam)
        prior_rows[np.arange(6), np.arange(6)] = 1e-3 * np.sqrt(lam.mean())
        for it in range(opt.iterations + (2 if first else 0)):
            # Gauss-Newton on (rotation increment, translation step, weights), the weights bounded
            RX = X @ R.T
            Xc = RX + t
            Z = Xc[:, 2]
            p = Xc[:, :2] / Z[:, None] * f + c
            sw = np.sqrt(w)
            r = ((p - xy) * sw[:, None]).ravel()
            # du/dXc (2 x 3 per landmark), weighted
            g = (f / Z * sw)[:, None]
            Dx = np.c_[g[:, 0], np.zeros(478), -g[:, 0] * Xc[:, 0] / Z]
            Dy = np.c_[np.zeros(478), g[:, 0], -g[:, 0] * Xc[:, 1] / Z]

            # dXc/domega = -[RX]x, dXc/dt = I, dXc/de_k = R B_k
            def cross_cols(D):
                return np.stack(
                    [
                        D[:, 2] * RX[:, 1] - D[:, 1] * RX[:, 2],  # noqa: B023
                        D[:, 0] * RX[:, 2] - D[:, 2] * RX[:, 0],  # noqa: B023
                        D[:, 1] * RX[:, 0] - D[:, 0] * RX[:, 1],  # noqa: B023
                    ],
                    1,
                )

            RB = B @ R.T  # n x 478 x 3
            Jx = np.c_[cross_cols(Dx), Dx, np.einsum("jd,kjd->jk", Dx, RB)]
            Jy = np.c_[cross_cols(Dy), Dy, np.einsum("jd,kjd->jk", Dy, RB)]
            J = np.empty((956, nv))
            J[0::2], J[1::2] = Jx, Jy
            # unknowns: (omega, dt, e_new); residual r + Jp (omega, dt) + Je (e_new - e)
            b_data = -(r - J[:, 6:] @ e[free])
            A = np.concatenate([J, prior_rows])
            b = np.concatenate([b_data, np.r_[np.zeros(6), np.sqrt(lam) * target]])
            sol = _bounded_lsq(A, b, lo, hi)
            R = _rodrigues(sol[:3]) @ R
            t = t + sol[3:6]
            e = e.copy()
            e[free] = sol[6:]
            X = self.neutral + np.tensordot(e, self.basis, 1)
            Xc = X @ R.T + t
            p = Xc[:, :2] / Xc[:, 2:3] * f + c
            res = np.linalg.norm(p - xy, axis=1)
            delta = opt.huber_iod * iod
            w = self._base_w * np.where(res <= delta, 1.0, delta / np.maximum(res, 1e-9))
            w[473:478] *= (1.0 - e[self._blink[0]]) ** 2  # a closed eye's iris points are guesses
            w[468:473] *= (1.0 - e[self._blink[1]]) ** 2  # (468-472: the subject's right eye)
            if np.abs(sol[:3]).max() < 1e-5 and np.abs(sol[6 : 6 + n] - e_prev[free]).max() < 1e-4 and it:
                break
        rms = float(np.sqrt(np.mean(res**2)))
        self.R, self.t, self.e, self.w = R, t, e, w
        e = e.copy()
        if opt.blink_from_lids is not None:
            c0, c1 = opt.blink_from_lids
            for k, side in zip(self._blink, ("Left", "Right")):
                closure = 1.0 - eye_aspect_ratio(xy, side) / max(self.rest_ear[side], 1e-6)
                e[k] = max(e[k], float(np.clip((closure - c0) / (c1 - c0), 0.0, 1.0)))
        out = s_all.copy()
        out[self._sel] = e
        return Solution(
            weights=out.astype(np.float32),
            R=R.copy(),
            t=t.copy(),
            focal_px=f,
            rms_px=rms,
            ms=(time.perf_counter() - t0) * 1000,
        )


@dataclass
class PoseOnly:
    """Head pose without the expression solve (the raw-scores mode): the ICT mean head's rigid
    fit to the landmarks, warm-started. Kept apart so "raw" still gets a metric head pose."""

    solver: ExpressionSolver = field(default_factory=lambda: ExpressionSolver.for_identity(None))

    def solve(self, xy, image_size, scores=None) -> Solution:
        t0 = time.perf_counter()
        sv = self.solver
        xy, c, f, s_all = sv.frame_inputs(xy, image_size, scores)
        X = sv.neutral + np.tensordot(s_all[sv._sel], sv.basis, 1)
        if sv.R is None:
            sv._init_pose(X, xy, np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1.0]]))
        R, t, _f = _pose_step(
            X, xy, sv._base_w, sv.R, sv.t, f, c, True, f, FitOptions(), iters=sv.options.pose_iterations
        )
        sv.R, sv.t = R, t
        Xc = X @ R.T + t
        p = Xc[:, :2] / Xc[:, 2:3] * f + c
        rms = float(np.sqrt(np.mean(np.sum((p - xy) ** 2, 1))))
        return Solution(
            weights=s_all.astype(np.float32),
            R=R.copy(),
            t=t.copy(),
            focal_px=f,
            rms_px=rms,
            ms=(time.perf_counter() - t0) * 1000,
        )

    def reset(self) -> None:
        self.solver.reset()
