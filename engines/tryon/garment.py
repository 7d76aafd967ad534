"""The garment photo: its mask and its landmarks.

A designer's garment photo is a top on a transparent or plain background. The mask comes
from the alpha channel when it has one; otherwise the background colour is estimated from
the image border (a plane, so a studio sweep's gradient stays background) and pixels far from it (CIE Lab distance, Otsu threshold) are garment,
refined with GrabCut (Rother et al., "GrabCut", SIGGRAPH 2004) when the background is busy.
A mask whose background is busy or whose shape is implausible is reported as *uncertain*
so the user can supply a mask image instead.

Landmarks (neckline, shoulders, armpits, sleeve ends, hem corners) are read from the mask's
row and column profiles, the same named points that clothing-landmark datasets use
(DeepFashion's collar / sleeve / waistline / hem), found here geometrically because no
landmark network is available offline.

:func:`make_sample_garment` draws a procedural striped or checkered T-shirt: the sample
input and the test garment whose pattern makes distortion measurable.
"""  # noqa: E501

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Clockwise T-shirt outline in unit coordinates (x right, y down); shared with tests.
TSHIRT_OUTLINE = np.array(
    [
        (0.38, 0.06),
        (0.50, 0.13),
        (0.62, 0.06),  # neckline: left, centre dip, right
        (0.78, 0.10),
        (0.97, 0.33),
        (0.87, 0.42),  # right shoulder, sleeve end out/in
        (0.76, 0.32),
        (0.77, 0.95),
        (0.23, 0.95),  # right armpit, hem right/left
        (0.24, 0.32),
        (0.13, 0.42),
        (0.03, 0.33),  # left armpit, sleeve end in/out
        (0.22, 0.10),  # left shoulder
    ],
    np.float64,
)

LANDMARK_NAMES = (
    "neck_left",
    "neck_centre",
    "neck_right",
    "shoulder_left",
    "shoulder_right",
    "armpit_left",
    "armpit_right",
    "sleeve_left",
    "sleeve_right",
    "hem_left",
    "hem_right",
)


@dataclass
class Garment:
    """A garment ready to warp: RGB, a soft mask (0..1) and named landmarks (x, y px)."""

    rgb: np.ndarray
    mask: np.ndarray
    landmarks: dict[str, np.ndarray]
    uncertain: bool = False
    notes: list[str] = field(default_factory=list)
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    """Masks of "torso", "sleeve_left", "sleeve_right" (float32 0..1), split at the seams."""

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def make_sample_garment(
    width: int = 240,
    height: int = 260,
    pattern: str = "stripes",
    period: int = 16,
    background=(255, 255, 255),
    alpha: bool = False,
    busy_background: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """A T-shirt with stripes or a checkerboard on a plain (or busy, for tests) background.

    Returns H x W x 3 uint8 RGB, or H x W x 4 RGBA with ``alpha=True``.
    """
    import cv2

    ys, xs = np.mgrid[0:height, 0:width]
    if pattern == "checker":
        cells = ((xs // period) + (ys // period)) % 2
        colours = np.array([[30, 60, 170], [235, 200, 40]], np.uint8)
    else:
        cells = (ys // period) % 2
        colours = np.array([[200, 30, 45], [120, 170, 225]], np.uint8)
    shirt = colours[cells]
    poly = np.round(TSHIRT_OUTLINE * [width - 1, height - 1]).astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [poly], 255, lineType=cv2.LINE_8)
    if busy_background:
        rng = np.random.default_rng(seed)
        noise = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        bg = cv2.resize(noise, (width, height), interpolation=cv2.INTER_NEAREST)
    else:
        bg = np.empty((height, width, 3), np.uint8)
        bg[:] = background
    rgb = np.where(mask[:, :, None] > 0, shirt, bg).astype(np.uint8)
    if alpha:
        return np.dstack([np.where(mask[:, :, None] > 0, shirt, 0).astype(np.uint8), mask])
    return rgb


# ----------------------------------------------------------------------------- mask
def _largest_component(mask: np.ndarray) -> np.ndarray:
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    if n <= 1:
        return np.zeros_like(mask, dtype=bool)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    import cv2

    m = mask.astype(np.uint8) * 255
    h, w = m.shape
    flood = np.pad(m, 1)
    ff = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, ff, (0, 0), 255)
    return (m > 0) | (flood[1:-1, 1:-1] == 0)


def _border(img: np.ndarray, width: int) -> np.ndarray:
    return np.concatenate(
        [
            img[:width].reshape(-1, img.shape[-1]),
            img[-width:].reshape(-1, img.shape[-1]),
            img[:, :width].reshape(-1, img.shape[-1]),
            img[:, -width:].reshape(-1, img.shape[-1]),
        ]
    )


MIN_GARMENT_FRACTION = 0.01
"""Least share of the garment image the garment must cover."""
MIN_GARMENT_PX = 24
"""Least width and height of the garment's bounding box, in pixels."""


def _check_garment_size(m: np.ndarray, name: str, where: str) -> np.ndarray:
    """EngineError when a mask (from the user's mask image, the PNG's transparency or the
    segmentation) holds too little to warp: a speck, a line, an empty mask."""
    from engines.api import EngineError

    ys, xs = np.nonzero(m > 0.5)
    frac = float((m > 0.5).mean()) if m.size else 0.0
    bw = int(xs.max() - xs.min() + 1) if len(xs) else 0
    bh = int(ys.max() - ys.min() + 1) if len(ys) else 0
    if frac < MIN_GARMENT_FRACTION or min(bw, bh) < MIN_GARMENT_PX:
        raise EngineError(
            f"The garment {where} for {name} covers only {int((m > 0.5).sum())} pixels "
            f"({bw}x{bh} px, {frac:.1%} of the image): the garment should fill a good part of the "
            "photo. Use a mask image with the whole garment in white on black, or a garment photo "
            "on a plain or transparent background."
        )
    return m


def garment_mask(pixels: np.ndarray, user_mask: np.ndarray | None = None, name: str = "garment image"):
    """Mask of the garment: (mask float32 0..1, uncertain: bool, notes: list[str])."""
    import cv2

    notes: list[str] = []
    rgb = pixels[:, :, :3] if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, 2)
    rgb = np.ascontiguousarray(rgb.astype(np.uint8))
    h, w = rgb.shape[:2]
    if user_mask is not None:
        m = user_mask if user_mask.ndim == 2 else user_mask[:, :, :3].mean(axis=2)
        if m.shape != (h, w):
            m = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        m = (np.asarray(m, np.float32) / max(float(m.max()), 1e-6)) > 0.5
        notes.append("Garment mask taken from the mask image you supplied.")
        if min(user_mask.shape[:2]) < 8:
            notes.append(
                f"The mask image is only {user_mask.shape[1]}x{user_mask.shape[0]} px, stretched to the "
                f"{w}x{h} garment photo: is it the right file? Its mask should be garment-shaped."
            )
        m = _fill_holes(_largest_component(m)).astype(np.float32)
        return _check_garment_size(m, name, "mask image"), False, notes
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        a = pixels[:, :, 3].astype(np.float32)
        a /= 65535.0 if pixels.dtype == np.uint16 else 255.0
        if a.min() < 0.5 and a.max() > 0.5:
            m = _fill_holes(_largest_component(a > 0.5))
            out = np.where(m, np.maximum(a, 0.5), a * 0).astype(np.float32)
            return _check_garment_size(out, name, "transparency (alpha)"), False, notes

    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    bw = max(2, min(h, w) // 40)
    bg = _background_plate(lab, bw)
    resid = np.linalg.norm(_border(lab - bg, bw), axis=1)
    border_spread = float(np.median(resid) + np.percentile(resid, 90))
    dist = np.linalg.norm(lab - bg, axis=2)
    d8 = np.clip(dist * 2, 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(d8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    thr = max(otsu / 2.0, 6.0, border_spread * 1.5)
    m = dist > thr
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    m = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, k) > 0
    m = _fill_holes(_largest_component(m))
    busy = border_spread > 12.0
    if busy:
        m = _grabcut(rgb, m)
    frac = float(m.mean())
    touches = float(np.mean(_border(m[:, :, None].astype(np.float32), 1)))
    uncertain = busy or not (0.08 <= frac <= 0.92) or touches > 0.05
    if uncertain:
        why = "its background is busy" if busy else "the garment could not be told from its background"
        notes.append(
            f"The garment mask for {name} is uncertain ({why}). For a clean result photograph the "
            "garment on a plain background, use a PNG with transparency, or supply a mask image "
            "(white garment on black) with the garment_mask_file parameter."
        )
    if frac < 0.01:
        from engines.api import EngineError

        raise EngineError(
            f"No garment found in {name}: photograph the top on a plain or transparent "
            "background, or supply a mask image with the garment_mask_file parameter."
        )
    return m.astype(np.float32), uncertain, notes


def _background_plate(lab: np.ndarray, bw: int) -> np.ndarray:
    """The background's colour at every pixel (H x W x 3, Lab): a plane in x and y per
    channel, fitted to the image border by iteratively reweighted least squares.

    Product photos are shot on a studio sweep or a table whose brightness falls off across
    the frame; one median colour leaves such a gradient as "not background" and the mask
    swallows it (a grey sweep: mask IoU 0.08 with a median colour, 1.0 with the plane).
    Border pixels more than 2.5 robust standard deviations off the plane (a shadow, a
    sleeve touching the edge) leave the next fit. A quadratic surface was tried for
    vignettes and not kept: fitted to the border alone it bends far off in the middle of
    the image when part of the border is shadowed, and it hid a white T-shirt on a
    vignetted white sweep without flagging the mask as uncertain (the plane flags it)."""
    h, w = lab.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx = 2.0 * xx / max(w - 1, 1) - 1.0
    yy = 2.0 * yy / max(h - 1, 1) - 1.0
    bx, by = _border(xx[:, :, None], bw)[:, 0], _border(yy[:, :, None], bw)[:, 0]
    X = np.stack([np.ones_like(bx), bx, by], axis=-1).astype(np.float64)
    v = _border(lab, bw).astype(np.float64)
    keep = np.ones(len(v), bool)
    coef = np.zeros((3, lab.shape[2]))
    for _ in range(4):
        coef, *_ = np.linalg.lstsq(X[keep], v[keep], rcond=None)
        r = np.linalg.norm(v - X @ coef, axis=1)
        scale = 1.4826 * float(np.median(r[keep]))
        new = r < 2.5 * scale + 1.0
        if new.sum() < 12 or np.array_equal(new, keep):
            break
        keep = new
    c = coef.astype(np.float32)
    return (c[0] + xx[:, :, None] * c[1] + yy[:, :, None] * c[2]).astype(np.float32)


def _grabcut(rgb: np.ndarray, init: np.ndarray) -> np.ndarray:
    """GrabCut seeded with the colour-threshold mask and a border of sure background."""
    import cv2

    h, w = init.shape
    gc = np.where(init, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    b = max(2, min(h, w) // 40)
    gc[:b], gc[-b:], gc[:, :b], gc[:, -b:] = cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD
    if not (gc == cv2.GC_PR_FGD).any():
        gc[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = cv2.GC_PR_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, 4, cv2.GC_INIT_WITH_MASK)
    m = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    return _fill_holes(_largest_component(m))


# ----------------------------------------------------------------------------- landmarks
def _run_around(row: np.ndarray, x: int) -> tuple[int, int] | None:
    """The contiguous True run of ``row`` that contains (or is nearest to) column ``x``."""
    xs = np.flatnonzero(row)
    if xs.size == 0:
        return None
    x = int(xs[np.argmin(np.abs(xs - x))])
    lo, hi = x, x
    while lo > 0 and row[lo - 1]:
        lo -= 1
    while hi < row.size - 1 and row[hi + 1]:
        hi += 1
    return lo, hi


def garment_landmarks(mask: np.ndarray, info: dict | None = None) -> dict[str, np.ndarray]:
    """Named garment landmarks (x, y in pixels) from a T-shirt-like mask.

    Rows are scanned upward from the hem: the torso run (the run through the centre column)
    keeps the body's width until the armpit, where it joins the sleeve and jumps outward.
    Sleeve ends are the outermost columns; shoulders sit on the top edge above the armpits;
    the neckline is the dip of the top edge between the collar points.

    A side whose run never jumps outward has no sleeve (a tank top, a vest): its side seam
    is the straight line fitted to the lower half's edge (so a flared hem counts as body),
    the armpit is where the edge first leaves that line inward going up (the armhole), the
    shoulder point is above the armpit at the height of the strap's top (where a sleeve's
    seam would start; off the garment when the strap is narrow, so that the straps land
    inside the wearer's shoulders), and the sleeve end is a point just outside the armpit,
    so that the sleeve's affine stays defined while its part is empty. ``info["sleeveless"]`` receives
    ``(left, right)``.
    """
    from engines.api import EngineError

    m = mask > 0.5
    ys, xs = np.nonzero(m)
    if ys.size < 50:
        raise EngineError("The garment mask is empty: supply a garment photo on a plain background.")
    y0, y1 = int(ys.min()), int(ys.max())
    x0, x1 = int(xs.min()), int(xs.max())
    cx = int(round(np.median(xs)))
    height = y1 - y0 + 1
    runs = {}
    for y in range(y0, y1 + 1):
        r = _run_around(m[y], cx)
        if r is not None:
            runs[y] = r
    # Body edge: median run extents over the lower half (below any sleeve).
    lower = [runs[y] for y in range(y0 + height // 2, y1 - height // 20) if y in runs] or list(runs.values())
    body_l = float(np.median([r[0] for r in lower]))
    body_r = float(np.median([r[1] for r in lower]))
    jump = max(3.0, 0.06 * (body_r - body_l))
    arm_l = arm_r = None
    for y in range(y1 - height // 20, y0 - 1, -1):
        if y not in runs:
            continue
        lo, hi = runs[y]
        if arm_l is None and lo < body_l - jump:
            arm_l = (float(runs.get(y + 1, (lo, hi))[0]), float(y + 1))
        if arm_r is None and hi > body_r + jump:
            arm_r = (float(runs.get(y + 1, (lo, hi))[1]), float(y + 1))
        if arm_l and arm_r:
            break
    top = np.full(m.shape[1], -1)
    cols = m.any(axis=0)
    top[cols] = np.argmax(m[:, cols], axis=0)
    sleeveless = (arm_l is None, arm_r is None)
    if any(sleeveless):
        arm_l, arm_r = _armholes(runs, y0, y1, arm_l, arm_r, jump)
    # Sleeve ends: the outermost 3 % of columns on each side, mid-height of the opening.
    band = max(2, (x1 - x0) // 33)
    left_cols = m[:, x0 : x0 + band]
    right_cols = m[:, x1 - band + 1 : x1 + 1]
    sl = (float(x0), float(np.nonzero(left_cols.any(axis=1))[0].mean()))
    sr = (float(x1), float(np.nonzero(right_cols.any(axis=1))[0].mean()))
    # Neckline: highest top-edge points either side of the centre, and the dip between.
    half = max(3, int(0.25 * (body_r - body_l)))
    lseg = np.arange(max(x0, cx - half), cx)
    rseg = np.arange(cx + 1, min(x1, cx + half) + 1)
    lseg, rseg = lseg[top[lseg] >= 0], rseg[top[rseg] >= 0]
    if lseg.size == 0 or rseg.size == 0:
        raise EngineError("Could not find the garment's neckline: the mask has no top edge near its centre.")
    nl_x = int(lseg[np.argmin(top[lseg] + 1e-3 * (cx - lseg))])
    nr_x = int(rseg[np.argmin(top[rseg] + 1e-3 * (rseg - cx))])
    mid = np.arange(nl_x, nr_x + 1)
    nc_x = int(mid[np.argmax(top[mid])]) if mid.size else cx

    def on_top(x: float) -> tuple[float, float]:
        xi = int(np.clip(round(x), x0, x1))
        return float(xi), float(top[xi])

    hem_y = float(y1)
    hem_row = runs.get(y1 - max(1, height // 100), runs.get(y1))
    shoulders = [on_top(arm_l[0]), on_top(arm_r[0])]
    ends = [sl, sr]
    upper = y0 + 0.2 * height
    for k, (none, arm, outward) in enumerate(zip(sleeveless, (arm_l, arm_r), (-1.0, 1.0))):
        if not none:
            continue
        # The strap: the outermost column whose top edge lies in the upper fifth, between
        # the armpit and the neckline.
        margin = int(round(0.1 * (body_r - body_l)))
        lo_x, hi_x = (int(round(arm[0])) - margin, nl_x) if k == 0 else (nr_x, int(round(arm[0])) + margin)
        span = np.arange(max(min(lo_x, hi_x), x0), min(max(lo_x, hi_x), x1) + 1)
        span = span[(top[span] >= 0) & (top[span] <= upper)]
        strap_y = float(top[span].min()) if span.size else float(y0)
        # The shoulder point is where a sleeve's seam would start: above the armpit at the
        # height of the strap's top (off the garment when the strap is narrower). The body's
        # shoulder joint is mapped there, so a narrow strap lands inside the shoulder, as worn.
        shoulders[k] = (float(arm[0]), strap_y)
        # The seam must run downward from the shoulder to the armpit (a sleeve's affine and
        # the torso warp are built on it).
        if shoulders[k][1] > arm[1] - 0.1 * height:
            shoulders[k] = (shoulders[k][0], max(float(y0), arm[1] - 0.25 * height))
        seam = max(float(arm[1] - shoulders[k][1]), 2.0)
        ends[k] = (arm[0] + outward * 0.3 * seam, arm[1] - 0.15 * seam)
    # A shoulder falls from the collar by a few percent of the garment's length (5-9 % on
    # adult proportions); a raglan or drop-shoulder cut slopes on down the sleeve, and the
    # top edge at the armpit then lies far lower than where the wearer's shoulder will be.
    # The shoulder point is kept within a tenth of the length below the collar (off the
    # garment if need be), so the collar is not lifted up beside the face.
    for k, collar in ((0, on_top(nl_x)), (1, on_top(nr_x))):
        if shoulders[k][1] > collar[1] + 0.1 * height:
            shoulders[k] = (shoulders[k][0], collar[1] + 0.1 * height)
    lm = {
        "neck_left": on_top(nl_x),
        "neck_centre": on_top(nc_x),
        "neck_right": on_top(nr_x),
        "shoulder_left": shoulders[0],
        "shoulder_right": shoulders[1],
        "armpit_left": arm_l,
        "armpit_right": arm_r,
        "sleeve_left": ends[0],
        "sleeve_right": ends[1],
        "hem_left": (float(hem_row[0]), hem_y),
        "hem_right": (float(hem_row[1]), hem_y),
    }
    if info is not None:
        info["sleeveless"] = sleeveless
    return {k: np.asarray(v, np.float64) for k, v in lm.items()}


def _armholes(runs: dict, y0: int, y1: int, arm_l, arm_r, jump: float):
    """Armpits of sleeveless sides (``None`` in ``arm_l`` / ``arm_r``): where the edge of the
    torso run, followed upward, first leaves the side seam inward. The side seam is the line
    fitted to the lower half's edge; failing that, a third of the way down the side."""
    height = y1 - y0 + 1
    low = [y for y in range(y0 + height // 2, y1 - height // 20) if y in runs]
    if len(low) < 2:
        low = sorted(runs)
    yv = np.asarray(low, np.float64)
    fit_l = np.polyfit(yv, [runs[y][0] for y in low], 1) if len(low) >= 2 else None
    fit_r = np.polyfit(yv, [runs[y][1] for y in low], 1) if len(low) >= 2 else None
    # A bend of a few pixels is enough (an armhole curves in steadily); the armpit is looked
    # for between 15 % and 50 % of the height, the range real tops keep it in.
    bend = max(2.0, 0.5 * jump)
    found = [arm_l is not None, arm_r is not None]
    for y in range(y0 + height // 2, int(y0 + 0.15 * height) - 1, -1):
        if y not in runs or fit_l is None:
            continue
        lo, hi = runs[y]
        below = runs.get(y + 1, (lo, hi))
        if not found[0] and lo > np.polyval(fit_l, y) + bend:
            arm_l, found[0] = (float(below[0]), float(y + 1)), True
        if not found[1] and hi < np.polyval(fit_r, y) - bend:
            arm_r, found[1] = (float(below[1]), float(y + 1)), True
        if all(found):
            break
    third = y0 + height / 3.0
    if arm_l is None:
        arm_l = (
            float(np.polyval(fit_l, third)) if fit_l is not None else float(min(r[0] for r in runs.values())),
            third,
        )
    if arm_r is None:
        arm_r = (
            float(np.polyval(fit_r, third)) if fit_r is not None else float(max(r[1] for r in runs.values())),
            third,
        )
    return arm_l, arm_r


def garment_parts(mask: np.ndarray, lm: dict[str, np.ndarray], sleeveless=(False, False)) -> dict[str, np.ndarray]:
    """Split the mask into torso and sleeves along the shoulder-armpit seam lines.

    A sleeve is the part of the mask beyond its seam line that is connected to the sleeve
    end; everything else is torso. Sleeves are warped rigidly along the upper arm, the
    torso by the regularised TPS (a part-based warp, as in Dong et al.'s MG-VTON and
    most later try-on warpers, because no single smooth warp turns a flat sleeve down
    along a hanging arm without bending the torso's pattern).
    """
    import cv2

    m = mask > 0.5
    h, w = m.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    parts = {}
    torso = m.copy()
    for side, sign, none in (("left", 1.0, sleeveless[0]), ("right", -1.0, sleeveless[1])):
        if none:  # no sleeve on this side: all of it is torso
            parts[f"sleeve_{side}"] = np.zeros(m.shape, np.float32)
            continue
        s, a, e = lm[f"shoulder_{side}"], lm[f"armpit_{side}"], lm[f"sleeve_{side}"]
        d = a - s
        beyond = sign * ((xs - s[0]) * d[1] - (ys - s[1]) * d[0]) < 0
        n, labels = cv2.connectedComponents((m & beyond).astype(np.uint8), connectivity=8)
        ex, ey = int(np.clip(round(e[0]), 0, w - 1)), int(np.clip(round(e[1]), 0, h - 1))
        lab = labels[ey, ex]
        if lab == 0:  # the sleeve end sits on the outline: take the nearest labelled pixel
            yy, xx = np.nonzero(labels)
            if yy.size:
                k = int(np.argmin((yy - ey) ** 2 + (xx - ex) ** 2))
                lab = labels[yy[k], xx[k]]
        sleeve = (labels == lab) if lab else np.zeros_like(m)
        parts[f"sleeve_{side}"] = sleeve.astype(np.float32)
        torso &= ~sleeve
    parts["torso"] = torso.astype(np.float32)
    return parts


def _centred_turn(mask: np.ndarray):
    """``turn(angle) -> 2 x 3 affine`` turning about the mask's centroid and moving the
    centroid to the middle of a square canvas of side ``side`` (the image diagonal, so any
    turn fits); returns ``(turn, side)``."""
    import cv2

    h, w = mask.shape
    ys, xs = np.nonzero(mask > 0.5)
    cx, cy = float(xs.mean()), float(ys.mean())
    side = int(2 * np.ceil(np.hypot(h, w) / 2)) + 1

    def turn(angle: float) -> np.ndarray:
        M = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        M[:, 2] += [side // 2 - cx, side // 2 - cy]  # centroid to the canvas centre column
        return M

    return turn, side


def _mirror_iou(mask: np.ndarray, turn, side: int, angle: float) -> float:
    """IoU of ``mask`` turned by ``angle`` degrees (:func:`_centred_turn`) with its own mirror
    image about the vertical line through its centroid."""
    import cv2

    r = cv2.warpAffine(mask.astype(np.uint8), turn(angle), (side, side), flags=cv2.INTER_NEAREST) > 0
    f = r[:, ::-1]
    union = (r | f).sum()
    return float((r & f).sum() / union) if union else 0.0


def garment_tilt(mask: np.ndarray, max_angle: float = 30.0) -> float | None:
    """How far (degrees, counter-clockwise positive as in OpenCV) the garment must be turned
    to stand upright, or None when it has no clear mirror symmetry.

    Tops are left-right symmetric, so the turn that makes the mask most symmetric about a
    vertical axis through its centroid is the one that stands it upright (reflective
    symmetry detection by exhaustive search over axis angles; see Liu et al.,
    "Computational symmetry in computer vision and computer graphics", 2010). The search
    is 1 degree steps within +-``max_angle``, refined to 0.25 degrees, on a mask of at most
    160 px. A garment that is no more symmetric turned than as photographed (an
    asymmetric design) is left as it is.
    """
    import cv2

    m = mask > 0.5
    if m.sum() < 50:
        return None
    k = 160.0 / max(m.shape)
    if k < 1.0:
        m = (
            cv2.resize(
                m.astype(np.uint8),
                (max(8, round(m.shape[1] * k)), max(8, round(m.shape[0] * k))),
                interpolation=cv2.INTER_AREA,
            )
            > 0
        )
    turn, side = _centred_turn(m)
    coarse = np.arange(-max_angle, max_angle + 0.5, 1.0)
    scores = np.array([_mirror_iou(m, turn, side, a) for a in coarse])
    best = float(coarse[int(np.argmax(scores))])
    fine = np.arange(best - 0.75, best + 0.8, 0.25)
    fs = np.array([_mirror_iou(m, turn, side, a) for a in fine])
    best, top = float(fine[int(np.argmax(fs))]), float(fs.max())
    upright = float(scores[np.flatnonzero(coarse == 0.0)[0]])
    if top < 0.8 or top - upright < 0.01:
        return None  # not a symmetric top, or already as upright as it gets
    return best


def _turned(rgb: np.ndarray, mask: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The garment photo and its mask turned by ``angle`` degrees about the mask's centroid,
    on a canvas large enough to keep all of the garment (background white, mask 0)."""
    import cv2

    turn, side = _centred_turn(mask)
    M = turn(angle)
    out_rgb = cv2.warpAffine(rgb, M, (side, side), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))
    out_mask = cv2.warpAffine(mask.astype(np.float32), M, (side, side), flags=cv2.INTER_LINEAR, borderValue=0)
    # Crop to the garment with a margin, as the photo had.
    yy, xx = np.nonzero(out_mask > 0.5)
    pad = max(4, int(0.03 * side))
    y0, y1 = max(0, yy.min() - pad), min(side, yy.max() + pad + 1)
    x0, x1 = max(0, xx.min() - pad), min(side, xx.max() + pad + 1)
    return np.ascontiguousarray(out_rgb[y0:y1, x0:x1]), np.ascontiguousarray(out_mask[y0:y1, x0:x1])


def _without_hood(mask: np.ndarray, lm: dict[str, np.ndarray]) -> np.ndarray | None:
    """The mask without a hood (or a high collar) lying above the shoulders, or None when
    the neckline sits at the shoulders as on a T-shirt.

    On a T-shirt the collar points are a few percent of the height above the shoulder
    points; a hood laid flat puts the "neckline" (the top edge in the middle) far above
    them, and warped onto the body it would cover the chin. Worn, it hangs behind the
    neck, so the part above the shoulder line between the shoulders is cut away."""
    m = mask > 0.5
    ys = np.nonzero(m.any(axis=1))[0]
    height = float(ys.max() - ys.min() + 1)
    shoulder_y = min(lm["shoulder_left"][1], lm["shoulder_right"][1])
    neck_y = min(lm["neck_left"][1], lm["neck_right"][1], lm["neck_centre"][1])
    span = float(lm["shoulder_right"][0] - lm["shoulder_left"][0])
    neck_w = float(lm["neck_right"][0] - lm["neck_left"][0])
    dip = float(lm["neck_centre"][1] - min(lm["neck_left"][1], lm["neck_right"][1]))
    # A hood rises above the shoulders with no neckline in it (its top is the highest point
    # in the middle); sloping shoulders also sit low, but under a real, dipping neckline.
    if neck_y >= shoulder_y - 0.09 * height or (neck_w >= 0.2 * span and dip >= 0.015 * height):
        return None
    cut = int(round(shoulder_y - 0.03 * height))
    x0 = int(np.ceil(lm["shoulder_left"][0])) + 1
    x1 = int(np.floor(lm["shoulder_right"][0]))
    out = mask.copy()
    out[: max(cut, 0), x0:x1] = 0
    # A crew neckline where the hood joined: a half-ellipse a third of the shoulder span
    # wide and 6 % of the height deep.
    cx, a, b = (x0 + x1) / 2.0, max(2.0, 0.18 * (x1 - x0)), max(2.0, 0.06 * height)
    yy, xx = np.mgrid[0 : out.shape[0], 0 : out.shape[1]]
    out[(((xx - cx) / a) ** 2 + ((yy - cut) / b) ** 2 < 1.0) & (yy >= cut)] = 0
    kept = _largest_component(out > 0.5)
    return np.where(kept, out, 0).astype(np.float32)


def _check_top(lm: dict[str, np.ndarray], mask: np.ndarray, name: str) -> None:
    """EngineError when the landmarks do not describe a top laid flat, front up: the warp
    built on them would put the garment over the face or outside the body."""
    from engines.api import EngineError

    ys = np.nonzero((mask > 0.5).any(axis=1))[0]
    y0, height = float(ys.min()), float(ys.max() - ys.min() + 1)
    ok = True
    for side in ("left", "right"):
        s, a, hm, n = (lm[f"{k}_{side}"] for k in ("shoulder", "armpit", "hem", "neck"))
        ok &= s[1] + 0.05 * height <= a[1] <= hm[1] - 0.2 * height
        ok &= s[1] - y0 <= 0.4 * height and n[1] <= s[1] + 0.1 * height
    ok &= lm["shoulder_left"][0] < lm["neck_left"][0] <= lm["neck_right"][0] < lm["shoulder_right"][0]
    if not ok:
        raise EngineError(
            f"Could not read the shape of a top in {name}: use a top (T-shirt, shirt, sweater, tank top) "
            "photographed flat and front up with its sleeves spread out, on a plain background. Dresses, "
            "trousers and folded garments are not supported; a mask image (garment_mask_file) helps when "
            "the background is busy."
        )


def prepare_garment(
    pixels: np.ndarray, user_mask: np.ndarray | None = None, name: str = "garment image", max_side: int = 512
) -> Garment:
    """Mask and landmarks of a garment photo, downscaled to at most ``max_side`` pixels."""
    import cv2

    h, w = pixels.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        if user_mask is not None:
            user_mask = cv2.resize(user_mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    mask, uncertain, notes = garment_mask(pixels, user_mask, name)
    if pixels.ndim == 2:
        rgb = np.repeat(pixels[:, :, None], 3, 2)
    else:
        rgb = pixels[:, :, :3]
    angle = garment_tilt(mask)
    if angle is not None and abs(angle) >= 1.0:
        rgb, mask = _turned(rgb, mask, angle)
        way = "counter-clockwise" if angle > 0 else "clockwise"
        notes.append(
            f"The garment in {name} was not upright: it was turned {abs(angle):.0f} degrees {way} "
            "(to its left-right mirror symmetry) before its landmarks were read."
        )
    info: dict = {}
    lm = garment_landmarks(mask, info)
    _check_top(lm, mask, name)
    trimmed = _without_hood(mask, lm)
    if trimmed is not None:
        mask = trimmed
        lm = garment_landmarks(mask, info)
        notes.append(f"The hood or high collar of the garment in {name} was left out: worn, it hangs behind the neck.")
        _check_top(lm, mask, name)
    return Garment(
        np.ascontiguousarray(rgb, dtype=np.uint8),
        mask,
        lm,
        uncertain,
        notes,
        garment_parts(mask, lm, info["sleeveless"]),
    )
