"""Thin-lens focal stacks synthesised from an RGB-D image.

HybridDepth (Ganj, Su, Guo) trains and evaluates depth from focus on focal stacks
rendered from NYU Depth v2 RGB-D frames with a thin-lens model; this module does the
same, with what real cameras add on top:

* **Circle of confusion** per depth from the thin-lens equation: for a lens of focal
  length ``f`` and f-number ``N`` focused at ``s``, a point at depth ``d`` is imaged as a
  disc of diameter ``c = f^2 / (N (s - f)) * |d - s| / d`` on the sensor.
* **Layered rendering** (as in the layered depth-of-field renderers of Kraus & Strengert,
  "Depth-of-field rendering by pyramidal image processing", 2007, and Barron et al.,
  "Fast bilateral-space stereo for synthetic defocus", 2015): the scene is cut into
  layers of equal inverse-depth thickness, each layer is blurred with its own disc kernel
  as premultiplied colour and coverage, and layers are composited far to near, so blur
  never leaks from the background over a sharp foreground edge.
* **Focus breathing**: focusing nearer moves the lens away from the sensor and
  magnifies the image slightly; the magnification is linear in dioptres (``v ~ f +
  f^2/s``). ``breathing`` is the total magnification change across the stack.
* **Sensor noise**: Gaussian read noise plus photon (shot) noise, then 8-bit quantisation.

``make_focal_stack`` returns a :class:`engines.types.FocalStack` (nearest focus first,
intrinsics from the lens and sensor), ``write_focal_stack`` writes it as JPEG/PNG files
with a ``focus.json`` sidecar, and ``plane_scene`` builds a procedural RGB-D scene of
textured planes with exactly known depth for tests and the benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engines.types import FocalStack


def circle_of_confusion_px(depth_m, focus_m, f_mm, f_number, sensor_width_mm, width_px):
    """Blur-disc diameter in pixels for points at ``depth_m`` with the lens focused at ``focus_m``."""
    f = f_mm / 1000.0
    d = np.asarray(depth_m, dtype=np.float64)
    c_m = (f * f) / (f_number * max(focus_m - f, 1e-6)) * np.abs(d - focus_m) / np.maximum(d, 1e-6)
    return c_m * 1000.0 * width_px / sensor_width_mm


def disc_kernel(diameter_px: float) -> np.ndarray:
    """A normalised pillbox kernel: the pixel-area coverage of a blur disc (8 x 8 samples a pixel).

    Below 2.5 px the disc is replaced by a Gaussian of the same second moment (sigma = c/4)
    integrated over each pixel, so that sub-pixel defocus still changes the image smoothly
    with the focus distance, as it does in a camera whose optics resolve finer than a pixel.
    """
    from scipy.special import erf

    c = max(float(diameter_px), 0.0)
    if c < 2.5:
        sigma = max(c / 4.0, 1e-3)
        edges = (np.arange(-3, 5) - 0.5) / (sigma * np.sqrt(2.0))  # cells centred on -3..3
        g = np.diff(0.5 * (1.0 + erf(edges)))
        k = np.outer(g, g).astype(np.float32)
        return k / k.sum()
    r = c / 2.0
    n = int(np.ceil(r + 0.5))
    sub = (np.arange(8) + 0.5) / 8.0 - 0.5
    y, x = np.mgrid[-n : n + 1, -n : n + 1]
    yy = y[..., None, None] + sub[:, None]
    xx = x[..., None, None] + sub[None, :]
    k = ((xx * xx + yy * yy) <= r * r).mean(axis=(2, 3)).astype(np.float32)
    return k / k.sum()


def _fill_invalid(depth: np.ndarray) -> np.ndarray:
    """Replace NaN/inf/non-positive depth by the nearest valid value."""
    ok = np.isfinite(depth) & (depth > 0)
    if ok.all():
        return depth.astype(np.float64)
    if not ok.any():
        raise ValueError("depth_m has no valid (finite, positive) value")
    from scipy.ndimage import distance_transform_edt

    _, (iy, ix) = distance_transform_edt(~ok, return_indices=True)
    return depth[iy, ix].astype(np.float64)


def render_defocus(
    rgb: np.ndarray,
    depth_m: np.ndarray,
    focus_m: float,
    f_mm: float,
    f_number: float,
    sensor_width_mm: float,
    layers: int = 32,
) -> np.ndarray:
    """One thin-lens defocused image (float32 RGB in 0..1) by layered compositing."""
    import cv2

    h, w = depth_m.shape
    img = rgb[..., :3].astype(np.float32) / (65535.0 if rgb.dtype == np.uint16 else 255.0)
    inv = 1.0 / depth_m
    lo, hi = float(inv.min()), float(inv.max())
    edges = np.linspace(lo, hi, layers + 1) if hi > lo else np.array([lo * 0.999, lo * 1.001])
    label = np.clip(np.searchsorted(edges, inv, side="right") - 1, 0, len(edges) - 2)
    colour = np.zeros((h, w, 3), np.float32)
    cover = np.zeros((h, w), np.float32)
    for layer in range(len(edges) - 1):  # small inverse depth = far: composite far to near
        mask = (label == layer).astype(np.float32)
        if not mask.any():
            continue
        d_layer = 1.0 / (0.5 * (edges[layer] + edges[layer + 1]))
        coc = float(circle_of_confusion_px(d_layer, focus_m, f_mm, f_number, sensor_width_mm, w))
        premult = np.dstack([img * mask[..., None], mask])
        if coc > 0.05:
            premult = cv2.filter2D(premult, -1, disc_kernel(coc), borderType=cv2.BORDER_REFLECT)
        a = premult[..., 3]
        colour = premult[..., :3] + (1.0 - a)[..., None] * colour
        cover = a + (1.0 - a) * cover
    return colour / np.maximum(cover, 1e-6)[..., None]


def breathing_scales(focus_distances, breathing: float) -> np.ndarray:
    """Magnification of each frame relative to the nearest-focus frame (linear in dioptres)."""
    dpt = 1.0 / np.asarray(focus_distances, dtype=np.float64)
    span = dpt.max() - dpt.min()
    if span <= 0:
        return np.ones_like(dpt)
    return 1.0 - breathing * (dpt.max() - dpt) / span


def make_focal_stack(
    rgb: np.ndarray,
    depth_m: np.ndarray,
    focus_distances,
    f_mm: float = 50.0,
    f_number: float = 1.8,
    sensor_width_mm: float = 36.0,
    noise_sigma: float = 0.01,
    breathing: float = 0.01,
    seed: int = 0,
    layers: int = 32,
    shot_noise: float = 0.0,
) -> FocalStack:
    """Render a focal stack of ``rgb`` (H x W x 3) with depth ``depth_m`` (metres).

    ``focus_distances`` in metres (any order; returned nearest first); ``noise_sigma``
    is the Gaussian read-noise standard deviation as a fraction of full scale;
    ``shot_noise`` the photon-noise variance per unit signal; ``breathing`` the total
    magnification change from the nearest to the farthest focus (0.01 = 1 %).
    Invalid depth (NaN, inf, <= 0) is filled from the nearest valid pixel.
    """
    import cv2

    if rgb.shape[:2] != depth_m.shape[:2]:
        raise ValueError(f"rgb {rgb.shape[:2]} and depth {depth_m.shape[:2]} differ in size")
    dist = np.sort(np.asarray(focus_distances, dtype=np.float64))
    if len(dist) < 1 or np.any(dist <= f_mm / 1000.0):
        raise ValueError("focus distances must be beyond the focal length")
    depth = _fill_invalid(np.asarray(depth_m, dtype=np.float64))
    h, w = depth.shape
    rng = np.random.default_rng(seed)
    scales = breathing_scales(dist, breathing)
    frames = []
    for s, m in zip(dist, scales):
        img = render_defocus(rgb, depth, s, f_mm, f_number, sensor_width_mm, layers)
        if m != 1.0:
            c = ((w - 1) / 2.0, (h - 1) / 2.0)
            A = cv2.getRotationMatrix2D(c, 0.0, float(m))
            img = cv2.warpAffine(img, A, (w, h), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT)
        var = noise_sigma**2 + shot_noise * np.clip(img, 0, 1)
        img = img + rng.standard_normal(img.shape).astype(np.float32) * np.sqrt(var).astype(np.float32)
        frames.append(np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8))
    fx = f_mm * w / sensor_width_mm
    K = np.array([[fx, 0, (w - 1) / 2.0], [0, fx, (h - 1) / 2.0], [0, 0, 1]], np.float64)
    exif = {"FocalLength": f_mm, "FNumber": f_number, "SensorWidthMM": sensor_width_mm}
    notes = [
        f"Synthetic thin-lens stack: {len(dist)} frames, {f_mm:g} mm f/{f_number:g}, "
        f"noise sigma {noise_sigma:g}, breathing {breathing * 100:g} %."
    ]
    return FocalStack(frames, dist, intrinsics=K, exif=exif, notes=notes)


def write_focal_stack(stack: FocalStack, folder, ext: str = ".jpg", quality: int = 95) -> list[Path]:
    """Write ``stack`` as ``frame_<i>_<metres>.<ext>`` files plus a ``focus.json`` sidecar.

    ``focus.json`` lists the file names (``"files"``) and their focus distances in metres
    (``"focus_distances"``, same order), the form :mod:`engines.io.focalstack` reads, and
    records the intrinsics and lens when known. Returns the paths.
    """
    from PIL import Image as PILImage

    from engines.io import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written, names, dists = [], [], []
    for i, (frame, dist) in enumerate(zip(stack.frames, stack.focus_distances)):
        name = f"frame_{i:02d}_{float(dist):.3f}{ext}"
        path = folder / name
        with atomic_path(path) as tmp:
            opts = {"quality": quality} if ext.lower() in (".jpg", ".jpeg") else {}
            PILImage.fromarray(frame).save(tmp, format="JPEG" if ext.lower() in (".jpg", ".jpeg") else "PNG", **opts)
        names.append(name)
        dists.append(round(float(dist), 6))
        written.append(path)
    meta = {"files": names, "focus_distances": dists, "units": "m"}
    if stack.intrinsics is not None:
        meta["intrinsics"] = np.asarray(stack.intrinsics).tolist()
    meta.update({k: v for k, v in stack.exif.items() if isinstance(v, (int, float, str))})
    with atomic_path(folder / "focus.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    written.append(folder / "focus.json")
    return written


def _texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Colour texture with a natural 1/f amplitude spectrum: equal-weight octaves of
    interpolated noise from 1 px to 32 px cells (Field, "Relations between the statistics
    of natural images...", JOSA A 1987)."""
    import cv2

    out = np.zeros((h, w, 3), np.float32)
    for octave in range(6):
        cell = 2**octave
        small = rng.random((h // cell + 2, w // cell + 2, 3)).astype(np.float32)
        up = cv2.resize(small, ((w // cell + 2) * cell, (h // cell + 2) * cell), interpolation=cv2.INTER_LINEAR)
        out += up[:h, :w]
    out -= out.min()
    return out / max(out.max(), 1e-6)


def _raycast_planes(
    rays: np.ndarray, planes: list, t_min: float, z_max: float, background: float
) -> tuple[np.ndarray, np.ndarray]:
    """Depth (z) of the nearest plane along each ray and its index (-1 = background).

    ``planes`` holds ``(normal, offset, box)`` with ``normal . X = offset``; ``box`` limits
    a plane to ``x0 <= X <= x1, y0 <= Y <= y1`` (None = unbounded)."""
    depth = np.full(rays.shape[:2], np.inf)
    which = np.full(rays.shape[:2], -1)
    for i, (n, c, box) in enumerate(planes):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = c / np.where(np.abs(rays @ n) > 1e-9, rays @ n, np.nan)
        P = rays * t[..., None]
        ok = np.isfinite(t) & (t > t_min) & (P[..., 2] < z_max)
        if box is not None:
            x0, x1, y0, y1 = box
            ok &= (P[..., 0] >= x0) & (P[..., 0] <= x1) & (P[..., 1] >= y0) & (P[..., 1] <= y1)
        closer = ok & (P[..., 2] < depth)
        depth[closer] = P[..., 2][closer]
        which[closer] = i
    return np.where(np.isfinite(depth), depth, background), which


def plane_scene(
    width: int = 370,
    height: int = 250,
    seed: int = 0,
    fx: float | None = None,
    textures: list[np.ndarray] | None = None,
):
    """A procedural scene of textured planes with exactly known depth.

    A slanted back wall (about 4-5 m), a floor, and two slanted cards at about 2.2 m and
    3 m, ray-cast through a pinhole. Returns ``(rgb uint8, depth float64 metres, K)``.
    ``textures`` (H x W x 3 uint8 images) replace the procedural noise textures when given.
    """
    rng = np.random.default_rng(seed)
    fx = fx or 1.35 * width
    K = np.array([[fx, 0, (width - 1) / 2.0], [0, fx, (height - 1) / 2.0], [0, 0, 1]])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([(xs - K[0, 2]) / fx, (ys - K[1, 2]) / fx, np.ones_like(xs)], -1)
    # Planes n.X = c (camera frame, y down); each with a rectangular extent in (x, y).
    planes = [
        (np.array([0.15, 0.0, 1.0]), 4.6, None),  # back wall, slanted
        (np.array([0.0, -1.0, -0.25]), -0.9, None),  # floor, 0.9 m below
        (np.array([-0.3, 0.0, 1.0]), 3.0, (-0.9, -0.2, -0.6, 0.3)),  # card at ~3 m
        (np.array([0.25, 0.1, 1.0]), 2.2, (0.1, 0.5, -0.35, 0.25)),  # card at ~2.2 m
    ]
    depth, which = _raycast_planes(rays, planes, t_min=0.3, z_max=np.inf, background=6.0)
    rgb = np.zeros((height, width, 3), np.float32)
    import cv2

    for i in range(len(planes)):
        if textures is not None:
            tex = cv2.resize(textures[i % len(textures)], (width, height)).astype(np.float32) / 255.0
        else:
            tex = _texture(height, width, rng)
            tex = 0.25 + 0.6 * tex * rng.uniform(0.6, 1.0, 3).astype(np.float32)
        rgb[which == i] = tex[which == i]
    return np.clip(rgb * 255, 0, 255).astype(np.uint8), depth, K


def rgbd_from_disparity(
    rgb: np.ndarray,
    disparity: np.ndarray,
    focal_px: float,
    baseline_m: float,
    doffs_px: float = 0.0,
    width: int | None = None,
):
    """RGB-D from a stereo disparity map (Middlebury convention: ``Z = f B / (d + doffs)``).

    Unknown disparities (NaN, inf) become NaN depth. With ``width`` the pair is resized
    (area-averaged colour, nearest-neighbour depth so no depth is invented across edges)
    and the intrinsics scaled. Returns ``(rgb uint8, depth float32 metres, K)``.
    """
    import cv2

    h, w = disparity.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = (focal_px * baseline_m / (disparity + doffs_px)).astype(np.float32)
    depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    K = np.array([[focal_px, 0, (w - 1) / 2.0], [0, focal_px, (h - 1) / 2.0], [0, 0, 1]])
    rgb = np.ascontiguousarray(rgb[..., :3])
    if width and width != w:
        s = width / w
        size = (int(width), int(round(h * s)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        depth = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
        K = K.copy()
        K[0, 0] *= s
        K[1, 1] *= s
        K[0, 2], K[1, 2] = (size[0] - 1) / 2.0, (size[1] - 1) / 2.0
    return rgb, depth, K


def _pattern(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """One random surface texture (float32 RGB, 0..1): 1/f noise, stripes, a checkerboard
    or weak texture on a flat colour, tinted with a random colour."""
    import cv2

    kind = rng.integers(0, 4)
    base = rng.uniform(0.2, 0.8, 3).astype(np.float32)
    if kind == 0:
        t = _texture(h, w, rng)
        amp = rng.uniform(0.3, 0.8)
    elif kind == 1:
        ang, period = rng.uniform(0, np.pi), rng.uniform(4, 24)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        s = np.sin((xs * np.cos(ang) + ys * np.sin(ang)) * 2 * np.pi / period)
        t = np.repeat((0.5 + 0.5 * s)[..., None], 3, 2)
        amp = rng.uniform(0.2, 0.5)
    elif kind == 2:
        cell = int(rng.integers(4, 20))
        ys, xs = np.mgrid[0:h, 0:w]
        t = np.repeat((((ys // cell) + (xs // cell)) % 2).astype(np.float32)[..., None], 3, 2)
        t = cv2.GaussianBlur(t, (0, 0), 0.7)
        amp = rng.uniform(0.2, 0.5)
    else:
        t = _texture(h, w, rng)
        amp = rng.uniform(0.03, 0.1)  # weak texture: hard for depth from focus
    return np.clip(base + amp * (t - 0.5) * rng.uniform(0.6, 1.4, 3).astype(np.float32), 0, 1)


def random_plane_scene(width: int = 320, height: int = 224, seed: int = 0):
    """A random procedural scene of planes, for held-out validation (unlike :func:`plane_scene`,
    whose layout is fixed): a back wall at 3.5-6 m with a random slant, optionally a floor,
    and 2-5 rectangular cards at 1.2-4.5 m with random slants, sizes and textures (1/f noise,
    stripes, checkerboards, weak texture); some cards share the wall's colour statistics, so
    colour alone does not separate them. Returns ``(rgb uint8, depth float64 metres, K)``."""
    rng = np.random.default_rng(seed)
    fx = rng.uniform(1.0, 1.6) * width
    K = np.array([[fx, 0, (width - 1) / 2.0], [0, fx, (height - 1) / 2.0], [0, 0, 1]])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([(xs - K[0, 2]) / fx, (ys - K[1, 2]) / fx, np.ones_like(xs)], -1)
    hx, hy = 0.5 * width / fx, 0.5 * height / fx  # half field of view at z = 1
    planes = [(np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2), 1.0]), rng.uniform(3.5, 6.0), None)]
    if rng.random() < 0.6:
        planes.append((np.array([0.0, -1.0, -rng.uniform(0.1, 0.35)]), -rng.uniform(0.6, 1.2), None))
    for _ in range(int(rng.integers(2, 6))):
        z = rng.uniform(1.2, 4.5)
        cx, cy = rng.uniform(-hx, hx) * z, rng.uniform(-hy, hy) * z
        sx, sy = rng.uniform(0.15, 0.6) * hx * z, rng.uniform(0.15, 0.6) * hy * z
        n = np.array([rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3), 1.0])
        planes.append((n, float(n @ np.array([cx, cy, z])), (cx - sx, cx + sx, cy - sy, cy + sy)))
    depth, which = _raycast_planes(rays, planes, t_min=0.5, z_max=8.0, background=8.0)
    rgb = np.zeros((height, width, 3), np.float32)
    wall = _pattern(height, width, rng)
    for i in range(len(planes)):
        same = i >= 2 and rng.random() < 0.3  # a card with the wall's look
        tex = _pattern(height, width, rng) if not same else np.roll(wall, int(rng.integers(20, 80)), axis=1)
        rgb[which == i] = (wall if i == 0 else tex)[which == i]
    return np.clip(rgb * 255, 0, 255).astype(np.uint8), depth, K
