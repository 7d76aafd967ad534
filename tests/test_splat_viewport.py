"""The viewport draws a Splat as oriented, depth-sorted Gaussians (pixels of real renders
under Xvfb), matching the training rasteriser from a photo's camera."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_viewport_display

require_viewport_display()

from engines.splat.project import rgb_to_sh0  # noqa: E402
from engines.types import Splat  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def vp(qapp):
    from app.viewport import Viewport

    view = Viewport()
    view.resize(320, 240 + view.toolbar.sizeHint().height())
    view.show()
    qapp.processEvents()
    yield view
    view.close()
    view.deleteLater()
    qapp.processEvents()


def splat(positions, sigmas, quats, colors, opacity=4.0, cameras=()):
    n = len(positions)
    sh = rgb_to_sh0(np.asarray(colors, float))[:, None, :]
    return Splat(positions, np.log(np.asarray(sigmas, float)), quats, np.full(n, opacity), sh, cameras=list(cameras))


def front_camera(w=320, h=240, z=4.0):
    f = 300.0
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    R = np.diag([1.0, -1.0, -1.0])  # looking down -z, y up
    return dict(name="front.png", K=K, R=R, t=-R @ np.array([0, 0, z]), width=w, height=h, held_out=False)


def spread(mask):
    ys, xs = np.nonzero(mask)
    return np.ptp(xs), np.ptp(ys)


def test_orientation_and_colour(vp):
    c45 = np.cos(np.pi / 4)
    s = splat(
        [[-0.8, 0, 0], [0.8, 0, 0]], [[0.3, 0.03, 0.03]] * 2, [[1, 0, 0, 0], [c45, 0, 0, c45]], [[1, 0, 0], [0, 1, 0]]
    )
    vp.clear()
    vp.set_background((0, 0, 0))
    vp.show(s)
    cam = front_camera()
    vp.set_camera_from_photo(cam["K"], cam["R"], cam["t"], (cam["width"], cam["height"]))
    img = vp.screenshot().astype(int)
    red = (img[:, :, 0] > 80) & (img[:, :, 1] < 40)
    green = (img[:, :, 1] > 80) & (img[:, :, 0] < 40)
    assert red.sum() > 50 and green.sum() > 50
    rx, ry = spread(red)
    gx, gy = spread(green)
    assert rx > 3 * ry and gy > 3 * gx  # the quaternion (w x y z) turned the green one upright
    assert np.nonzero(red)[1].mean() < np.nonzero(green)[1].mean()


def test_sorted_back_to_front_when_the_camera_moves(vp):
    s = splat([[0, 0, 0.5], [0, 0, -0.5]], [[0.3] * 3] * 2, [[1, 0, 0, 0]] * 2, [[1, 0, 0], [0, 0, 1]], opacity=2.0)
    vp.clear()
    vp.show(s)
    for z, front in ((4.0, 0), (-4.0, 2)):
        cam = front_camera(z=z)
        if z < 0:
            cam["R"] = np.diag([-1.0, -1.0, 1.0])  # looking down +z from behind
            cam["t"] = -cam["R"] @ np.array([0, 0, z])
        vp.set_camera_from_photo(cam["K"], cam["R"], cam["t"], (cam["width"], cam["height"]))
        px = vp.screenshot()[120, 160].astype(int)
        other = 2 - front
        assert px[front] > px[other] + 60, (z, px)


def test_matches_the_rasteriser_from_a_photo_camera(vp):
    from engines.splat.render import camera_view, render_splat

    rng = np.random.default_rng(0)
    n = 400
    q = rng.normal(size=(n, 4))
    cam = front_camera()
    s = splat(
        rng.uniform(-1, 1, (n, 3)) * [1.2, 0.9, 0.5],
        rng.uniform(0.02, 0.12, (n, 3)),
        q,
        rng.uniform(0, 1, (n, 3)),
        opacity=1.0,
        cameras=[cam],
    )
    vp.clear()
    vp.show(s)
    vp.set_camera_from_photo(cam["K"], cam["R"], cam["t"], (cam["width"], cam["height"]))
    shot = vp.screenshot()[:240, :320].astype(float)
    ref = render_splat(s, [camera_view(cam)])[0].astype(float)
    a, b = shot.mean(2).ravel(), ref.mean(2).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.9
    assert np.abs(shot - ref).mean() < 20


def test_a_splat_result_draws_the_splat_and_cameras_not_the_start_points():
    from app.display import geometry_to_draw
    from engines.types import Mesh, PointCloud

    s = splat([[0, 0, 0]], [[0.1] * 3], [[1, 0, 0, 0]], [[1, 0, 0]])
    cloud = PointCloud(np.zeros((5, 3)), name="initial points")
    frusta = Mesh(np.eye(3), [[0, 1, 2]], name="cameras")
    assert [i for i, _ in geometry_to_draw([s, cloud, frusta])] == [0, 2]
