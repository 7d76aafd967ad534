"""Keeping the garment steady from frame to frame with the source video's optical flow.

Hu (2023), eq. 5: the garment layer of frame t is blended with the previous frame's
output layer warped into frame t by the optical flow of the source video,

    O_t = (1 - w M) * G_t + w M * warp(O_{t-1}, F_{t->t-1}),

so the garment moves with the person and does not jitter at its edges. Flow is DIS
(Kroeger et al., "Fast optical flow using dense inverse search", ECCV 2016, OpenCV's
``DISOpticalFlow``). M is a forward-backward consistency mask (Sundaram, Brox and Keutzer,
ECCV 2010): where the flow from t to t-1 and back does not return to its start the pixel
was occluded or disoccluded, M is 0 and the current layer is used alone, so nothing
ghosts. Layers are blended premultiplied (colour x alpha, alpha).

:func:`warping_error` and :func:`edge_jitter` measure the result: the engine reports them
and benchmarks/tryon.py compares them with the temporal module on and off.
"""

from __future__ import annotations

import numpy as np


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def warp_by_flow(img: np.ndarray, flow: np.ndarray, grid=None) -> np.ndarray:
    """Sample ``img`` at x + flow(x) (backward warping)."""
    import cv2

    gx, gy = grid if grid is not None else _grid(flow.shape[:2])
    return cv2.remap(
        img, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


class FlowPair:
    """Backward flow t -> t-1 and its forward-backward consistency mask, with DIS."""

    def __init__(self, preset: str = "fast", max_side: int = 320):
        import cv2

        self.max_side, self.min_side = max_side, 192
        presets = {
            "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }
        self._dis = cv2.DISOpticalFlow_create(presets[preset])
        self._grid = None
        self.forward: np.ndarray | None = None
        """Forward flow t-1 -> t of the last call (same grid as the backward flow)."""

    def grid(self, shape):
        shape = tuple(shape[:2])
        if self._grid is None or self._grid[0].shape != tuple(shape):
            self._grid = _grid(shape)
        return self._grid

    @staticmethod
    def _consistent(back, fwd, g, tol0) -> np.ndarray:
        fwd_at = warp_by_flow(fwd, back, g)
        err = ((back + fwd_at) ** 2).sum(-1)
        tol = 0.01 * ((back**2).sum(-1) + (fwd_at**2).sum(-1)) + tol0
        return (err <= tol).astype(np.float32)

    def __call__(self, grey_prev: np.ndarray, grey_cur: np.ndarray):
        """(backward flow H x W x 2, consistency mask H x W float32 0..1).

        Regions larger than ``max_side`` are matched at that size and the flow scaled
        back up: the garment moves with the body, which is smooth at that scale. Regions
        smaller than 192 px (a distant pedestrian) are enlarged to it first, so that DIS's
        8-pixel patches see the body's parts rather than the body and its background.
        """
        import cv2

        h, w = grey_cur.shape
        f = max(1.0, max(h, w) / self.max_side)
        if max(h, w) < self.min_side:  # a small person: DIS patches would span the whole body
            f = max(h, w) / self.min_side
        if f != 1.0:
            size = (max(8, round(w / f)), max(8, round(h / f)))
            interp = cv2.INTER_AREA if f > 1 else cv2.INTER_CUBIC
            a = cv2.resize(grey_prev, size, interpolation=interp)
            b = cv2.resize(grey_cur, size, interpolation=interp)
        else:
            a, b = np.ascontiguousarray(grey_prev), np.ascontiguousarray(grey_cur)
        back = self._dis.calc(b, a, None)
        fwd = self._dis.calc(a, b, None)
        g = self.grid(b.shape)
        tol0 = 0.5 / max(f, 1.0) ** 2
        valid = self._consistent(back, fwd, g, tol0)
        if f != 1.0:
            k = np.float32(w / size[0])
            back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) * k
            fwd = cv2.resize(fwd, (w, h), interpolation=cv2.INTER_LINEAR) * k
            valid = cv2.resize(valid, (w, h), interpolation=cv2.INTER_LINEAR)
        self.forward = fwd
        return back, valid


def _reframe(img: np.ndarray, box_from, box_to) -> np.ndarray:
    """Move an image on box ``box_from`` onto box ``box_to`` (zeros where it did not reach)."""
    fx0, fy0, fx1, fy1 = box_from
    tx0, ty0, tx1, ty1 = box_to
    out = np.zeros((ty1 - ty0, tx1 - tx0) + img.shape[2:], img.dtype)
    x0, y0, x1, y1 = max(fx0, tx0), max(fy0, ty0), min(fx1, tx1), min(fy1, ty1)
    if x1 > x0 and y1 > y0:
        out[y0 - ty0 : y1 - ty0, x0 - tx0 : x1 - tx0] = img[y0 - fy0 : y1 - fy0, x0 - fx0 : x1 - fx0]
    return out


class TemporalBlender:
    """Eq. 5 blending of garment layers along the flow; ``weight`` is w in eq. 5.

    Layers live on a box of the frame (x0, y0, x1, y1) that may change from frame to
    frame; the previous layer is moved onto the current box before it is warped.
    """

    def __init__(self, weight: float = 0.6, preset: str = "fast"):
        self.weight = float(weight)
        self.flow = FlowPair(preset)
        self.prev: tuple[np.ndarray, np.ndarray, tuple] | None = None  # premultiplied rgb, alpha, box

    def reset(self) -> None:
        self.prev = None

    @staticmethod
    def _agreement(
        alpha: np.ndarray, p_alpha: np.ndarray, pre: np.ndarray, p_pre: np.ndarray, band: int = 5
    ) -> np.ndarray:
        """0 where the new layer and the carried one disagree over a wide area, else 1.

        Disagreement is in coverage (alpha) or colour. A thin band of it is edge or
        pattern jitter, which the blend is there to remove; a wide one is the garment
        really moving differently from the source pixels under it (a sleeve turning with
        the arm), where blending would leave a ghost.
        """
        import cv2

        differ = ((np.abs(alpha - p_alpha) > 0.5) | (np.abs(pre - p_pre).max(axis=2) > 80)).astype(np.uint8)
        if not differ.any():
            return np.ones_like(alpha)
        k = np.ones((band, band), np.uint8)
        wide = cv2.morphologyEx(differ, cv2.MORPH_OPEN, k)
        wide = cv2.dilate(wide, k).astype(np.float32)
        return 1.0 - cv2.GaussianBlur(wide, (0, 0), 1.5)

    def previous(self, box) -> tuple[np.ndarray, np.ndarray] | None:
        """The previous output layer (premultiplied rgb, alpha) on ``box``."""
        if self.prev is None:
            return None
        return _reframe(self.prev[0], self.prev[2], box), _reframe(self.prev[1], self.prev[2], box)

    def __call__(
        self,
        rgb: np.ndarray,
        alpha: np.ndarray,
        back: np.ndarray | None,
        valid: np.ndarray | None,
        box=None,
        body: float = 100.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Blend this frame's layer with the previous output; returns (rgb, alpha).

        ``body`` is the person's size in pixels (the shoulder width, or the torso-implied
        one side-on, ``body_size`` of :func:`.tps.body_targets`): disagreements thinner than
        about 5 % of it count as jitter (see :meth:`_agreement`).
        """
        box = box or (0, 0, alpha.shape[1], alpha.shape[0])
        pre = rgb * alpha[:, :, None]
        prev = self.previous(box)
        if prev is not None and back is not None and self.weight > 0:
            g = self.flow.grid(alpha.shape)
            p_pre = warp_by_flow(prev[0], back, g)
            p_alpha = warp_by_flow(prev[1], back, g)
            band = int(np.clip(round(0.05 * body), 1, 3)) * 2 + 1
            m = self.weight * valid * self._agreement(alpha, p_alpha, pre, p_pre, band)
            pre = pre * (1 - m[:, :, None]) + p_pre * m[:, :, None]
            alpha = alpha * (1 - m) + p_alpha * m
        self.prev = (pre.astype(np.float32), alpha.astype(np.float32), box)
        out_rgb = np.where(alpha[:, :, None] > 1e-3, pre / np.maximum(alpha, 1e-3)[:, :, None], rgb)
        return out_rgb.astype(np.float32), alpha.astype(np.float32)


def region_motion(fwd: np.ndarray, weight: np.ndarray) -> np.ndarray | None:
    """Affine motion (2 x 3, frame t-1 -> t) that best explains the flow in a region.

    Weighted least squares over the pixels of the previous garment: one motion for the
    whole garment, so flow noise in plain clothing and the background showing between
    the control points cannot pull parts of the grid astray. Returns None when the
    region is too small to fit.
    """
    ys, xs = np.nonzero(weight > 0.05)
    if len(xs) < 12:
        return None
    if len(xs) > 4000:  # plenty for six parameters
        pick = np.linspace(0, len(xs) - 1, 4000).astype(int)
        ys, xs = ys[pick], xs[pick]
    w = np.sqrt(weight[ys, xs])[:, None]
    X = np.stack([xs, ys, np.ones_like(xs)], 1).astype(np.float64)
    Y = X[:, :2] + fwd[ys, xs].astype(np.float64)
    A, *_ = np.linalg.lstsq(X * w, Y * w, rcond=None)
    return A.T


def warping_error(prev: np.ndarray, cur: np.ndarray, back: np.ndarray, valid: np.ndarray, region: np.ndarray) -> float:
    """Mean flow-compensated L1 (0..255 per channel) between consecutive frames in ``region``."""
    warped = warp_by_flow(prev.astype(np.float32), back)
    sel = (region > 0.5) & (valid > 0.5)
    if not sel.any():
        return float("nan")
    d = np.abs(cur.astype(np.float32) - warped)
    return float(d[sel].mean())


def _edges(alpha: np.ndarray, hem_only: bool) -> np.ndarray:
    import cv2

    m = (alpha > 0.5).astype(np.uint8)
    edge = (m - cv2.erode(m, np.ones((3, 3), np.uint8))) > 0
    h, w = m.shape
    edge[:1], edge[-1:], edge[:, :1], edge[:, -1:] = False, False, False, False
    if hem_only:
        below = np.zeros_like(m)
        below[:-2] = m[2:]
        edge &= below == 0  # garment above, background below: a lower (hem) edge
    return edge


def edge_jitter(
    prev_alpha: np.ndarray, cur_alpha: np.ndarray, back: np.ndarray, valid: np.ndarray, hem_only: bool = True
) -> float:
    """Mean distance (px) from this frame's garment edge to the previous edge carried by flow.

    With ``hem_only`` only lower edges (the hem and sleeve hems) count; if the garment has
    none in view (the hips are out of frame), every edge counts.
    """
    import cv2

    warped = warp_by_flow(prev_alpha.astype(np.float32), back)
    cur_e = _edges(cur_alpha, hem_only) & (valid > 0.5)
    prev_e = _edges(warped, hem_only)
    if hem_only and (cur_e.sum() < 5 or prev_e.sum() < 5):
        cur_e, prev_e = _edges(cur_alpha, False) & (valid > 0.5), _edges(warped, False)
    if cur_e.sum() == 0 or prev_e.sum() == 0:
        return float("nan")
    dist = cv2.distanceTransform((~prev_e).astype(np.uint8), cv2.DIST_L2, 3)
    return float(dist[cur_e].mean())
