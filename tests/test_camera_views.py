"""One Camera for every engine and the viewport (issue 16 item 5): project / unproject with
one z clamp, look-at, the Camera -> VTK conversion (a point lands on the same pixel in the
VTK render's projection), the splat's and multi-view cameras, the depth map's camera, and
the viewport's "View from camera" menu."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.types import Z_MIN, Camera, DepthMap, Mesh, Splat


def _cam(**kw) -> Camera:
    cam = Camera.look_at(eye=[0.6, 0.4, 3.0], target=[0.0, 0.0, 0.0], focal_px=300.0, width=320, height=200, **kw)
    cam.K[0, 2], cam.K[1, 2] = 140.0, 110.0  # principal point off the centre
    return cam


# ----------------------------------------------------------------------------- Camera
def test_project_unproject_round_trip_and_one_z_clamp():
    cam = _cam()
    X = np.random.default_rng(3).normal(0, 0.3, (40, 3))
    xy, z = cam.project(X)
    assert np.isfinite(xy).all() and (z > 0).all()
    assert np.allclose(cam.unproject(xy, z), X, atol=1e-9)
    # in the camera frame: depth 0, just under and just over the clamp, behind
    local = np.array([[0.1, 0.1, 0.0], [0.1, 0.1, 0.5 * Z_MIN], [0.1, 0.1, 2 * Z_MIN], [0.1, 0.1, -1.0]])
    world = (local - cam.t) @ cam.R
    xy, z = cam.project(world)
    assert np.allclose(z, local[:, 2], atol=1e-9)
    assert np.isnan(xy[[0, 1, 3]]).all() and np.isfinite(xy[2]).all()


def test_look_at_centres_the_target_upright():
    cam = Camera.look_at([1.0, 0.5, 2.0], [0.1, 0.0, -0.2], focal_px=500.0, width=64, height=48)
    xy, _ = cam.project([[0.1, 0.0, -0.2], [0.1, 0.2, -0.2]])
    assert np.allclose(xy[0], [31.5, 23.5]) and xy[1, 1] < xy[0, 1]
    assert np.allclose(cam.centre, [1.0, 0.5, 2.0])
    assert np.allclose(cam.forward, np.subtract([0.1, 0.0, -0.2], [1.0, 0.5, 2.0]) / np.linalg.norm([0.9, 0.5, 2.2]))
    # straight down along "up" still gives a proper rotation
    down = Camera.look_at([0.0, 2.0, 0.0], [0.0, 0.0, 0.0])
    assert np.allclose(down.R @ down.R.T, np.eye(3)) and np.isfinite(down.project([[0, 0, 0]])[0]).all()


def test_cameras_keep_name_and_held_out_and_read_old_dicts():
    old = dict(name="IMG_1.jpg", K=np.eye(3), R=np.eye(3), t=[0, 0, 1], width=40, height=30, held_out=True)
    cam = Camera.from_dict(old)
    assert (cam.name, cam.held_out, cam.image_size) == ("IMG_1.jpg", True, (40, 30))
    assert cam["name"] == "IMG_1.jpg" and cam["held_out"] and cam["width"] == 40  # older code's keys
    assert cam.scaled(0.5).held_out and cam.scaled(0.5).name == "IMG_1.jpg"


# ----------------------------------------------------------------------------- Camera -> VTK
@pytest.mark.parametrize("window", [(320, 200), (400, 300), (250, 330)])
def test_vtk_view_puts_a_projected_point_on_its_pixel(window):
    from vtkmodules.vtkRenderingCore import vtkRenderer, vtkRenderWindow

    from app.viewport import vtk_view

    cam = _cam()
    cam.K[0, 0] = 330.0  # non-square pixels too
    W, H = window
    rw = vtkRenderWindow()
    rw.SetOffScreenRendering(1)
    rw.SetSize(W, H)
    ren = vtkRenderer()
    rw.AddRenderer(ren)
    view = vtk_view(cam, (W, H), focus=3.0)
    view.apply(ren.GetActiveCamera())
    assert np.allclose(view.position, cam.centre) and np.allclose(view.view_up, -cam.R[1])
    assert np.allclose(np.subtract(view.focal_point, view.position), 3.0 * cam.forward)
    ren.ResetCameraClippingRange(-1, 1, -1, 1, -1, 1)
    X = np.random.default_rng(5).normal(0, 0.3, (20, 3))
    xy, _ = cam.project(X)
    w, h = cam.image_size
    s = min(W / w, H / h)  # the photo letterboxed into the window
    for p, (u, v) in zip(X, xy):
        ren.SetWorldPoint(*p, 1.0)
        ren.WorldToDisplay()
        dx, dy, _ = ren.GetDisplayPoint()  # continuous, origin at the bottom left
        want = (s * (u + 0.5 - w / 2) + W / 2 - 0.5, s * (v + 0.5 - h / 2) + H / 2 - 0.5)
        got = (dx - 0.5, H - dy - 0.5)
        assert abs(got[0] - want[0]) < 0.05 and abs(got[1] - want[1]) < 0.05, (got, want)
    rw.Finalize()


# ----------------------------------------------------------------------------- engines
def _splat(cameras) -> Splat:
    rng = np.random.default_rng(0)
    n = 5
    q = rng.normal(size=(n, 4))
    return Splat(
        rng.normal(size=(n, 3)),
        np.full((n, 3), -3.0),
        q / np.linalg.norm(q, axis=1, keepdims=True),
        np.zeros(n),
        rng.normal(size=(n, 1, 3)),
        cameras=cameras,
    )


def _old_dicts():
    K = np.array([[500.0, 0, 319.5], [0, 510.0, 239.5], [0, 0, 1]])
    return [
        dict(name=f"IMG_{i}.jpg", K=K, R=np.eye(3), t=[0.1 * i, 0, 3.0], width=640, height=480, held_out=i == 0)
        for i in range(3)
    ]


def test_splat_cameras_are_cameras_and_cameras_json_round_trips(tmp_path):
    from engines import io

    s = _splat(_old_dicts())
    assert all(isinstance(c, Camera) for c in s.cameras)
    assert [c.held_out for c in s.cameras] == [True, False, False]
    io.export(s, tmp_path / "scene.ply")
    entries = json.loads((tmp_path / "cameras.json").read_text())
    assert [e["img_name"] for e in entries] == ["IMG_0", "IMG_1", "IMG_2"]
    back = io.read(tmp_path / "scene.ply")
    assert all(isinstance(c, Camera) for c in back.cameras)
    for a, b in zip(back.cameras, s.cameras):
        assert np.allclose(a.K, b.K) and np.allclose(a.R, b.R) and np.allclose(a.t, b.t)
        assert a.image_size == b.image_size and a.held_out == b.held_out and a.name == b.name.rsplit(".", 1)[0]


def test_a_project_saved_with_camera_dicts_still_loads(tmp_path):
    from app.project import decode, encode

    arrays: dict = {}
    tree = encode(_splat([]), arrays, "s")
    tree["fields"]["cameras"] = encode(_old_dicts(), arrays, "old")  # as projects stored them
    back = decode(tree, arrays)
    assert all(isinstance(c, Camera) for c in back.cameras) and back.cameras[0].held_out
    arrays2: dict = {}
    again = decode(encode(back, arrays2, "s"), arrays2)  # and the new form round-trips
    assert [c.name for c in again.cameras] == [c.name for c in back.cameras]
    assert np.allclose(again.cameras[2].t, [0.2, 0, 3.0]) and isinstance(again.cameras[2], Camera)


def test_multiview_frusta_carry_their_cameras():
    from engines.multiview.sfm import Cameras, frusta_mesh

    cams = [
        Camera.look_at([2 * np.sin(a), 0.3, 2 * np.cos(a)], [0, 0, 0], focal_px=200, width=160, height=120)
        for a in (0, 1, 2)
    ]
    model = Cameras(
        [f"v{i}.jpg" for i in range(3)],
        np.array([c.K for c in cams]),
        np.array([c.R for c in cams]),
        np.array([c.t for c in cams]),
        [(160, 120)] * 3,
    )
    mesh = frusta_mesh(model, 0.1)
    assert [c.name for c in mesh.cameras] == ["v0.jpg", "v1.jpg", "v2.jpg"]
    for i, c in enumerate(mesh.cameras):
        assert np.allclose(c.centre, cams[i].centre) and np.allclose(mesh.vertices[5 * i], c.centre, atol=1e-6)
        xy, z = c.project(mesh.vertices[5 * i + 1 : 5 * i + 5])  # the base corners are the image corners
        assert np.allclose(xy, [[0, 0], [160, 0], [160, 120], [0, 120]], atol=1e-3) and np.allclose(z, 0.1, atol=1e-6)


def test_depth_map_camera():
    h, w = 12, 16
    K = np.array([[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]])
    dm = DepthMap(np.full((h, w), 2.0, np.float32), intrinsics=K)
    assert isinstance(dm.camera, Camera) and np.allclose(dm.camera.K, K) and dm.camera.image_size == (w, h)
    given = DepthMap(np.ones((h, w)), camera=Camera(K, width=w, height=h, name="photo.jpg"))
    assert np.allclose(given.intrinsics, K) and given.camera.name == "photo.jpg"
    # the points of to_points seen through the display camera land on their own pixels
    pts = dm.to_points().points
    xy, z = dm.display_camera().project(pts)
    ys, xs = np.mgrid[0:h, 0:w]
    assert np.allclose(xy, np.column_stack([xs.ravel(), ys.ravel()]), atol=1e-4) and np.allclose(z, 2.0)
    # no intrinsics: the default field of view, no camera stored
    bare = DepthMap(np.ones((h, w)))
    assert bare.camera is None and np.allclose(bare.photo_camera().K, bare.default_intrinsics())


# ----------------------------------------------------------------------------- the viewport
@pytest.fixture
def vp(request):
    from tests.conftest import require_viewport_display

    require_viewport_display()
    qapp = request.getfixturevalue("qapp")
    from tests.conftest import shown_viewport

    gen = shown_viewport(qapp, (420, 360))
    view = next(gen)
    yield view
    try:
        next(gen)
    except StopIteration:
        pass


def _red_ball(center, radius=0.03) -> Mesh:
    import pyvista as pv

    s = pv.Sphere(radius=radius, center=center, theta_resolution=16, phi_resolution=16).triangulate()
    faces = np.asarray(s.faces).reshape(-1, 4)[:, 1:]
    return Mesh(s.points, faces, vertex_colors=np.tile((255, 0, 0), (s.n_points, 1)).astype(np.uint8))


@pytest.mark.gui
def test_view_from_camera_menu_sets_the_view(vp):
    vp.set_background((0.0, 0.0, 0.0))
    assert not vp.camera_action.isEnabled()
    W, H = vp.plotter.render_window.GetSize()
    photo = Camera.look_at([0.5, 0.3, 2.5], [0, 0, 0], focal_px=0.8 * W, width=W, height=H, name="front.jpg")
    side = Camera.look_at([2.5, 0.2, 0.0], [0, 0, 0], focal_px=0.8 * W, width=W, height=H, name="side.jpg")
    X = np.array([0.15, 0.1, 0.05])
    vp.show(_red_ball(X), "ball")
    frusta = Mesh(np.eye(3) * 0.01 - [0, 0, 1], [[0, 1, 2]], name="cameras", cameras=[photo, side])
    vp.show(frusta, "frusta")
    assert vp.camera_action.isEnabled()
    vp._fill_camera_menu()
    actions = vp.camera_menu.actions()
    assert [a.text() for a in actions] == ["front.jpg", "side.jpg"]
    actions[0].trigger()
    cam = vp.plotter.camera
    assert np.allclose(cam.GetPosition(), photo.centre, atol=1e-9)
    assert np.allclose(cam.GetViewUp(), photo.up, atol=1e-9)
    direction = np.subtract(cam.GetFocalPoint(), cam.GetPosition())
    assert np.allclose(direction / np.linalg.norm(direction), photo.forward, atol=1e-9)
    img = vp.screenshot().astype(int)
    r, g, b = img[:, :, 0], img[:, :, 1], img[:, :, 2]
    ys, xs = np.nonzero((r > 120) & (g < r // 3) & (b < r // 3))
    ((u, v),), _ = photo.project([X])  # the window is the photo's size
    assert len(xs) and abs(xs.mean() - u) < 2.0 and abs(ys.mean() - v) < 2.0, (xs.mean(), ys.mean(), u, v)
    vp.remove("frusta")
    assert not vp.camera_action.isEnabled()
    vp.clear()


@pytest.mark.gui
def test_view_from_camera_lists_depth_splat_and_avatar_cameras(vp):
    from engines.types import Avatar

    dm = DepthMap(
        np.full((30, 40), 2.0, np.float32), intrinsics=np.array([[50.0, 0, 19.5], [0, 50.0, 14.5], [0, 0, 1]])
    )
    vp.show(dm, "depth")
    labels = [label for label, _ in vp.shown_cameras()]
    assert labels == ["depth"]
    # the display camera: looking down -z from the origin
    assert np.allclose(vp.shown_cameras()[0][1].forward, [0, 0, -1])
    vp._fill_camera_menu()
    vp.set_view("top")
    vp.camera_menu.actions()[0].trigger()
    assert np.allclose(vp.plotter.camera.GetPosition(), 0.0) and np.allclose(vp.plotter.camera.GetViewUp(), [0, 1, 0])
    vp.clear()
    from app.renderers import cameras_of

    s = _splat(_old_dicts())
    assert [c.name for c in cameras_of(s)] == ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"]
    av = Avatar(mesh=_red_ball([0, 0, 0]), camera=_cam().to_dict())
    vp.show(av, "avatar")
    assert [type(c) for _, c in vp.shown_cameras()] == [Camera]
    vp.clear()
