"""The tile-based differentiable rasteriser of 3D Gaussian splatting, on the CPU with numba.

Kerbl, Kopanas, Leimkühler and Drettakis, "3D Gaussian Splatting for Real-Time Radiance
Field Rendering", SIGGRAPH 2023, section 6: the image is cut into 16 x 16 pixel tiles,
every projected Gaussian is listed in each tile its footprint touches, each tile's list is
sorted front to back, and every pixel composites its tile's list front to back
(``C = sum_i c_i a_i T_i``, ``T_i = prod_{j<i} (1 - a_j)``) until it is opaque. The
backward pass walks each pixel's list back to front again, recovering ``T_i`` by division
as the paper's CUDA code does, and gives the gradient of the loss with respect to each
Gaussian's 2D mean, conic (inverse 2D covariance), colour and opacity. Everything before
(projection, covariance, spherical harmonics) is plain torch and gets its gradients from
autograd: :class:`RasterizeGaussians` is the ``torch.autograd.Function`` joining the two.

Two choices differ from the paper's code, both so that the tiles change nothing a dense
evaluation would give (the test compares against a pure-torch rasteriser that evaluates
every Gaussian at every pixel):

* the footprint depends on opacity: a Gaussian of opacity ``o`` stays below the 1/255
  alpha cut-off outside the ellipse ``d^T conic d = 2 ln(255 o)`` (3.33 standard deviations
  at most; the paper takes a 3-sigma circle whatever the opacity), so no tile it could reach
  is left out, faint Gaussians touch fewer tiles, and elongated ones only the tiles (and,
  inside a tile, only the pixel box) their ellipse spans;
* alpha clamped at 0.99 passes no gradient to opacity or position (the paper's code
  differentiates as if it were not clamped).

Per-pixel arithmetic is float64; arrays are float32. Within a tile the loops run Gaussian
by Gaussian over the pixels of its box (with per-pixel transmittance kept in the tile's
buffers), which visits a fraction of the pixel x Gaussian pairs a per-pixel loop would.
Tiles are independent, so the forward and backward kernels run tiles in parallel
(``prange``); the backward writes gradients per (tile, Gaussian) entry and sums them per
Gaussian afterwards, so no two threads ever add into the same place.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np

TILE = 16
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4
POWER_MIN = math.log(ALPHA_MIN) - 1e-6
"""Below this exponent even an opaque Gaussian's alpha is under the cut-off: skip the exp."""


try:
    import numba
except ImportError as e:  # pragma: no cover - numba is a pinned dependency
    from engines.api import EngineError

    raise EngineError("Gaussian splatting needs the numba package: pip install numba==0.68.1") from e

# The kernels compile on first use (a few seconds) and numba caches the machine code beside
# this file, or where that folder is read-only (an installed build) in NUMBA_CACHE_DIR or the
# user's cache folder, so later runs start at once.
njit, prange = numba.njit, numba.prange

# numba's OpenMP layer shares libgomp with torch: its idle threads spin and torch's own
# operations between the kernels ran 4 to 6 times slower (a training step: 1.19 s of CPU
# against 0.31 s with the workqueue layer). The workqueue layer's threads sleep when idle,
# but it must not be entered from two threads at once: launches take ``_launch``.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
_launch = threading.Lock()


@njit(cache=True)
def _extent(conic_a, conic_b, conic_c, opacity):
    """Half width and height (px) of the ellipse outside which alpha < 1/255: where
    ``d^T conic d > k^2`` with ``k^2 = 2 ln(255 o)``; (-1, -1) when nothing reaches 1/255."""
    k2 = 2.0 * math.log(max(255.0 * opacity, 1e-30))
    det = conic_a * conic_c - conic_b * conic_b
    if k2 <= 0.0 or det <= 0.0:
        return -1.0, -1.0
    return math.sqrt(k2 * conic_c / det), math.sqrt(k2 * conic_a / det)


@njit(cache=True)
def bin_gaussians(means2d, conics, opacities, radii, order, width, height, tile):
    """Tile lists: ``ids[offsets[t]:offsets[t+1]]`` are the Gaussians whose footprint
    (:func:`_extent`) touches tile ``t``, in the order of ``order`` (front to back), so each
    list comes out sorted. ``radii`` <= 0 marks culled Gaussians."""
    tiles_x = (width + tile - 1) // tile
    tiles_y = (height + tile - 1) // tile
    n_tiles = tiles_x * tiles_y
    n = means2d.shape[0]
    rect = np.zeros((n, 4), np.int64)
    counts = np.zeros(n_tiles + 1, np.int64)
    for g in range(n):
        if radii[g] <= 0.0:
            continue
        ex, ey = _extent(conics[g, 0], conics[g, 1], conics[g, 2], opacities[g])
        if ex < 0.0:
            continue
        # every pixel (x, y) with |x - mx| <= ex and |y - my| <= ey (pixel centres at integers)
        x0 = max(0, int(math.ceil(means2d[g, 0] - ex)) // tile)
        x1 = min(tiles_x, int(math.floor(means2d[g, 0] + ex)) // tile + 1)
        y0 = max(0, int(math.ceil(means2d[g, 1] - ey)) // tile)
        y1 = min(tiles_y, int(math.floor(means2d[g, 1] + ey)) // tile + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        rect[g, 0], rect[g, 1], rect[g, 2], rect[g, 3] = x0, x1, y0, y1
        for ty in range(y0, y1):
            for tx in range(x0, x1):
                counts[ty * tiles_x + tx + 1] += 1
    offsets = np.cumsum(counts)
    ids = np.empty(offsets[-1], np.int64)
    cursor = offsets[:-1].copy()
    for k in range(order.shape[0]):
        g = order[k]
        if rect[g, 1] == 0:
            continue
        for ty in range(rect[g, 2], rect[g, 3]):
            for tx in range(rect[g, 0], rect[g, 1]):
                t = ty * tiles_x + tx
                ids[cursor[t]] = g
                cursor[t] += 1
    return offsets, ids


@njit(cache=True)
def _gather(means2d, conics, colors, opacities, ids, start, end, x0, x1, y0, y1):
    """The tile's Gaussians, front to back: mean, conic, opacity, colour, and the pixel box
    (inclusive, clipped to the tile [x0, x1) x [y0, y1)) that its footprint covers."""
    m = end - start
    loc = np.empty((m, 9), np.float64)
    box = np.empty((m, 4), np.int64)
    for k in range(m):
        g = ids[start + k]
        loc[k, 0] = means2d[g, 0]
        loc[k, 1] = means2d[g, 1]
        loc[k, 2] = conics[g, 0]
        loc[k, 3] = conics[g, 1]
        loc[k, 4] = conics[g, 2]
        loc[k, 5] = opacities[g]
        loc[k, 6] = colors[g, 0]
        loc[k, 7] = colors[g, 1]
        loc[k, 8] = colors[g, 2]
        ex, ey = _extent(loc[k, 2], loc[k, 3], loc[k, 4], loc[k, 5])
        box[k, 0] = max(x0, int(math.ceil(loc[k, 0] - ex)))
        box[k, 1] = min(x1 - 1, int(math.floor(loc[k, 0] + ex)))
        box[k, 2] = max(y0, int(math.ceil(loc[k, 1] - ey)))
        box[k, 3] = min(y1 - 1, int(math.floor(loc[k, 1] + ey)))
    return loc, box


@njit(parallel=True, cache=True)
def forward(means2d, conics, colors, opacities, offsets, ids, width, height, tile, bg, out_img, out_T, out_last):
    """Front-to-back compositing, tile by tile: each Gaussian in depth order is added to
    the tile's pixels inside its footprint box that are not yet opaque."""
    tiles_x = (width + tile - 1) // tile
    n_tiles = offsets.shape[0] - 1
    for t in prange(n_tiles):
        start, end = offsets[t], offsets[t + 1]
        ty, tx = t // tiles_x, t % tiles_x
        x0, y0 = tx * tile, ty * tile
        x1, y1 = min(width, x0 + tile), min(height, y0 + tile)
        loc, box = _gather(means2d, conics, colors, opacities, ids, start, end, x0, x1, y0, y1)
        tw = x1 - x0
        npix = tw * (y1 - y0)
        T = np.ones(npix, np.float64)
        C = np.zeros((npix, 3), np.float64)
        last = np.zeros(npix, np.int64)
        done = np.zeros(npix, np.bool_)
        n_done = 0
        for k in range(end - start):
            a, b, c, o = loc[k, 2], loc[k, 3], loc[k, 4], loc[k, 5]
            for py in range(box[k, 2], box[k, 3] + 1):
                dy = loc[k, 1] - py
                for px in range(box[k, 0], box[k, 1] + 1):
                    j = (py - y0) * tw + (px - x0)
                    if done[j]:
                        continue
                    dx = loc[k, 0] - px
                    power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
                    if power > 0.0 or power < POWER_MIN:
                        continue
                    alpha = min(ALPHA_MAX, o * math.exp(power))
                    if alpha < ALPHA_MIN:
                        continue
                    test_T = T[j] * (1.0 - alpha)
                    if test_T < T_MIN:
                        done[j] = True  # the pixel is opaque: it stops here
                        n_done += 1
                        continue
                    w = alpha * T[j]
                    C[j, 0] += loc[k, 6] * w
                    C[j, 1] += loc[k, 7] * w
                    C[j, 2] += loc[k, 8] * w
                    T[j] = test_T
                    last[j] = k + 1
            if n_done == npix:
                break
        for py in range(y0, y1):
            for px in range(x0, x1):
                j = (py - y0) * tw + (px - x0)
                out_img[py, px, 0] = C[j, 0] + T[j] * bg[0]
                out_img[py, px, 1] = C[j, 1] + T[j] * bg[1]
                out_img[py, px, 2] = C[j, 2] + T[j] * bg[2]
                out_T[py, px] = T[j]
                out_last[py, px] = last[j]


@njit(parallel=True, cache=True)
def backward(
    means2d, conics, colors, opacities, offsets, ids, width, height, tile, bg, T_final, last_index, d_img, n_gaussians
):
    """Gradients per Gaussian: columns mean x, mean y, conic a, b, c, opacity, r, g, b.

    Back to front over the tile's Gaussians, each pixel starting at its last contributor;
    per pixel it keeps T (recovered by division), the colour of what lies behind the current
    Gaussian (``acc``) and the previous Gaussian's alpha and colour."""
    tiles_x = (width + tile - 1) // tile
    n_tiles = offsets.shape[0] - 1
    per_entry = np.zeros((ids.shape[0], 9), np.float64)
    for t in prange(n_tiles):
        start, end = offsets[t], offsets[t + 1]
        ty, tx = t // tiles_x, t % tiles_x
        x0, y0 = tx * tile, ty * tile
        x1, y1 = min(width, x0 + tile), min(height, y0 + tile)
        loc, box = _gather(means2d, conics, colors, opacities, ids, start, end, x0, x1, y0, y1)
        tw = x1 - x0
        npix = tw * (y1 - y0)
        T = np.empty(npix, np.float64)
        T_end = np.empty(npix, np.float64)
        last = np.empty(npix, np.int64)
        D = np.empty((npix, 3), np.float64)
        bg_dot = np.empty(npix, np.float64)
        acc = np.zeros((npix, 3), np.float64)
        lc = np.zeros((npix, 3), np.float64)
        last_alpha = np.zeros(npix, np.float64)
        k_max = 0
        for py in range(y0, y1):
            for px in range(x0, x1):
                j = (py - y0) * tw + (px - x0)
                T[j] = T_final[py, px]
                T_end[j] = T[j]
                last[j] = last_index[py, px]
                k_max = max(k_max, last[j])
                for ch in range(3):
                    D[j, ch] = d_img[py, px, ch]
                bg_dot[j] = bg[0] * D[j, 0] + bg[1] * D[j, 1] + bg[2] * D[j, 2]
        for k in range(k_max - 1, -1, -1):
            a, b, c, o = loc[k, 2], loc[k, 3], loc[k, 4], loc[k, 5]
            c0, c1, c2 = loc[k, 6], loc[k, 7], loc[k, 8]
            # this Gaussian's gradient over the tile's pixels, kept in registers
            gm0 = gm1 = ga = gb = gc = go = gr = gg = gbl = 0.0
            for py in range(box[k, 2], box[k, 3] + 1):
                dy = loc[k, 1] - py
                for px in range(box[k, 0], box[k, 1] + 1):
                    j = (py - y0) * tw + (px - x0)
                    if k >= last[j]:
                        continue
                    dx = loc[k, 0] - px
                    power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
                    if power > 0.0 or power < POWER_MIN:
                        continue
                    G = math.exp(power)
                    raw = o * G
                    alpha = min(ALPHA_MAX, raw)
                    if alpha < ALPHA_MIN:
                        continue
                    T[j] = T[j] / (1.0 - alpha)
                    w = alpha * T[j]
                    g0, g1, g2 = D[j, 0], D[j, 1], D[j, 2]
                    gr += w * g0
                    gg += w * g1
                    gbl += w * g2
                    la = last_alpha[j]
                    acc[j, 0] = la * lc[j, 0] + (1.0 - la) * acc[j, 0]
                    acc[j, 1] = la * lc[j, 1] + (1.0 - la) * acc[j, 1]
                    acc[j, 2] = la * lc[j, 2] + (1.0 - la) * acc[j, 2]
                    lc[j, 0], lc[j, 1], lc[j, 2] = c0, c1, c2
                    d_alpha = ((c0 - acc[j, 0]) * g0 + (c1 - acc[j, 1]) * g1 + (c2 - acc[j, 2]) * g2) * T[j]
                    d_alpha -= T_end[j] / (1.0 - alpha) * bg_dot[j]
                    last_alpha[j] = alpha
                    if raw > ALPHA_MAX:
                        continue  # clamped: alpha does not depend on opacity or position here
                    go += G * d_alpha
                    d_power = o * d_alpha * G
                    gm0 -= d_power * (a * dx + b * dy)
                    gm1 -= d_power * (b * dx + c * dy)
                    ga -= 0.5 * d_power * dx * dx
                    gb -= d_power * dx * dy
                    gc -= 0.5 * d_power * dy * dy
            e = start + k
            per_entry[e, 0], per_entry[e, 1], per_entry[e, 2] = gm0, gm1, ga
            per_entry[e, 3], per_entry[e, 4], per_entry[e, 5] = gb, gc, go
            per_entry[e, 6], per_entry[e, 7], per_entry[e, 8] = gr, gg, gbl
    out = np.zeros((n_gaussians, 9), np.float64)
    for e in range(ids.shape[0]):
        g = ids[e]
        for j in range(9):
            out[g, j] += per_entry[e, j]
    return out


def kernels() -> dict:
    """The kernels by name (kept for callers that look them up)."""
    return dict(bin=bin_gaussians, forward=forward, backward=backward)


def set_threads(n: int | None = None) -> None:
    """Use ``n`` threads (default: all cores) for the kernels."""
    numba.set_num_threads(max(1, min(n or os.cpu_count() or 1, numba.config.NUMBA_NUM_THREADS)))


def _np32(x) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)


def rasterize_numpy(
    means2d, conics, colors, opacities, depths, radii, width: int, height: int, background=(0.0, 0.0, 0.0)
):
    """Forward only: (image H x W x 3, transmittance H x W, last-contributor H x W, tile lists)."""
    k = kernels()
    means2d, conics, colors = _np32(means2d), _np32(conics), _np32(colors)
    opacities, radii = _np32(opacities).ravel(), _np32(radii).ravel()
    order = np.argsort(_np32(depths).ravel(), kind="stable")
    offsets, ids = k["bin"](means2d, conics, opacities, radii, order, int(width), int(height), TILE)
    img = np.empty((height, width, 3), np.float32)
    T = np.empty((height, width), np.float32)
    last = np.empty((height, width), np.int64)
    bg = np.asarray(background, np.float64)
    with _launch:
        k["forward"](means2d, conics, colors, opacities, offsets, ids, int(width), int(height), TILE, bg, img, T, last)
    return img, T, last, (offsets, ids, means2d, conics, colors, opacities, bg)


def _torch_function():
    import torch

    class RasterizeGaussians(torch.autograd.Function):
        """image (H x W x 3), alpha (H x W) = f(means2d N x 2, conics N x 3, colours N x 3,
        opacities N); depths order the lists and radii bound the footprints (no gradient)."""

        @staticmethod
        def forward(ctx, means2d, conics, colors, opacities, depths, radii, width, height, background):
            img, T, last, saved = rasterize_numpy(
                means2d, conics, colors, opacities, depths, radii, width, height, background
            )
            ctx.saved = (saved, T, last, int(width), int(height), means2d.shape[0], means2d.dtype)
            alpha = torch.from_numpy(1.0 - T)
            ctx.mark_non_differentiable(alpha)
            return torch.from_numpy(img), alpha

        @staticmethod
        def backward(ctx, d_img, d_alpha):
            (offsets, ids, m2, con, col, op, bg), T, last, w, h, n, dtype = ctx.saved
            d = np.ascontiguousarray(d_img.detach().cpu().numpy(), dtype=np.float32)
            with _launch:
                g = kernels()["backward"](m2, con, col, op, offsets, ids, w, h, TILE, bg, T, last, d, n)
            g = torch.from_numpy(g).to(dtype)
            return g[:, 0:2], g[:, 2:5], g[:, 6:9], g[:, 5], None, None, None, None, None

    return RasterizeGaussians


_fn = None


def rasterize(means2d, conics, colors, opacities, depths, radii, width: int, height: int, background=(0.0, 0.0, 0.0)):
    """Differentiable rasterisation (torch tensors in, image H x W x 3 and alpha H x W out)."""
    global _fn
    if _fn is None:
        _fn = _torch_function()
    return _fn.apply(
        means2d, conics, colors, opacities, depths, radii, int(width), int(height), tuple(float(b) for b in background)
    )
