"""Faces: detection, 478 landmarks, ARKit blendshape scores and head pose, for every engine
that needs a face (avatar, hair, try-on, puppet), so that no engine imports another.

Public API::

    detect_landmarks(rgb, source="the photo", *, method="auto") -> FaceLandmarks
        # largest face of a photo: BlazeFace full-range detector, then the Face Landmarker on
        # a crop (legacy face mesh as the fallback); EngineError for no / too small / turned face
    FaceTracker()                        # Face Landmarker in VIDEO mode
        .track(rgb, timestamp_ms) -> FaceLandmarks | None      # timestamps strictly increasing
        .close()
    warm_up(mesh=False, video=False)     # load the graphs ahead of time, off the UI thread
    FaceLandmarks                        # xy, z, box, score, image_size, faces_found, notes,
                                         # blendshapes, transform, method; iod_px
    arkit_weights(blendshapes, names=ARKIT_BLENDSHAPES) -> float32 vector in that order
    ARKIT_BLENDSHAPES, SCORED_BLENDSHAPES, LEFT_IRIS, RIGHT_IRIS, LEFT_IRIS_RING,
    RIGHT_IRIS_RING, MIN_FACE_PX, MAX_SIDE

Models: MediaPipe face detection (Bazarevsky et al. 2019) and face mesh (Kartynnik et al.
2019) from the mediapipe 0.10.21 wheel, and the Face Landmarker bundle (Grishchenko et al.
2022, "Blendshapes GHUM") shipped in ``data/`` under Apache-2.0. MediaPipe is imported inside
the functions that use it.
"""

from engines.face.common import (  # noqa: F401
    ARKIT_BLENDSHAPES,
    LEFT_IRIS,
    LEFT_IRIS_RING,
    MAX_SIDE,
    MIN_FACE_PX,
    N_LANDMARKS,
    RIGHT_IRIS,
    RIGHT_IRIS_RING,
    SCORED_BLENDSHAPES,
    FaceLandmarks,
    arkit_weights,
)
from engines.face.detect import detect_landmarks, warm_up  # noqa: F401
from engines.face.landmarker import FaceTracker  # noqa: F401

__all__ = [
    "ARKIT_BLENDSHAPES",
    "LEFT_IRIS",
    "LEFT_IRIS_RING",
    "MAX_SIDE",
    "MIN_FACE_PX",
    "N_LANDMARKS",
    "RIGHT_IRIS",
    "RIGHT_IRIS_RING",
    "SCORED_BLENDSHAPES",
    "FaceLandmarks",
    "FaceTracker",
    "arkit_weights",
    "detect_landmarks",
    "warm_up",
]
