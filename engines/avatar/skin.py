"""Skin mask for the texture bake: which photo pixels may be baked into the skin.

Two independent cues, both required (a pixel is skin where the product is high):

1. **Person vs background**: MediaPipe selfie segmentation (``mp.solutions.selfie_segmentation``,
   shipped in the 0.10.21 wheel), run on a context box around the head.
2. **Colour**: a robust colour model of this person's skin, from patches at landmark-defined
   places (both cheeks between the lower eyelid and the mouth corner, the forehead above
   the brows) in CIE Lab: an iteratively trimmed mean and covariance (a small MCD-style
   estimate, Rousseeuw 1984), with floors on the variances and the lightness variance
   inflated (shading changes lightness far more than chroma), then a soft threshold on
   the Mahalanobis distance (lenient inside the face oval, strict outside it). Hair, hats,
   collars, glasses rims and background colours fall outside it, as in the classic
   explicit skin-colour models (Vezhnevets, Sazonov and Andreeva, "A Survey on Pixel-Based
   Skin Color Detection Techniques", GraphiCon 2003), here fitted per photo instead of
   globally. Blond or light-brown hair can be close to skin in absolute terms, so a second
   model is fitted to the non-skin pixels of a band above the forehead and the temples,
   and a pixel nearer to it than to the skin is rejected (a likelihood-ratio test) outside
   the face oval and, with a margin, on the forehead where a fringe falls. Skin outside the
   face oval must be connected to the face's.

The colour tests run on the photo brightened to a standard skin exposure
(:func:`exposure_gain`; never darkened): in an underexposed photo, or on dark skin, every
colour's Lab chroma and lightness differences shrink towards the model's floors, and dark
hair and clothes then passed for skin (a grey-world style normalisation, here on the
face's own skin, as automatic exposure meters on the face do). In a greyscale photo
(:func:`is_greyscale`) colour cannot tell lit hair from skin, so above the brows only the
face oval and a small margin are trusted there.

Landmark polygons then override the colour test where we know what the pixels are: the
eye openings (sclera and iris have their own procedural texture) and the inner mouth
(teeth and mouth interior) are always excluded; the eyebrows, the lips and the nostrils
are always included (they belong to the face texture although their colour is not skin).

Everything runs on the bake's mask frame (the head's box, resampled to about 100 px between
the eyes); coordinates are pixel-centre (integer = centre of a pixel). Heavy imports stay
inside the functions. Eyeglass frames found by :mod:`engines.avatar.glasses` are taken out
whatever their colour (frames of a skin-like colour, tortoiseshell or amber, pass the colour
test); frames lying on the brows are kept with the brows, and frames it does not find
(thin, rimless) stay a known limit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np

from engines.face.common import FACE_OVAL

# MediaPipe face mesh contours (478-point topology; the first eye/brow is the image-left one)
EYE_IMAGE_LEFT = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
EYE_IMAGE_RIGHT = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
BROW_IMAGE_LEFT = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
BROW_IMAGE_RIGHT = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
NOSE_BOTTOM = (64, 98, 97, 2, 326, 327, 294, 278, 344, 440, 275, 4, 45, 220, 115, 48)
LEFT_IRIS, RIGHT_IRIS = 468, 473

# skin sample patches: (landmark a, landmark b, fraction from a to b); radius from the IOD
_PATCHES = (
    (145, 61, 0.45),
    (374, 291, 0.45),  # cheeks: lower lid centre -> mouth corner
    (118, 207, 0.35),
    (347, 427, 0.35),  # outer cheeks
    (105, 10, 0.40),
    (334, 10, 0.40),  # forehead above the brows
    (9, 10, 0.45),  # mid forehead
)

L_FLOOR, AB_FLOOR = 8.0, 4.0
"""Standard-deviation floors (8-bit Lab units) of the skin colour model: within one face the
chroma moves by several units (rosy cheeks, shading), more than the sample patches show."""
L_INFLATE = (2.6, 1.6)
"""The lightness standard deviation is multiplied by these (darker, lighter than the mean):
shading changes lightness far more than chroma; shadows more than highlights."""
D2_FACE = (20.0, 45.0)
"""Squared Mahalanobis distances inside the face oval: full skin below the first, none above
the second (only rims, glasses, beards and hands are not skin there)."""
D2_OUTSIDE = (5.0, 14.0)
"""The same outside the face oval, where hair, hats, collars and background live: stricter."""

GREY_CHROMA = 2.0
"""Median Lab chroma (8-bit units) below which a photo is taken for greyscale (a black and
white print, a sepia-free scan): the colour tests then cannot tell skin from hair."""
GREY_MARGIN_IOD = 0.05
"""In a greyscale photo, skin above the brows is trusted only this far outside the face oval
(x the eye distance)."""
EXPOSURE_SKIN_LUMA = 150.0
"""The colour tests see the photo brightened so that the face's skin patches have at least
this median RGB luma (the test portraits' skin: 180-197, left as it is)."""
EXPOSURE_GAIN_MAX = 4.0
"""At most this much brighter (beyond, the photo's few dark levels are noise)."""

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
    hair: "HairColour | None" = None
    glasses: object | None = None
    """The eyeglass frames found (:class:`engines.avatar.glasses.Glasses`), None when not searched."""
    exposure_gain: float = 1.0
    """How much brighter the colour tests saw the photo (:func:`exposure_gain`)."""


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
    small = (
        rgb if s == 1.0 else cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    )
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


def _disc_samples(rgb, centres, r, person=None) -> tuple[np.ndarray, np.ndarray]:
    """RGB samples (uint8, S x 3) inside discs of radius r, and each sample's disc index."""
    h, w = rgb.shape[:2]
    k = int(np.ceil(r))
    yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
    disc = (xx**2 + yy**2) <= r * r
    out, lab = [], []
    for i, (cx, cy) in enumerate(centres):
        px = int(np.round(cx)) + xx[disc]
        py = int(np.round(cy)) + yy[disc]
        ok = (px >= 0) & (py >= 0) & (px < w) & (py < h)
        px, py = px[ok], py[ok]
        if person is not None:
            keep = person[py, px] > 0.5
            px, py = px[keep], py[keep]
        out.append(rgb[py, px, :3])
        lab.append(np.full(len(px), i))
    if not out:
        return np.zeros((0, 3), np.uint8), np.zeros(0, int)
    return np.concatenate(out).astype(np.uint8), np.concatenate(lab)


def _robust_gaussian(X: np.ndarray, init: np.ndarray, floors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trimmed mean/covariance of X (S x 3), started from the median/MAD of X[init]."""
    seed = X[init] if init.sum() >= 8 else X
    mu = np.median(seed, 0)
    scale = np.maximum(np.median(np.abs(seed - mu), 0) * 1.4826, floors)
    keep = (((X - mu) / scale) ** 2).sum(1) < 7.8
    for _ in range(3):
        if keep.sum() < 8:
            break
        mu = X[keep].mean(0)
        cov = np.cov(X[keep].T) + np.diag(np.square(floors) * 0.25)
        d = X - mu
        keep = np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d) < 7.8
    if keep.sum() < 8:
        keep = np.ones(len(X), bool)
    mu = X[keep].mean(0)
    cov = np.cov(X[keep].T) if keep.sum() > 3 else np.zeros((3, 3))
    return mu, cov, keep


def is_greyscale(rgb: np.ndarray) -> bool:
    """Whether an RGB image has (almost) no colour: its median Lab chroma is under GREY_CHROMA."""
    lab = _to_lab(rgb[::2, ::2])
    return bool(np.median(np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0)) < GREY_CHROMA)


def _patch_samples(rgb: np.ndarray, xy: np.ndarray, person: np.ndarray | None = None):
    """RGB samples of the skin patches (:func:`patch_centres`, discs of 0.09 IOD) and each
    sample's patch index."""
    iod = max(iod_px(xy), 4.0)
    return _disc_samples(rgb, patch_centres(xy), max(1.5, 0.09 * iod), person)


def exposure_gain(rgb: np.ndarray, xy: np.ndarray, person: np.ndarray | None = None) -> float:
    """The factor (1 .. EXPOSURE_GAIN_MAX) that brings the median luma of the skin patches
    (:func:`patch_centres`) up to EXPOSURE_SKIN_LUMA; 1 without enough samples."""
    samples, _ = _patch_samples(rgb, xy, person)
    if len(samples) < 12:
        return 1.0
    med = float(np.median(samples.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)))
    return float(np.clip(EXPOSURE_SKIN_LUMA / max(med, 1.0), 1.0, EXPOSURE_GAIN_MAX))


def fit_skin_colour(rgb: np.ndarray, xy: np.ndarray, person: np.ndarray | None = None) -> SkinColour:
    """Robust Lab skin colour model from the cheek and forehead patches.

    The cheek patches start the estimate (a fringe often covers the forehead); the
    forehead samples join only where they agree with the cheeks."""
    samples, which = _patch_samples(rgb, xy, person)
    if len(samples):
        lab_all = _to_lab(samples[None])[0]
        lum = lab_all[:, 0]
        ok = (lum > 25) & (lum < 250)  # no clipped highlights or black
        samples, lab_all, which = samples[ok], lab_all[ok], which[ok]
    if len(samples) < 12:
        # generic skin: wide model around a mid skin tone
        base = np.array([[[196, 150, 128]]], np.uint8)
        mean = _to_lab(base)[0, 0]
        cov = np.diag([25.0**2, 10.0**2, 10.0**2])
        return SkinColour(mean, cov, base[0, 0].astype(np.float32), len(samples), fallback=True)
    X = lab_all.astype(np.float64)
    mu, cov, keep = _robust_gaussian(X, which < 4, np.array([L_FLOOR, AB_FLOOR, AB_FLOOR]))
    # chroma: the (a, b) covariance with its axes floored; lightness: its own floored spread
    ab = cov[1:, 1:]
    ev, evec = np.linalg.eigh(ab)
    ab = (evec * np.maximum(ev, AB_FLOOR**2)) @ evec.T
    sd_l = max(float(np.sqrt(max(cov[0, 0], 0.0))), L_FLOOR)
    cov_t = np.zeros((3, 3))
    cov_t[0, 0] = sd_l**2
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


@dataclass
class HairColour:
    """Colour model of what surrounds the face above it (hair, a hat), for a contrast test."""

    mean_lab: np.ndarray
    cov_lab: np.ndarray
    n_samples: int
    distinct: bool
    """False when it looks like the skin (a bald head, skin-coloured surroundings): unused."""


def hair_band_centres(xy: np.ndarray) -> np.ndarray:
    """Sample centres above the forehead and the temples (outside the face oval)."""
    xy = np.asarray(xy, np.float64)
    iod = max(iod_px(xy), 4.0)
    up = xy[10] - xy[168]
    up /= max(np.linalg.norm(up), 1e-9)
    side = xy[RIGHT_IRIS] - xy[LEFT_IRIS]
    side /= max(np.linalg.norm(side), 1e-9)
    c = [
        xy[10] + up * 0.35 * iod,
        xy[10] + up * 0.6 * iod,
        xy[10] + up * 0.9 * iod,
        xy[10] + up * 0.45 * iod - side * 0.5 * iod,
        xy[10] + up * 0.45 * iod + side * 0.5 * iod,
        xy[54] + up * 0.3 * iod - side * 0.15 * iod,
        xy[284] + up * 0.3 * iod + side * 0.15 * iod,
    ]
    return np.array(c)


def fit_hair_colour(
    rgb: np.ndarray, xy: np.ndarray, skin: SkinColour, person: np.ndarray | None = None
) -> HairColour | None:
    """Colour model of the non-skin pixels in the band above the forehead (None if too few)."""
    iod = max(iod_px(xy), 4.0)
    samples, _ = _disc_samples(rgb, hair_band_centres(xy), max(1.5, 0.12 * iod), person)
    if len(samples) < 12:
        return None
    # the band mixes hair with forehead skin (a high hairline): model only its non-skin part
    d2 = colour_distance(samples[None], skin)[0]
    samples = samples[d2 > D2_OUTSIDE[0]]
    if len(samples) < max(12, 0.15 * len(d2)):
        return None
    X = _to_lab(samples[None])[0].astype(np.float64)
    floors = np.array([8.0, 3.0, 3.0])
    mu, cov, keep = _robust_gaussian(X, np.ones(len(X), bool), floors)
    ev, evec = np.linalg.eigh(cov)
    cov = (evec * np.maximum(ev, (floors.min()) ** 2)) @ evec.T
    cov += np.diag(np.square(floors))
    # distinct when either model puts the other's mean well outside itself
    d_skin = float(colour_distance(np.clip(_lab_to_rgb(mu), 0, 255).astype(np.uint8)[None, None], skin)[0, 0])
    dm = skin.mean_lab.astype(np.float64) - mu
    d_hair = float(dm @ np.linalg.inv(cov) @ dm)
    return HairColour(mu.astype(np.float32), cov, int(keep.sum()), distinct=max(d_skin, d_hair) > 8.0)


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    import cv2

    px = np.clip(np.round(np.asarray(lab, np.float64)), 0, 255).astype(np.uint8).reshape(1, 1, 3)
    return cv2.cvtColor(px, cv2.COLOR_LAB2RGB).reshape(3).astype(np.float32)


def hair_distance(rgb: np.ndarray, hair: HairColour) -> np.ndarray:
    lab = (_to_lab(rgb) - hair.mean_lab).reshape(-1, 3)
    ic = np.linalg.inv(hair.cov_lab).astype(np.float32)
    return np.einsum("ij,jk,ik->i", lab, ic, lab, optimize=True).reshape(rgb.shape[:2]).astype(np.float32)


def colour_probability(
    rgb: np.ndarray,
    colour: SkinColour,
    inside: np.ndarray | None = None,
    hair: HairColour | None = None,
    hair_zone: np.ndarray | None = None,
) -> np.ndarray:
    """Soft skin-colour membership (H x W float32); ``inside`` (soft face-oval mask) selects
    the lenient thresholds :data:`D2_FACE` there and :data:`D2_OUTSIDE` elsewhere. With a
    distinct ``hair`` model, pixels nearer to it than to the skin are rejected too (a
    likelihood-ratio test: blond hair can be close to skin in absolute terms): outside the
    face oval, and inside it only in ``hair_zone`` (soft: the forehead above the brows,
    where a fringe falls), with a margin, since shaded skin can look like hair."""
    d2 = colour_distance(rgb, colour)
    p = 1.0 - _smoothstep(d2, *D2_OUTSIDE)
    if inside is not None:
        p = inside * (1.0 - _smoothstep(d2, *D2_FACE)) + (1.0 - inside) * p
    if hair is not None and hair.distinct:
        margin = hair_distance(rgb, hair) - d2
        r_out = _smoothstep(margin, -3.0, 3.0)
        if inside is None:
            p = p * r_out
        else:
            zone = np.zeros_like(inside) if hair_zone is None else hair_zone
            r_in = zone * _smoothstep(margin, -7.0, -1.0) + (1.0 - zone)
            p = p * (inside * r_in + (1.0 - inside) * r_out)
    return p.astype(np.float32)


def forehead_zone(shape: tuple[int, int], xy: np.ndarray) -> np.ndarray:
    """Soft mask (H x W float32) of what lies above the brows (along the face's up axis)."""
    xy = np.asarray(xy, np.float64)
    iod = max(iod_px(xy), 4.0)
    up = xy[10] - xy[168]
    up /= max(np.linalg.norm(up), 1e-9)
    brows = xy[list(BROW_IMAGE_LEFT[:5]) + list(BROW_IMAGE_RIGHT[:5])]
    level = float((brows @ up).mean())
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    proj = xx * np.float32(up[0]) + yy * np.float32(up[1])
    return _smoothstep(proj - level, 0.0, 0.15 * iod).astype(np.float32)


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
    kb = max(1, int(round(0.015 * iod)))
    brows = cv2.dilate(brows, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * kb + 1, 2 * kb + 1)))
    lips = _fill(shape, (LIPS_OUTER,), xy)
    nose = _fill(shape, (NOSE_BOTTOM,), xy)
    forced_in = np.maximum(np.maximum(brows, lips), nose) * (1.0 - out)
    return forced_in, out


def skin_mask(
    rgb: np.ndarray,
    xy: np.ndarray,
    use_segmentation: bool = True,
    person: np.ndarray | None = None,
    blur_iod: float = 1 / 60,
    use_hair_model: bool = True,
    close_iod: float = 0.03,
    soften_iod: float = 0.04,
    erode_px: int = 1,
    find_glasses: bool = True,
) -> SkinMask:
    """The soft skin mask of an RGB image (uint8) whose face has the 478 landmarks ``xy``.

    ``person`` may be given (a person probability already computed on this image);
    otherwise selfie segmentation runs here when ``use_segmentation``. The colour test's
    small holes are closed (``close_iod`` x the inter-ocular distance), its edges pulled in
    by ``erode_px`` pixels (colour edges in a photo are a pixel or two wide) and softened
    inwards (``soften_iod``) before the landmark regions are applied. Eyeglass frames
    (:mod:`engines.avatar.glasses`, when ``find_glasses``) are not skin either, whatever
    their colour; where a frame lies on a brow, the brow is kept.
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
    gain = exposure_gain(rgb, xy, person)
    if gain > 1.0:
        rgb = cv2.convertScaleAbs(np.ascontiguousarray(rgb[..., :3]), alpha=gain)
    colour = fit_skin_colour(rgb, xy, person)
    hair = fit_hair_colour(rgb, xy, colour, person) if use_hair_model else None
    oval = _fill((h, w), (FACE_OVAL,), xy)
    p = colour_probability(
        rgb,
        colour,
        cv2.GaussianBlur(oval, (0, 0), max(0.5, 0.05 * iod)),
        hair,
        forehead_zone((h, w), xy) if hair is not None and hair.distinct else None,
    )
    if person is not None:
        p = p * _smoothstep(person, 0.3, 0.7).astype(np.float32)
    if is_greyscale(rgb):
        # without colour, hair in the light looks like skin: above the brows only the face
        # oval (and a margin) is trusted
        k = max(1, int(round(GREY_MARGIN_IOD * iod)))
        near = cv2.dilate(oval, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
        p = p * (1.0 - forehead_zone((h, w), xy) * (1.0 - near))
    # skin outside the face oval must be connected to the face's skin (a gold badge on a hat,
    # a skin-coloured patch of the background or the clothes is not)
    n, lab = cv2.connectedComponents((np.maximum(p, oval) > 0.5).astype(np.uint8), connectivity=8)
    if n > 2:
        touching = np.unique(lab[(oval > 0.5) & (p > 0.5)])
        keep = np.isin(lab, touching[touching > 0])
        p = p * keep
    # close small rejected specks (pores, glints) and soften the edges inwards, so a texel's
    # photo weight fades smoothly where the skin ends
    k = max(1, int(round(close_iod * iod)))
    p = cv2.morphologyEx(
        p.astype(np.float32), cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    )
    if erode_px > 0:
        p = cv2.erode(p, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1)))
    if soften_iod > 0:
        p = p * cv2.GaussianBlur(p, (0, 0), max(0.5, soften_iod * iod))
    glasses = None
    if find_glasses:
        from engines.avatar.glasses import detect_glasses

        glasses = detect_glasses(rgb, xy)
        if glasses.found:
            p = p * (1.0 - glasses.mask)
    forced_in, forced_out = landmark_regions((h, w), xy)
    m = np.maximum(p, forced_in) * (1.0 - forced_out)
    sigma = max(0.6, blur_iod * iod)
    m = cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma)
    if gain > 1.0:  # the skin tone as the photo has it
        colour = replace(colour, rgb=(colour.rgb / np.float32(gain)).astype(np.float32))
    return SkinMask(np.clip(m, 0.0, 1.0), colour, person, forced_in, forced_out, hair, glasses, gain)


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
    pts = []
    eyes = ((LEFT_IRIS, (469, 470, 471, 472), EYE_IMAGE_LEFT), (RIGHT_IRIS, (474, 475, 476, 477), EYE_IMAGE_RIGHT))
    for centre, ring, eye in eyes:
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
    cols = cv2.remap(np.ascontiguousarray(rgb[..., :3]), p[:, 0:1], p[:, 1:2], cv2.INTER_LINEAR)
    cols = cols[:, 0].astype(np.float32)
    lum = cols @ np.array([0.299, 0.587, 0.114], np.float32)
    lo, hi = np.percentile(lum, [15, 65])
    sel = (lum >= lo) & (lum <= hi)
    if sel.sum() < 5:
        return np.asarray(fallback, np.float32), False
    return np.median(cols[sel], 0).astype(np.float32), True


SCLERA_MAX_SATURATION = 0.3
"""(max - min) / max of RGB above which an eye pixel is not taken for sclera."""


def _eye_openings(rgb: np.ndarray, xy: np.ndarray):
    """Per eye with a measurable opening: (samples RGB float32 K x 3, their distance from
    the iris centre in iris radii K, their signed distance inside the lid contour in eye
    heights K), sampled (bilinear) on a 48 x 24 grid over the contour's bounding box."""
    import cv2

    xy = np.asarray(xy, np.float64)
    h, w = rgb.shape[:2]
    eyes = ((LEFT_IRIS, (469, 470, 471, 472), EYE_IMAGE_LEFT), (RIGHT_IRIS, (474, 475, 476, 477), EYE_IMAGE_RIGHT))
    for centre, ring, eye in eyes:
        contour = xy[list(eye)].astype(np.float32)
        c = xy[centre]
        r = float(np.mean(np.linalg.norm(xy[list(ring)] - c, axis=1)))
        lo, hi = contour.min(0), contour.max(0)
        eye_h = float(hi[1] - lo[1])
        if not np.isfinite(r) or r < 1.5 or eye_h < 2.0:
            continue
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 48), np.linspace(lo[1], hi[1], 24))
        p = np.stack([gx.ravel(), gy.ravel()], -1)
        inside = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in p]) / eye_h
        keep = (inside > 0) & (p[:, 0] >= 0) & (p[:, 1] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] <= h - 1)
        if keep.sum() < 6:
            continue
        q = p[keep].astype(np.float32)
        s = cv2.remap(np.ascontiguousarray(rgb[..., :3]), q[:, 0:1], q[:, 1:2], cv2.INTER_LINEAR)[:, 0]
        yield s.astype(np.float32), np.linalg.norm(q - c, axis=1) / r, inside[keep]


def sclera_colour(rgb: np.ndarray, xy: np.ndarray) -> np.ndarray | None:
    """The white of the eyes as the photo shows it (RGB float), or None when the eyes are
    too small or too closed to tell.

    Photographed sclera is rarely paper white: the lids shade it and the exposure scales
    it, and a painted pure white reads as staring eyes. Samples inside each eye opening
    (the lid contour, shrunk by a tenth of the eye height) and outside the iris ring (1.25
    iris radii), then takes the median of the brighter half by lightness (below the top
    5 %: highlights) among the near-grey samples, the way the iris colour drops lid and
    lash pixels."""
    cols = [s[(inside > 0.1) & (rho > 1.25)] for s, rho, inside in _eye_openings(rgb, xy)]
    cols = [c for c in cols if len(c) >= 6]
    if not cols or sum(len(c) for c in cols) < 12:
        return None
    cols = np.concatenate(cols)
    lum = cols @ np.array([0.299, 0.587, 0.114], np.float32)
    sat = (cols.max(1) - cols.min(1)) / np.maximum(cols.max(1), 1.0)
    lo, hi = np.percentile(lum, [50, 95])
    # sclera is the near-grey part of the opening: lids, lashes and skin seen through a
    # narrow eye are saturated or dark
    sel = (lum >= lo) & (lum <= hi) & (sat < SCLERA_MAX_SATURATION)
    if sel.sum() < max(6, 0.1 * len(cols)):
        return None
    return np.median(cols[sel], 0).astype(np.float32)


def eye_opening_lightness(rgb: np.ndarray, xy: np.ndarray) -> tuple[float, float] | None:
    """(median lightness of the eye openings, fraction of them the iris covers), or None
    when the eyes are too small to tell: what the eyes look like as a whole, lids' shade,
    lashes and iris included, for painting a sclera that matches it."""
    lums, iris_frac = [], []
    for s, rho, _inside in _eye_openings(rgb, xy):
        lums.append(s @ np.array([0.299, 0.587, 0.114], np.float32))
        iris_frac.append(float(np.mean(rho < 1.0)))
    if not lums:
        return None
    return float(np.median(np.concatenate(lums))), float(np.mean(iris_frac))
