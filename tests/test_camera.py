"""engines.types.Camera: one pinhole camera for every engine (project, unproject, look-at,
scaling, the mapping files use)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.types import Avatar, Camera, Mesh


def _cam():
    return Camera.look_at(eye=[0.3, 0.2, 1.5], target=[0.0, 0.0, 0.0], focal_px=800.0, width=640, height=480)


def test_look_at_sees_the_target_at_the_centre_upright():
    cam = _cam()
    xy, z = cam.project([[0.0, 0.0, 0.0], [0.0, 0.1, 0.0]])
    assert np.allclose(xy[0], [319.5, 239.5], atol=1e-9)
    assert abs(z[0] - np.linalg.norm([0.3, 0.2, 1.5])) < 1e-9
    assert xy[1, 1] < xy[0, 1]  # world up is image up
    assert np.allclose(cam.centre, [0.3, 0.2, 1.5])
    assert np.allclose(cam.R @ cam.R.T, np.eye(3), atol=1e-12) and np.linalg.det(cam.R) > 0
    assert cam.up @ [0, 1, 0] > 0.9 and cam.forward @ -cam.centre > 0


def test_unproject_inverts_project_and_points_behind_are_nan():
    cam = _cam()
    X = np.random.default_rng(0).normal(0, 0.2, (50, 3))
    xy, z = cam.project(X)
    assert np.allclose(cam.unproject(xy, z), X, atol=1e-9)
    behind = cam.centre + 0.5 * (cam.centre - [0.0, 0.0, 0.0])
    xy_b, z_b = cam.project([behind])
    assert z_b[0] < 0 and np.isnan(xy_b).all()


def test_scaled_matches_a_resized_image():
    cam = _cam()
    half = cam.scaled(0.5)
    assert half.image_size == (320, 240)
    X = np.array([[0.05, -0.02, 0.1]])
    xy, _ = cam.project(X)
    xy2, _ = half.project(X)
    # pixel-centre convention: x' = (x + 0.5) * s - 0.5
    assert np.allclose(xy2, (xy + 0.5) * 0.5 - 0.5, atol=1e-9)


def test_mapping_view_round_trips_and_avatars_take_dicts():
    cam = _cam()
    d = cam.to_dict()
    assert set(cam) == {"K", "R", "t", "image_size"} and cam["image_size"] == (640, 480)
    assert np.allclose(cam["K"], d["K"])
    again = Camera.from_dict(json.loads(json.dumps({k: np.asarray(v).tolist() for k, v in d.items()})))
    assert np.allclose(again.K, cam.K) and np.allclose(again.t, cam.t) and again.image_size == (640, 480)
    av = Avatar(mesh=Mesh(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]])), camera=d)
    assert isinstance(av.camera, Camera) and np.allclose(av.camera.R, cam.R)
    assert not Avatar(mesh=av.mesh).camera  # no camera stays empty


def test_the_avatar_projection_is_the_camera_projection():
    from engines.avatar.raster import project

    cam = _cam()
    X = np.random.default_rng(1).normal(0, 0.2, (20, 3))
    a, za = project(cam.K, cam.R, cam.t, X)
    b, zb = cam.project(X)
    assert np.allclose(a, b) and np.allclose(za, zb)


@pytest.mark.parametrize("bad", [{"R": np.eye(3)}, {}])
def test_from_dict_needs_intrinsics(bad):
    with pytest.raises(KeyError):
        Camera.from_dict(bad)
