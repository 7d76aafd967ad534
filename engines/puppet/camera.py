"""A webcam as a frame source for :class:`engines.puppet.LiveSession` (OpenCV VideoCapture).

    with Camera(0) as cam:                 # EngineError with a clear message when there is none
        frame, t_ms = cam.read()           # RGB uint8, milliseconds since the camera opened

Frames are stamped when they are read (a live source has no frame numbers); ``read`` returns
``(None, t_ms)`` when the camera delivers nothing (unplugged), which the session counts as a
missed frame. :func:`list_cameras` probes the first few indices (the GUI's source picker).
"""

from __future__ import annotations

import time

import numpy as np

from engines.api import EngineError


class Camera:
    def __init__(self, index: int = 0, size: tuple[int, int] | None = (640, 480), fps: float | None = None):
        from engines.io.video import cv2_module

        cv2 = cv2_module()
        self.index = int(index)
        self._cap = cv2.VideoCapture(self.index)
        if not self._cap.isOpened():
            self._cap.release()
            raise EngineError(
                f"No camera {self.index} was found. Connect a webcam (or close the app using it), "
                "or perform from a video file instead."
            )
        if size is not None:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(size[0]))
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(size[1]))
        if fps:
            self._cap.set(cv2.CAP_PROP_FPS, float(fps))
        self._t0 = time.perf_counter()
        self._last = -1.0

    @property
    def fps(self) -> float:
        from engines.io.video import cv2_module

        v = float(self._cap.get(cv2_module().CAP_PROP_FPS) or 0.0)
        return v if v > 0 else 30.0

    def read(self) -> tuple[np.ndarray | None, float]:
        ok, frame = self._cap.read()
        t = (time.perf_counter() - self._t0) * 1000
        t = max(t, self._last + 1.0)  # strictly increasing, as the landmarker's VIDEO mode asks
        self._last = t
        if not ok or frame is None:
            return None, t
        return np.ascontiguousarray(frame[:, :, ::-1]), t

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> "Camera":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def list_cameras(max_index: int = 4) -> list[int]:
    """Indices of the cameras that open (quietly; none on a machine without one)."""
    from engines.io.video import cv2_module

    cv2 = cv2_module()
    found = []
    for i in range(max_index):
        cap = cv2.VideoCapture(i)
        if cap.isOpened():
            found.append(i)
        cap.release()
    return found
