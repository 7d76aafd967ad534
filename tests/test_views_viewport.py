"""Viewport tests: pixels of real renders under Xvfb (Mesa), not just "no exception".

Run with ``xvfb-run -a``; pyvistaqt's QtInteractor needs the xcb platform (it crashes
with ``offscreen``), so this module selects xcb and skips when there is no X display.
"""

from __future__ import annotations


import numpy as np
import pytest

from tests.conftest import require_viewport_display  # noqa: E402

require_viewport_display()

pv = pytest.importorskip("pyvista")

from engines.types import Avatar, DepthMap, Image, Mesh, PointCloud, Strands  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def vp(qapp):
    from tests.conftest import shown_viewport

    yield from shown_viewport(qapp, (420, 360))


@pytest.fixture(autouse=True)
def _clean(vp):
    vp.clear()
    vp.set_background((0.0, 0.0, 0.0))
    vp.set_wireframe(False)
    vp.set_point_size(3)
    vp.set_strand_tubes(False, width=2)
    yield


def sphere_mesh(radius=1.0, center=(0, 0, 0), color=(255, 0, 0), res=40) -> Mesh:
    s = pv.Sphere(radius=radius, center=center, theta_resolution=res, phi_resolution=res).triangulate()
    faces = np.asarray(s.faces).reshape(-1, 4)[:, 1:]
    return Mesh(s.points, faces, vertex_colors=np.tile(color, (s.n_points, 1)).astype(np.uint8))


def red_mask(img, thr=120):
    r, g, b = (img[:, :, k].astype(int) for k in range(3))
    return (r > thr) & (g < r // 3) & (b < r // 3)


def centroid(mask):
    ys, xs = np.nonzero(mask)
    assert len(xs), "nothing of that colour was rendered"
    return xs.mean(), ys.mean()


def middle(img, half=8):
    h, w = img.shape[:2]
    return img[h // 2 - half : h // 2 + half, w // 2 - half : w // 2 + half].reshape(-1, 3).astype(int)


def test_red_sphere_renders_red_in_the_middle(vp):
    key = vp.show(sphere_mesh(), "ball")
    assert key == "ball"
    img = vp.screenshot()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    mid = middle(img)
    assert mid[:, 0].mean() > 150
    assert mid[:, 1].mean() < 40 and mid[:, 2].mean() < 40
    # the corners are background (black)
    assert img[:5, :5].max() < 30


@pytest.mark.parametrize("inside_out", [False, True])
def test_closed_sphere_is_lit_not_black(vp, inside_out):
    m = sphere_mesh(color=(255, 255, 255))
    if inside_out:
        m = Mesh(m.vertices, m.faces[:, ::-1], vertex_colors=m.vertex_colors)
    vp.show(m, "ball")
    item = vp._items["ball"]
    assert item.flip == inside_out
    # the normals the renderer uses point away from the centre
    n = np.asarray(vp.polydata("ball").point_data["Normals"])
    assert np.mean(np.einsum("ij,ij->i", n, m.vertices)) > 0.95
    img = vp.screenshot()
    assert middle(img).mean() > 150, "the sphere facing the camera should be bright"
    # lit from the camera: the middle is brighter than near the rim
    ys, xs = np.nonzero(img.sum(2) > 30)
    rim = img[int(ys.mean()), xs.min() + 3].astype(int)
    assert middle(img).mean() > rim.mean() + 20


def test_open_surface_wound_backwards_is_lit_from_behind(vp):
    m = sphere_mesh(color=(255, 255, 255))
    front = m.faces[(m.vertices[m.faces][:, :, 2] > 0.2).all(1)]
    vp.show(Mesh(m.vertices, front[:, ::-1], vertex_colors=m.vertex_colors), "cap")
    assert not vp._items["cap"].flip  # open: cannot tell inside from outside, two-sided lighting copes
    assert middle(vp.screenshot()).mean() > 150


def test_plain_mesh_without_colour_is_grey(vp):
    m = sphere_mesh()
    vp.show(Mesh(m.vertices, m.faces), "plain")
    mid = middle(vp.screenshot())
    assert mid.mean() > 110 and np.ptp(mid.mean(0)) < 40


def textured_quad():
    tex = np.zeros((64, 64, 3), np.uint8)
    tex[:32, :32] = (255, 0, 0)  # top-left of the image: red
    tex[:32, 32:] = (0, 255, 0)  # top-right: green
    tex[32:, :32] = (0, 0, 255)  # bottom-left: blue
    tex[32:, 32:] = (255, 255, 0)  # bottom-right: yellow
    v = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float32)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)  # OBJ convention: v=0 at the bottom
    return Mesh(v, [[0, 1, 2], [0, 2, 3]], uv=uv, texture=tex, name="quad")


def dominant(px):
    return tuple(int(c > 100) for c in px)


def test_textured_quad_shows_texture_colours(vp):
    vp.show(textured_quad(), "quad")
    img = vp.screenshot()
    h, w = img.shape[:2]
    # find the quad on the screen and sample the middle of each quarter
    mask = img.astype(int).sum(2) > 60
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    qx, qy = (x1 - x0) / 4, (y1 - y0) / 4
    at = lambda fx, fy: img[int(y0 + fy * qy), int(x0 + fx * qx)].astype(int)  # noqa: E731
    assert dominant(at(1, 1)) == (1, 0, 0)  # top-left red
    assert dominant(at(3, 1)) == (0, 1, 0)  # top-right green
    assert dominant(at(1, 3)) == (0, 0, 1)  # bottom-left blue
    assert dominant(at(3, 3)) == (1, 1, 0)  # bottom-right yellow


def test_point_cloud_shows_its_colours_and_size(vp):
    g = np.mgrid[-1:1:60j, -1:1:60j].reshape(2, -1).T
    pts = np.c_[g, np.zeros(len(g))]
    cols = np.tile([0, 220, 0], (len(pts), 1))
    cols[pts[:, 0] > 0] = (0, 0, 230)  # right half blue
    vp.set_point_size(6)
    vp.show(PointCloud(pts, cols), "cloud")
    assert vp.actor("cloud").prop.point_size == 6
    img = vp.screenshot().astype(int)
    h, w = img.shape[:2]
    left, right = img[h // 2, int(w * 0.4)], img[h // 2, int(w * 0.6)]
    assert left[1] > 180 and left[0] < 40 and left[2] < 40
    assert right[2] > 180 and right[0] < 40 and right[1] < 40
    vp.set_point_size(2)
    assert vp.actor("cloud").prop.point_size == 2


def test_update_points_moves_object_in_place(vp):
    m = sphere_mesh(radius=0.5)
    vp.show(m, "ball")
    vp.show(PointCloud([[-1.5, -1.5, 0], [1.5, 1.5, 0]], [[0, 0, 0], [0, 0, 0]]), "frame")  # fixes the view
    vp.reset_camera()
    actor, poly = vp.actor("ball"), vp.polydata("ball")
    before = vp.screenshot()
    cx0, cy0 = centroid(red_mask(before))
    vp.update_points("ball", m.vertices + np.float32([0.8, 0, 0]))
    after = vp.screenshot()
    cx1, cy1 = centroid(red_mask(after))
    assert vp.actor("ball") is actor and vp.polydata("ball") is poly
    assert actor.mapper.dataset is poly
    assert np.allclose(poly.points, m.vertices + [0.8, 0, 0])
    assert cx1 - cx0 > 20 and abs(cy1 - cy0) < 3
    assert np.abs(after.astype(int) - before).mean() > 1
    with pytest.raises(ValueError):
        vp.update_points("ball", m.vertices[:10])
    with pytest.raises(KeyError):
        vp.update_points("nope", m.vertices)


def project(K, R, t, X):
    x = R @ X + t
    return K[0, 0] * x[0] / x[2] + K[0, 2], K[1, 1] * x[1] / x[2] + K[1, 2]


def look_at_opencv(eye, target, up=(0, 1, 0)):
    """R, t of an OpenCV camera (x right, y down, z forward) at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(a, float) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ eye


@pytest.mark.parametrize("fit", ["same-size", "letterboxed", "non-square-pixels"])
def test_camera_from_photo_puts_point_at_its_pixel(vp, fit):
    W, H = vp.plotter.render_window.GetSize()
    size = (W // 2, int(H * 0.7)) if fit == "letterboxed" else (W, H)
    w, h = size
    fy = 0.9 * w * (1.15 if fit == "non-square-pixels" else 1.0)
    K = np.array([[0.9 * w, 0, 0.42 * w], [0, fy, 0.55 * h], [0, 0, 1]])
    R, t = look_at_opencv(eye=(0.6, 0.4, 3.0), target=(0, 0, 0))
    points = {"red": (np.array([0.25, 0.2, 0.1]), (255, 0, 0)), "green": (np.array([-0.3, -0.25, -0.2]), (0, 255, 0))}
    for name, (X, col) in points.items():
        vp.show(sphere_mesh(radius=0.025, center=X, color=col, res=16), name)
    vp.set_camera_from_photo(K, R, t, size)
    img = vp.screenshot().astype(int)
    s = min(W / w, H / h)
    for name, (X, col) in points.items():
        u, v = project(K, R, t, X)
        want = (s * (u + 0.5 - w / 2) + W / 2 - 0.5, s * (v + 0.5 - h / 2) + H / 2 - 0.5)
        c = int(np.argmax(col))
        mask = (img[:, :, c] > 60) & (img.sum(2) - img[:, :, c] < img[:, :, c] // 2)
        got = centroid(mask)
        assert abs(got[0] - want[0]) < 2.0 and abs(got[1] - want[1]) < 2.0, (name, got, want)
    vp.reset_camera()
    assert vp.plotter.camera.GetWindowCenter() == (0.0, 0.0)
    assert not vp.plotter.camera.GetUseExplicitAspectRatio()


def test_depth_points_seen_through_their_own_camera_land_on_their_pixels(vp, qapp):
    w, h, (u0, v0) = 160, 120, (40, 90)
    depth = np.full((h, w), 2.0, np.float32)
    depth[v0 - 1 : v0 + 2, u0 - 1 : u0 + 2] = 1.5
    img = np.full((h, w, 3), 40, np.uint8)
    img[v0 - 1 : v0 + 2, u0 - 1 : u0 + 2] = (255, 0, 0)
    dm = DepthMap(depth, image=img)
    vp.show(dm, "depth")
    vp.set_camera_from_photo(dm.default_intrinsics(), np.diag([1.0, -1.0, -1.0]), np.zeros(3), (w, h))
    W, H = vp.plotter.render_window.GetSize()
    s = min(W / w, H / h)
    want = (s * (u0 + 0.5 - w / 2) + W / 2 - 0.5, s * (v0 + 0.5 - h / 2) + H / 2 - 0.5)
    got = centroid(red_mask(vp.screenshot()))
    assert abs(got[0] - want[0]) < 2.0 and abs(got[1] - want[1]) < 2.0, (got, want)
    # resizing the window keeps the photo camera matched (the user has not moved the view)
    vp.resize(480, 330)
    qapp.processEvents()
    qapp.processEvents()
    W, H = vp.plotter.render_window.GetSize()
    s = min(W / w, H / h)
    want = (s * (u0 + 0.5 - w / 2) + W / 2 - 0.5, s * (v0 + 0.5 - h / 2) + H / 2 - 0.5)
    got = centroid(red_mask(vp.screenshot()))
    vp.resize(420, 360)
    qapp.processEvents()
    assert abs(got[0] - want[0]) < 2.0 and abs(got[1] - want[1]) < 2.0, (got, want)


def test_depth_map_drawn_as_strided_points(vp):
    h, w = 700, 900
    depth = np.full((h, w), 2.0, np.float32)
    depth[:50] = np.nan
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 2] = 200
    key = vp.show(DepthMap(depth, image=img), None)
    n = vp.polydata(key).n_points
    assert n <= 300_000
    assert n == np.isfinite(depth[::2, ::2]).sum()  # stride 2 is the smallest that fits
    pts = np.asarray(vp.polydata(key).points)
    assert np.allclose(pts[:, 2], -2.0)  # display frame: z towards the viewer, scene in front
    mid = middle(vp.screenshot())
    assert mid[:, 2].mean() > 150 and mid[:, 0].mean() < 40


def test_strands_drawn_as_coloured_lines(vp):
    s, p = 40, 12
    t = np.linspace(0, 1, p)
    pts = np.stack([np.c_[np.full(p, -0.8 + 1.6 * i / s), 0.8 - 1.6 * t, np.zeros(p)] for i in range(s)])
    strands = Strands(pts, np.tile([200, 30, 30], (s, 1)))
    vp.show(strands, "hair")
    rgb = np.asarray(vp.polydata("hair").point_data["RGB"]).astype(int)
    assert rgb.shape == (s * p, 3)
    assert rgb[:, 0].std() > 3  # shade variation
    assert np.all(rgb[:, 0] > rgb[:, 1] + 80)  # still red hair
    assert vp.polydata("hair").n_lines == s
    img = vp.screenshot()
    thin = red_mask(img, thr=80).sum()
    assert thin > 500
    vp.set_strand_tubes(True, width=6)
    assert vp.actor("hair").prop.render_lines_as_tubes and vp.actor("hair").prop.line_width == 6
    assert red_mask(vp.screenshot(), thr=80).sum() > 1.5 * thin
    vp.set_strand_tubes(False, width=2)


def test_avatar_parts_and_emotion(vp):
    head = sphere_mesh(radius=0.5)
    offs = np.zeros_like(head.vertices)
    offs[:, 1] = 0.1
    head.morph_targets = {"happiness": offs}
    eye = sphere_mesh(radius=0.05, center=(0.2, 0.1, 0.5), color=(255, 255, 255), res=10)
    hair = Strands(np.stack([np.c_[np.zeros(5), np.linspace(0.5, 0.9, 5), np.zeros(5)]] * 3), [[20, 20, 20]] * 3)
    av = Avatar(head, emotions={"happiness": 0.5, "unknown": 1.0}, hair=hair, extra_meshes=[eye])
    key = vp.show(av, "me")
    assert key == "me"
    assert {"me/head", "me/extra0", "me/hair"} <= set(vp.keys())
    assert np.allclose(vp.polydata("me/head").points, head.vertices + [0, 0.05, 0], atol=1e-6)
    vp.remove("me")
    assert not [k for k in vp.keys() if k.startswith("me/")]


def test_image_and_empty_objects_are_not_drawn(vp):
    assert vp.show(Image(np.zeros((4, 4, 3), np.uint8))) is None
    assert vp.show(PointCloud(np.zeros((0, 3)))) is None
    assert vp.show(Strands(np.zeros((0, 5, 3)))) is None
    assert vp.show(DepthMap(np.full((8, 8), np.nan, np.float32))) is None
    assert vp.keys() == []


def test_broken_mesh_is_refused(vp):
    m = sphere_mesh()
    with pytest.raises(ValueError, match="faces refer to vertex"):
        vp.show(Mesh(m.vertices[:10], m.faces), "bad")
    assert "bad" not in vp.keys()


def test_mesh_without_faces_is_drawn_as_points(vp):
    m = sphere_mesh()
    vp.show(Mesh(m.vertices, np.zeros((0, 3)), vertex_colors=m.vertex_colors), "dots")
    assert vp.polydata("dots").n_verts == 0 or vp.actor("dots").prop.style.lower() == "points"
    assert red_mask(vp.screenshot()).sum() > 50


def test_views_wireframe_background_and_screenshot_file(vp, tmp_path):
    vp.show(sphere_mesh(), "ball")
    full = red_mask(vp.screenshot()).sum()
    vp.set_wireframe(True)
    assert vp.actor("ball").prop.style.lower() == "wireframe"
    assert vp.wireframe_action.isChecked()
    wire = red_mask(vp.screenshot()).sum()
    assert wire < 0.8 * full
    vp.set_wireframe(False)
    vp.set_background((0.0, 0.0, 1.0))
    img = vp.screenshot()
    assert tuple(img[2, 2]) == (0, 0, 255)
    for name, axis, sign in [("left", 0, -1), ("right", 0, 1), ("top", 1, 1), ("front", 2, 1), ("back", 2, -1)]:
        vp.set_view(name)
        cam = vp.plotter.camera
        d = np.subtract(cam.GetPosition(), cam.GetFocalPoint())
        assert np.argmax(np.abs(d)) == axis and np.sign(d[axis]) == sign, name
    with pytest.raises(ValueError):
        vp.set_view("sideways")
    out = tmp_path / "shot.png"
    img = vp.screenshot(out)
    from PIL import Image as PILImage

    back = np.asarray(PILImage.open(out).convert("RGB"))
    assert back.shape == img.shape and np.array_equal(back, img)


def test_mouse_drag_rotates_and_redraws(vp, qapp):
    from PySide6 import QtCore
    from PySide6.QtTest import QTest

    vp.show(sphere_mesh(radius=0.3, center=(0.6, 0, 0)), "ball")
    vp.show(PointCloud([[-1, -1, 0], [1, 1, 0]], [[0, 0, 0], [0, 0, 0]]), "frame")
    vp.reset_camera()
    before, pos0 = vp.screenshot(), vp.plotter.camera.GetPosition()
    w = vp.plotter.interactor
    c = w.rect().center()
    QTest.mousePress(w, QtCore.Qt.LeftButton, QtCore.Qt.NoModifier, c)
    for dx in range(10, 130, 10):
        QTest.mouseMove(w, c + QtCore.QPoint(dx, 0))
        qapp.processEvents()
    QTest.mouseRelease(w, QtCore.Qt.LeftButton, QtCore.Qt.NoModifier, c + QtCore.QPoint(120, 0))
    qapp.processEvents()
    assert np.linalg.norm(np.subtract(vp.plotter.camera.GetPosition(), pos0)) > 0.1
    assert np.abs(vp.screenshot().astype(int) - before).mean() > 0.5


def test_toolbar_actions(vp, dialogs, tmp_path):
    from PySide6.QtGui import QColor

    actions = {a.text(): a for a in vp.toolbar.actions() if a.text()}
    assert {
        "Reset",
        "Front",
        "Left side",
        "Right side",
        "Back",
        "Top",
        "Wireframe",
        "Hair tubes",
        "Screenshot…",
    } <= set(actions)
    vp.show(sphere_mesh(), "ball")
    # A subject facing the viewer (+z) has its own left side towards +x.
    actions["Left side"].trigger()
    assert vp.plotter.camera.GetPosition()[0] > vp.plotter.camera.GetFocalPoint()[0] + 0.5
    actions["Right side"].trigger()
    assert vp.plotter.camera.GetPosition()[0] < vp.plotter.camera.GetFocalPoint()[0] - 0.5
    actions["Back"].trigger()
    assert vp.plotter.camera.GetPosition()[2] < vp.plotter.camera.GetFocalPoint()[2] - 0.5
    actions["Wireframe"].trigger()
    assert vp.wireframe and vp.actor("ball").prop.style.lower() == "wireframe"
    actions["Wireframe"].trigger()
    assert not vp.wireframe
    out = tmp_path / "view"  # the extension is added
    dialogs.answers["getSaveFileName"] = (str(out), "PNG image (*.png)")
    actions["Screenshot…"].trigger()
    assert (tmp_path / "view.png").stat().st_size > 1000
    dialogs.answers["getColor"] = QColor(0, 255, 0)
    actions["Background…"].trigger()
    assert tuple(vp.screenshot()[2, 2]) == (0, 255, 0)
    dialogs.answers["getSaveFileName"] = ("", "")  # cancelled: nothing written, no error
    actions["Screenshot…"].trigger()
    vp.point_size_box.setValue(7)
    assert vp.point_size == 7
