"""Synthetic multi-view scenes with known cameras (for the multi-view tests and
benchmarks/multiview.py), and a test that the renders match their cameras.

A mesh is rendered off-screen by pyvista (VTK) without lighting, coloured by a 3D
procedural high-frequency texture so that SIFT features match and stereo has texture.
Cameras orbit the object on two rings; poses are returned in the OpenCV convention
(x_cam = R x_world + t; x right, y down, z forward).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data" / "multiview"
BUNNY = DATA / "bunny_8k.ply"


def load_mesh(path=BUNNY):
    """(vertices, faces) of a PLY mesh, through pyvista (tests only)."""
    import pyvista as pv

    m = pv.read(str(path)).triangulate()
    return np.asarray(m.points, np.float64), np.asarray(m.faces).reshape(-1, 4)[:, 1:]


def solid_texture(p: np.ndarray, scale: float, seed: int = 3) -> np.ndarray:
    """RGB uint8 from a sum of random 3D waves: blotchy, high-frequency, view-independent."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(p), 3))
    for c in range(3):
        k = rng.normal(size=(24, 3))
        k /= np.linalg.norm(k, axis=1, keepdims=True)
        k *= rng.uniform(8, 40, size=(24, 1)) * 2 * np.pi / scale
        ph = rng.uniform(0, 2 * np.pi, 24)
        out[:, c] = np.sin(p @ k.T + ph).sum(1)
    out = (out - out.mean(0)) / (out.std(0) + 1e-9)
    return np.clip(128 + 90 * np.tanh(out), 0, 255).astype(np.uint8)


def orbit_cameras(
    n: int, size: tuple[int, int], radius: float, fov_deg: float = 40.0, center=(0.0, 0.0, 0.0), elevations=(20.0, 40.0)
):
    """K, R (n,3,3), t (n,3) for n cameras on rings around ``center`` (y up)."""
    w, h = size
    f = 0.5 * h / np.tan(np.radians(fov_deg) / 2)
    K = np.array([[f, 0, w / 2 - 0.5], [0, f, h / 2 - 0.5], [0, 0, 1]])
    Rs, ts, Cs = [], [], []
    center = np.asarray(center, float)
    for i in range(n):
        el = np.radians(elevations[i % len(elevations)])
        az = 2 * np.pi * i / n
        c = center + radius * np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
        z = center - c
        z /= np.linalg.norm(z)
        x = np.cross(z, [0, 1, 0])
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        Rs.append(R)
        ts.append(-R @ c)
        Cs.append(c)
    return np.repeat(K[None], n, 0), np.array(Rs), np.array(ts)


def render_views(vertices, faces, K, R, t, size, subdivide: int = 2, background=(0, 0, 0)):
    """Render RGB uint8 images of the textured mesh from each camera (pyvista off-screen)."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import pyvista as pv

    w, h = size
    mesh = pv.PolyData(vertices, np.hstack([np.full((len(faces), 1), 3), faces]).astype(np.int64))
    if subdivide:
        mesh = mesh.subdivide(subdivide, "linear")
    scale = float(np.linalg.norm(np.ptp(vertices, axis=0)))
    mesh["rgb"] = solid_texture(np.asarray(mesh.points), scale)
    pl = pv.Plotter(off_screen=True, window_size=(w, h))
    pl.background_color = background
    pl.add_mesh(mesh, scalars="rgb", rgb=True, lighting=False, interpolate_before_map=True)
    images = []
    for Ki, Ri, ti in zip(K, R, t):
        c = -Ri.T @ ti
        fy = Ki[1, 1]
        cam = pl.camera
        cam.position = c
        cam.focal_point = c + Ri[2]
        cam.up = -Ri[1]
        cam.view_angle = float(np.degrees(2 * np.arctan(0.5 * h / fy)))
        pl.camera.clipping_range = (0.01, 100.0)
        pl.camera_set = True  # else the first render resets the camera to fit the scene
        pl.render()
        images.append(np.asarray(pl.screenshot(return_img=True))[:, :, :3].copy())
    pl.close()
    return images


def bunny_scene(n: int = 24, size=(320, 240), radius: float = 1.3):
    """Render the bunny scene: dict with images, K, R, t, vertices, faces, scene_size."""
    v, f = load_mesh()
    K, R, t = orbit_cameras(n, size, radius)
    imgs = render_views(v, f, K, R, t, size)
    return dict(
        images=imgs, K=K, R=R, t=t, vertices=v, faces=f, scene_size=float(np.linalg.norm(np.ptp(v, axis=0))), size=size
    )


def write_scene(scene, folder: Path) -> list[Path]:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(scene["images"]):
        p = folder / f"view_{i:03d}.png"
        cv2.imwrite(str(p), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
        paths.append(p)
    return paths


def project(K, R, t, X):
    x = (R @ X.T).T + t
    uv = (K @ x.T).T
    return uv[:, :2] / uv[:, 2:3], x[:, 2]


@pytest.mark.gui
def test_render_matches_cameras():
    """Rendered object pixels and projected vertices agree: the camera conversion is right."""
    s = bunny_scene(n=4)
    for img, K, R, t in zip(s["images"], s["K"], s["R"], s["t"]):
        fg = img.max(axis=2) > 0
        uv, z = project(K, R, t, s["vertices"])
        assert (z > 0).all()
        u, v = np.round(uv).astype(int).T
        inside = (u >= 0) & (u < img.shape[1]) & (v >= 0) & (v < img.shape[0])
        assert inside.all()
        # nearly all projected vertices land on (or 1 px beside) object pixels
        import cv2

        near = cv2.dilate(fg.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert near[v, u].mean() > 0.99
        # and the object fills a sensible part of the image
        assert 0.05 < fg.mean() < 0.6
        # texture is high-frequency: strong gradients inside the object
        g = np.abs(np.diff(img.astype(float).mean(2), axis=1))[fg[:, 1:] & fg[:, :-1]]
        assert np.percentile(g, 75) > 5
