"""A small software renderer for hair: silhouettes for matching, previews for thumbnails.

Qt- and VTK-free (OpenCV rasterisation), so the engine can render a style from the
photo's camera and the resources script can make thumbnails with no display. The head
is drawn with the painter's algorithm (triangles far to near) into a colour and a depth
image; strands are drawn segment by segment, back to front, and hidden where the head
is nearer. Strand shading follows Kajiya and Kay, "Rendering fur with three dimensional
textures", SIGGRAPH 1989: diffuse = sin(T, L), specular = cos^p of the angle between
the tangent cone and the half vector, which gives hair its anisotropic highlight.

Cameras are dicts like ``Avatar.camera``: ``K`` (3x3), ``R`` (3x3), ``t`` (3,) mapping
world to an OpenCV camera (x right, y down, z forward), ``image_size`` (w, h).
"""

from __future__ import annotations

import numpy as np

from engines.types import Camera


def view_camera(bounds: np.ndarray, view: str = "front", size: int = 256, margin: float = 1.12) -> Camera:
    """A distant, nearly orthographic camera looking at ``bounds`` (2 x 3) from a named side.

    ``view``: front (from +z), back, left (from -x), right (from +x), three_quarter.
    """
    yaw = {"front": 0.0, "back": 180.0, "left": -90.0, "right": 90.0, "three_quarter": 35.0}[view]
    centre = bounds.mean(0)
    a = np.radians(yaw)
    # World -> camera: look along -z of the rotated frame; image y is world -y.
    fwd = np.array([-np.sin(a), 0.0, -np.cos(a)])
    right = np.cross(fwd, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])
    dist = 4.0
    ext = bounds[1] - bounds[0]
    half = 0.5 * max(ext[0], ext[2], ext[1]) * margin
    f = size / 2 / (half / dist)
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    t = -R @ (centre - fwd * dist)
    return Camera(K, R, t, size, size)


def project(points: np.ndarray, cam) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions (N x 2) and camera depths (N) of world points (:meth:`Camera.project`:
    NaN positions behind the camera)."""
    return Camera.from_dict(cam).project(points)


def _wh(cam: dict) -> tuple[int, int]:
    w, h = cam["image_size"]
    return int(w), int(h)


def head_layers(
    vertices: np.ndarray,
    faces: np.ndarray,
    cam: dict,
    light=(0.3, 0.5, 1.0),
    skin=(224, 182, 160),
    vertex_colors: np.ndarray | None = None,
):
    """Shaded head image (RGB uint8), depth image (inf where empty) and mask."""
    import cv2

    w, h = _wh(cam)
    uv, z = project(vertices, cam)
    tri_uv = uv[faces]
    tri_z = z[faces].mean(1)
    v = vertices[faces]
    fn = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12)
    L = np.asarray(light, float)
    L = L / np.linalg.norm(L)
    lam = 0.35 + 0.65 * np.clip((fn @ L), 0, 1)
    if vertex_colors is not None:
        base = vertex_colors[faces][..., :3].mean(1)
    else:
        base = np.tile(np.asarray(skin, float), (len(faces), 1))
    col = np.clip(base * lam[:, None], 0, 255)
    img = np.zeros((h, w, 3), np.uint8)
    depth = np.full((h, w), np.inf, np.float32)
    order = np.argsort(-tri_z)
    pts = np.round(tri_uv * 16).astype(np.int32)
    for i in order:
        cv2.fillConvexPoly(img, pts[i], tuple(int(c) for c in col[i]), cv2.LINE_AA, 4)
        cv2.fillConvexPoly(depth, pts[i], float(tri_z[i]), cv2.LINE_8, 4)
    mask = np.isfinite(depth)
    return img, depth, mask


def _densify(pts: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return pts
    s = np.linspace(0, 1, k, endpoint=False)[None, None, :, None]
    a, b = pts[:, :-1, None], pts[:, 1:, None]
    return (a + (b - a) * s).reshape(len(pts), -1, 3)


def hair_mask(
    strands: np.ndarray, cam: dict, head_depth: np.ndarray | None = None, thickness: int = 2, eps: float = 0.004
) -> np.ndarray:
    """Pixels covered by hair (bool H x W); with ``head_depth`` only hair not hidden by the head."""
    import cv2

    w, h = _wh(cam)
    mask = np.zeros((h, w), np.uint8)
    if len(strands) == 0:
        return mask.astype(bool)
    uv, z = project(strands, cam)
    polys = np.round(uv.reshape(len(strands), -1, 2) * 4).astype(np.int32)
    if head_depth is None:
        cv2.polylines(mask, list(polys), False, 1, thickness, cv2.LINE_8, 2)
        return mask.astype(bool)
    # Depth test per point: densify so that each pixel a strand crosses gets a sample.
    step = np.median(np.linalg.norm(np.diff(uv.reshape(len(strands), -1, 2), axis=1), axis=2))
    dense = _densify(strands, int(np.clip(np.ceil(step / 1.0), 1, 12)))
    duv, dz = project(dense, cam)
    px = np.round(duv).astype(int)
    ok = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    px, dz = px[ok], dz[ok]
    vis = dz < head_depth[px[:, 1], px[:, 0]] + eps
    mask[px[vis, 1], px[vis, 0]] = 1
    if thickness > 1:
        mask = cv2.dilate(mask, np.ones((thickness, thickness), np.uint8))
    return mask.astype(bool)


def render(
    strands: np.ndarray,
    colors: np.ndarray | None,
    cam: dict,
    vertices=None,
    faces=None,
    background=(38, 40, 46),
    skin=(224, 182, 160),
    light=(0.4, 0.6, 1.0),
    vertex_colors=None,
    width: int = 1,
) -> np.ndarray:
    """A shaded preview (RGB uint8) of a head and its strands."""
    import cv2

    w, h = _wh(cam)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = background
    depth = np.full((h, w), np.inf, np.float32)
    if vertices is not None and len(faces):
        himg, depth, hm = head_layers(vertices, faces, cam, light, skin, vertex_colors)
        img[hm] = himg[hm]
    if len(strands) == 0:
        return img
    S, P, _ = strands.shape
    if colors is None:
        colors = np.tile([90, 60, 40], (S, 1))
    uv, z = project(strands, cam)
    uv = uv.reshape(S, P, 2)
    z = z.reshape(S, P)
    # Kajiya-Kay terms per segment, with the light and eye in world space.
    R = np.asarray(cam["R"], float)
    eye = -R[2]
    L = np.asarray(light, float)
    L = L / np.linalg.norm(L)
    T = np.diff(strands, axis=1)
    T = T / np.maximum(np.linalg.norm(T, axis=2, keepdims=True), 1e-12)
    tl = T @ L
    te = T @ eye
    diff = np.sqrt(np.clip(1 - tl**2, 0, 1))
    spec = np.clip(tl * te + diff * np.sqrt(np.clip(1 - te**2, 0, 1)), 0, 1) ** 40
    along = np.linspace(0.55, 1.0, P - 1)[None, :]  # roots sit in the shadow of the hair above
    shade = (0.25 + 0.75 * diff) * along
    base = colors.astype(float)[:, None, :]
    col = np.clip(base * shade[..., None] + 60 * spec[..., None], 0, 255).astype(np.uint8)
    zm = 0.5 * (z[:, 1:] + z[:, :-1])
    mid = np.round(0.5 * (uv[:, 1:] + uv[:, :-1])).astype(int)
    inside = (mid[..., 0] >= 0) & (mid[..., 0] < w) & (mid[..., 1] >= 0) & (mid[..., 1] < h)
    mx, my = np.clip(mid[..., 0], 0, w - 1), np.clip(mid[..., 1], 0, h - 1)
    visible = inside & (zm < depth[my, mx] + 0.003)
    si, pi = np.nonzero(visible)
    order = np.argsort(-zm[si, pi])
    a = np.round(uv[si, pi] * 16).astype(np.int32)[order]
    b = np.round(uv[si, pi + 1] * 16).astype(np.int32)[order]
    cc = col[si, pi][order]
    for j in range(len(order)):
        c = cc[j]
        cv2.line(
            img,
            (int(a[j, 0]), int(a[j, 1])),
            (int(b[j, 0]), int(b[j, 1])),
            (int(c[0]), int(c[1]), int(c[2])),
            width,
            cv2.LINE_AA,
            4,
        )
    return img
