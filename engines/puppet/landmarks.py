"""Face landmarks per frame without the landmarker's own temporal smoothing.

:class:`engines.face.FaceTracker` runs the Face Landmarker in VIDEO mode, whose graph
smooths the landmarks from frame to frame. For a puppet that smoothing is a lag we cannot
tune (measured on the known-truth render: the landmarks trail a turning head by up to
2 px, 2.2 % of the inter-ocular distance on average against 1.6 % per frame), and the puppet
smooths the weights itself (One Euro filter, :mod:`engines.puppet.filter`), so
:class:`FrameLandmarker` runs the same bundle in IMAGE mode on every frame: the BlazeFace
short-range detector, then the 478-point landmark model and the blendshape model (Grishchenko
et al. 2022) - about as fast, since the detector is 1-2 ms. ``FaceTracker`` stays available
(``landmarker="video"``) for footage where re-detecting every frame loses the face.
"""
from __future__ import annotations

import threading

import numpy as np

from engines.face.common import N_LANDMARKS, FaceLandmarks


class FrameLandmarker:
    """``track(rgb, timestamp_ms) -> FaceLandmarks | None`` like :class:`engines.face.FaceTracker`,
    one IMAGE-mode graph per instance (not shared: no lock contention with other engines)."""

    def __init__(self) -> None:
        from engines.face.landmarker import _create

        self._landmarker = _create("image", num_faces=1)
        self._lock = threading.Lock()
        self.frames = 0
        self.tracked = 0

    def track(self, rgb: np.ndarray, timestamp_ms: float = 0.0) -> FaceLandmarks | None:
        from engines.face.landmarker import _face, _mp_image

        with self._lock:
            if self._landmarker is None:
                raise RuntimeError("this FrameLandmarker is closed")
            h, w = rgb.shape[:2]
            res = self._landmarker.detect(_mp_image(rgb))
            self.frames += 1
        if not res.face_landmarks or len(res.face_landmarks[0]) != N_LANDMARKS:
            return None
        self.tracked += 1
        a, bs, tf = _face(res, 0, w, h)
        xy = a[:, :2] - 0.5  # continuous coordinates -> pixel-centre convention
        x0, y0 = np.floor(xy.min(0)).astype(int)
        x1, y1 = np.ceil(xy.max(0)).astype(int) + 1
        box = (max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h))
        return FaceLandmarks(xy=xy, z=a[:, 2], box=box, score=float("nan"), image_size=(w, h),
                             blendshapes=bs, transform=tf, method="face_landmarker")

    def close(self) -> None:
        with self._lock:
            if self._landmarker is not None:
                self._landmarker.close()
                self._landmarker = None

    def __enter__(self) -> "FrameLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def make_landmarker(kind: str = "image"):
    """``"image"``: :class:`FrameLandmarker`; ``"video"``: :class:`engines.face.FaceTracker`."""
    if kind == "video":
        from engines.face import FaceTracker

        return FaceTracker()
    if kind != "image":
        raise ValueError(f"unknown landmarker {kind!r} (use 'image' or 'video')")
    return FrameLandmarker()
