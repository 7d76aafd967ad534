"""Face landmarks for the avatar engine: a compatibility layer over :mod:`engines.face`.

Detection moved to :mod:`engines.face` (shared by avatar, hair, try-on and puppet): BlazeFace
full-range detection (Bazarevsky et al. 2019), then the MediaPipe Face Landmarker (Grishchenko
et al. 2022, "Blendshapes GHUM") on a crop of the largest face, with the legacy face mesh
(Kartynnik et al. 2019) as the fallback. Existing imports such as
``from engines.avatar.landmarks import detect_landmarks, FaceLandmarks, LEFT_IRIS`` keep
working; new code should import from :mod:`engines.face`.
"""

from engines.face import (  # noqa: F401
    ARKIT_BLENDSHAPES,
    LEFT_IRIS,
    LEFT_IRIS_RING,
    MAX_SIDE,
    MIN_FACE_PX,
    RIGHT_IRIS,
    RIGHT_IRIS_RING,
    SCORED_BLENDSHAPES,
    FaceLandmarks,
    FaceTracker,
    arkit_weights,
    detect_landmarks,
    warm_up,
)
