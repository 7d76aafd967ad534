"""The garment as texture coordinates, carried from frame to frame by the optical flow.

A warp of the garment onto a frame is, per frame pixel, the garment pixel it shows: a
UV map (here in garment pixels), one per garment part (the torso through the TPS of
:mod:`.tps`, each sleeve through its affine). Blending *colours* of consecutive frames
(Hu 2023, eq. 5) smears a high-contrast pattern wherever the two frames' warps disagree
by a fraction of a stripe; blending the *maps* keeps the pattern sharp and moves it as
one piece. This module does the latter, the texture-coordinate form of eq. 5:

    UV_t = (1 - w M) * UV_fit,t + w M * warp(UV_{t-1}, F_{t->t-1}),

with F the backward optical flow of the source video and M the forward-backward
consistency mask (occlusions use the fit alone), eased at its edges so the pattern does
not tear, and set to 0 where the carried map and the fit part by more than ``tol``
garment pixels (tracking lost, a sleeve turning faster than the flow follows). The
pattern then travels with the body's apparent motion, as texture propagation by flow
does in video editing (e.g. Kasten et al., "Layered neural atlases", 2021, which maps
every frame to a shared texture; Lai et al., ECCV 2018, measure the same consistency).
"""

from __future__ import annotations

import numpy as np

PARTS = ("torso", "sleeve_left", "sleeve_right")


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def map_shape(shape: tuple[int, int], step: int) -> tuple[int, int]:
    """Size of a map sampling every ``step``-th pixel of an H x W crop."""
    return -(-shape[0] // step), -(-shape[1] // step)


def fitted_maps(
    garment, warp, sleeves, shape: tuple[int, int], stride: int = 0, step: int = 1
) -> dict[str, np.ndarray]:
    """UV maps (float32 x 2, garment pixels) of the fitted warp over an H x W crop.

    ``warp`` (a :class:`.tps.GarmentWarp`) and ``sleeves`` (2 x 3 affines, left then
    right) are in the crop's pixels. Map sample (i, j) is crop pixel (step j, step i)
    (:func:`upsample` brings a ``step`` > 1 map to full size). The torso map is the
    inverse TPS, evaluated every ``stride`` pixels and interpolated (the map is
    smooth); sleeves invert their affine.
    """
    from engines.tryon.tps import TPS, _corner_resize

    h, w = map_shape(shape, step)
    stride = stride or int(np.clip(max(h, w) / 100, 2, 8))
    inv = TPS(warp.dst, warp.src)
    xs = np.arange(0, w + stride, stride, dtype=np.float64) * step
    ys = np.arange(0, h + stride, stride, dtype=np.float64) * step
    gx, gy = np.meshgrid(xs, ys)
    m = inv(np.stack([gx.ravel(), gy.ravel()], 1)).astype(np.float32)
    maps = {"torso": np.dstack([_corner_resize(m[:, k].reshape(gx.shape), stride)[:h, :w] for k in (0, 1)])}
    X, Y = (a * np.float32(step) for a in _grid(h, w))
    for side, A in zip(("left", "right"), sleeves):
        part = garment.parts.get(f"sleeve_{side}")
        if part is None or not part.any():
            continue
        B = np.linalg.inv(np.vstack([A, [0.0, 0.0, 1.0]]))[:2].astype(np.float32)
        maps[f"sleeve_{side}"] = np.dstack([B[k, 0] * X + B[k, 1] * Y + B[k, 2] for k in (0, 1)])
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in maps.items()}


def upsample(maps: dict[str, np.ndarray], step: int, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Maps sampled every ``step`` pixels brought to the full H x W crop (bilinear, with
    sample i landing exactly on pixel step * i)."""
    import cv2

    if step == 1:
        return maps
    A = np.array([[step, 0, 0], [0, step, 0]], np.float64)
    return {
        k: cv2.warpAffine(v, A, (shape[1], shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        for k, v in maps.items()
    }


def prefiltered(rgb: np.ndarray, scale: float, sigma: float = 0.5) -> np.ndarray:
    """The garment texture low-passed for drawing at ``scale`` frame px per garment px.

    Point-sampling a sharp pattern at a reduced size aliases: stripes crawl and shimmer
    as they move by fractions of a pixel. A Gaussian of ``sigma`` frame pixels, applied
    in garment pixels before sampling, band-limits the drawn pattern (the prefiltering
    behind mip-mapping, Williams, SIGGRAPH 1983; Heckbert 1989).
    """
    import cv2

    s = round(sigma / max(scale, 1e-3), 1)
    return rgb if s < 0.2 else cv2.GaussianBlur(rgb, (0, 0), s)


def render_maps(
    garment, maps: dict[str, np.ndarray], texture: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The garment seen through UV maps: (rgb float32 H x W x 3, mask float32 H x W).

    Each part samples its own mask (so a torso map that strays onto the photo's sleeve
    shows nothing); sleeves are drawn over the torso, as an arm hanging in front of the
    body's side would be. ``texture`` replaces the garment's RGB (a :func:`prefiltered` one).
    """
    import cv2

    texture = garment.rgb if texture is None else texture

    h, w = next(iter(maps.values())).shape[:2]
    rgb = np.zeros((h, w, 3), np.float32)
    mask = np.zeros((h, w), np.float32)
    for name in PARTS:
        uv = maps.get(name)
        part = garment.parts.get(name, garment.mask if name == "torso" else None)
        if uv is None or part is None:
            continue
        m = cv2.remap(
            part.astype(np.float32), uv, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        if not m.any():
            continue
        c = cv2.remap(texture, uv, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if name == "torso":
            rgb, mask = c.astype(np.float32), m
        else:
            rgb = rgb + (c.astype(np.float32) - rgb) * m[:, :, None]
            mask = np.maximum(mask, m)
    return rgb, mask


def _smooth(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``values`` (H x W x C) counting pixels by ``weight`` (normalised
    convolution), run on a grid shrunk so sigma is ~2 px there: smooth output, flat cost."""
    import cv2

    h, w = weight.shape
    f = max(1, int(sigma / 2))
    num, den = values * weight[:, :, None], weight
    if f > 1:
        size = (max(1, w // f), max(1, h // f))
        num = cv2.resize(num, size, interpolation=cv2.INTER_AREA)
        den = cv2.resize(den, size, interpolation=cv2.INTER_AREA)
    num = cv2.GaussianBlur(num, (0, 0), sigma / f)
    den = cv2.GaussianBlur(den, (0, 0), sigma / f)
    out = num / np.maximum(den, 1e-3)[:, :, None]
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR) if f > 1 else out


def _reframe(img: np.ndarray, box_from, box_to) -> np.ndarray:
    from engines.tryon.temporal import _reframe as reframe

    return reframe(img, box_from, box_to)


class MapCarrier:
    """Texture-coordinate eq. 5: blends fitted UV maps with the previous ones moved by flow.

    ``weight`` is w; ``tol`` (garment pixels) is where carried and fitted maps are taken
    to have parted (the carried map is then dropped there, fading out over another
    ``tol``); the correction carried - fit is low-passed with a Gaussian of ``smooth``
    times the box size, so the pattern follows the body's smooth motion and not the
    flow's per-pixel noise. Maps live on a box of the frame (x0, y0, x1, y1) that may move.
    """

    def __init__(self, weight: float = 0.8, tol: float = 8.0, smooth: float = 0.04):
        self.weight, self.tol, self.smooth = float(weight), float(tol), float(smooth)
        self.prev: tuple[dict[str, np.ndarray], tuple] | None = None
        self.last_carried = 0.0
        """Mean carry weight over the torso map in the last call (0 = fit only)."""

    def reset(self) -> None:
        self.prev = None

    def __call__(
        self, maps: dict[str, np.ndarray], back: np.ndarray | None, valid: np.ndarray | None, box
    ) -> dict[str, np.ndarray]:
        import cv2

        from engines.tryon.temporal import warp_by_flow

        out = maps
        self.last_carried = 0.0
        if self.prev is not None and back is not None and self.weight > 0:
            p_maps, p_box = self.prev
            h, w = back.shape[:2]
            g = _grid(h, w)
            inside = warp_by_flow(
                _reframe(np.ones(next(iter(p_maps.values())).shape[:2], np.float32), p_box, box), back, g
            )
            trust = cv2.GaussianBlur(valid.astype(np.float32), (0, 0), 1.5) * np.clip((inside - 0.98) / 0.02, 0.0, 1.0)
            out = {}
            sigma = max(2.0, self.smooth * max(h, w))
            for name, fit in maps.items():
                if name not in p_maps:
                    out[name] = fit
                    continue
                carried = warp_by_flow(_reframe(p_maps[name], p_box, box), back, g)
                apart = np.sqrt(((carried - fit) ** 2).sum(-1))
                m = self.weight * trust * np.clip((2 * self.tol - apart) / self.tol, 0.0, 1.0)
                # The correction is kept smooth (a normalised blur weighted by m): flow
                # noise on plain clothes must not ripple the pattern.
                delta = _smooth(np.nan_to_num(carried - fit), m, sigma)
                m = cv2.GaussianBlur(m, (0, 0), 1.0)
                out[name] = fit + delta * m[:, :, None]
                if name == "torso":
                    self.last_carried = float(m.mean())
        self.prev = ({k: v.astype(np.float32) for k, v in out.items()}, tuple(box))
        return out
