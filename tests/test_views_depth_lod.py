"""Viewport: depth maps from their photo's camera with low-confidence pixels hidden,
results framed by their main part, level of detail while the view moves, one render a
frame (issue 15 items 2, 3 and 7). Real renders under Xvfb (Mesa); no timing here:
benchmarks/viewport.py measures frame times."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_viewport_display  # noqa: E402

require_viewport_display()

pv = pytest.importorskip("pyvista")

from engines.types import DepthMap, Mesh  # noqa: E402

pytestmark = pytest.mark.gui

W, H = 320, 240
K = np.array([[300.0, 0, (W - 1) / 2], [0, 300.0, (H - 1) / 2], [0, 0, 1]])


@pytest.fixture(scope="module")
def vp(qapp):
    from tests.conftest import shown_viewport

    yield from shown_viewport(qapp, (480, 400))


@pytest.fixture(autouse=True)
def _clean(vp):
    vp.clear()
    vp.set_background((0.0, 0.0, 0.0))
    vp.set_confidence_threshold(0.5)
    vp.set_fade_low_confidence(False)
    vp.lod_enabled = True
    vp.set_interacting(False)
    yield


def two_colour_wall(confident_left: bool = False) -> DepthMap:
    """A wall 2 m away: left half red, right half blue in the photo; with
    ``confident_left`` the right half has low confidence."""
    depth = np.full((H, W), 2.0, np.float32)
    img = np.zeros((H, W, 3), np.uint8)
    img[:, : W // 2] = (230, 20, 20)
    img[:, W // 2 :] = (20, 20, 230)
    conf = np.ones((H, W), np.float32)
    if confident_left:
        conf[:, W // 2 :] = 0.1
    return DepthMap(depth, conf, K, image=img, name="wall")


def test_depth_opens_from_the_photo_camera_and_reset_returns_there(vp):
    vp.show(two_colour_wall(), "d")
    cam = vp.plotter.camera
    assert np.allclose(cam.position, 0, atol=1e-9)  # the photo's camera is at the origin
    d = np.asarray(cam.focal_point) - np.asarray(cam.position)
    assert d[2] < -0.99 * np.linalg.norm(d)  # looking down -z, as the photo did
    assert np.allclose(cam.up, (0, 1, 0), atol=1e-6)
    img = vp.screenshot()
    h, w = img.shape[:2]
    # the photo fills the window's width (same aspect letterboxed): red left, blue right
    left, right = img[h // 2, int(w * 0.3)].astype(int), img[h // 2, int(w * 0.7)].astype(int)
    assert left[0] > 120 and left[2] < 80 and right[2] > 120 and right[0] < 80
    vp.set_view("left")
    assert not np.allclose(vp.plotter.camera.position, 0, atol=1e-3)
    vp.reset_camera()  # "Reset": back to the photo's camera
    assert np.allclose(vp.plotter.camera.position, 0, atol=1e-9)


def test_low_confidence_pixels_are_hidden_by_default_and_the_slider_brings_them(vp):
    dm = two_colour_wall(confident_left=True)
    key = vp.show(dm, "d")
    assert vp.confidence_slider.isVisibleTo(vp) or vp._confidence_actions[1].isVisible()
    shown = vp.shown_faces(key)
    pts = np.asarray(vp.polydata(key).points)
    # every shown triangle lies on the confident (left, x < 0) half
    assert len(shown) and pts[shown].reshape(-1, 3)[:, 0].max() <= 1e-6
    img = vp.screenshot()
    h, w = img.shape[:2]
    assert img[h // 2, int(w * 0.75)].max() < 40  # the right half is not drawn
    vp.confidence_slider.setValue(0)  # the user drags the slider to 0
    assert len(vp.shown_faces(key)) > 1.9 * len(shown)
    assert vp.screenshot()[h // 2, int(w * 0.75)][2] > 120
    vp.set_confidence_threshold(0.5)
    vp.set_fade_low_confidence(True)  # faded: drawn, dimmed
    assert len(vp.shown_faces(key)) > 1.9 * len(shown)
    px = vp.screenshot()[h // 2, int(w * 0.75)].astype(int)
    assert 20 < px.max() < 150 and abs(px[0] - px[2]) < 60


def test_the_confidence_controls_show_only_with_a_depth_map(vp):
    vp.show(Mesh(np.eye(3, dtype=np.float32), [[0, 1, 2]]), "m")
    assert not vp._confidence_actions[1].isVisible()
    vp.show(two_colour_wall(True), "d")
    assert vp._confidence_actions[1].isVisible()


def test_a_depth_surface_has_no_triangle_across_a_depth_jump(vp):
    depth = np.full((H, W), 2.0, np.float32)
    depth[:, W // 2 :] = 6.0  # a wall behind, seen past an edge
    key = vp.show(DepthMap(depth, np.ones_like(depth), K), "d")
    pts = np.asarray(vp.polydata(key).points)
    tri = pts[vp.shown_faces(key)]
    z = tri[:, :, 2]
    assert (np.ptp(z, axis=1) < 0.5).all()  # none spans the 4 m jump


def sphere(center=(0, 0, 0), radius=1.0, res=200, colour=(200, 30, 30)) -> Mesh:
    s = pv.Sphere(radius=radius, center=center, theta_resolution=res, phi_resolution=res).triangulate()
    faces = np.asarray(s.faces).reshape(-1, 4)[:, 1:]
    return Mesh(s.points, faces, vertex_colors=np.tile(colour, (s.n_points, 1)).astype(np.uint8))


def test_reset_frames_the_main_part_not_the_frusta_beside_it(vp):
    vp.show(sphere(), "r/0", render=False)
    vp.show(sphere(center=(30, 0, 0), radius=0.2, res=12, colour=(30, 200, 30)), "r/1", render=False)
    vp.frame_key = "r/0"
    vp.reset_camera()
    img = vp.screenshot()
    red = (img[:, :, 0] > 100) & (img[:, :, 1] < 80)
    ys, xs = np.nonzero(red)
    # the main part fills most of the window's height (it was a small dot beside the far part)
    assert ys.max() - ys.min() > 0.75 * img.shape[0]


def test_the_view_moves_with_light_stand_ins_and_rests_at_full_detail(vp, qtbot, qapp):
    from PySide6.QtCore import QPoint, Qt

    key = vp.show(sphere(res=260), "s")
    item = vp._items[key]
    full_faces = item.poly.n_cells
    qtbot.mousePress(vp.plotter, Qt.LeftButton, pos=QPoint(200, 200))
    assert vp.interacting
    assert not item.actor.GetVisibility() and item.lod[0].GetVisibility()  # actors swapped
    assert item.lod[1].n_cells < full_faces / 4
    qtbot.mouseRelease(vp.plotter, Qt.LeftButton, pos=QPoint(220, 200))
    qtbot.waitUntil(lambda: not vp.interacting, timeout=5000)
    assert item.actor.GetVisibility() and not item.lod[0].GetVisibility()


def test_slider_updates_draw_stand_ins_until_they_rest(vp, qtbot):
    m = sphere(res=260)
    key = vp.show(m, "s")
    item = vp._items[key]
    moved = m.vertices * 1.1
    vp.update_points(key, moved, deferred=True)  # as an emotion slider tick does
    assert vp.interacting and item.lod[0].GetVisibility()
    assert np.allclose(np.asarray(item.poly.points), moved)  # the full part follows too
    lod_pts = np.asarray(item.lod[1].points)
    assert np.abs(np.linalg.norm(lod_pts, axis=1) - 1.1).max() < 0.05  # so does its stand-in
    qtbot.waitUntil(lambda: not vp.interacting, timeout=5000)  # rests: full detail, fresh normals
    n = np.asarray(item.poly.point_data["Normals"])
    assert np.mean(np.einsum("ij,ij->i", n, moved / 1.1)) > 0.99


def test_a_render_is_shown_without_rendering_it_again(vp, qapp):
    vp.show(sphere(res=60), "s")
    qapp.processEvents()
    count = []
    tag = vp.plotter.render_window.AddObserver("EndEvent", lambda *a: count.append(1))
    try:
        vp.plotter.render()
        for _ in range(5):
            qapp.processEvents()
        assert len(count) == 1  # pyvistaqt's paint rendered every frame a second time
        vp.plotter.update()  # Qt repaints for its own reasons (a panel beside it changed)
        for _ in range(5):
            qapp.processEvents()
        assert len(count) == 1  # the scene did not change: the last frame is shown again
        vp._items["s"].actor.prop.opacity = 0.99  # a change, then a paint: it renders
        vp.plotter.update()
        for _ in range(5):
            qapp.processEvents()
        assert len(count) == 2
        vp.request_paint()  # a forced paint renders, once
        for _ in range(5):
            qapp.processEvents()
        assert len(count) == 3
    finally:
        vp.plotter.render_window.RemoveObserver(tag)
