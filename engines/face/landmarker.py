"""MediaPipe Face Landmarker (Tasks API): 478 landmarks, ARKit blendshape scores, head pose.

The ``face_landmarker.task`` bundle shipped in ``data/`` (Apache-2.0; see ``data/README.md``)
holds a BlazeFace short-range detector (Bazarevsky et al., "BlazeFace: Sub-millisecond Neural
Face Detection on Mobile GPUs", CVPR-W 2019), the 478-point face landmark model (the face mesh
of Kartynnik et al., "Real-time Facial Surface Geometry from Monocular Video on Mobile GPUs",
CVPR-W 2019, with the eye, lip and iris refinement of Grishchenko et al., "Attention Mesh",
arXiv:2006.10962, 2020), a geometry pipeline that fits the canonical face model to the
landmarks (the facial transformation matrix), and the blendshape model of Grishchenko, Yan,
Bazavan, Zanfir, Chinaev, Raveendran, Grundmann and Sminchisescu, "Blendshapes GHUM:
Real-time Monocular Facial Blendshape Prediction" (2022; arXiv:2309.05782; the MediaPipe Face
Landmarker model card), which scores ARKit's blendshapes from the landmarks.

* :func:`landmarks_on_crop`: IMAGE mode on one crop (the photo path of
  :func:`engines.face.detect.detect_landmarks`).
* :class:`FaceTracker`: VIDEO mode for clips and live capture (tracks the face from frame to
  frame instead of detecting it on every frame).

The model goes to MediaPipe as a buffer (``model_asset_buffer``) read through
``importlib.resources``, so a zipped install needs no temporary file. Creating a landmarker
costs 0.1-0.3 s; the IMAGE-mode one is cached, and one VIDEO-mode landmarker is kept ready for
the next tracker by :func:`warm_up` (``video=True``). mediapipe logs "GPU support is not
available" once on first use; that is harmless.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from engines.face.common import (
    N_LANDMARKS,
    SCORED_BLENDSHAPES,
    FaceLandmarks,
    lock,
)

MODEL_FILE = "face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"

_cache: dict[str, object] = {}
"""Cached graphs by mode: ``"image"`` (shared, used under :data:`lock`) and ``"video"`` (a
spare, handed to the next :class:`FaceTracker`). Guarded by :data:`lock`."""
_model_bytes: bytes | None = None


def model_bytes() -> bytes:
    """The shipped ``face_landmarker.task`` bundle (read once)."""
    global _model_bytes
    with lock:
        if _model_bytes is None:
            _model_bytes = resources.files("engines.face").joinpath("data", MODEL_FILE).read_bytes()
        return _model_bytes


def _create(mode: str, num_faces: int = 1):
    from mediapipe.tasks import python as mpt
    from mediapipe.tasks.python import vision

    running = {"image": vision.RunningMode.IMAGE, "video": vision.RunningMode.VIDEO}[mode]
    opts = vision.FaceLandmarkerOptions(
        base_options=mpt.BaseOptions(model_asset_buffer=model_bytes()),
        running_mode=running,
        num_faces=num_faces,
        # On a crop the face fills most of the frame; accept less sure detections there,
        # like the legacy face mesh (min_detection_confidence=0.3).
        min_face_detection_confidence=0.3 if mode == "image" else 0.5,
        min_face_presence_confidence=0.5,
        min_tracking_confidence=0.5,
        output_face_blendshapes=True,
        output_facial_transformation_matrixes=True,
    )
    return vision.FaceLandmarker.create_from_options(opts)


def image_landmarker():
    """The cached IMAGE-mode landmarker (up to 3 faces per crop, so the one matching the
    detector's box can be chosen). Call it only while holding :data:`lock`."""
    with lock:
        if "image" not in _cache:
            _cache["image"] = _create("image", num_faces=3)
        return _cache["image"]


def prepare_video() -> None:
    """Create a VIDEO-mode landmarker now, for the next :class:`FaceTracker` to take."""
    with lock:
        if "video" not in _cache:
            _cache["video"] = _create("video")


def _take_video_landmarker():
    with lock:
        lm = _cache.pop("video", None)
        return lm if lm is not None else _create("video")


def _mp_image(rgb: np.ndarray):
    import mediapipe as mp

    rgb = np.ascontiguousarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)


def _face(result, i: int, w: int, h: int):
    """Face ``i`` of a FaceLandmarkerResult: (478 x 3 continuous pixel coordinates with z on the
    x scale, blendshapes by name in ARKit order or None, 4 x 4 transform or None)."""
    pts = result.face_landmarks[i]
    a = np.array([(p.x * w, p.y * h, p.z * w) for p in pts], np.float64)
    bs = None
    if result.face_blendshapes and len(result.face_blendshapes) > i:
        got = {c.category_name: float(c.score) for c in result.face_blendshapes[i]}
        bs = {n: got[n] for n in SCORED_BLENDSHAPES if n in got}
    tf = None
    if result.facial_transformation_matrixes and len(result.facial_transformation_matrixes) > i:
        tf = np.array(result.facial_transformation_matrixes[i], np.float64).reshape(4, 4)
    return a, bs, tf


def landmarks_on_crop(crop: np.ndarray, box: tuple[float, float, float, float] | None = None):
    """Run the IMAGE-mode landmarker on an RGB crop. Returns ``(pts, blendshapes, transform)``
    with ``pts`` 478 x 3 in continuous crop pixels (z on the x scale), or None when no face is
    found. With ``box`` (x0, y0, x1, y1 in crop pixels, the detector's box), the face whose
    landmarks centre is nearest the box centre is taken, and None is returned when that centre
    lies outside the box (the landmarker found a neighbour, not this face). Hold :data:`lock`."""
    h, w = crop.shape[:2]
    with lock:
        res = image_landmarker().detect(_mp_image(crop))
    faces = [_face(res, i, w, h) for i in range(len(res.face_landmarks or []))]
    faces = [f for f in faces if len(f[0]) == N_LANDMARKS]
    if not faces:
        return None
    if box is None:
        return max(faces, key=lambda f: np.ptp(f[0][:, 0]) * np.ptp(f[0][:, 1]))
    bx0, by0, bx1, by1 = box
    c = np.array([(bx0 + bx1) / 2, (by0 + by1) / 2])
    best = min(faces, key=lambda f: float(np.linalg.norm(f[0][:, :2].mean(0) - c)))
    mx, my = best[0][:, :2].mean(0)
    if not (bx0 <= mx <= bx1 and by0 <= my <= by1):
        return None
    return best


def whole_frame_landmarks(res, w: int, h: int) -> FaceLandmarks | None:
    """The first face of a landmarker result on a whole frame (no detector crop), in the
    pixel-centre convention, with the box around its landmarks; None when there is none."""
    if not res.face_landmarks or len(res.face_landmarks[0]) != N_LANDMARKS:
        return None
    a, bs, tf = _face(res, 0, w, h)
    xy = a[:, :2] - 0.5  # continuous coordinates -> pixel-centre convention
    x0, y0 = np.floor(xy.min(0)).astype(int)
    x1, y1 = np.ceil(xy.max(0)).astype(int) + 1
    box = (max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h))
    return FaceLandmarks(
        xy=xy,
        z=a[:, 2],
        box=box,
        score=float("nan"),
        image_size=(w, h),
        blendshapes=bs,
        transform=tf,
        method="face_landmarker",
    )


class FaceTracker:
    """Face Landmarker in VIDEO mode: one face tracked through a clip or a live feed.

    ::

        with FaceTracker() as tr:
            for i, frame in enumerate(iter_frames(path)):
                lm = tr.track(frame, round(i * 1000 / fps))   # FaceLandmarks or None

    Timestamps are milliseconds and must increase strictly from call to call (MediaPipe uses
    them to decide between tracking and re-detecting). Landmarks come back in the frame's
    pixels with the same convention as :func:`engines.face.detect_landmarks` (pixel centres,
    z on the x scale), with ``blendshapes``, ``transform`` (for the whole frame's virtual
    camera) and ``method == "face_landmarker"``; ``box`` is the landmarks' bounding box and
    ``score`` is NaN. The face has to be found by the bundle's short-range detector, i.e. fill
    a good part of the frame (webcam or talking-head framing). One tracker per clip; it is not
    meant to be shared by threads (calls are serialised by its own lock).
    """

    def __init__(self) -> None:
        import threading

        self._landmarker = _take_video_landmarker()
        self._last_ts: int | None = None
        self._lock = threading.Lock()
        self.frames = 0
        """Frames passed to :meth:`track`."""
        self.tracked = 0
        """Frames in which a face came back."""

    def track(self, rgb: np.ndarray, timestamp_ms: int) -> FaceLandmarks | None:
        """Landmarks of the face in one RGB uint8 frame, or None where there is no face."""
        ts = int(round(timestamp_ms))
        with self._lock:
            if self._landmarker is None:
                raise RuntimeError("this FaceTracker is closed")
            if self._last_ts is not None and ts <= self._last_ts:
                raise ValueError(f"FaceTracker timestamps must increase: {ts} ms after {self._last_ts} ms")
            h, w = rgb.shape[:2]
            res = self._landmarker.detect_for_video(_mp_image(rgb), ts)
            self._last_ts = ts
            self.frames += 1
        lm = whole_frame_landmarks(res, w, h)
        if lm is not None:
            self.tracked += 1
        return lm

    def close(self) -> None:
        """Release the graph (idempotent)."""
        with self._lock:
            if self._landmarker is not None:
                self._landmarker.close()
                self._landmarker = None

    def __enter__(self) -> "FaceTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; close() is the contract
        try:
            self.close()
        except Exception:
            pass
