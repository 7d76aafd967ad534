"""Face landmarks of one photo: BlazeFace detection, then the Face Landmarker on a crop.

The full-range BlazeFace detector (Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face
Detection on Mobile GPUs", CVPR-W 2019; ``mp.solutions.face_detection``, ``model_selection=1``)
finds the faces, since the short-range detectors inside the face mesh and the Face Landmarker
miss small, turned or grouped faces (STACK.md). On a crop of the largest face (margin 60 %,
upscaled to at least 256 px) the MediaPipe Face Landmarker (see :mod:`engines.face.landmarker`:
478 landmarks, ARKit blendshape scores after Grishchenko et al. 2022 "Blendshapes GHUM", and a
facial transformation matrix) places the points. Where it finds nothing on the crop the legacy
face mesh (Kartynnik et al., "Real-time Facial Surface Geometry from Monocular Video on Mobile
GPUs", CVPR-W 2019, with the refined iris points of Ablavatski et al. 2020), shipped inside the
mediapipe 0.10.21 wheel, is used instead (no blendshapes, and a note says so).

Both give the same 478-point topology in the same convention: ``xy`` in full-photo pixels
(pixel centres) and ``z`` in pixels on the x scale, smaller = nearer the camera. On the test
photos the two models' points differ by 1.4-3.1 % of the inter-ocular distance on average
(tests/test_face_landmarker.py).
"""

from __future__ import annotations

import numpy as np

from engines.api import EngineError
from engines.face import landmarker
from engines.face.common import MAX_SIDE, MIN_FACE_PX, FaceLandmarks, lock

CROP_MARGIN = 1.6
"""Crop side as a multiple of the detector box's longer side."""
CROP_MIN_PX = 256
"""Crops whose shorter side is below this are upscaled to it."""

METHODS = ("auto", "face_landmarker", "face_mesh")

_models: dict[str, object] = {}
"""Cached MediaPipe solutions graphs (``detector``, ``mesh``); guarded by :data:`lock`."""


def _get(name: str):
    """Cached MediaPipe solutions (loading a graph costs ~0.3 s; reuse keeps runs warm)."""
    import mediapipe as mp

    with lock:
        if name not in _models:
            if name == "detector":
                _models[name] = mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=0.5
                )
            else:
                _models[name] = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True, refine_landmarks=True, max_num_faces=1, min_detection_confidence=0.3
                )
        return _models[name]


def warm_up(mesh: bool = False, video: bool = False) -> None:
    """Load the face detector and the Face Landmarker now (the GUI calls this off the UI
    thread); ``mesh`` also loads the legacy face mesh (only used as a fallback), ``video``
    also readies a VIDEO-mode landmarker for the next :class:`~engines.face.FaceTracker`."""
    with lock:
        _get("detector")
        landmarker.image_landmarker()
        if mesh:
            _get("mesh")
        if video:
            landmarker.prepare_video()


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


def face_crop(rgb: np.ndarray, box) -> tuple[np.ndarray, float, int, int]:
    """The crop around a detector box: ``(crop, scale, x0, y0)``, where a crop pixel position
    p (continuous coordinates) is ``p / scale + (x0, y0)`` in the photo."""
    import cv2

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    side = max(bw, bh) * CROP_MARGIN
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.05 * bh
    cx0, cy0 = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
    cx1, cy1 = int(min(cx + side / 2, w)), int(min(cy + side / 2, h))
    crop = rgb[cy0:cy1, cx0:cx1]
    scale = 1.0
    short = min(crop.shape[:2])
    if short < CROP_MIN_PX:
        scale = CROP_MIN_PX / short
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(crop), scale, cx0, cy0


def _mesh_on_crop(crop: np.ndarray) -> np.ndarray | None:
    """Legacy face mesh on a crop: 478 x 3 continuous crop pixels (z on the x scale) or None."""
    res = _get("mesh").process(crop)
    if not res.multi_face_landmarks:
        return None
    ch, cw = crop.shape[:2]
    return np.array([(p.x * cw, p.y * ch, p.z * cw) for p in res.multi_face_landmarks[0].landmark], np.float64)


def detect_landmarks(
    rgb: np.ndarray, source: str = "the photo", *, method: str = "auto", face_index: int = 0
) -> FaceLandmarks:
    """Landmarks of one face in an RGB uint8 photo: the largest (``face_index`` 0), or the
    ``face_index``-th by size when there are several (all boxes are in ``.faces``).

    ``method``: ``"auto"`` (the Face Landmarker, falling back to the legacy face mesh where it
    finds nothing on the crop), ``"face_landmarker"`` (no fallback) or ``"face_mesh"`` (the
    legacy mesh only, as before the Face Landmarker was added).

    Raises EngineError (naming ``source``) when there is no face, the face is too small,
    or it is turned too far for the landmark models.
    """
    import cv2

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    h, w = rgb.shape[:2]
    notes: list[str] = []
    scale = 1.0
    work = np.ascontiguousarray(rgb)
    if max(h, w) > MAX_SIDE:
        scale = MAX_SIDE / max(h, w)
        work = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    blendshapes = transform = None
    used = method
    with lock:
        boxes = _detect_boxes(work)
        if not boxes:
            raise EngineError(
                f"No face found in {source}: use a photo of one person facing the camera, "
                f"with the face at least {MIN_FACE_PX} px wide and not covered (line drawings "
                "and sketches are not recognised; painted portraits usually are)."
            )
        boxes.sort(key=lambda sb: (sb[1][2] - sb[1][0]) * (sb[1][3] - sb[1][1]), reverse=True)
        face_index = int(face_index)
        if not 0 <= face_index < len(boxes):
            raise EngineError(
                f"face_index={face_index} but {source} shows {len(boxes)} face{'s' if len(boxes) > 1 else ''}"
                f" (0 = the largest{f', up to {len(boxes) - 1}' if len(boxes) > 1 else ''})."
            )
        score, box = boxes[face_index]
        bw = (box[2] - box[0]) / scale
        if bw < MIN_FACE_PX:
            raise EngineError(
                f"The face in {source} is only {bw:.0f} px wide; at least {MIN_FACE_PX} px are "
                "needed. Use a closer or higher-resolution photo."
            )
        if len(boxes) > 1:
            which = "the largest" if face_index == 0 else f"number {face_index + 1} by size"
            notes.append(
                f"{len(boxes)} faces found in {source}; {which} is used "
                "(choose another in the Avatar panel, or with --set face_index=N)."
            )
        all_boxes = tuple(tuple(int(round(v / scale)) for v in b) for _s, b in boxes)
        crop, cs, cx0, cy0 = face_crop(work, box)
        pts = None
        if method in ("auto", "face_landmarker"):
            box_in_crop = tuple((np.array(box, float) - [cx0, cy0, cx0, cy0]) * cs)
            got = landmarker.landmarks_on_crop(crop, box_in_crop)
            if got is not None:
                pts, blendshapes, transform = got
                used = "face_landmarker"
            elif method == "auto":
                notes.append(
                    f"The Face Landmarker placed no landmarks on the face in {source}; the "
                    "legacy face mesh was used (no expression scores)."
                )
        if pts is None and method in ("auto", "face_mesh"):
            pts = _mesh_on_crop(crop)
            used = "face_mesh"
    if pts is None:
        raise EngineError(
            f"A face was found in {source} but its landmarks could not be placed; the head may "
            "be turned too far (more than about 60 degrees) or partly hidden. Use a more frontal photo."
        )
    xy = pts[:, :2] / cs + [cx0, cy0]
    z = pts[:, 2] / cs
    # continuous coordinates -> pixel-centre convention (integer = centre of a pixel)
    return FaceLandmarks(
        xy=xy / scale - 0.5,
        z=z / scale,
        box=tuple(int(round(b / scale)) for b in box),
        score=score,
        image_size=(w, h),
        faces_found=len(boxes),
        notes=notes,
        blendshapes=blendshapes,
        transform=transform,
        method=used,
        faces=all_boxes,
        face_index=face_index,
    )
