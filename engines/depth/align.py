"""Alignment of focal-stack frames to a reference frame.

Focusing nearer moves the lens and magnifies the image slightly ("focus breathing"); a
hand-held stack also shifts. Each frame is registered to its neighbour nearer the
reference with the ECC algorithm (Evangelidis and Psarakis, "Parametric image alignment
using enhanced correlation coefficient maximization", PAMI 2008) under an affine model,
on a reduced copy, and the transforms are chained to the reference, as focus-stacking
tools do (neighbours differ least in blur). The residual misalignment is then measured
independently by phase correlation (Kuglin and Hines 1975) between aligned neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engines.api import EngineError


@dataclass
class Alignment:
    """``warps[i]`` (3 x 3) maps reference pixel coordinates to frame ``i`` coordinates."""

    warps: list[np.ndarray]
    correlation: list[float]
    residual_px: float
    max_correction_px: float
    skipped: bool = False
    notes: list[str] = field(default_factory=list)

    def rescaled(self, factor: float) -> "Alignment":
        """The same alignment for images ``factor`` times the size of the aligned ones."""
        S = np.diag([1.0 / factor, 1.0 / factor, 1.0])
        Sinv = np.diag([factor, factor, 1.0])
        return Alignment(
            [Sinv @ M @ S for M in self.warps],
            list(self.correlation),
            self.residual_px * factor,
            self.max_correction_px * factor,
            self.skipped,
            list(self.notes),
        )

    def warp(self, image: np.ndarray, index: int, cubic: bool = False) -> np.ndarray:
        """An image in frame ``index``'s grid (the frame, or its focus measure) resampled into
        the reference grid. Bilinear by default; ``cubic`` blurs fine detail less."""
        import cv2

        M = self.warps[index]
        if np.allclose(M, np.eye(3), atol=1e-9):
            return image
        h, w = image.shape[:2]
        flags = (cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
        return cv2.warpAffine(image, M[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _small_gray(frame: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    from engines.depth.focus import to_gray

    g = to_gray(frame)
    if scale != 1.0:
        g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return g


def texture_level(gray: np.ndarray) -> float:
    """Standard deviation of the image after smoothing away pixel noise (0..1 units)."""
    import cv2

    return float(cv2.GaussianBlur(gray, (0, 0), 2.0).std())


def _displacement(M: np.ndarray, w: int, h: int) -> float:
    """Largest displacement (pixels) the warp applies at the image corners."""
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64).T
    return float(np.abs((M @ corners)[:2] - corners[:2]).max())


def align_stack(
    frames: list[np.ndarray],
    reference: int = 0,
    max_side: int = 256,
    min_correlation: float = 0.6,
    names: list[str] | None = None,
    texture_floor: float = 0.004,
) -> Alignment:
    """Estimate the warps that bring every frame onto ``frames[reference]``.

    Raises EngineError naming the frame when a neighbour pair cannot be registered (ECC
    does not converge, the correlation stays below ``min_correlation``, or the warp is
    implausible for a focal stack: more than 15 % zoom, 10 degrees or 20 % of the width).
    A stack without texture cannot be registered and needs none: it is left as it is.
    """
    import cv2

    n = len(frames)
    h, w = frames[0].shape[:2]
    names = names or [f"frame {i + 1}" for i in range(n)]
    scale = min(1.0, max_side / max(h, w))
    small = [_small_gray(f, scale) for f in frames]
    eye = [np.eye(3) for _ in range(n)]
    if max(texture_level(g) for g in small) < texture_floor:
        return Alignment(
            eye,
            [1.0] * n,
            0.0,
            0.0,
            skipped=True,
            notes=["The frames show almost no texture, so they were not aligned."],
        )
    S = np.diag([scale, scale, 1.0])
    Sinv = np.diag([1.0 / scale, 1.0 / scale, 1.0])
    warps_small = [np.eye(3) for _ in range(n)]
    corr = [1.0] * n
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-5)
    order = [(i, i - 1) for i in range(reference + 1, n)] + [(i, i + 1) for i in range(reference - 1, -1, -1)]
    prev_step = {}
    for i, j in order:
        direction = i > reference
        guess = prev_step.get(direction, np.eye(3))
        warp = guess[:2].astype(np.float32).copy()
        try:
            cc, warp = cv2.findTransformECC(small[j], small[i], warp, cv2.MOTION_AFFINE, criteria, None, 5)
        except cv2.error:
            cc = -1.0
        step = np.vstack([warp, [0, 0, 1]]).astype(np.float64)
        A = step[:2, :2]
        zoom = np.sqrt(abs(np.linalg.det(A))) if np.all(np.isfinite(A)) else np.inf
        angle = abs(np.degrees(np.arctan2(A[1, 0] - A[0, 1], A[0, 0] + A[1, 1])))
        shift = np.abs(step[:2, 2]).max() / scale
        if not (cc >= min_correlation and abs(zoom - 1) < 0.15 and angle < 10 and shift < 0.2 * w):
            why = "they do not match" if cc < min_correlation else "the motion between them is too large"
            raise EngineError(
                f"Cannot align {names[i]} to {names[j]} ({why}; correlation {max(cc, 0):.2f}): "
                "a focal stack must show the same scene from the same place; remove frames "
                "of another scene or retake the stack on a tripod."
            )
        corr[i] = float(cc)
        prev_step[direction] = step
        warps_small[i] = step @ warps_small[j]
    warps = [Sinv @ M @ S for M in warps_small]
    max_corr = max(_displacement(M, w, h) for M in warps)
    # Residual: remaining shift between aligned neighbours, by phase correlation.
    aligned = []
    hs, ws = small[0].shape
    for i in range(n):
        M = warps_small[i]
        aligned.append(
            small[i]
            if i == reference
            else cv2.warpAffine(
                small[i],
                M[:2].astype(np.float32),
                (ws, hs),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
        )
    win = cv2.createHanningWindow((ws, hs), cv2.CV_32F)
    resid = 0.0
    for i in range(n - 1):
        (dx, dy), _ = cv2.phaseCorrelate(aligned[i], aligned[i + 1], win)
        resid = max(resid, float(np.hypot(dx, dy)) / scale)
    return Alignment(warps, corr, resid, max_corr)
