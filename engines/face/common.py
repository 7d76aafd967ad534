"""What every face module shares: the :class:`FaceLandmarks` result, landmark indices, the
ARKit blendshape names and the lock that guards the cached MediaPipe graphs.

Coordinates are pixels of the whole photo (or video frame) in the pixel-centre convention
(integer = centre of a pixel): ``xy`` (478 x 2) and ``z`` (478, pixels on the same scale as x,
smaller = nearer the camera). Both the legacy face mesh (Kartynnik et al. 2019) and the Face
Landmarker (Grishchenko et al. 2022) use the same 478-point topology (468 mesh points plus
10 iris points).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

MIN_FACE_PX = 60
"""Detector boxes (brows to chin, about 80 % of the face width) narrower than this are refused."""
MAX_SIDE = 2048
"""Photos are analysed at most this large (longest side); the full photo is kept for the texture."""

N_LANDMARKS = 478

# Landmark indices used throughout the engines.
LEFT_IRIS, RIGHT_IRIS = 468, 473  # image-left eye (subject's right), image-right eye
LEFT_IRIS_RING = [469, 470, 471, 472]
RIGHT_IRIS_RING = [474, 475, 476, 477]
# The face outline, in order around the face (MediaPipe's FACEMESH_FACE_OVAL as a loop); a
# list, so that ``xy[FACE_OVAL]`` picks rows.
# fmt: off
FACE_OVAL: list[int] = [
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
]
# fmt: on

ARKIT_BLENDSHAPES: tuple[str, ...] = (
    "eyeBlinkLeft",
    "eyeLookDownLeft",
    "eyeLookInLeft",
    "eyeLookOutLeft",
    "eyeLookUpLeft",
    "eyeSquintLeft",
    "eyeWideLeft",
    "eyeBlinkRight",
    "eyeLookDownRight",
    "eyeLookInRight",
    "eyeLookOutRight",
    "eyeLookUpRight",
    "eyeSquintRight",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawRight",
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthLeft",
    "mouthRight",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "noseSneerLeft",
    "noseSneerRight",
    "tongueOut",
)
"""Apple ARKit's 52 blendshape locations (``ARFaceAnchor.BlendShapeLocation`` symbol names), in
Apple's order (eyes, jaw, mouth, brows, cheeks, nose, tongue), as Live Link Face and Ready
Player Me use them. Left/Right are the subject's own sides."""

SCORED_BLENDSHAPES: tuple[str, ...] = tuple(n for n in ARKIT_BLENDSHAPES if n != "tongueOut")
"""The 51 ARKit names the Face Landmarker scores, in ARKit order. Its blendshape model has 52
outputs, but one is ``_neutral`` (dropped here) and it has no ``tongueOut``."""

lock = threading.RLock()
"""Guards creation of the cached graphs and every call into a shared (cached) graph."""


@dataclass
class FaceLandmarks:
    xy: np.ndarray
    """478 x 2 pixel positions in the full photo."""
    z: np.ndarray
    """478 relative depths in pixels (x scale), negative towards the camera."""
    box: tuple[int, int, int, int]
    """Detector box (x0, y0, x1, y1) in photo pixels (for tracked video frames: the box
    around the landmarks)."""
    score: float
    """Detector confidence; NaN for tracked video frames (no detector ran)."""
    image_size: tuple[int, int]
    """(width, height) of the photo or frame."""
    faces_found: int = 1
    notes: list[str] = field(default_factory=list)
    blendshapes: dict[str, float] | None = None
    """ARKit blendshape scores 0..1 by name (the 51 of :data:`SCORED_BLENDSHAPES`, in ARKit
    order; ``tongueOut`` is not scored), or None when the legacy face mesh placed the points."""
    transform: np.ndarray | None = None
    """4 x 4 facial transformation matrix from the Face Landmarker (canonical face model, in
    cm, to its virtual camera: right-handed, +y up, looking along -z; 63 degree vertical field
    of view over the analysed image, which for photos is the crop around the face). Its 3 x 3
    block is the head rotation; its translation is not in the photo's camera. None for the
    legacy face mesh."""
    method: str = "face_mesh"
    faces: tuple = ()
    """Every face the detector found, as (x0, y0, x1, y1) photo-pixel boxes, largest first
    (``face_index`` counts in this order); empty for tracked video frames."""
    face_index: int = 0
    """Which of ``faces`` these landmarks belong to."""
    """``"face_landmarker"`` or ``"face_mesh"`` (the legacy fallback)."""

    @property
    def iod_px(self) -> float:
        """Inter-ocular (iris centre to iris centre) distance in pixels."""
        return float(np.linalg.norm(self.xy[LEFT_IRIS] - self.xy[RIGHT_IRIS]))


def arkit_weights(
    blendshapes: dict[str, float] | None, names: tuple[str, ...] | list[str] = ARKIT_BLENDSHAPES
) -> np.ndarray:
    """The weights as a float32 vector in ``names`` order (default :data:`ARKIT_BLENDSHAPES`,
    Apple's order; pass another engine's name list to follow its order). Names not scored
    (``tongueOut``) or a ``None`` dict give 0."""
    bs = blendshapes or {}
    return np.array([float(bs.get(n, 0.0)) for n in names], np.float32)
