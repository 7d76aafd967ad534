"""Face landmarks: MediaPipe face detection, then the 478-point face mesh on the crop.

MediaPipe Face Mesh (Kartynnik et al., "Real-time Facial Surface Geometry from Monocular
Video on Mobile GPUs", CVPR-W 2019) with the refined iris points (Ablavatski et al. 2020),
both shipped inside the mediapipe 0.10.21 wheel. The face mesh's own short-range detector
misses small, turned or grouped faces, so the full-range BlazeFace detector (Bazarevsky
et al. 2019, ``model_selection=1``) finds the faces first and the mesh runs on a crop of
the largest one (margin 60 %, upscaled to at least 256 px), as tried in STACK.md.

Landmarks come back in the pixel frame of the whole photo: ``xy`` (478 x 2) and ``z``
(478, pixels, same scale as x, smaller = nearer the camera).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from engines.api import EngineError

MIN_FACE_PX = 60
"""Detector boxes (brows to chin, about 80 % of the face width) narrower than this are refused."""
MAX_SIDE = 2048
"""Photos are analysed at most this large (longest side); the full photo is kept for the texture."""

# Landmark indices used throughout the avatar engine.
LEFT_IRIS, RIGHT_IRIS = 468, 473  # image-left eye (subject's right), image-right eye
LEFT_IRIS_RING = [469, 470, 471, 472]
RIGHT_IRIS_RING = [474, 475, 476, 477]

_lock = threading.Lock()
_models: dict[str, object] = {}


@dataclass
class FaceLandmarks:
    xy: np.ndarray
    """478 x 2 pixel positions in the full photo."""
    z: np.ndarray
    """478 relative depths in pixels (x scale), negative towards the camera."""
    box: tuple[int, int, int, int]
    """Detector box (x0, y0, x1, y1) in photo pixels."""
    score: float
    image_size: tuple[int, int]
    faces_found: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def iod_px(self) -> float:
        """Inter-ocular (iris centre to iris centre) distance in pixels."""
        return float(np.linalg.norm(self.xy[LEFT_IRIS] - self.xy[RIGHT_IRIS]))


def _get(name: str):
    """Cached MediaPipe solutions (loading the graphs costs ~0.3 s; reuse keeps runs warm)."""
    import mediapipe as mp

    if name not in _models:
        if name == "detector":
            _models[name] = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=0.5)
        else:
            _models[name] = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, refine_landmarks=True, max_num_faces=1,
                min_detection_confidence=0.3)
    return _models[name]


def warm_up() -> None:
    """Load the detector and mesh graphs now (the GUI calls this off the UI thread)."""
    with _lock:
        _get("detector")
        _get("mesh")


def _detect_boxes(rgb: np.ndarray) -> list[tuple[float, tuple[int, int, int, int]]]:
    h, w = rgb.shape[:2]
    res = _get("detector").process(rgb)
    out = []
    for d in res.detections or []:
        b = d.location_data.relative_bounding_box
        x0, y0 = int(round(b.xmin * w)), int(round(b.ymin * h))
        x1, y1 = int(round((b.xmin + b.width) * w)), int(round((b.ymin + b.height) * h))
        out.append((float(d.score[0]), (max(x0, 0), max(y0, 0), min(x1, w), min(y1, h))))
    return out


def _mesh_on_crop(rgb: np.ndarray, box) -> tuple[np.ndarray, np.ndarray] | None:
    import cv2

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    side = max(bw, bh) * 1.6
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.05 * bh
    cx0, cy0 = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
    cx1, cy1 = int(min(cx + side / 2, w)), int(min(cy + side / 2, h))
    crop = rgb[cy0:cy1, cx0:cx1]
    scale = 1.0
    short = min(crop.shape[:2])
    if short < 256:
        scale = 256.0 / short
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    res = _get("mesh").process(np.ascontiguousarray(crop))
    if not res.multi_face_landmarks:
        return None
    lm = res.multi_face_landmarks[0].landmark
    ch, cw = crop.shape[:2]
    a = np.array([(p.x * cw, p.y * ch, p.z * cw) for p in lm], np.float64)
    xy = a[:, :2] / scale + [cx0, cy0]
    return xy, a[:, 2] / scale


def detect_landmarks(rgb: np.ndarray, source: str = "the photo") -> FaceLandmarks:
    """Landmarks of the largest face in an RGB uint8 photo.

    Raises EngineError (naming ``source``) when there is no face, the face is too small,
    or it is turned too far for the face mesh.
    """
    import cv2

    h, w = rgb.shape[:2]
    notes: list[str] = []
    scale = 1.0
    work = rgb
    if max(h, w) > MAX_SIDE:
        scale = MAX_SIDE / max(h, w)
        work = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    with _lock:
        boxes = _detect_boxes(work)
        if not boxes:
            raise EngineError(
                f"No face found in {source}: use a photo of one person facing the camera, "
                f"with the face at least {MIN_FACE_PX} px wide and not covered (line drawings "
                "and sketches are not recognised; painted portraits usually are).")
        boxes.sort(key=lambda sb: (sb[1][2] - sb[1][0]) * (sb[1][3] - sb[1][1]), reverse=True)
        score, box = boxes[0]
        bw = (box[2] - box[0]) / scale
        if bw < MIN_FACE_PX:
            raise EngineError(
                f"The face in {source} is only {bw:.0f} px wide; the avatar needs at least "
                f"{MIN_FACE_PX} px. Use a closer or higher-resolution photo.")
        if len(boxes) > 1:
            notes.append(f"{len(boxes)} faces found in {source}; the avatar uses the largest.")
        found = _mesh_on_crop(work, box)
    if found is None:
        raise EngineError(
            f"A face was found in {source} but its landmarks could not be placed; the head may "
            "be turned too far (more than about 60 degrees) or partly hidden. Use a more frontal photo.")
    xy, z = found
    # continuous coordinates -> pixel-centre convention (integer = centre of a pixel)
    return FaceLandmarks(xy=xy / scale - 0.5, z=z / scale, box=tuple(int(round(b / scale)) for b in box),
                         score=score, image_size=(w, h), faces_found=len(boxes), notes=notes)
