"""Hair segmentation in a portrait, and what it says about the hair.

No learned hair-segmentation model is available offline (mediapipe 0.10.21 ships none;
its hair segmenter is a separate download), so this is a classical pipeline:

1. Person mask: MediaPipe selfie segmentation (Bazarevsky et al., "MediaPipe Selfie
   Segmentation", 2021), shipped in the wheel.
2. Face: the face-mesh oval (landmarks from :mod:`engines.avatar.landmarks`) is removed,
   and so is skin, by a Gaussian colour model in Lab fitted to cheek and forehead pixels.
3. Hair colour model: a Gaussian fitted to the band of person pixels above the forehead
   (almost always hair), against a clothes model from below the chin; pixels are labelled
   by likelihood ratio (the classical colour-model approach of Yacoob and Davis,
   "Detection and Analysis of Hair", IEEE PAMI 2006).
4. Refinement: GrabCut (Rother et al., SIGGRAPH 2004) seeded with those labels, then the
   components touching the head are kept.

Measurements: median hair colour, length below the chin line and volume beside the face
(both in face heights/widths) and fringe coverage of the forehead band.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engines.api import EngineError
from engines.face.common import FACE_OVAL

BROWS = [70, 63, 105, 66, 107, 336, 296, 334, 293, 300]
CHEEKS = [50, 280, 101, 330, 123, 352, 151, 9, 108, 337]
CHIN, FOREHEAD = 152, 10


@dataclass
class HairSegmentation:
    mask: np.ndarray
    """H x W bool, hair pixels."""
    face_mask: np.ndarray
    person_mask: np.ndarray
    landmarks: np.ndarray
    """478 x 2 pixel positions used."""
    measurements: dict = field(default_factory=dict)


def _landmarks(rgb: np.ndarray, face_index: int = 0) -> np.ndarray:
    try:
        from engines.face import detect_landmarks
    except ImportError:  # the avatar engine is optional for this module
        detect_landmarks = None
    if detect_landmarks is not None:
        return detect_landmarks(rgb, "the portrait", face_index=face_index).xy
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True) as fm:
        res = fm.process(rgb)
    if not res.multi_face_landmarks:
        raise EngineError("No face found in the portrait: use a photo of one person facing the camera.")
    h, w = rgb.shape[:2]
    return np.array([(p.x * w, p.y * h) for p in res.multi_face_landmarks[0].landmark])


def person_mask(rgb: np.ndarray) -> np.ndarray:
    """Soft person mask (H x W float 0..1) from MediaPipe selfie segmentation."""
    import mediapipe as mp

    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        res = seg.process(np.ascontiguousarray(rgb))
    if res.segmentation_mask is None:
        return np.ones(rgb.shape[:2], np.float32)
    return res.segmentation_mask.astype(np.float32)


def _gauss(samples: np.ndarray):
    mu = samples.mean(0)
    cov = np.cov(samples.T) + np.eye(samples.shape[1]) * 4.0
    return mu, np.linalg.inv(cov)


def _maha(lab: np.ndarray, model) -> np.ndarray:
    mu, icov = model
    d = lab - mu
    return np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", d, icov, d), 0))


def segment_hair(
    rgb: np.ndarray, landmarks: np.ndarray | None = None, work_side: int = 320, face_index: int = 0
) -> HairSegmentation:
    """Hair mask of one face's hair in an RGB uint8 portrait (full resolution): the face of
    ``landmarks``, else the ``face_index``-th largest face (0 = the largest)."""
    import cv2

    H, W = rgb.shape[:2]
    lm_full = _landmarks(rgb, face_index) if landmarks is None else np.asarray(landmarks, float)
    s = work_side / max(H, W)
    img = cv2.resize(rgb, (max(1, round(W * s)), max(1, round(H * s))), interpolation=cv2.INTER_AREA)
    lm = lm_full * s
    h, w = img.shape[:2]
    person = person_mask(img) > 0.5
    face = np.zeros((h, w), np.uint8)
    cv2.fillPoly(face, [np.round(lm[FACE_OVAL]).astype(np.int32)], 1)
    face = face.astype(bool)
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float64)
    face_w = float(np.ptp(lm[FACE_OVAL, 0]))
    top, chin = lm[FOREHEAD], lm[CHIN]
    face_h = float(np.linalg.norm(chin - top))
    # Skin: small discs around cheek and forehead landmarks.
    skin_sel = np.zeros((h, w), np.uint8)
    for i in CHEEKS:
        cv2.circle(skin_sel, tuple(int(v) for v in np.round(lm[i])), max(2, int(face_w * 0.05)), 1, -1)
    skin_px = lab[(skin_sel > 0) & face]
    if len(skin_px) < 10:
        raise EngineError("The face in the portrait is too small to measure skin colour; use a closer photo.")
    skin = _gauss(skin_px)
    d_skin = _maha(lab, skin)
    # the surroundings of the head (outside the person): "hair" of their colour is background
    near = cv2.dilate(face.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(3, int(0.6 * face_w))) > 0
    bg_px = lab[near & ~person]
    background = _gauss(bg_px) if len(bg_px) >= 30 else None
    # Hair seeds: person pixels in a band above the top of the face oval.
    ys, xs = np.mgrid[0:h, 0:w]
    cx = lm[FACE_OVAL, 0].mean()
    oval_top = lm[FACE_OVAL, 1].min()
    band = (
        person
        & ~face
        & (ys < oval_top + 0.05 * face_h)
        & (ys > oval_top - 0.35 * face_h)
        & (np.abs(xs - cx) < 0.45 * face_w)
        & (d_skin > 3.0)
    )
    below = person & ~face & (ys > chin[1] + 0.25 * face_h) & (np.abs(xs - cx) < 0.5 * face_w)
    cand = person & ~face & (d_skin > 2.5)
    if band.sum() < 15:
        # No hair above the forehead (bald, or hair cropped out): seed from beside the face.
        band = cand & (ys < chin[1]) & (np.abs(xs - cx) < 0.8 * face_w)
    if band.sum() < 15:
        mask = np.zeros((H, W), bool)
        return HairSegmentation(
            mask,
            _up(face, W, H),
            _up(person, W, H),
            lm_full,
            _measure(mask, rgb, lm_full, skin, face.sum() / s**2, background),
        )
    hair = _gauss(lab[band])
    d_hair = _maha(lab, hair)
    if below.sum() > 30:
        clothes = _gauss(lab[below])
        d_cl = _maha(lab, clothes)
    else:
        d_cl = np.full((h, w), 1e9)
    under = ys > chin[1]
    # Below the chin, clothes win ties: a dark jacket must not pass for long dark hair.
    likely = cand & (d_hair < 3.0) & (d_hair < np.where(under, 0.7, 1.0) * d_cl)
    clothes_px = under & (d_cl < 3.0) & (d_cl <= 1.4 * d_hair)
    # GrabCut refinement, seeded by the colour labels.
    gc = np.full((h, w), cv2.GC_BGD, np.uint8)
    gc[person] = cv2.GC_PR_BGD
    gc[likely] = cv2.GC_PR_FGD
    gc[band & (d_hair < 1.5)] = cv2.GC_FGD
    brow_y = lm[BROWS, 1].mean()
    inner_face = cv2.erode(face.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    fringe = face & (ys < brow_y) & (d_hair < 2.5) & (d_skin > 3.0)
    gc[fringe] = cv2.GC_PR_FGD
    inner_face &= ~(ys < brow_y)
    gc[inner_face | clothes_px] = cv2.GC_BGD
    if (gc == cv2.GC_FGD).sum() + (gc == cv2.GC_PR_FGD).sum() > 20:
        bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
        try:
            cv2.grabCut(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            pass
    m = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)) & person & ~inner_face
    m = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    # Keep components that touch the head (a ring around the face oval).
    head_zone = cv2.dilate(face.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(3, int(0.12 * face_w)))
    n, lab_cc = cv2.connectedComponents(m)
    keep = np.zeros(n, bool)
    for k in np.unique(lab_cc[(head_zone > 0) & (m > 0)]):
        keep[k] = k > 0
    m = keep[lab_cc]
    mask = _up(m, W, H)
    return HairSegmentation(
        mask,
        _up(face, W, H),
        _up(person, W, H),
        lm_full,
        _measure(mask, rgb, lm_full, skin, face.sum() / s**2, background),
    )


def _up(m: np.ndarray, W: int, H: int) -> np.ndarray:
    import cv2

    return cv2.resize(m.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST).astype(bool)


def _measure(
    mask: np.ndarray, rgb: np.ndarray, lm: np.ndarray, skin=None, face_px: float = 0.0, background=None
) -> dict:
    """Colour, length below the chin, volume beside the face and fringe coverage; with the
    skin's colour model and the face-oval area, how far the hair colour is from the skin
    (CIELAB colour difference) and how much hair there is relative to the face; with the
    colour model of the surroundings, how far the hair colour is from the background."""
    import cv2

    from engines.hair.color import to_hex

    face_w = float(np.ptp(lm[FACE_OVAL, 0]))
    top, chin = lm[FOREHEAD], lm[CHIN]
    face_h = float(np.linalg.norm(chin - top))
    out = {"hair_pixels": int(mask.sum()), "color": "#3b2619", "length_below_chin": 0.0, "volume": 0.0, "fringe": 0.0}
    if mask.sum() < 20:
        return out
    med = np.median(rgb[mask][:, :3], axis=0)
    out["color"] = to_hex(med)
    if face_px > 0:
        out["hair_fraction"] = round(float(mask.sum() / face_px), 4)
    # CIE76 colour difference of the hair's median from the cheeks' and the surroundings'
    # mean colours (OpenCV's 8-bit Lab: L scaled by 255/100, a and b offset by 128)
    lab = cv2.cvtColor(np.clip(med, 0, 255).astype(np.uint8).reshape(1, 1, 3), cv2.COLOR_RGB2LAB)
    lab = lab.reshape(3).astype(np.float64)
    for key, model in (("skin_delta_e", skin), ("background_delta_e", background)):
        if model is not None:
            out[key] = round(float(np.linalg.norm((lab - model[0]) * [100.0 / 255.0, 1.0, 1.0])), 2)
    rows = np.nonzero(mask.sum(1) >= max(2, 0.03 * face_w))[0]
    out["length_below_chin"] = round(float(max(0.0, (rows.max() - chin[1]) / face_h)), 3)
    cols = np.nonzero(mask.any(0))[0]
    out["volume"] = round(float((cols.max() - cols.min() + 1) / face_w), 3)
    brow_y = lm[BROWS, 1].mean()
    y0, y1 = int(round(lm[FACE_OVAL, 1].min())), int(round(brow_y))
    x0, x1 = int(round(lm[BROWS, 0].min())), int(round(lm[BROWS, 0].max()))
    if y1 > y0 + 1 and x1 > x0 + 1:
        out["fringe"] = round(float(mask[y0:y1, x0:x1].mean()), 3)
    return out
