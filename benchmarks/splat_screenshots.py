"""Viewport screenshots of a trained splat (issue 13): from one of its photos' cameras, from a
new viewpoint, and the textured mesh from that same new viewpoint, side by side.

    xvfb-run -a .venv/bin/python benchmarks/splat_screenshots.py SCENE.ply MESH.glb OUT.png [--camera N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("splat")
    ap.add_argument("mesh")
    ap.add_argument("out")
    ap.add_argument("--camera", type=int, default=1)
    ap.add_argument("--size", type=int, default=400)
    a = ap.parse_args()
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from app.viewport import Viewport
    from engines import io
    from engines.splat.render import camera_view, turntable_views

    splat, mesh = io.read(a.splat), io.read(a.mesh)
    cam = splat.cameras[a.camera]
    v_in = camera_view(cam, a.size)
    # a new viewpoint: between two photos on the orbit, higher than any of them
    new = turntable_views(splat, frames=16, long_side=a.size)[3]
    up = np.array([0.0, 1.0, 0.0])
    C = new.center + 0.35 * np.linalg.norm(new.center) * up
    from engines.splat.render import orbit_centre

    z = orbit_centre(splat) - C
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    shots = []
    vp = Viewport()
    vp.resize(v_in.width, v_in.height + vp.toolbar.sizeHint().height())
    vp.show()
    app.processEvents()
    vp.set_background((0, 0, 0))
    for obj, (K, R_, t, size) in (
        (splat, (v_in.K, v_in.R, v_in.t, (v_in.width, v_in.height))),
        (splat, (new.K, R, -R @ C, (new.width, new.height))),
        (mesh, (new.K, R, -R @ C, (new.width, new.height))),
    ):
        vp.clear()
        vp.show(obj)
        vp.set_camera_from_photo(K, R_, t, size)
        shots.append(vp.screenshot()[: v_in.height, : v_in.width])
    from PIL import Image as PILImage

    PILImage.fromarray(np.concatenate(shots, 1)).save(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
