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

from engines.face.common import FaceLandmarks
from engines.face.landmarker import FaceTracker


class FrameLandmarker(FaceTracker):
    """``track(rgb, timestamp_ms) -> FaceLandmarks | None`` like :class:`engines.face.FaceTracker`
    (whose closing and context-manager methods it keeps), one IMAGE-mode graph per instance
    (not shared: no lock contention with other engines); timestamps are not needed."""

    def __init__(self) -> None:
        from engines.face.landmarker import _create

        self._landmarker = _create("image", num_faces=1)
        self._last_ts = None
        self._lock = threading.Lock()
        self.frames = 0
        self.tracked = 0

    def track(self, rgb: np.ndarray, timestamp_ms: float = 0.0) -> FaceLandmarks | None:
        from engines.face.landmarker import _mp_image, whole_frame_landmarks

        with self._lock:
            if self._landmarker is None:
                raise RuntimeError("this FrameLandmarker is closed")
            h, w = rgb.shape[:2]
            res = self._landmarker.detect(_mp_image(rgb))
            self.frames += 1
        lm = whole_frame_landmarks(res, w, h)
        if lm is not None:
            self.tracked += 1
        return lm


def make_landmarker(kind: str = "image"):
    """``"image"``: :class:`FrameLandmarker`; ``"video"``: :class:`engines.face.FaceTracker`."""
    if kind == "video":
        from engines.face import FaceTracker

        return FaceTracker()
    if kind != "image":
        raise ValueError(f"unknown landmarker {kind!r} (use 'image' or 'video')")
    return FrameLandmarker()
