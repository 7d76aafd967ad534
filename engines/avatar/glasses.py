"""Eyeglass frames in a portrait: found, so that the texture bake leaves them out of the skin.

No learned glasses detector or segmenter is available offline, so this is a classical
shape search around each eye, in the spirit of the deformable-contour frame detectors
(Jiang, Binkert, Achermann and Bunke, "Towards detection of glasses in facial images",
Pattern Analysis & Applications 2000; Jing and Mariani, "Glasses detection and extraction
by deformable contour", ICPR 2000):

1. **Ridge response.** A frame is a thin band of a colour other than the skin on both of
   its sides. Along rays from each iris centre (the face's own frame: across is iris to
   iris), the Lab colour at radius ``r`` is compared with the colour a small step inside
   and outside; where both differences point the same way (the band differs from both
   sides in the same sense) the response is their geometric mean, at two band widths.
   The eye opening and lids (the eye contour, grown a little) give no response.
2. **Closed contour.** Dynamic programming over the ray angles finds, per eye, the closed
   path of radii with the largest total response (capped at twice the ridge threshold, so
   the path that stays on a ridge longest wins over one through a few strong edges) under
   a smoothness limit (:data:`MAX_STEP` radius steps between neighbouring rays): a rim is
   a loop around the eye, brows, folds and wrinkles are not.
3. **Decision.** The frame is there when, on both eyes, the path's response is strong
   (against the annulus' own median response, and in absolute Lab units) along most of
   the loop, in particular below the eye, where no brow lies, and the two loops have
   similar sizes.
4. **Bridge and arms.** From each loop's inner and outer ends a horizontal path (the same
   dynamic programme, along the face's across axis) follows the bridge to the other loop
   and the arm towards the ear, for as long as the ridge is there.

The result is a soft mask of frame pixels (rims, bridge, arms, drawn at the band width
found). Lenses (reflections, tints, the magnified skin behind them) are not handled: the
mask covers the frame only. Known limits: rimless glasses and frames hidden under the
brows are not found; thin wire frames under about 1.5 photo pixels may be missed; on a
face turned far enough that the far lens is foreshortened to a sliver, its loop fails
and nothing is found. The thresholds (:data:`LOOP_SHARE`, :data:`NOISE_FACTOR`) were set
on the faces we have (one real pair of frames, five faces without, frames drawn on them:
``benchmarks/glasses.py``), so they are a first calibration, not a measured operating
point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engines.avatar.skin import EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT, LEFT_IRIS, RIGHT_IRIS, _to_lab

NOSE_BRIDGE = 168

N_ANGLES = 96
RADII_IOD = (0.16, 0.8)
"""The rim is searched between these distances from the iris centre (x the eye distance):
lenses are about 40-60 mm wide and 25-45 mm high, the pupils about 63 mm apart."""
RADIUS_STEP_IOD = 0.01
MAX_STEP = 2
"""The rim's radius changes by at most this many steps between neighbouring rays (lenses
are not centred on the iris: the iris sits in their upper half)."""
BAND_IOD = (0.025, 0.05)
"""Half-widths of the band compared with its sides (x the eye distance)."""
EYE_MARGIN_IOD = 0.05
"""The eye contour is grown by this much before its response is cleared (lids, lashes)."""
MIN_CONTRAST = 9.0
"""A ridge below this (8-bit Lab units) is not a frame, whatever the photo's texture."""
NOISE_FACTOR = 2.5
"""... nor one below this multiple of the annulus' median response."""
LOOP_SHARE = (0.5, 0.65)
"""Found where at least these shares of the loop's rays are on a ridge: below the eye,
and all round."""
ARM_REACH_IOD = 0.75
"""Arms are followed out to this far beyond the loop's outer end; the bridge across."""


@dataclass
class Glasses:
    found: bool
    mask: np.ndarray
    """H x W float32 in [0, 1]: frame pixels (zeros when not found)."""
    scores: dict = field(default_factory=dict)
    """Per eye: share of the loop on a ridge (below the eye, all round), mean radius."""


def _frame(xy: np.ndarray):
    """(eye distance, across unit vector (image-left iris to image-right iris), down)."""
    across = xy[RIGHT_IRIS] - xy[LEFT_IRIS]
    iod = float(np.linalg.norm(across))
    across = across / max(iod, 1e-9)
    down = np.array([-across[1], across[0]])
    return iod, across, down


def _sample(lab: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Bilinear Lab samples at pts (... x 2, pixel centres)."""
    import cv2

    shape = pts.shape[:-1]
    p = pts.reshape(-1, 2).astype(np.float32)
    n = len(p)
    cols = 1024  # OpenCV's maps must stay under 32767 a side
    p = np.concatenate([p, np.zeros((-n % cols, 2), np.float32)]).reshape(-1, cols, 2)
    out = cv2.remap(lab, p[..., 0], p[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:n].reshape(shape + (3,))


def ridge(lab: np.ndarray, P: np.ndarray, normal: np.ndarray, band: float) -> np.ndarray:
    """Ridge response at the points P (... x 2) across ``normal`` (broadcast to P): the
    geometric mean of the colour differences to the band's two sides (``band`` away along
    the normal) where both point the same way, else 0."""
    c = _sample(lab, P)
    a = _sample(lab, P - band * normal)
    b = _sample(lab, P + band * normal)
    v1, v2 = c - a, c - b
    return np.sqrt(np.maximum((v1 * v2).sum(-1), 0.0))


def _dp_step(score: np.ndarray, max_step: int) -> tuple[np.ndarray, np.ndarray]:
    """One dynamic-programming step over the last axis: per index, the best score among the
    indices at most ``max_step`` away, and which index that was."""
    M = score.shape[-1]
    idx = np.arange(M)
    best = np.full(score.shape, -np.inf)
    arg = np.zeros(score.shape, np.int32)
    for s in range(-max_step, max_step + 1):
        src = np.clip(idx + s, 0, M - 1)
        cand = np.where((idx + s >= 0) & (idx + s < M), score[..., src], -np.inf)
        better = cand > best
        best = np.where(better, cand, best)
        arg = np.where(better, src, arg)
    return best, arg


def closed_path(R: np.ndarray, max_step: int = 1) -> np.ndarray:
    """Per angle, the radius index of the closed path (angles wrap) with the largest total
    response whose index changes by at most ``max_step`` between neighbouring angles
    (dynamic programming over two turns; the second turn's path, which has forgotten its
    start, is returned)."""
    K = R.shape[0]
    path = open_path(np.concatenate([R, R], 0)[None], None, max_step)[0]
    return path[K:]


def open_path(R: np.ndarray, start: np.ndarray | None, max_step: int = 1) -> np.ndarray:
    """Per candidate and step, the offset index of the best path (R: candidates x steps x
    offsets), from offset ``start`` (one per candidate; None: any)."""
    C, S, M = R.shape
    if start is None:
        score = R[:, 0].astype(np.float64)
    else:
        score = np.full((C, M), -np.inf)
        score[np.arange(C), start] = R[np.arange(C), 0, start]
    back = np.zeros((S, C, M), np.int32)
    for k in range(1, S):
        best, back[k] = _dp_step(score, max_step)
        score = best + R[:, k]
    path = np.zeros((C, S), np.int32)
    path[:, -1] = np.argmax(score, 1)
    for k in range(S - 1, 0, -1):
        path[:, k - 1] = back[k, np.arange(C), path[:, k]]
    return path


def _eye_mask(shape, xy, idx, grow_px) -> np.ndarray:
    import cv2

    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(xy[list(idx)]).astype(np.int32)], 1)
    k = max(1, int(round(grow_px)))
    return cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))) > 0


def detect_glasses(rgb: np.ndarray, xy: np.ndarray) -> Glasses:
    """Find eyeglass frames on the face whose 478 MediaPipe landmarks are ``xy`` (pixel
    centres) in ``rgb`` (uint8). Works best with about 60-150 px between the eyes."""
    rgb = np.asarray(rgb)
    xy = np.asarray(xy, np.float64)
    H, W = rgb.shape[:2]
    iod, across, down = _frame(xy)
    if iod < 12:
        return Glasses(False, np.zeros((H, W), np.float32))  # too small to tell a frame from the lids
    # only the eyes' surroundings are looked at: everything below works in that box
    reach = (RADII_IOD[1] + ARM_REACH_IOD + 2 * BAND_IOD[1]) * iod
    eyes = xy[[LEFT_IRIS, RIGHT_IRIS]]
    x0, y0 = np.maximum(np.floor(eyes.min(0) - reach).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(eyes.max(0) + reach).astype(int) + 1, [W, H])
    g = _detect_in_box(rgb[y0:y1, x0:x1], xy - [x0, y0], iod, across, down)
    full = np.zeros((H, W), np.float32)
    full[y0:y1, x0:x1] = g.mask
    g.mask = full
    return g


def _detect_in_box(rgb: np.ndarray, xy: np.ndarray, iod: float, across: np.ndarray, down: np.ndarray) -> Glasses:
    """:func:`detect_glasses` on the eyes' box (``xy`` in its pixels)."""
    import cv2

    h, w = rgb.shape[:2]
    none = Glasses(False, np.zeros((h, w), np.float32))
    lab = cv2.GaussianBlur(_to_lab(rgb), (0, 0), max(0.5, 0.008 * iod))
    th = np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False)
    dirs = np.cos(th)[:, None] * across[None] + np.sin(th)[:, None] * down[None]  # 0 = towards image right
    radii = np.arange(RADII_IOD[0], RADII_IOD[1] + 1e-9, RADIUS_STEP_IOD) * iod
    below = np.sin(th) > 0.35
    loops, scores, found = [], {}, True
    for name, iris, contour in (
        ("image_left", LEFT_IRIS, EYE_IMAGE_LEFT),
        ("image_right", RIGHT_IRIS, EYE_IMAGE_RIGHT),
    ):
        c = xy[iris]
        P = c[None, None, :] + radii[None, :, None] * dirs[:, None, :]
        Rs = [ridge(lab, P, dirs[:, None, :], b * iod) for b in BAND_IOD]
        R = np.maximum(*Rs)
        band = np.where(Rs[0] >= Rs[1], BAND_IOD[0], BAND_IOD[1]) * iod
        eye = _eye_mask((h, w), xy, contour, EYE_MARGIN_IOD * iod)
        pi = np.clip(np.round(P).astype(int), 0, [w - 1, h - 1])
        R = np.where(eye[pi[..., 1], pi[..., 0]], 0.0, R)
        # the other half of the face (beyond the nose bridge) is not this eye's rim
        side = (P - xy[NOSE_BRIDGE]) @ across * (1 if iris == RIGHT_IRIS else -1)
        R = np.where(side > 0.02 * iod, R, 0.0)
        tau = max(MIN_CONTRAST, NOISE_FACTOR * float(np.median(R[R > 0])) if (R > 0).any() else MIN_CONTRAST)
        # the path that stays on a ridge longest, not the one through a few strong edges
        path = closed_path(np.minimum(R, 2 * tau), MAX_STEP)
        on = R[np.arange(N_ANGLES), path]
        hit = on > tau
        s_below, s_all = float(hit[below].mean()), float(hit.mean())
        r_mean = float(radii[path].mean() / iod)
        scores[name] = {"below": round(s_below, 3), "all": round(s_all, 3), "radius_iod": round(r_mean, 3)}
        found &= s_below >= LOOP_SHARE[0] and s_all >= LOOP_SHARE[1]
        loops.append((c, path, band[np.arange(N_ANGLES), path], hit, tau))
    if found:
        ra, rb = scores["image_left"]["radius_iod"], scores["image_right"]["radius_iod"]
        found = min(ra, rb) / max(ra, rb) > 0.75
    scores["found"] = bool(found)
    if not found:
        return Glasses(False, none.mask, scores)
    mask = np.zeros((h, w), np.float32)
    for c, path, band, _hit, _ in loops:
        pts = c[None] + radii[path][:, None] * dirs
        for k in range(N_ANGLES):
            j = (k + 1) % N_ANGLES
            t = max(1, int(round(2 * max(band[k], band[j]))))
            cv2.line(
                mask,
                tuple(np.round(pts[k] * 4).astype(int)),
                tuple(np.round(pts[j] * 4).astype(int)),
                1.0,
                t,
                cv2.LINE_AA,
                2,
            )
    # the bridge and the arms: from the loops' inner and outer sides (the rays within 60
    # degrees of the across axis, upper side included: arms leave at the lens' top corner),
    # the longest horizontal ridge
    steps = np.arange(1, int(ARM_REACH_IOD * iod)) * 1.0
    offs = np.arange(-0.06, 0.0601, RADIUS_STEP_IOD) * iod
    gap = max(1, int(0.05 * iod))
    for c, path, band, _hit, tau in loops:
        t = max(1, int(round(2 * float(np.median(band)))))
        for sign in (-1, 1):
            horizontal = np.cos(th) * sign
            ks = np.flatnonzero(horizontal > 0.5)[::2]
            start = c[None] + radii[path[ks]][:, None] * dirs[ks]  # candidates x 2
            P = start[:, None, None, :] + sign * steps[None, :, None, None] * across + offs[None, None, :, None] * down
            Rv = np.maximum(*[ridge(lab, P, down, b * iod) for b in BAND_IOD])
            p = open_path(Rv, np.full(len(ks), int(np.argmin(np.abs(offs)))))
            best = None
            for ci in range(len(ks)):
                last = _run_end(Rv[ci, np.arange(len(steps)), p[ci]] > tau, gap)
                if last >= 0 and (best is None or last > best[0]):
                    best = (last, P[ci, np.arange(last + 1), p[ci, : last + 1]])
            if best is not None and best[0] >= gap:
                cv2.polylines(mask, [np.round(best[1] * 4).astype(np.int32)], False, 1.0, t, cv2.LINE_AA, 2)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, 0.01 * iod))
    return Glasses(True, np.clip(mask * 1.5, 0, 1).astype(np.float32), scores)


def _run_end(on: np.ndarray, gap: int) -> int:
    """Index of the last step on the ridge, followed from the start while the gaps off it are
    at most ``gap`` steps; -1 when the first ``gap`` steps are all off it."""
    run, last = 0, -1
    for i, o in enumerate(on):
        run = 0 if o else run + 1
        if run > gap:
            break
        if o:
            last = i
    return last
