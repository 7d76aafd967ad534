"""Per-frame performance capture: frame -> landmarks -> ARKit weights and head pose -> avatar.

:class:`LiveSession` is the one code path for a live camera (the GUI's Perform mode pushes
frames as they come) and for a video file (the puppet engine pushes every frame)::

    session = LiveSession(avatar, TrackOptions())
    pose = session.push(frame_rgb, t_ms)      # FramePose: weights, head rotation, vertices...
    session.calibrate()                       # "neutral": the last second is the rest face
    session.record(); ...; take = session.stop()

Per frame: the Face Landmarker's 478 landmarks and ARKit scores
(:class:`engines.puppet.landmarks.FrameLandmarker`, IMAGE mode, or
:class:`engines.face.FaceTracker`), the expression and pose solve against the avatar's
identity (:class:`engines.puppet.solve.ExpressionSolver`, warm-started; ``solver="raw"`` keeps
the landmarker's own scores and fits only the pose), a One Euro filter per weight and on the
head rotation (:mod:`engines.puppet.filter`; eyelids fast, brows slow), gaze from the eyeLook
weights, and optionally the avatar's vertices (:class:`engines.puppet.retarget.Retargeter`).
A frame without a face holds the last pose and is counted (``missed``).

Not thread-safe: one thread pushes (the GUI's job runner thread); the returned FramePose is
a fresh object the display thread may read.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from engines.avatar.arkit import ARKIT_NAMES, scores_vector
from engines.puppet.filter import OneEuroFilter
from engines.puppet.retarget import Neutral, Retargeter, apply_neutral, eye_rotations
from engines.puppet.rotation import matrix_from_rotvec, mean_rotation, quat_from_matrix, rotvec_from_matrix
from engines.puppet.solve import R_FRONTAL, ExpressionSolver, PoseOnly, SolveOptions

_FAST = ("eyeBlink",)
"""The shape that moves fastest (a blink closes in ~100 ms): the highest speed coefficient."""
_MOUTH = ("jaw", "mouth", "cheek", "tongue")
"""Speech moves these quickly too, and lag there reads as bad lip sync."""


@dataclass
class FilterOptions:
    """One Euro parameters by group (cutoffs in Hz, beta in 1/(weight/s) or 1/(rad/s))."""

    eye_min_cutoff: float = 2.0
    eye_beta: float = 30.0
    mouth_min_cutoff: float = 2.0
    mouth_beta: float = 8.0
    other_min_cutoff: float = 1.0
    other_beta: float = 4.0
    head_min_cutoff: float = 1.5
    head_beta: float = 20.0
    d_cutoff: float = 1.0
    head_d_cutoff: float = 3.0

    def weight_filter(self) -> OneEuroFilter:
        mc = np.full(len(ARKIT_NAMES), self.other_min_cutoff)
        beta = np.full(len(ARKIT_NAMES), self.other_beta)
        for i, n in enumerate(ARKIT_NAMES):
            if n.startswith(_FAST):
                mc[i], beta[i] = self.eye_min_cutoff, self.eye_beta
            elif n.startswith(_MOUTH):
                mc[i], beta[i] = self.mouth_min_cutoff, self.mouth_beta
        return OneEuroFilter(mc, beta, self.d_cutoff)

    def head_filter(self) -> OneEuroFilter:
        return OneEuroFilter(
            np.full(6, self.head_min_cutoff), np.r_[np.full(3, self.head_beta), np.full(3, 0.0)], self.head_d_cutoff
        )


@dataclass
class TrackOptions:
    solver: str = "auto"
    """``"avatar"`` (the avatar's identity), ``"performer"`` (identity fitted to the performer's
    first frame), ``"raw"`` (the Face Landmarker's scores, pose only) or ``"auto"`` (avatar when
    it is an ICT avatar, else performer)."""
    landmarker: str = "image"
    """``"image"``: landmarks found afresh every frame (no built-in smoothing); ``"video"``: the
    landmarker's VIDEO mode (:class:`engines.face.FaceTracker`)."""
    smoothing: bool = True
    filters: FilterOptions = field(default_factory=FilterOptions)
    auto_calibrate_s: float = 0.0
    """Live use: calibrate the neutral on the first this-many seconds of tracked frames (0 = only
    when :meth:`LiveSession.calibrate` is called)."""
    gaze: str = "morphs"
    """``"morphs"``: the eyeLook shapes turn the eyes (and move the lids); ``"joints"``: the eye
    joints turn them (eyeLook weights then left out of the mesh)."""
    vertices: bool = False
    """Return the avatar's vertices with every FramePose (the mesh update)."""
    focal_px: float | None = None
    """The camera's focal length in pixels when known (else fitted on the first tracked frame)."""
    history_s: float = 5.0
    """How many seconds of landmarks the session keeps for :meth:`LiveSession.calibrate`."""
    solve: SolveOptions = field(default_factory=SolveOptions)


@dataclass
class FramePose:
    """The avatar's pose for one frame (everything a viewer needs to draw it)."""

    index: int
    t_ms: float
    tracked: bool
    """False when no face was found (the previous pose is held)."""
    weights: np.ndarray
    """52 weights (ARKIT_NAMES order), filtered and calibrated."""
    head_rotation: np.ndarray
    """3x3 head rotation from rest (avatar frame)."""
    head_translation: np.ndarray
    """Head translation from rest (metres, avatar frame; approximate: the landmark model's scale)."""
    eye_rotations: tuple[np.ndarray, np.ndarray]
    """(LeftEye, RightEye) 3x3 rotations."""
    raw_weights: np.ndarray
    """Weights before filtering and weight-domain calibration."""
    landmarks: np.ndarray | None = None
    """478 x 2 landmark pixels (None when missed)."""
    vertices: np.ndarray | None = None
    """The avatar's head vertices (with TrackOptions.vertices)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Milliseconds: track, solve, filter, mesh, total."""
    rms_px: float = float("nan")
    """Landmark reprojection error of the solve."""

    @property
    def weight_dict(self) -> dict[str, float]:
        return {n: float(w) for n, w in zip(ARKIT_NAMES, self.weights)}

    @property
    def head_quaternion(self) -> np.ndarray:
        return quat_from_matrix(self.head_rotation)


class LiveSession:
    """Frame-by-frame tracking that drives an avatar, records takes and calibrates the neutral."""

    def __init__(self, avatar=None, options: TrackOptions | None = None, landmarker=None):
        self.avatar = avatar
        self.options = options or TrackOptions()
        self._landmarker = landmarker
        self._own_landmarker = landmarker is None
        self.retargeter = Retargeter(avatar) if avatar is not None else None
        self.solver = None
        self.solver_kind = None
        self.neutral: Neutral | None = None
        self._offsets: np.ndarray | None = None
        self._rest_R = R_FRONTAL.copy()
        self._rest_t: np.ndarray | None = None
        self._model_to_m = 1.0
        self._wfilter = self.options.filters.weight_filter()
        self._hfilter = self.options.filters.head_filter()
        self._history: deque = deque()
        self._last: FramePose | None = None
        self._recording: list[FramePose] | None = None
        self._recorded: list[FramePose] = []
        self.frames = 0
        self.missed = 0
        self._last_t: float | None = None

    # -- set-up --------------------------------------------------------------------------
    @property
    def landmarker(self):
        if self._landmarker is None:
            from engines.puppet.landmarks import make_landmarker

            self._landmarker = make_landmarker(self.options.landmarker)
        return self._landmarker

    def _make_solver(self, lm) -> None:
        kind = self.options.solver
        so = self.options.solve
        if kind == "auto":
            kind = (
                "avatar"
                if self.avatar is not None and ExpressionSolver.for_avatar(self.avatar) is not None
                else "performer"
            )
        focal = self.options.focal_px
        if kind in ("avatar", "performer", "raw") and focal is None:
            try:  # the photo-fit's focal estimate (40 ms, once)
                perf = ExpressionSolver.for_performer(lm.xy, lm.image_size, lm.z, lm.blendshapes, so)
                focal = perf.focal_px
            except Exception:
                perf = None
        if kind == "avatar":
            s = ExpressionSolver.for_avatar(self.avatar, focal, so) if self.avatar is not None else None
            if s is None:
                kind = "performer"
            else:
                self.solver = s
                self._model_to_m = 1.0  # the avatar's metres
        if kind == "performer":
            self.solver = ExpressionSolver.for_performer(lm.xy, lm.image_size, lm.z, lm.blendshapes, so)
            if focal is not None:
                self.solver.focal_px = focal
            self._model_to_m = 0.01  # ICT centimetres
        elif kind == "raw":
            p = PoseOnly()
            p.solver.options = so
            p.solver.focal_px = focal
            self.solver = p
            self._model_to_m = 0.01
        elif kind != "avatar":
            raise ValueError(f"unknown solver {kind!r} (use auto, avatar, performer or raw)")
        self.solver_kind = kind

    # -- per frame -----------------------------------------------------------------------
    def push(self, frame_rgb: np.ndarray, t_ms: float) -> FramePose:
        """Track one RGB uint8 frame taken at ``t_ms`` (increasing) and return the pose
        (``frame_rgb`` None: the source gave nothing, a missed frame)."""
        t0 = time.perf_counter()
        lm = None if frame_rgb is None else self.landmarker.track(frame_rgb, t_ms)
        return self.push_landmarks(lm, t_ms, track_ms=(time.perf_counter() - t0) * 1000)

    def push_landmarks(self, lm, t_ms: float, track_ms: float = 0.0) -> FramePose:
        """The pose for landmarks found elsewhere (a FaceLandmarks, or None for no face)."""
        t_start = time.perf_counter()
        opt = self.options
        index = self.frames
        self.frames += 1
        timings = {"track": float(track_ms)}
        if lm is None:
            self.missed += 1
            pose = self._held(index, t_ms, timings)
            self._after(pose)
            return pose
        if self.solver is None:
            self._make_solver(lm)
        t0 = time.perf_counter()
        sol = self.solver.solve(lm.xy, lm.image_size, lm.blendshapes)
        timings["solve"] = (time.perf_counter() - t0) * 1000
        self._history.append(
            (
                float(t_ms),
                lm.xy.copy(),
                tuple(lm.image_size),
                sol.weights.copy(),
                sol.R.copy(),
                sol.t.copy(),
                scores_vector(lm.blendshapes),
            )
        )
        while self._history and self._history[0][0] < t_ms - opt.history_s * 1000:
            self._history.popleft()
        if (
            opt.auto_calibrate_s > 0
            and self.neutral is None
            and self._history[-1][0] - self._history[0][0] >= opt.auto_calibrate_s * 1000
        ):
            self.calibrate(seconds=opt.auto_calibrate_s)
            sol = self.solver.solve(lm.xy, lm.image_size, lm.blendshapes)
        t0 = time.perf_counter()
        raw = sol.weights.astype(np.float64)
        w = apply_neutral(raw, self._offsets)
        R_head = self._rest_R.T @ sol.R
        t_rel = np.zeros(3) if self._rest_t is None else self._rest_R.T @ (sol.t - self._rest_t) * self._model_to_m
        ts = t_ms / 1000.0
        if opt.smoothing:
            w = np.clip(self._wfilter(w, ts), 0.0, 1.0)
            h = self._hfilter(np.r_[rotvec_from_matrix(R_head), t_rel], ts)
            R_head, t_rel = matrix_from_rotvec(h[:3]), h[3:]
        eyes = eye_rotations(w)
        timings["filter"] = (time.perf_counter() - t0) * 1000
        pose = FramePose(
            index=index,
            t_ms=float(t_ms),
            tracked=True,
            weights=w.astype(np.float32),
            head_rotation=R_head,
            head_translation=t_rel,
            eye_rotations=eyes,
            raw_weights=raw.astype(np.float32),
            landmarks=lm.xy,
            timings=timings,
            rms_px=sol.rms_px,
        )
        if opt.vertices and self.retargeter is not None:
            t0 = time.perf_counter()
            pose.vertices = self.mesh(pose)
            timings["mesh"] = (time.perf_counter() - t0) * 1000
        timings["total"] = timings["track"] + (time.perf_counter() - t_start) * 1000
        self._after(pose)
        return pose

    def mesh(self, pose: FramePose) -> np.ndarray:
        """The avatar's vertices for a pose (blendshapes, head joint, eye joints with gaze='joints')."""
        w = pose.weights.astype(np.float64)
        eyes = None
        if self.options.gaze == "joints":
            w = w.copy()
            w[[ARKIT_NAMES.index(n) for n in ARKIT_NAMES if n.startswith("eyeLook")]] = 0.0
            eyes = pose.eye_rotations
        return self.retargeter.vertices(w, pose.head_rotation, eyes)

    def _held(self, index: int, t_ms: float, timings: dict) -> FramePose:
        last = self._last
        if last is None:
            zero = np.zeros(len(ARKIT_NAMES), np.float32)
            pose = FramePose(index, float(t_ms), False, zero, np.eye(3), np.zeros(3), (np.eye(3), np.eye(3)), zero)
            if self.options.vertices and self.retargeter is not None:
                pose.vertices = self.mesh(pose)
        else:
            pose = FramePose(
                index,
                float(t_ms),
                False,
                last.weights.copy(),
                last.head_rotation.copy(),
                last.head_translation.copy(),
                last.eye_rotations,
                last.raw_weights.copy(),
                None,
                last.vertices,
                rms_px=float("nan"),
            )
        timings["total"] = timings["track"]
        pose.timings = timings
        return pose

    def _after(self, pose: FramePose) -> None:
        self._last = pose
        if self._recording is not None:
            self._recording.append(pose)

    # -- calibration ---------------------------------------------------------------------
    def calibrate(self, seconds: float = 1.0, samples=None) -> Neutral:
        """Neutral calibration: the last ``seconds`` of tracked frames (or ``samples``, a list of
        FaceLandmarks) are the performer at rest. The solver's rest landmarks move onto them
        (the landmark domain), the raw mode takes their median scores off (the weight domain),
        and their mean head orientation becomes the zero rotation. Filters restart."""
        if samples is not None:
            lms = [s for s in samples if s is not None]
            if not lms:
                raise ValueError("calibrate: none of the samples has a face")
            if self.solver is None:
                self._make_solver(lms[0])
            hist = [
                (0.0, s.xy, tuple(s.image_size), scores_vector(s.blendshapes), None, None, scores_vector(s.blendshapes))
                for s in lms
            ]
        else:
            if not self._history:
                raise ValueError("calibrate: no tracked frame yet")
            t_end = self._history[-1][0]
            hist = [h for h in self._history if h[0] >= t_end - seconds * 1000]
        pts = [(h[1], h[2]) for h in hist]
        core = self.solver.solver if isinstance(self.solver, PoseOnly) else self.solver
        core.adapt_neutral(pts)
        if len(hist[0]) > 6 and not isinstance(self.solver, PoseOnly):
            core.score_offsets = np.median(np.array([h[6] for h in hist], np.float64), 0)
        Rs, ts = [], []
        for xy, size in pts:  # the rest pose with the adapted neutral
            self.solver.reset()
            sol = self.solver.solve(xy, size, None)
            Rs.append(sol.R)
            ts.append(sol.t)
        self.solver.reset()
        offsets = None
        if self.solver_kind == "raw" and all(len(h) > 3 for h in hist):
            offsets = np.median(np.array([h[3] for h in hist], np.float64), 0)
        R0 = mean_rotation(np.array(Rs))
        self._rest_R, self._rest_t, self._offsets = R0, np.mean(ts, 0), offsets
        self.neutral = Neutral(offsets if offsets is not None else np.zeros(len(ARKIT_NAMES)), R0)
        self._wfilter.reset()
        self._hfilter.reset()
        return self.neutral

    # -- recording -----------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._recording is not None

    def record(self) -> None:
        """Start recording (poses pushed from now on go into the take)."""
        self._recording = []

    def stop(self, name: str = "take", source=None):
        """Stop recording and return the recorded :class:`~engines.types.Take`."""
        poses, self._recording = self._recording or [], None
        self._recorded = poses
        return self.take(poses, name=name, source=source)

    def take(self, poses: list[FramePose] | None = None, name: str = "take", source=None, fps: float | None = None):
        """A Take of ``poses`` (default: the last recording)."""
        from engines.types import Take

        poses = self._recorded if poses is None else poses
        if not poses:
            raise ValueError("the take is empty: record some frames first")
        times = np.array([p.t_ms for p in poses]) / 1000.0
        times = times - times[0]
        if fps is None:
            fps = float((len(times) - 1) / times[-1]) if len(times) > 1 and times[-1] > 0 else 30.0
        stages = sorted({k for p in poses for k in p.timings})
        timings = {k: np.array([p.timings.get(k, 0.0) for p in poses], np.float32) for k in stages}
        return Take(
            fps=fps,
            times=times,
            names=ARKIT_NAMES,
            weights=np.array([p.weights for p in poses]),
            head_rotation=quat_from_matrix(np.array([p.head_rotation for p in poses])),
            eye_rotation=np.stack([quat_from_matrix(np.array([p.eye_rotations[k] for p in poses])) for k in (0, 1)], 1),
            tracked=np.array([p.tracked for p in poses]),
            head_translation=np.array([p.head_translation for p in poses]),
            raw_weights=np.array([p.raw_weights for p in poses]),
            neutral=None if self._offsets is None else self._offsets.astype(np.float32),
            timings=timings,
            source=source,
            name=name,
            avatar=self.avatar,
            meta={
                "solver": self.solver_kind,
                "landmarker": self.options.landmarker,
                "gaze": self.options.gaze,
                "calibrated": self.neutral is not None,
            },
        )

    def close(self) -> None:
        if self._own_landmarker and self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> "LiveSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
