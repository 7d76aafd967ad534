"""The person in each video frame: body landmarks and a person mask.

MediaPipe Pose (BlazePose, Bazarevsky et al. 2020; the full model, ``model_complexity=1``,
the one bundled in mediapipe 0.10.21) gives 33 landmarks and a segmentation mask; MediaPipe
Selfie Segmentation can supply the mask instead. Landmarks are smoothed over time with the
One Euro filter (Casiez, Roussel and Vogel, "1 Euro Filter", CHI 2012): a low-pass filter
whose cut-off rises with speed, so still poses stop trembling and fast moves do not lag.

A person who is found away from where the tracked one was last seen (the detector picked
up somebody else, or the tracked person came back elsewhere) starts a new track: the
smoothing restarts, and the track is *tentative* for its first frame and reported as no
person, as tracking-by-detection confirms a new track by a second hit before output
(SORT, Bewley et al. 2016; DeepSORT, Wojke et al. 2017). A detector that jumps to a
passer-by for one frame then does not put the garment on them for that frame, and
the smoothing never averages two people. The first person of a video is drawn at once.

People too small for the full-frame detector (a pedestrian 100 px tall in a wide shot) are
found with OpenCV's HOG people detector (Dalal and Triggs, CVPR 2005) and the pose model is
run on an enlarged crop around them, then on a crop that follows the last landmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# BlazePose landmark indices used by the try-on.
NOSE, L_EAR, R_EAR, MOUTH_L, MOUTH_R = 0, 7, 8, 9, 10
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 11, 12, 13, 14, 15, 16
L_INDEX, R_INDEX, L_HIP, R_HIP = 19, 20, 23, 24
CROP = 256  # side of the small-person crop fed to the pose model


@dataclass
class PersonFrame:
    """One frame's person: ``points`` 33 x 2 pixels, ``visibility`` 33, ``mask`` H x W 0..1."""

    points: np.ndarray
    visibility: np.ndarray
    mask: np.ndarray

    def cropped(self, x0: int, y0: int, x1: int, y1: int) -> "PersonFrame":
        """The same person in the pixel grid of the box (x0, y0)-(x1, y1)."""
        return PersonFrame(self.points - [x0, y0], self.visibility, self.mask[y0:y1, x0:x1])

    def visible(self, i: int, thr: float = 0.5) -> bool:
        h, w = self.mask.shape
        x, y = self.points[i]
        return bool(self.visibility[i] >= thr and -0.02 * w <= x <= 1.02 * w and -0.02 * h <= y <= 1.02 * h)


def _torso_in_mask(pts: np.ndarray, mask: np.ndarray) -> bool:
    """True when the segmentation agrees there is a body just below the shoulders."""
    h, w = mask.shape
    sl, sr = pts[R_SHOULDER], pts[L_SHOULDER]
    sw = float(np.linalg.norm(sr - sl))
    c = (sl + sr) / 2 + np.array([-(sr - sl)[1], (sr - sl)[0]]) * 0.3
    r = max(1, int(0.15 * sw))
    x, y = int(round(c[0])), int(round(c[1]))
    x0, x1, y0, y1 = max(0, x - r), min(w, x + r + 1), max(0, y - r), min(h, y + r + 1)
    if x1 <= x0 or y1 <= y0:  # below the frame: judge by the shoulder line instead
        m = (sl + sr) / 2
        x, y = int(np.clip(m[0], 0, w - 1)), int(np.clip(m[1], 0, h - 1))
        return bool(mask[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].mean() >= 0.4)
    return bool(mask[y0:y1, x0:x1].mean() >= 0.4)


def torso_frame(pts: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre of the shoulders and hips, torso size): the size is the larger of the
    shoulder width and the shoulder-to-hip length, so a person seen side-on (narrow
    shoulders) still has a size."""
    sh = (pts[L_SHOULDER] + pts[R_SHOULDER]) / 2
    hip = (pts[L_HIP] + pts[R_HIP]) / 2
    size = max(float(np.linalg.norm(pts[L_SHOULDER] - pts[R_SHOULDER])), float(np.linalg.norm(hip - sh)), 4.0)
    return (sh + hip) / 2, size


def same_person(a: tuple[np.ndarray, float], b: tuple[np.ndarray, float]) -> bool:
    """Two torso frames (:func:`torso_frame`) are the same person when their centres lie
    within one torso size: a walker moves well under that between frames, and a
    detector that jumps to somebody else lands farther away."""
    return bool(np.linalg.norm(a[0] - b[0]) <= max(a[1], b[1]))


class OneEuroFilter:
    """The One Euro filter on an array of values (Casiez et al. 2012, algorithm 1)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x_prev: np.ndarray | None = None
        self.dx_prev: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def reset(self) -> None:
        self.x_prev = self.dx_prev = None

    def __call__(self, x: np.ndarray, dt: float, scale: float = 1.0) -> np.ndarray:
        """Filter ``x``; speeds are divided by ``scale`` before they raise the cut-off."""
        x = np.asarray(x, np.float64)
        if self.x_prev is None:
            self.x_prev, self.dx_prev = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self.x_prev) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        dx_hat = a_d * dx + (1 - a_d) * self.dx_prev
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat) / scale
        a = self._alpha(cutoff, dt)
        x_hat = a * x + (1 - a) * self.x_prev
        self.x_prev, self.dx_prev = x_hat, dx_hat
        return x_hat


class PersonTracker:
    """Pose + segmentation per frame, with One Euro smoothing and small-person crops.

    ``min_cutoff`` (Hz) and ``beta`` are the One Euro parameters; speeds are measured in
    shoulder widths per second, so the same settings suit a close-up and a wide shot.
    """

    def __init__(
        self,
        fps: float,
        segmenter: str = "pose",
        min_confidence: float = 0.5,
        min_cutoff: float = 1.0,
        beta: float = 2.0,
        find_small_people: bool = True,
    ):
        import mediapipe as mp

        self.dt = 1.0 / max(fps, 1.0)
        self.segmenter = segmenter
        kw = dict(
            static_image_mode=False,
            model_complexity=1,
            smooth_landmarks=False,
            enable_segmentation=True,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        self._pose_full = mp.solutions.pose.Pose(**kw)
        self._pose_crop = mp.solutions.pose.Pose(**{**kw, "static_image_mode": True})
        self._selfie = (
            mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) if segmenter == "selfie" else None
        )
        self._filter = OneEuroFilter(min_cutoff, beta)
        self._roi: tuple[int, int, int, int] | None = None
        self._vis: np.ndarray | None = None
        self._hog = None
        self._lost = 0
        self.find_small_people = find_small_people
        self.used_crops = 0
        self._last_torso = None  # torso_frame() of the last detection
        self.new_tracks = 0
        """Tracks started away from the last one (each was tentative for a frame)."""

    def close(self) -> None:
        for m in (self._pose_full, self._pose_crop, self._selfie):
            if m is not None:
                m.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- detection ---------------------------------------------------------------------
    def _run_pose(self, pose, rgb: np.ndarray):
        r = pose.process(np.ascontiguousarray(rgb))
        if r.pose_landmarks is None:
            return None
        h, w = rgb.shape[:2]
        lm = r.pose_landmarks.landmark
        pts = np.array([(p.x * w, p.y * h) for p in lm], np.float64)
        vis = np.array([p.visibility for p in lm], np.float64)
        mask = r.segmentation_mask if r.segmentation_mask is not None else np.zeros((h, w), np.float32)
        if self._selfie is not None:
            s = self._selfie.process(np.ascontiguousarray(rgb)).segmentation_mask
            if s is not None:
                mask = s
        return pts, vis, np.asarray(mask, np.float32)

    def _find_person_box(self, rgb: np.ndarray):
        import cv2

        if self._hog is None:
            self._hog = cv2.HOGDescriptor()
            self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        h, w = rgb.shape[:2]
        scale = min(1.0, 640.0 / max(h, w))
        small = cv2.resize(rgb, None, fx=scale, fy=scale) if scale < 1 else rgb
        boxes, weights = self._hog.detectMultiScale(
            cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), winStride=(8, 8), padding=(8, 8), scale=1.08
        )
        if len(boxes) == 0:
            return None
        weights = np.ravel(weights)
        best = int(np.argmax(weights * np.array([b[2] * b[3] for b in boxes]) ** 0.5))
        x, y, bw, bh = np.asarray(boxes[best], np.float64) / scale
        return x, y, x + bw, y + bh

    def _crop_pose(self, rgb: np.ndarray, box):
        """Pose on a fixed-size square crop around ``box`` (the crop model keeps state,
        so its input size must not change), mapped back to frame pixels."""
        import cv2

        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = box
        cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 1.4
        if side < 16:
            return None
        s = CROP / side
        A = np.array([[s, 0, CROP / 2 - s * cx], [0, s, CROP / 2 - s * cy]], np.float64)
        crop = cv2.warpAffine(rgb, A, (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        found = self._run_pose(self._pose_crop, crop)
        if found is None:
            return None
        pts, vis, m = found
        pts = (pts - A[:, 2]) / s
        mask = cv2.warpAffine(
            m,
            cv2.invertAffineTransform(A),
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        return pts, vis, mask

    def _detect(self, rgb: np.ndarray):
        if self._roi is None:
            found = self._run_pose(self._pose_full, rgb)
            if found is not None or not self.find_small_people:
                return found
            # Look for a small person only every few frames while lost: HOG is slow.
            if self._lost % 5:
                return None
            box = self._find_person_box(rgb)
            if box is None:
                return None
            self._roi = box
        found = self._crop_pose(rgb, self._roi)
        if found is None:
            self._roi = None
            return None
        self.used_crops += 1
        pts, vis = found[0], found[1]
        ok = vis > 0.3
        if ok.sum() >= 4:
            x0, y0 = pts[ok].min(0)
            x1, y1 = pts[ok].max(0)
            pad = 0.15 * max(x1 - x0, y1 - y0)
            self._roi = (x0 - pad, y0 - pad, x1 + pad, y1 + pad)
        return found

    def __call__(self, rgb: np.ndarray) -> PersonFrame | None:
        """The person in this RGB frame, or None (and the smoothing restarts)."""
        found = self._detect(rgb)
        if found is None or found[1][[L_SHOULDER, R_SHOULDER]].min() < 0.3:
            self._filter.reset()
            self._vis = None
            self._roi = None
            self._lost += 1
            return None
        pts, vis, mask = found
        if not _torso_in_mask(pts, mask):
            # Landmarks with no body under them: the tracker coasting over a cut or noise.
            self._filter.reset()
            self._vis = None
            self._roi = None
            self._lost += 1
            return None
        self._lost = 0
        unit = max(float(np.linalg.norm(pts[L_SHOULDER] - pts[R_SHOULDER])), 4.0)
        torso = torso_frame(pts)
        last, self._last_torso = self._last_torso, torso
        if last is not None and not same_person(torso, last):
            # Somebody else, or the same person elsewhere: a new, tentative track.
            self._filter.reset()
            self._vis = None
            self.new_tracks += 1
            self._filter(pts, self.dt, scale=unit)  # the confirming frame is smoothed with this one
            self._vis = vis
            return None
        smooth = self._filter(pts, self.dt, scale=unit)
        # Visibility drives soft decisions (is the elbow trustworthy?): smooth it too.
        if self._vis is not None and self._filter.dx_prev is not None:
            vis = 0.6 * self._vis + 0.4 * vis
        self._vis = vis
        return PersonFrame(smooth, vis, mask)
