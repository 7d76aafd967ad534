"""Quality figures of an avatar against its photo (the benchmark's measures).

* PSNR and SSIM (Wang et al., IEEE TIP 2004; scikit-image) inside the face region - the
  polygon of the detected face-oval landmarks - between the photo and the unlit render of
  the avatar from the photo's camera (the thesis reports 23.15 dB / 0.835 for its system).
* Landmark re-detection: MediaPipe run again on that render (an independent check of
  geometry and texture together), error in % of the inter-ocular distance.
* Robustness: is a face still detected when the head is turned +-30 degrees?
Renders come from the numpy rasteriser (:mod:`engines.avatar.raster`) on a grey background,
supersampled and with a mipmapped texture (:data:`SUPERSAMPLE_PIXELS`), so a small face is
antialiased as the photo's camera pixels are rather than point-sampled from the 2048-texel atlas.
"""

from __future__ import annotations

import numpy as np

from engines.api import EngineError
from engines.avatar.landmarks import FaceLandmarks, detect_landmarks
from engines.avatar.raster import render_textured
from engines.face.common import FACE_OVAL

MAX_RENDER = 1024
SUPERSAMPLE_PIXELS = 4_000_000
"""Renders are drawn at up to 4 x their size, within this many pixels, and area-averaged
down (with a mipmapped texture), so they are antialiased like the photo they are compared
with."""
BACKGROUND = (128, 128, 128)


def _camera(avatar, max_side=MAX_RENDER):
    """(K, R, t, (w, h), scale) of the photo camera, scaled so the longest side is at most ``max_side``."""
    from engines.types import Camera

    cam = Camera.from_dict(avatar.camera)
    s = min(1.0, max_side / max(cam.width, cam.height))
    if s < 1.0:
        cam = cam.scaled(s)
    return cam.K, cam.R, cam.t, cam.image_size, s


def photographed_vertices(avatar) -> np.ndarray:
    """The head with the photo's own expression (the "As photographed" preset): what the
    camera saw, so the render is compared with the photo like for like."""
    from engines.avatar.engine import AS_PHOTOGRAPHED, Deformer

    preset = (getattr(avatar, "presets", None) or {}).get(AS_PHOTOGRAPHED)
    if not preset:
        return avatar.mesh.vertices
    return Deformer(avatar).vertices({}, preset)


def render_from_photo_camera(avatar, vertices=None, yaw_deg: float = 0.0, max_side=MAX_RENDER):
    """(render RGB, mask, scale) of the avatar seen by the photo camera, optionally turned by
    yaw; ``vertices`` default to the photographed expression."""
    K, R, t, size, s = _camera(avatar, max_side)
    V = np.asarray(photographed_vertices(avatar) if vertices is None else vertices, np.float64)
    if yaw_deg:
        sk = getattr(avatar, "skeleton", None)
        if sk is not None and "Head" in sk.names:
            c = sk.positions[sk.names.index("Head")].copy()  # turn about the head's pivot
        else:
            c = V[:468].mean(0)
            c[2] -= 0.05
        a = np.radians(yaw_deg)
        Ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        V = (V - c) @ Ry.T + c
    ss = int(np.clip(np.sqrt(SUPERSAMPLE_PIXELS / float(size[0] * size[1])), 1, 4))
    img, mask = render_textured(
        V,
        avatar.mesh.faces,
        avatar.mesh.uv,
        avatar.mesh.texture,
        K,
        R,
        t,
        size,
        BACKGROUND,
        supersample=ss,
        mipmap=True,
    )
    return img, mask, s


def face_mask(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    m = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillPoly(m, [np.round(xy[FACE_OVAL]).astype(np.int32)], 1)
    return m.astype(bool)


def psnr_ssim(photo: np.ndarray, render: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    from skimage.metrics import structural_similarity

    ys, xs = np.nonzero(region)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    a = photo[y0:y1, x0:x1].astype(np.float64)
    b = render[y0:y1, x0:x1].astype(np.float64)
    m = region[y0:y1, x0:x1]
    mse = float(np.mean((a[m] - b[m]) ** 2))
    psnr = 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)
    _, smap = structural_similarity(a, b, channel_axis=2, data_range=255.0, full=True)
    return float(psnr), float(smap.mean(2)[m].mean())


def measure(avatar, lm: FaceLandmarks) -> dict:
    import cv2

    render, mask, s = render_from_photo_camera(avatar)
    photo = avatar.photo
    if s < 1.0:
        photo = cv2.resize(photo, render.shape[1::-1], interpolation=cv2.INTER_AREA)
    xy = (lm.xy + 0.5) * s - 0.5
    region = face_mask(xy, render.shape[1::-1]) & mask
    out: dict = {}
    if region.sum() > 100:
        out["psnr_face_db"], out["ssim_face"] = psnr_ssim(photo, render, region)
    iod = lm.iod_px * s
    try:
        again = detect_landmarks(render, "the frontal render")
        out["redetect_error_pct_iod"] = float(np.linalg.norm(again.xy[:468] - xy[:468], axis=1).mean() / iod * 100)
    except EngineError:
        out["redetect_error_pct_iod"] = None
    for yaw in (-30, 30):
        img, _, _ = render_from_photo_camera(avatar, yaw_deg=yaw)
        try:
            detect_landmarks(img, f"the {yaw:+d} degree render")
            out[f"detected_yaw{yaw:+d}"] = True
        except EngineError:
            out[f"detected_yaw{yaw:+d}"] = False
    return out
