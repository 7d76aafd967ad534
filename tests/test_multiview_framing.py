"""Multi-view results stand upright, face the viewer and keep only the main object
(issue 15 item 3): the up direction from the cameras or the ground plane, the scene turned
so the viewport's front looks from where the photos were taken, floating fragments removed
unless asked to keep them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from engines.multiview.engine import MultiViewEngine, ground_normal, level_scene
from engines.multiview.sfm import Cameras


def _rot(axis, deg):
    import cv2

    R, _ = cv2.Rodrigues(np.asarray(axis, float) / np.linalg.norm(axis) * np.radians(deg))
    return R


def _model(tilt: np.ndarray, n=8, side=False):
    """Cameras on a ring (or one side of it) around a floor with a box on it, all turned by ``tilt``."""
    from tests.test_multiview_scenes import orbit_cameras

    K, R, t = orbit_cameras(n, (320, 240), 3.0, elevations=(25.0,))
    if side:  # photos of a facade: all from one side
        keep = [0, 1, n - 1]
        K, R, t = K[keep], R[keep], t[keep]
    rng = np.random.default_rng(0)
    floor = np.c_[rng.uniform(-1.5, 1.5, 600), np.full(600, -0.5), rng.uniform(-1.5, 1.5, 600)]
    box = rng.uniform(-0.3, 0.3, (400, 3))
    pts = np.concatenate([floor, box])
    # the arbitrary SfM frame: world rotated by tilt
    Rw = R @ tilt.T
    cams = Cameras(names=[f"v{i}" for i in range(len(R))], K=K, R=Rw, t=t.copy(), sizes=[(320, 240)] * len(R))
    return SimpleNamespace(cameras=cams, points=pts @ tilt.T)


def test_up_comes_from_the_cameras_and_the_front_faces_them():
    tilt = _rot((1, 0.3, 0.2), 70)
    m = _model(tilt, side=True)
    assert level_scene(m, "cameras", face_cameras=True) == "cameras"
    up = -m.cameras.R[:, 1, :].mean(0)
    assert up[1] > 0.99 * np.linalg.norm(up)
    c = m.cameras.centers
    assert c[:, 2].mean() > 2.0 and abs(c[:, 0].mean()) < 0.5  # the viewport's front (+z) sees what they saw


def test_a_ground_plane_sets_up_when_the_cameras_are_not_level():
    tilt = _rot((0.2, 1, 0.1), 40)
    m = _model(tilt)
    # every camera tipped 15 degrees about its own viewing axis: their mean up is off
    m.cameras.R = np.einsum("ij,njk->nik", _rot((0, 0, 1), 15), m.cameras.R)
    normal = ground_normal(m.points, -m.cameras.R[:, 1, :].mean(0))
    assert normal is not None
    assert level_scene(m, "auto") == "ground"
    floor = m.points[:600]
    assert np.ptp(floor[:, 1]) < 0.05  # the floor is level


def test_floating_fragments_are_removed_unless_kept():
    o3d = pytest.importorskip("open3d")
    from engines.multiview.fusion import cleanup

    def parts():
        main = o3d.geometry.TriangleMesh.create_sphere(1.0, 30)
        near = o3d.geometry.TriangleMesh.create_sphere(0.3, 10).translate((1.1, 0, 0))
        far = o3d.geometry.TriangleMesh.create_sphere(0.3, 10).translate((6.0, 0, 0))
        return main + near + far

    stats = {}
    kept = cleanup(parts(), fragment_distance=0.1, stats=stats)
    v = np.asarray(kept.vertices)
    assert v[:, 0].max() < 2.0 and stats["fragments"] == 1  # the far piece went, the touching one stayed
    assert np.asarray(cleanup(parts()).vertices)[:, 0].max() > 5.0  # without a distance: all kept
    p = MultiViewEngine.Params()
    assert p.keep_fragments is False and p.up == "auto"
