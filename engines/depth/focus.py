"""Depth from focus: focus measures, best focus per pixel, confidence, all-in-focus image.

Focus operators, as compared by Pertuz, Puig and Garcia, "Analysis of focus measure
operators for shape-from-focus" (Pattern Recognition 46, 2013), where the Laplacian
family, Tenengrad and gray-level variance rank among the best:

* ``modified-laplacian`` (LAPM, Nayar 1989): ``|I * [-1 2 -1]| + |I * [-1 2 -1]^T|``,
  averaged over a window;
* ``sum-modified-laplacian`` (SML, Nayar and Nakagawa, "Shape from focus", PAMI 1994):
  the window sum of the squared modified Laplacian with step 2;
* ``tenengrad`` (TENG, Krotkov 1987): Sobel gradient energy averaged over a window;
* ``graylevel-variance`` (GLVA): local variance over a window.

Best focus per pixel is the argmax over the stack, refined to sub-frame precision by a
parabola, a Gaussian (a parabola through the logarithms, as in Nayar and Nakagawa) or a
Lorentzian (a parabola through minus the reciprocals) through the peak and its two
neighbours, fitted in dioptres (inverse focus distance), in which defocus blur is linear.
The Lorentzian is the default: for a natural image (power spectrum ~ 1/k^2, Field 1987)
blurred by a defocus of width ``sigma`` proportional to the dioptre offset, gradient
energy integrates to ~ ``1 / (sigma_0^2 + sigma^2)`` (``sigma_0`` the optics' and
pixel's own blur), i.e. ``F ~ 1 / (a + b (x - x0)^2)``. With frames far apart a Gaussian
fit of that curve is biased towards the sampled frame (a staircase); on
benchmarks/depth.py the Lorentzian fit lowered the 5-frame plane scene's AbsRel of depth
from focus from 0.041 to 0.026. With dense frames (the peak's flat top sampled) the
parabola is the least biased (tests/test_depth_focus.py: at 7 frames over 1.5-4 m the
Lorentzian is off by 0.09 of a frame spacing, the parabola by 0.04; at 4 frames the
Lorentzian by 0.02-0.05, the Gaussian by 0.05-0.11). At the first and last frame the
same curve is fitted one-sided, through the end frame and its two inner neighbours, with
the peak kept inside the stack's range. The volume is never held in memory: frames are folded in
one at a time (running max, its neighbours, the min), so a 12 MP stack costs a few
image-sized buffers.

Confidence combines the peak's prominence over the stack (``1 - min/max``) with its
significance over the sensor-noise floor: the noise is estimated from the images
(Immerkaer, "Fast noise variance estimation", CVIU 1996, with a median for robustness)
and pushed through the same operator, so a textureless region, where only noise varies
from frame to frame, gets a confidence near 0. A second peak in a pixel's focus curve
lowers the confidence too (the peak-ratio test of stereo matching; Hu and Mordohai, "A
quantitative evaluation of confidence measures for stereo vision", PAMI 2012): it is what
a sharp foreground edge inside a background pixel's window produces. Optionally a scale
consensus test (in the spirit of multi-scale focus-measure fusion and of stereo's
consistency checks) finds the sharpest frame a second time with a 3 x 3 window: where it
lies two or more frames from the full window's, the full window's peak was lent by a
strong edge at a neighbouring pixel (a wheel's rim bleeding into the floor beside it) and
the confidence drops to a fifth. On the held-out random scenes of benchmarks/depth.py it
raised the fused delta1 by about 0.3 points on average; on the real scene it is neutral.

**Occlusion asymmetry** (``occlusion_asymmetry``, on in the engine): the peak-ratio test
above is made one-sided. An occluding contour behaves as an edge on the occluder's
surface, blurred by the occluder's defocus (Asada, Fujiwara and Matsuyama, "Seeing behind
the scene: analysis of photometric properties of occluding edges by the reversed
projection blurring model", PAMI 20(2), 1998): it is sharpest when the occluder is in
focus, so focus that a window borrows from an occluding edge lies at the *nearer* depth:
the errors of depth from focus at edges push background pixels towards the foreground (on
motorcycle-left 90 % of the fused result's wrong pixels were too near). A background pixel
beside such an edge thus has a focus curve with its own (farther) peak and a lent (nearer)
one. When the best peak is the nearer one, a farther second peak is evidence that the best
was lent, and the confidence drops as before; when the best peak is the farther one, a
nearer second peak is what the occluder lends anyway and says nothing against it, so it no
longer lowers the confidence. Before the change such pixels (right in depth from focus,
median confidence 0.28 with the second-peak factor at 0.71) were painted over with the
foreground's depth by the fusion; on motorcycle-left 10 frames the change fixes 597 wrong
pixels and breaks 39, mostly background seen between the tank and the handlebars and
beside the fork (the dark floor beside the front tyre and the background between the
spokes stay wrong). Measured with benchmarks/depth.py (fused, 10 / 5 frames):
motorcycle-left delta1 0.9792 -> 0.9822 / 0.9792 -> 0.9800, AbsRel 0.0248 -> 0.0240;
motorcycle-right delta1 0.9876 -> 0.9881; planes 0.9959 -> 0.9967; aloe unchanged within
0.0001; real-scene means AbsRel 0.0190 -> 0.0188, RMSE 0.1397 -> 0.1362, delta1 0.9903 ->
0.9911; held-out random scenes AbsRel 0.0479 -> 0.0479, RMSE 0.3399 -> 0.3306, delta1
0.9692 -> 0.9710. Where it loses: a weakly textured card in front of a high-contrast
checkerboard (random-105, 10 frames: AbsRel 0.038 -> 0.049), since a strong background
texture lends its farther peak to the card's pixels too. Restricting the rule to pixels
with a nearer surface within the window (the nearer peak "explained" by a neighbour's
depth) did not recover that scene and lost some of the gain on random-107; a half-weight
penalty for a nearer second peak (motorcycle-left delta1 0.9815, held-out AbsRel 0.0477)
was not kept (a tuned constant where the one-sided test needs none). Also measured and
rejected in the same session: a power mean (``mean(r^p)^(1/p)``, p = 0.5 or 0.25) instead
of the window's plain mean of the operator's response, so that a few strong edge pixels
outvote less of the window: motorcycle-left delta1 0.9803 at p = 0.5 but AbsRel 0.0248 ->
0.0275 and held-out AbsRel 0.048 -> 0.055 (noise-only pixels weigh more); and selecting
the 3 x 3 window's frame where the scale-consensus test disagrees: the 3 x 3 estimate is
wrong in 65 % of those pixels and its own confidence does not tell which (at any threshold
the switch broke about ten pixels for each one it fixed); and making the scale-consensus
test one-sided the same way (penalise only a 3 x 3 frame farther than the window's):
motorcycle-left delta1 0.9831 but AbsRel 0.0240 -> 0.0248, real-scene AbsRel 0.0188 ->
0.0192, held-out AbsRel 0.0479 -> 0.0482 and aloe delta1 0.9993 -> 0.9988, so the
consensus test stays two-sided (a strong background texture lends its far peak to a weak
foreground as well).

**Exposure equalisation** (``exposure``, on in the engine): gradient-energy focus measures
scale with the square of the image's contrast, so a frame exposed 5 % brighter (auto
exposure between shots, mains flicker) reads 10 % sharper everywhere and steals the
argmax. Defocus blur preserves an image's mean, so each frame is scaled by the ratio of
the first frame's mean to its own (central 80 %, away from what focus breathing moves in
and out at the border) before the focus measure and the all-in-focus composite. With
per-frame gains drawn uniformly within +-15 % (benchmarks/depth.py, exposure table), the
fused AbsRel without / with equalisation (no gain change) was: motorcycle-left 0.050 /
0.025 (0.024), motorcycle-right 0.057 / 0.023 (0.022), aloe 0.015 / 0.010 (0.008),
planes 0.029 / 0.011 (0.011). With no gain change the results are unchanged (real-scene
and held-out means within 0.0002).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

import numpy as np

Operator = Literal["modified-laplacian", "sum-modified-laplacian", "tenengrad", "graylevel-variance"]
Interpolation = Literal["none", "parabolic", "gaussian", "lorentzian"]
OPERATORS = ("modified-laplacian", "sum-modified-laplacian", "tenengrad", "graylevel-variance")


def to_gray(frame: np.ndarray) -> np.ndarray:
    """Luminance as float32 in 0..1 from an RGB or grey uint8/uint16 frame."""
    import cv2

    scale = 65535.0 if frame.dtype == np.uint16 else (255.0 if frame.dtype == np.uint8 else 1.0)
    f = frame.astype(np.float32) / scale
    if f.ndim == 3:
        f = cv2.cvtColor(f[..., :3], cv2.COLOR_RGB2GRAY)
    return f


def focus_measure(
    gray: np.ndarray, operator: Operator = "modified-laplacian", window: int = 9, edge_aware: bool = False
) -> np.ndarray:
    """Per-pixel focus measure of one float32 grey image (higher = sharper).

    With ``edge_aware`` the per-pixel responses are averaged over the window with a guided
    filter (He, Sun and Tang, PAMI 2013) steered by the image itself, as in cost-volume
    filtering (Hosni et al., PAMI 2013), instead of a box: near a sharp edge the window
    keeps to its own side, so an in-focus foreground edge does not lend its focus to the
    background beside it.
    """
    import cv2

    g = np.ascontiguousarray(gray, dtype=np.float32)
    raw = focus_response(g, operator, window)
    if edge_aware:
        return cv2.ximgproc.guidedFilter(g, raw, int(window) // 2, 1e-3)
    return cv2.blur(raw, (int(window), int(window)), borderType=cv2.BORDER_REFLECT)


def focus_response(gray: np.ndarray, operator: Operator = "modified-laplacian", window: int = 9) -> np.ndarray:
    """The operator's per-pixel response before the window average (float32)."""
    import cv2

    g = np.ascontiguousarray(gray, dtype=np.float32)
    border = cv2.BORDER_REFLECT
    if operator in ("modified-laplacian", "sum-modified-laplacian"):
        step = 1 if operator == "modified-laplacian" else 2
        k = np.zeros(2 * step + 1, np.float32)
        k[0], k[step], k[-1] = -1.0, 2.0, -1.0
        ml = np.abs(cv2.filter2D(g, -1, k[None, :], borderType=border))
        ml += np.abs(cv2.filter2D(g, -1, k[:, None], borderType=border))
        if operator == "sum-modified-laplacian":
            ml *= ml
        return ml
    if operator == "tenengrad":
        gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, borderType=border)
        gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, borderType=border)
        return gx * gx + gy * gy
    if operator == "graylevel-variance":
        m = cv2.blur(g, (int(window), int(window)), borderType=border)
        return np.square(g - m)
    raise ValueError(f"unknown focus operator {operator!r}; use one of {OPERATORS}")


def noise_sigma(gray: np.ndarray) -> float:
    """Sensor-noise standard deviation (0..1 units), robust Immerkaer estimate.

    The 3x3 mask below cancels planar intensity; its response to white noise has standard
    deviation 6 sigma. The median of its magnitude ignores edges, which cover far fewer than
    half of the pixels of a natural image. Floored at 8-bit quantisation noise.
    """
    import cv2

    m = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    r = np.abs(cv2.filter2D(np.asarray(gray, np.float32), -1, m)[1:-1:2, 1:-1:2])  # every 4th: plenty for a median
    sigma = float(np.median(r)) / (0.6745 * 6.0)
    return max(sigma, 1.0 / 255.0 / np.sqrt(12.0))


def noise_response(sigma: float, operator: Operator, window: int) -> float:
    """Mean focus-measure value of pure white noise of ``sigma`` (the operator's noise floor)."""
    rng = np.random.default_rng(12345)
    patch = 0.5 + sigma * rng.standard_normal((128, 128)).astype(np.float32)
    return float(focus_measure(patch, operator, window)[16:-16, 16:-16].mean()) + 1e-12


@dataclass
class FocusResult:
    """Depth from focus in the reference grid."""

    index: np.ndarray
    """Frame index of the sharpest frame per pixel (int16)."""
    dioptre: np.ndarray
    """Sub-frame best-focus inverse distance (1/m), float32."""
    dioptre_argmax: np.ndarray
    """Inverse focus distance of the argmax frame (no interpolation)."""
    confidence: np.ndarray
    """0..1 per pixel."""
    all_in_focus: np.ndarray
    """RGB composite of the sharpest pixels (uint8)."""
    noise_sigma: float
    exposure_gains: tuple = ()
    """Brightness factor applied to each frame by exposure equalisation (empty when off)."""

    @property
    def depth(self) -> np.ndarray:
        return (1.0 / self.dioptre).astype(np.float32)

    @property
    def depth_argmax(self) -> np.ndarray:
        return (1.0 / self.dioptre_argmax).astype(np.float32)


def _vertex(x0, x1, x2, y0, y1, y2, clip: bool = True):
    """Abscissa of the vertex of the parabola through three points (any spacing), a maximum
    (else ``x1``; NaN when unclipped), clipped to the points' span unless ``clip`` is False."""
    d01, d12 = (y0 - y1) / (x0 - x1), (y1 - y2) / (x1 - x2)
    curv = (d01 - d12) / (x0 - x2)
    slope = d01 - curv * (x0 + x1)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = -slope / (2.0 * curv)
    ok = np.isfinite(v) & (curv < 0)  # a maximum, not a minimum
    if not clip:
        return np.where(ok, v, np.nan)
    return np.where(ok, np.clip(v, np.minimum(x0, x2), np.maximum(x0, x2)), x1)


def _curve(y: np.ndarray, interpolation: str) -> np.ndarray:
    """Focus values mapped so that a parabola through three of them fits the focus curve's
    model: the values themselves (parabolic), their logarithm (Gaussian), or minus their
    reciprocal (Lorentzian, ``F ~ 1 / (a + b (x - x0)^2)``)."""
    if interpolation == "gaussian":
        return np.log(y + 1e-12)
    if interpolation == "lorentzian":
        return -1.0 / (y + 1e-12)
    return y


def depth_from_focus(
    frames: Iterable[np.ndarray],
    focus_distances,
    operator: Operator = "modified-laplacian",
    window: int = 9,
    interpolation: Interpolation = "gaussian",
    sigma: float | None = None,
    warp=None,
    edge_aware: bool = False,
    consensus: bool = False,
    occlusion_asymmetry: bool = False,
    exposure: bool = False,
) -> FocusResult:
    """Fold frames (RGB or grey, nearest focus first) into depth, confidence and AIF.

    ``frames`` may be a generator (each frame is used once). ``sigma`` is the sensor-noise
    level (0..1); estimated from the frames when None. ``warp(image, k, cubic)`` brings
    frame ``k``'s grid onto the reference (see :class:`engines.depth.align.Alignment`):
    the focus measure is computed in the frame's own pixels and then warped, because
    resampling the photo itself would blur it by a sub-pixel amount that varies across
    the image and bias the measure, while the window-averaged measure is smooth.
    With ``consensus`` the sharpest frame is also found with a 3 x 3 window; where the
    two disagree by two frames or more, the confidence is multiplied by 0.2.
    With ``occlusion_asymmetry`` only a second peak at a farther frame than the best one
    lowers the confidence (the peak-ratio test made one-sided; see the module docstring).
    """
    import cv2

    dpt = 1.0 / np.asarray(focus_distances, dtype=np.float64)
    n = len(dpt)
    best = prev_of_best = next_of_best = fmin = aif = idx = last = before_last = None
    prev2_of_best = next2_of_best = None  # two frames away, for a one-sided fit at the ends
    best_small = idx_small = None  # the 3 x 3-window focus measure's running maximum and its frame
    peak1 = peak2 = None  # the largest and second-largest local maxima of each pixel's focus curve
    peak1_idx = peak2_idx = None  # and their frames
    sigmas = []

    def add_peak(value, where, k):
        v = np.where(where, value, 0.0)
        top = v > peak1
        second = np.where(top, peak1, v)
        up2 = second > peak2
        np.copyto(peak2_idx, np.where(top, peak1_idx, np.int16(k)), where=up2)
        np.copyto(peak2, second, where=up2)
        np.copyto(peak1_idx, np.int16(k), where=top)
        np.copyto(peak1, v, where=top)

    ref_level = None
    gains = []
    for k, frame in enumerate(frames):
        g = to_gray(frame)
        if exposure:
            # Exposure equalisation: a frame 5 % brighter has 10 % more gradient energy and
            # wins the argmax unfairly. Defocus blur keeps the mean, so the ratio of the
            # central 80 % means is the exposure ratio to the first frame.
            h, w = g.shape
            level = float(g[h // 10 : h - h // 10, w // 10 : w - w // 10].mean())
            ref_level = level if ref_level is None else ref_level
            gain = ref_level / max(level, 1e-6)
            gains.append(gain)
            if abs(gain - 1.0) > 1e-3:
                g = g * np.float32(gain)
                top_value = 65535.0 if frame.dtype == np.uint16 else 255.0
                frame = np.clip(frame.astype(np.float32) * np.float32(gain), 0, top_value).astype(frame.dtype)
        if sigma is None and (k == 0 or k == n - 1 or k == n // 2):
            sigmas.append(noise_sigma(g))
        raw = focus_response(g, operator, window)
        if edge_aware:
            f = cv2.ximgproc.guidedFilter(g, raw, int(window) // 2, 1e-3)
        else:
            f = cv2.blur(raw, (int(window), int(window)), borderType=cv2.BORDER_REFLECT)
        f = np.maximum(f, 0.0)
        f_small = cv2.blur(raw, (3, 3), borderType=cv2.BORDER_REFLECT) if consensus else None
        if warp is not None:
            f = np.maximum(warp(f, k, False), 0.0)
            f_small = warp(f_small, k, False) if consensus else None
            frame = warp(frame, k, False)
        if consensus:
            if best_small is None:
                best_small, idx_small = f_small.copy(), np.zeros(f_small.shape, np.int16)
            else:
                better_small = f_small > best_small
                np.copyto(best_small, f_small, where=better_small)
                np.copyto(idx_small, np.int16(k), where=better_small)
        if best is None:
            best, fmin = f.copy(), f.copy()
            prev_of_best = f.copy()
            next_of_best = np.full_like(f, np.nan)
            prev2_of_best, next2_of_best = np.full_like(f, np.nan), np.full_like(f, np.nan)
            idx = np.zeros(f.shape, np.int16)
            aif = frame.copy()
            peak1, peak2 = np.zeros_like(f), np.zeros_like(f)
            peak1_idx, peak2_idx = np.zeros(f.shape, np.int16), np.zeros(f.shape, np.int16)
        else:
            # Frame k-1 is a local maximum if it beats both neighbours (frame 0 only frame 1).
            left = before_last if before_last is not None else np.zeros_like(f)
            add_peak(last, (last > left) & (last >= f), k - 1)
            np.copyto(next_of_best, f, where=idx == k - 1)
            np.copyto(next2_of_best, f, where=idx == k - 2)
            better = f > best
            np.copyto(prev2_of_best, before_last if before_last is not None else np.float32(np.nan), where=better)
            np.copyto(prev_of_best, last, where=better)
            np.copyto(next_of_best, np.float32(np.nan), where=better)
            np.copyto(next2_of_best, np.float32(np.nan), where=better)
            np.copyto(best, f, where=better)
            np.copyto(idx, np.int16(k), where=better)
            np.copyto(aif, frame, where=better[..., None] if aif.ndim == 3 else better)
            np.minimum(fmin, f, out=fmin)
        before_last, last = last, f
    if best is None or k + 1 != n:
        raise ValueError(f"got {0 if best is None else k + 1} frames for {n} focus distances")
    if n > 1:
        add_peak(last, last > before_last, n - 1)
    sigma = float(np.min(sigmas)) if sigma is None else float(sigma)

    d_arg = dpt[idx].astype(np.float32)
    d_sub = d_arg.copy()
    if interpolation != "none" and n >= 3:
        inner = (idx > 0) & (idx < n - 1) & np.isfinite(next_of_best)
        i = idx[inner].astype(np.int64)
        y0, y1, y2 = prev_of_best[inner], best[inner], next_of_best[inner]
        y0, y1, y2 = (_curve(v, interpolation) for v in (y0, y1, y2))
        d_sub[inner] = _vertex(dpt[i - 1], dpt[i], dpt[i + 1], y0, y1, y2).astype(np.float32)
        # At the first and last frame, fit the same curve through the end frame and its two
        # neighbours on the inside; the peak is kept between the end frame and the next one,
        # since a one-sided fit extrapolates badly when frames are far apart.
        for end, (a, b, c), (ya, yb) in (
            (0, (0, 1, 2), (next_of_best, next2_of_best)),
            (n - 1, (n - 1, n - 2, n - 3), (prev_of_best, prev2_of_best)),
        ):
            sel = (idx == end) & np.isfinite(ya) & np.isfinite(yb)
            y = [best[sel], ya[sel], yb[sel]]
            y = [_curve(v, interpolation) for v in y]
            v = _vertex(dpt[a], dpt[b], dpt[c], y[0], y[1], y[2], clip=False)
            lo, hi = sorted((dpt[a], dpt[b]))
            d_sub[sel] = np.clip(np.where(np.isfinite(v), v, dpt[a]), lo, hi).astype(np.float32)

    floor = noise_response(sigma, operator, window)
    contrast = best - fmin
    significance = 1.0 - np.exp(-np.square(contrast / (2.0 * floor)))
    prominence = contrast / np.maximum(best, 1e-12)
    # A second peak at a farther frame (the best one may be a sharp foreground edge inside
    # the window of a background pixel) makes the best one doubtful, in proportion to its
    # height above the floor. A second peak at a nearer frame does not when
    # ``occlusion_asymmetry``: an occluding contour is sharp only at the occluder's depth,
    # so a nearer peak is what a foreground edge lends and does not refute a farther one.
    ratio2 = np.clip((peak2 - fmin) / np.maximum(contrast, 1e-12), 0.0, 1.0)
    if occlusion_asymmetry:
        ratio2 = np.where(peak2_idx > idx, ratio2, 0.0)
    unimodal = 1.0 - ratio2**2
    conf = significance * prominence * unimodal
    if consensus and n >= 3:
        # Scale consensus: where the 3 x 3 window's sharpest frame is two or more frames from
        # the full window's, the window's peak came from a neighbour (a strong edge in it).
        conf = conf * np.where(np.abs(idx_small.astype(np.int16) - idx) >= 2, 0.2, 1.0)
    conf = np.clip(conf, 0.0, 1.0).astype(np.float32)
    return FocusResult(idx, d_sub, d_arg, conf, aif, sigma, tuple(gains))
