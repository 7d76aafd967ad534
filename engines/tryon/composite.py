"""Putting the warped garment on the person: the classical try-on generator.

The garment layer is the TPS-warped garment (:mod:`.tps`) limited to the person's torso
region: inside the person mask, and under what is in front of the body (the head and
hair around the face, forearms and hands from the pose). Shading is carried over from the
original clothing by a luminance ratio (the quotient-image idea of Shashua and
Riklin-Raviv, PAMI 2001, as used for retexturing by Fang and Hart, SIGGRAPH 2004): local
luminance over large-scale luminance inside the clothing region multiplies the garment,
so folds and light fall-off show through while the original colours do not. Edges are
feathered with a Gaussian.

Hu (2023) uses a U-Net generator trained on VVT at this step. :class:`GarmentGenerator`
is the seam where such a model plugs in: anything with its ``render`` method can replace
:class:`ClassicalGenerator` (the engine takes a ``generator`` argument).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from engines.tryon import person as P


@dataclass
class GarmentLayer:
    """A garment rendered in frame space: ``rgb`` float32 0..255, ``alpha`` float32 0..1.

    ``region`` is the torso region the garment may cover (before occluders), for metrics.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    region: np.ndarray | None = None


@runtime_checkable
class GarmentGenerator(Protocol):
    """Turns a frame, its person and the warped garment into a garment layer.

    ``warped_rgb`` (H x W x 3 float32) and ``warped_mask`` (H x W 0..1) are the garment
    after the TPS warp, in the frame's pixel grid. A learned generator (Hu 2023's U-Net)
    would take the same three inputs and return its try-on output and composition mask
    as a :class:`GarmentLayer`; the temporal module and the compositing stay as they are.
    """

    def render(
        self, frame: np.ndarray, person: "P.PersonFrame", warped_rgb: np.ndarray, warped_mask: np.ndarray
    ) -> GarmentLayer: ...


def _capsule(mask: np.ndarray, a, b, radius: float) -> None:
    import cv2

    a = tuple(int(round(v)) for v in a)
    b = tuple(int(round(v)) for v in b)
    cv2.line(mask, a, b, 1.0, thickness=max(1, int(round(2 * radius))), lineType=cv2.LINE_AA)


def occluders(person: "P.PersonFrame", shape: tuple[int, int]) -> np.ndarray:
    """Parts of the body in front of the garment: head (with hair at the face), forearms, hands."""
    import cv2

    h, w = shape
    occ = np.zeros((h, w), np.float32)
    pts = person.points
    sw = max(float(np.linalg.norm(pts[P.L_SHOULDER] - pts[P.R_SHOULDER])), 4.0)
    # Head: an ellipse from ear to ear, reaching down to the chin.
    ears = [pts[i] for i in (P.L_EAR, P.R_EAR) if person.visibility[i] >= 0.3]
    face_w = float(np.linalg.norm(ears[0] - ears[1])) if len(ears) == 2 else 0.45 * sw
    face_w = float(np.clip(face_w, 0.3 * sw, 0.8 * sw))
    if person.visibility[P.NOSE] >= 0.3:
        mouth = (pts[P.MOUTH_L] + pts[P.MOUTH_R]) / 2
        down = mouth - pts[P.NOSE]
        n = float(np.linalg.norm(down))
        down = down / n if n > 1e-3 else np.array([0.0, 1.0])
        centre = pts[P.NOSE] - down * 0.15 * face_w
        angle = float(np.degrees(np.arctan2(down[1], down[0]))) - 90.0
        cv2.ellipse(
            occ,
            (int(round(centre[0])), int(round(centre[1]))),
            (int(round(0.62 * face_w)), int(round(1.0 * face_w))),
            angle,
            0,
            360,
            1.0,
            -1,
            lineType=cv2.LINE_AA,
        )
    # Forearms and hands, when the pose sees them.
    for el, wr, ix in ((P.L_ELBOW, P.L_WRIST, P.L_INDEX), (P.R_ELBOW, P.R_WRIST, P.R_INDEX)):
        if person.visibility[el] >= 0.5 and person.visibility[wr] >= 0.5:
            _capsule(occ, pts[el], pts[wr], 0.13 * sw)
            if person.visibility[ix] >= 0.3:
                _capsule(occ, pts[wr], pts[ix], 0.11 * sw)
    return occ


def _normalized_blur(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``values`` counting only pixels where ``weight`` is set.

    Wide blurs run on a grid shrunk so that sigma is about 4 px there, then are
    interpolated back: the result is smooth anyway and the cost stays flat.
    """
    import cv2

    h, w = values.shape
    f = max(1, int(sigma / 4))
    if f > 1:
        size = (max(1, w // f), max(1, h // f))
        v = cv2.resize(values * weight, size, interpolation=cv2.INTER_AREA)
        wt = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
        num = cv2.GaussianBlur(v, (0, 0), sigma / f)
        den = cv2.GaussianBlur(wt, (0, 0), sigma / f)
        return cv2.resize(num / np.maximum(den, 1e-4), (w, h), interpolation=cv2.INTER_LINEAR)
    num = cv2.GaussianBlur(values * weight, (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    return num / np.maximum(den, 1e-4)


def shading_ratio(frame: np.ndarray, region: np.ndarray, body_size: float) -> np.ndarray:
    """Shading of the clothing region: local over large-scale luminance, near 1.


    Folds and light fall-off change luminance by tens of percent; the edge between two
    different materials (a white shirt under a dark jacket) by several times. Ratios
    beyond 1.3x either way are therefore taken for a change of material rather than of
    shading and fade back to 1 by 1.8x (and within a few pixels of such an edge), so
    the old clothes' pattern does not print through the new garment.
    """
    import cv2

    lum = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) + 8.0
    wgt = (region > 0.5).astype(np.float32)
    fine = np.log(np.maximum(_normalized_blur(lum, wgt, max(0.8, 0.015 * body_size)), 1.0))
    # Large-scale luminance that keeps material edges: a self-guided filter on log
    # luminance (He et al., "Guided image filtering", ECCV 2010) smooths variations
    # of ~10 % and follows stronger steps, so a white shirt under a dark jacket does
    # not print through as a bright patch. Outside the region it sees a smooth fill.
    sigma = max(3.0, 0.35 * body_size)
    guide = np.where(wgt > 0, fine, _normalized_blur(fine, wgt, sigma)).astype(np.float32)
    coarse = cv2.ximgproc.guidedFilter(guide, guide, max(2, int(sigma)), 0.1**2)
    lr = fine - coarse
    t1, t2 = np.log(1.3), np.log(1.8)
    # A material edge also shows as a band of moderate ratios beside it: widen the
    # rejected area by the fine scale so no outline of the old clothes remains.
    material = (np.abs(lr) > t2).astype(np.uint8)
    r = max(1, int(round(3 * max(0.8, 0.015 * body_size))))
    material = cv2.dilate(material, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    keep = np.clip((t2 - np.abs(lr)) / (t2 - t1), 0.0, 1.0)
    keep *= 1.0 - cv2.GaussianBlur(material.astype(np.float32), (0, 0), r / 2)
    return np.exp(np.clip(lr, -t1, t1) * keep)


class ClassicalGenerator:
    """The try-on without a learned model: mask to the torso, shade, feather."""

    def __init__(self, shading: float = 0.7, feather: float = 1.2):
        self.shading = shading
        self.feather = feather

    def render(self, frame, person, warped_rgb, warped_mask) -> GarmentLayer:
        import cv2

        h, w = frame.shape[:2]
        sw = max(float(np.linalg.norm(person.points[P.L_SHOULDER] - person.points[P.R_SHOULDER])), 4.0)
        body = np.clip((person.mask - 0.3) / 0.4, 0.0, 1.0)
        region = warped_mask * body
        alpha = region * (1.0 - occluders(person, (h, w)))
        rgb = warped_rgb
        if self.shading > 0:
            ratio = shading_ratio(frame, region, sw)
            rgb = np.clip(rgb * (1.0 + self.shading * (ratio - 1.0))[:, :, None], 0, 255)
        if self.feather > 0:
            alpha = cv2.GaussianBlur(alpha, (0, 0), self.feather * max(1.0, sw / 200.0))
        return GarmentLayer(rgb.astype(np.float32), np.clip(alpha, 0, 1).astype(np.float32), region)


def warp_garment(garment, warp, shape: tuple[int, int], sleeves: list[np.ndarray] = (), stride: int = 0):
    """The garment in frame space: (rgb float32 H x W x 3, mask float32 H x W).

    The torso goes through the TPS ``warp``; each sleeve through its 2 x 3 affine
    (``sleeves``, left then right), drawn over the torso where they overlap, as an arm
    hanging in front of the body's side would be.
    """
    import cv2

    h, w = shape
    rgb = np.zeros((h, w, 3), np.float32)
    mask = np.zeros((h, w), np.float32)
    torso = garment.parts.get("torso", garment.mask)
    # The map is smooth: sample it about every 1/100 of the box and interpolate.
    stride = stride or int(np.clip(max(h, w) / 100, 2, 8))
    maps = warp.backward_maps((h, w), stride)
    if maps is not None:
        mx, my, (x0, y0) = maps
        bh, bw = mx.shape
        rgb[y0 : y0 + bh, x0 : x0 + bw] = cv2.remap(
            garment.rgb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ).astype(np.float32)
        mask[y0 : y0 + bh, x0 : x0 + bw] = cv2.remap(
            torso.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
    for side, A in zip(("left", "right"), sleeves):
        part = garment.parts.get(f"sleeve_{side}")
        if part is None or not part.any():
            continue
        m = cv2.warpAffine(
            part.astype(np.float32), A, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        if not m.any():
            continue
        c = cv2.warpAffine(garment.rgb, A, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(
            np.float32
        )
        rgb = rgb * (1 - m[:, :, None]) + c * m[:, :, None]
        mask = np.maximum(mask, m)
    return rgb, mask


def composite(frame: np.ndarray, layer: GarmentLayer) -> np.ndarray:
    """Alpha-blend the layer over the frame; pixels with alpha 0 are left untouched.

    OpenCV's per-pixel weighted blend keeps a weight-0 pixel's value exactly and runs
    in 8-bit SIMD, which matters when a 4K frame is composited.
    """
    import cv2

    # Below alpha 1e-3 the blend moves a pixel by under 0.26 levels: it rounds back exactly.
    a = np.clip(np.ascontiguousarray(layer.alpha, dtype=np.float32), 0.0, 1.0)
    rgb = layer.rgb if layer.rgb.dtype == np.uint8 else np.clip(layer.rgb + 0.5, 0, 255).astype(np.uint8)
    return cv2.blendLinear(np.ascontiguousarray(rgb), np.ascontiguousarray(frame), a, 1.0 - a)
