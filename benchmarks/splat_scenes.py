"""Rendered scenes with known cameras for the splat benchmark (and its tests): a real scanned
mesh (the Stanford bunny, coloured by a procedural solid texture as in the multiview tests)
standing on a floor textured with a real photo texture (scikit-image's gravel, tinted),
rendered off-screen by pyvista without lighting from cameras on two rings, plus an orbit
video of the same scene.

Cameras follow OpenCV (x_cam = R x + t; x right, y down, z forward), +Y up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def floor_texture(size: int = 512) -> np.ndarray:
    """RGB uint8: scikit-image's gravel photo, tinted warm to cool across the floor."""
    from skimage import data

    g = data.gravel().astype(np.float32) / 255.0
    if g.shape[0] != size:
        import cv2

        g = cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA)
    u = np.linspace(0, 1, size, dtype=np.float32)[None, :, None]
    tint = (1 - u) * np.array([1.0, 0.8, 0.55], np.float32) + u * np.array([0.55, 0.75, 1.0], np.float32)
    return np.clip(255 * (0.15 + 0.85 * g[:, :, None]) * tint, 0, 255).astype(np.uint8)


def orbit_cameras(
    n: int,
    size: tuple[int, int],
    radius: float,
    center,
    fov_deg: float = 45.0,
    elevations=(18.0, 38.0),
    phase: float = 0.0,
):
    from tests.test_multiview_scenes import orbit_cameras as rings

    K, R, t = rings(n, size, radius, fov_deg, center, elevations)
    if phase:
        a = phase
        Q = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        c = np.asarray(center, float)
        C = -np.einsum("nji,nj->ni", R, t)
        C = (C - c) @ Q.T + c
        R = R @ Q.T
        t = -np.einsum("nij,nj->ni", R, C)
    return K, R, t


def bunny_on_floor(views: int = 40, size=(400, 300), distance: float = 1.6, subdivide: int = 2):
    """dict(images, K, R, t, size, center, names): the bunny on a gravel floor, cameras
    ``distance`` x the bunny's diagonal from its centre."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import pyvista as pv

    from tests.test_multiview_scenes import load_mesh, solid_texture

    v, f = load_mesh()
    lo, hi = v.min(0), v.max(0)
    extent = float(np.linalg.norm(hi - lo))
    center = (lo + hi) / 2
    w, h = size
    K, R, t = orbit_cameras(views, size, distance * extent, center)
    mesh = pv.PolyData(v, np.hstack([np.full((len(f), 1), 3), f]).astype(np.int64)).subdivide(subdivide, "linear")
    mesh["rgb"] = solid_texture(np.asarray(mesh.points), extent)
    side = 2.5 * extent
    floor = pv.Plane(center=(center[0], lo[1], center[2]), direction=(0, 1, 0), i_size=side, j_size=side)
    floor.texture_map_to_plane(inplace=True)
    tex = pv.Texture(floor_texture())
    pl = pv.Plotter(off_screen=True, window_size=(w, h))
    pl.background_color = (0.0, 0.0, 0.0)  # a known background, as in the NeRF synthetic scenes
    pl.add_mesh(mesh, scalars="rgb", rgb=True, lighting=False, interpolate_before_map=True)
    pl.add_mesh(floor, texture=tex, lighting=False)
    images = []
    for Ki, Ri, ti in zip(K, R, t):
        c = -Ri.T @ ti
        cam = pl.camera
        cam.position = c
        cam.focal_point = c + Ri[2]
        cam.up = -Ri[1]
        cam.view_angle = float(np.degrees(2 * np.arctan(0.5 * h / Ki[1, 1])))
        pl.camera.clipping_range = (0.01 * extent, 50.0 * extent)
        pl.camera_set = True
        pl.render()
        images.append(np.asarray(pl.screenshot(return_img=True))[:, :, :3].copy())
    pl.close()
    names = [f"view_{i:03d}.png" for i in range(views)]
    return dict(images=images, K=K, R=R, t=t, size=size, center=center, extent=extent, names=names, vertices=v, faces=f)


def write_images(scene, folder: Path) -> list[Path]:
    from PIL import Image as PILImage

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, im in zip(scene["names"], scene["images"]):
        p = folder / name
        PILImage.fromarray(im).save(p)
        out.append(p)
    return out


def write_orbit_video(scene, path: Path, fps: float = 15.0) -> Path:
    from engines.io.video import VideoWriter

    w, h = scene["size"]
    with VideoWriter(path, fps, (w, h)) as wr:
        for im in scene["images"]:
            wr.write(im)
    return path
