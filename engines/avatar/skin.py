"""Skin mask for the texture bake: which photo pixels may be baked into the skin.

Two independent cues, both required (a pixel is skin where the product is high):

1. **Person vs background**: MediaPipe selfie segmentation (``mp.solutions.selfie_segmentation``,
   shipped in the 0.10.21 wheel), run on a context box around the head.
2. **Colour**: a robust colour model of this person's skin, from patches at landmark-defined
   places (both cheeks between the lower eyelid and the mouth corner, the forehead above
   the brows) in CIE Lab: an iteratively trimmed mean and covariance (a small MCD-style
   estimate, Rousseeuw 1984), with floors on the variances and the lightness variance
   inflated (shading changes lightness far more than chroma), then a soft threshold on
   the Mahalanobis distance. Hair, hats, collars, glasses rims and background colours fall
   outside it, as in the classic explicit skin-colour models (Vezhnevets, Sazonov and
   Andreeva, "A Survey on Pixel-Based Skin Color Detection Techniques", GraphiCon 2003),
   here fitted per photo instead of globally.

Landmark polygons then override the colour test where we know what the pixels are: the
eye openings (sclera and iris have their own procedural texture) and the inner mouth
(teeth and mouth interior) are always excluded; the eyebrows, the lips and the nostrils
are always included (they belong to the face texture although their colour is not skin).

Everything runs on the bake's working crop (the head's box, resampled); coordinates are
pixel-centre (integer = centre of a pixel). Heavy imports stay inside the functions.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

# MediaPipe face mesh contours (478-point topology; the first eye/brow is the image-left one)
EYE_IMAGE_LEFT = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
EYE_IMAGE_RIGHT = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
BROW_IMAGE_LEFT = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
BROW_IMAGE_RIGHT = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
NOSE_BOTTOM = (64, 98, 97, 2, 326, 327, 294, 278, 344, 440, 275, 4, 45, 220, 115, 48)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
LEFT_IRIS, RIGHT_IRIS = 468, 473

# skin sample patches: (landmark a, landmark b, fraction from a to b); radius from the IOD
_PATCHES = (
    (145, 61, 0.45), (374, 291, 0.45),      # cheeks: lower lid centre -> mouth corner
    (118, 207, 0.35), (347, 427, 0.35),     # outer cheeks
    (105, 10, 0.40), (334, 10, 0.40),       # forehead above the brows
    (9, 10, 0.45),                          # mid forehead
)

L_FLOOR, AB_FLOOR = 8.0, 4.0
"""Standard-deviation floors (8-bit Lab units) of the skin colour model: within one face the
chroma moves by several units (rosy cheeks, shading), more than the sample patches show."""
L_INFLATE = (2.6, 1.6)
"""The lightness standard deviation is multiplied by these (darker, lighter than the mean):
shading changes lightness far more than chroma; shadows more than highlights."""
D2_FACE = (12.0, 30.0)
"""Squared Mahalanobis distances inside the face oval: full skin below the first, none above
the second (only rims, glasses, beards and hands are not skin there)."""
D2_OUTSIDE = (5.0, 14.0)
"""The same outside the face oval, where hair, hats, collars and background live: stricter."""

_lock = threading.Lock()
_seg: dict[str, object] = {}


@dataclass
class SkinColour:
    mean_lab: np.ndarray
    """3 mean (8-bit OpenCV Lab)."""
    cov_lab: np.ndarray
    """3 x 3 covariance used for the test (floored, lightness inflated)."""
    rgb: np.ndarray
    """3 float: the skin tone (mean RGB of the inlier samples)."""
    n_samples: int
    fallback: bool = False
    """True when too few skin samples were found and a wide generic model is used."""


@dataclass
class SkinMask:
    mask: np.ndarray
    """H x W float32 in [0, 1]: 1 = skin that may be baked."""
    colour: SkinColour
    person: np.ndarray | None
    """H x W float32 person probability (None when segmentation was not used)."""
    forced_in: np.ndarray
    forced_out: np.ndarray


def _smoothstep(x, a, b):
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def iod_px(xy: np.ndarray) -> float:
    return float(np.linalg.norm(xy[LEFT_IRIS] - xy[RIGHT_IRIS]))


def patch_centres(xy: np.ndarray) -> np.ndarray:
    """P x 2 centres of the skin sample patches."""
    xy = np.asarray(xy, np.float64)
    return np.array([xy[a] + f * (xy[b] - xy[a]) for a, b, f in _PATCHES])


def _segmenter():
    import mediapipe as mp

    if "seg" not in _seg:
        _seg["seg"] = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    return _seg["seg"]


def person_mask(rgb: np.ndarray, max_side: int = 512) -> np.ndarray:
    """Person probability (H x W float32) by MediaPipe selfie segmentation."""
    import cv2

    h, w = rgb.shape[:2]
    s = min(1.0, max_side / max(h, w))
    small = rgb if s == 1.0 else cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                                            interpolation=cv2.INTER_AREA)
    with _lock:
        res = _segmenter().process(np.ascontiguousarray(small[..., :3]))
    m = res.segmentation_mask
    if m is None:
        return np.ones((h, w), np.float32)
    m = np.clip(np.asarray(m, np.float32), 0.0, 1.0)
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    return m


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2LAB).astype(np.float32)


def fit_skin_colour(rgb: np.ndarray, xy: np.ndarray, person: np.ndarray | None = None) -> SkinColour:
    """Robust Lab skin colour model from the cheek and forehead patches."""
    h, w = rgb.shape[:2]
    iod = max(iod_px(xy), 4.0)
    r = max(1.5, 0.09 * iod)
    lab_all, rgb_all = [], []
    yy, xx = np.mgrid[-int(np.ceil(r)):int(np.ceil(r)) + 1, -int(np.ceil(r)):int(np.ceil(r)) + 1]
    disc = (xx ** 2 + yy ** 2) <= r * r
    for cx, cy in patch_centres(xy):
        px = np.round(cx).astype(int) + xx[disc]
        py = np.round(cy).astype(int) + yy[disc]
        ok = (px >= 0) & (py >= 0) & (px < w) & (py < h)
        px, py = px[ok], py[ok]
        if person is not None:
            keep = person[py, px] > 0.5
            px, py = px[keep], py[keep]
        if len(px):
            rgb_all.append(rgb[py, px, :3])
    if rgb_all:
        samples = np.concatenate(rgb_all).astype(np.uint8)
    else:
        samples = np.zeros((0, 3), np.uint8)
    if len(samples):
        lab_all = _to_lab(samples[None])[0]
        lum = lab_all[:, 0]
        ok = (lum > 25) & (lum < 250)  # no clipped highlights or black
        samples, lab_all = samples[ok], lab_all[ok]
    if len(samples) < 12:
        # generic skin: wide model around a mid skin tone
        base = np.array([[[196, 150, 128]]], np.uint8)
        mean = _to_lab(base)[0, 0]
        cov = np.diag([60.0 ** 2, 12.0 ** 2, 12.0 ** 2])
        return SkinColour(mean, cov, base[0, 0].astype(np.float32), len(samples), fallback=True)
    X = lab_all.astype(np.float64)
    mu = np.median(X, 0)
    mad = np.median(np.abs(X - mu), 0) * 1.4826
    scale = np.maximum(mad, [L_FLOOR, AB_FLOOR, AB_FLOOR])
    d2 = (((X - mu) / scale) ** 2).sum(1)
    keep = d2 < 7.8
    for _ in range(3):  # trimmed re-estimation
        if keep.sum() < 8:
            break
        mu = X[keep].mean(0)
        cov = np.cov(X[keep].T) + np.diag([1e-3, 1e-3, 1e-3])
        d2 = np.einsum("ij,jk,ik->i", X - mu, np.linalg.inv(cov), X - mu)
        keep = d2 < 7.8
    if keep.sum() < 8:
        keep = np.ones(len(X), bool)
    mu = X[keep].mean(0)
    cov = np.cov(X[keep].T) if keep.sum() > 3 else np.zeros((3, 3))
    # chroma: the (a, b) covariance with its axes floored; lightness: its own floored spread
    ab = cov[1:, 1:]
    ev, evec = np.linalg.eigh(ab)
    ab = (evec * np.maximum(ev, AB_FLOOR ** 2)) @ evec.T
    sd_l = max(float(np.sqrt(max(cov[0, 0], 0.0))), L_FLOOR)
    cov_t = np.zeros((3, 3))
    cov_t[0, 0] = sd_l ** 2
    cov_t[1:, 1:] = ab
    tone = samples[keep].astype(np.float32).mean(0)
    return SkinColour(mu.astype(np.float32), cov_t, tone, int(keep.sum()))


def colour_distance(rgb: np.ndarray, colour: SkinColour) -> np.ndarray:
    """Squared Mahalanobis distance (H x W float32) to the skin colour in Lab: the chroma
    term with the (a, b) covariance plus the lightness term, whose spread is inflated
    (:data:`L_INFLATE`, more for darker than for lighter pixels)."""
    lab = _to_lab(rgb) - colour.mean_lab
    ic = np.linalg.inv(colour.cov_lab[1:, 1:]).astype(np.float32)
    a, b = lab[..., 1], lab[..., 2]
    d2 = ic[0, 0] * a * a + 2 * ic[0, 1] * a * b + ic[1, 1] * b * b
    sd_l = float(np.sqrt(colour.cov_lab[0, 0]))
    dl = lab[..., 0] / np.where(lab[..., 0] < 0, sd_l * L_INFLATE[0], sd_l * L_INFLATE[1])
    return (d2 + dl * dl).astype(np.float32)


def colour_probability(rgb: np.ndarray, colour: SkinColour, inside: np.ndarray | None = None) -> np.ndarray:
    """Soft skin-colour membership (H x W float32); ``inside`` (soft face-oval mask) selects
    the lenient thresholds :data:`D2_FACE` there and :data:`D2_OUTSIDE` elsewhere."""
    d2 = colour_distance(rgb, colour)
    p_out = 1.0 - _smoothstep(d2, *D2_OUTSIDE)
    if inside is None:
        return p_out.astype(np.float32)
    p_in = 1.0 - _smoothstep(d2, *D2_FACE)
    return (inside * p_in + (1.0 - inside) * p_out).astype(np.float32)


def _poly(xy, idx):
    return np.round(np.asarray(xy, np.float64)[list(idx)] * 4).astype(np.int32)  # 2 bits of sub-pixel


def _fill(shape, polys, xy) -> np.ndarray:
    import cv2

    m = np.zeros(shape, np.uint8)
    for idx in polys:
        cv2.fillPoly(m, [_poly(xy, idx)], 255, lineType=cv2.LINE_AA, shift=2)
    return m.astype(np.float32) / 255.0


def landmark_regions(shape: tuple[int, int], xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(forced in, forced out) soft masks: brows, lips and nostrils in; eyes and inner mouth out."""
    import cv2

    iod = max(iod_px(xy), 4.0)
    out = _fill(shape, (EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT, LIPS_INNER), xy)
    k = max(1, int(round(0.02 * iod)))
    if k > 0:
        out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    brows = _fill(shape, (BROW_IMAGE_LEFT, BROW_IMAGE_RIGHT), xy)
    kb = max(1, int(round(0.03 * iod)))
    brows = cv2.dilate(brows, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * kb + 1, 2 * kb + 1)))
    lips = _fill(shape, (LIPS_OUTER,), xy)
    nose = _fill(shape, (NOSE_BOTTOM,), xy)
    forced_in = np.maximum(np.maximum(brows, lips), nose) * (1.0 - out)
    return forced_in, out


def skin_mask(rgb: np.ndarray, xy: np.ndarray, use_segmentation: bool = True,
              person: np.ndarray | None = None, blur_iod: float = 1 / 60) -> SkinMask:
    """The soft skin mask of an RGB image (uint8) whose face has the 478 landmarks ``xy``.

    ``person`` may be given (a person probability already computed on this image);
    otherwise selfie segmentation runs here when ``use_segmentation``.
    """
    import cv2

    h, w = rgb.shape[:2]
    iod = max(iod_px(xy), 4.0)
    if person is None and use_segmentation:
        person = person_mask(rgb)
    if person is not None:
        # a segmentation that misses the face itself (paintings, odd crops) is not trusted
        inner = _fill((h, w), (FACE_OVAL,), xy) > 0.5
        if inner.any() and float(person[inner].mean()) < 0.4:
            person = None
    colour = fit_skin_colour(rgb, xy, person)
    oval = _fill((h, w), (FACE_OVAL,), xy)
    p = colour_probability(rgb, colour, cv2.GaussianBlur(oval, (0, 0), max(0.5, 0.05 * iod)))
    if person is not None:
        p = p * _smoothstep(person, 0.3, 0.7).astype(np.float32)
    forced_in, forced_out = landmark_regions((h, w), xy)
    m = np.maximum(p, forced_in) * (1.0 - forced_out)
    sigma = max(0.6, blur_iod * iod)
    m = cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma)
    return SkinMask(np.clip(m, 0.0, 1.0), colour, person, forced_in, forced_out)


def iris_colour(rgb: np.ndarray, xy: np.ndarray, fallback=(78, 54, 38)) -> tuple[np.ndarray, bool]:
    """Iris colour (RGB float) from the pixels inside the iris rings, and whether it was measured.

    Samples (bilinear) on a polar grid between 35 % and 80 % of each iris radius (the
    landmarks 468-477: centre + 4 ring points per eye), inside the eye opening (not on the
    lids), then drops the brightest (highlights, sclera) and darkest (pupil, lashes)
    samples by lightness and takes the median of the rest.
    """
    import cv2

    xy = np.asarray(xy, np.float64)
    h, w = rgb.shape[:2]
    pts, ok_all = [], []
    for centre, ring, eye in ((468, (469, 470, 471, 472), EYE_IMAGE_LEFT), (473, (474, 475, 476, 477), EYE_IMAGE_RIGHT)):
        c = xy[centre]
        r = float(np.mean(np.linalg.norm(xy[list(ring)] - c, axis=1)))
        if not np.isfinite(r) or r < 1.2:
            continue
        ang = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        rad = np.linspace(0.35, 0.8, 6) * r
        a, b = np.meshgrid(ang, rad)
        p = c + np.stack([np.cos(a) * b, np.sin(a) * b], -1).reshape(-1, 2)
        contour = xy[list(eye)].astype(np.float32)
        inside = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in p])
        keep = (inside > 0.25) & (p[:, 0] >= 0) & (p[:, 1] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] <= h - 1)
        pts.append(p[keep])
    if not pts or sum(len(p) for p in pts) < 10:
        return np.asarray(fallback, np.float32), False
    p = np.concatenate(pts).astype(np.float32)
    cols = cv2.remap(np.ascontiguousarray(rgb[..., :3]), p[:, 0:1], p[:, 1:2], cv2.INTER_LINEAR)[:, 0].astype(np.float32)
    lum = cols @ np.array([0.299, 0.587, 0.114], np.float32)
    lo, hi = np.percentile(lum, [15, 65])
    sel = (lum >= lo) & (lum <= hi)
    if sel.sum() < 5:
        return np.asarray(fallback, np.float32), False
    return np.median(cols[sel], 0).astype(np.float32), True
