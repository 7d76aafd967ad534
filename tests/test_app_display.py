"""Which view shows what: the type-to-view table and the 2D/video views in the window."""

from __future__ import annotations

import numpy as np
import pytest

from app import display
from app.main_window import MainWindow
from app.settings import Settings
from engines.api import Result
from engines.types import Avatar, DepthMap, FocalStack, Image, PointCloud, Strands

from tests.conftest import DATA, box_mesh

pytestmark = pytest.mark.gui


def _depth():
    return DepthMap(np.ones((4, 5), np.float32))


def test_most_finished_geometry_is_drawn():
    pc = PointCloud(np.zeros((3, 3)))
    hair = Strands(np.zeros((2, 4, 3)))
    # a depth result is drawn as its depth map (a surface that knows each pixel's confidence)
    assert [i for i, _ in display.geometry_to_draw([_depth(), pc, box_mesh()])] == [0]
    assert [i for i, _ in display.geometry_to_draw([_depth(), pc])] == [0]
    assert [i for i, _ in display.geometry_to_draw([_depth()])] == [0]
    assert [i for i, _ in display.geometry_to_draw([pc, _depth()])] == [0]
    avatar = Avatar(box_mesh())
    assert [i for i, _ in display.geometry_to_draw([avatar, hair, pc])] == [0, 1]
    assert display.geometry_to_draw([Image(np.zeros((2, 2, 3), np.uint8))]) == []


def test_input_picture_of_a_focal_stack_is_its_middle_frame():
    frames = [np.full((4, 4, 3), v, np.uint8) for v in (10, 20, 30)]
    stack = FocalStack(frames, [0.5, 1.0, 2.0])
    assert display.input_picture(stack).pixels[0, 0, 0] == 20


@pytest.fixture
def window(qtbot):
    w = MainWindow(Settings(), samples=False, recovery=False, views=True)
    qtbot.addWidget(w)
    w.confirm_close = False
    with qtbot.waitExposed(w, timeout=60000):
        w.show()
    w.ensure_views()
    if w.image_view is None:
        pytest.skip("app.image_view is not available")
    yield w
    w.runner.shutdown(5000)


def test_depth_result_goes_to_the_2d_view(qtbot, window, fake_engine):
    with qtbot.waitSignal(window.input_added, timeout=60000):
        window.import_paths([DATA / "astronaut.png"])
    assert window.tabs.currentIndex() == display.TAB_2D
    assert window.image_view.mode == "image"
    window.refresh_engines()
    window.engine_panel.select("fake")
    window.engine_panel.form.set_values({"output": "depth", "size": 1.25})
    with qtbot.waitSignal(window.result_added, timeout=60000):
        window.run_engine()
    assert window.tabs.currentIndex() == display.TAB_2D
    assert window.image_view.mode == "depth"
    assert np.nanmax(window.image_view.depth.depth) == pytest.approx(2.5)


def test_a_broken_view_costs_only_a_status_message(qtbot, window, monkeypatch):
    window.project.add_result(
        __import__("app.project", fromlist=["ResultEntry"]).ResultEntry(Result(items=[_depth()]), "fake", {}, "Depth")
    )

    def broken(*a, **k):
        raise RuntimeError("view exploded")

    monkeypatch.setattr(window.image_view, "show_depth", broken)
    window.show_result(0)
    assert "view exploded" in window.statusBar().currentMessage()


def test_a_results_view_thumbnail_shows_that_result_not_the_one_before(qtbot, window, fake_engine):
    """The Results list's thumbnail of a mesh is taken from the frame the view paints for it
    (in an event after the result is shown): a red box's thumbnail is red, and the green box
    shown next gets a green one, not the red frame that was on screen before."""
    if window.viewport is None:
        pytest.skip("no 3D view in this session")

    def coloured(rgb):
        m = box_mesh()
        m.vertex_colors = np.tile(np.array(rgb, np.uint8), (len(m.vertices), 1))
        return m

    thumbs = []
    for rgb in ((220, 20, 20), (20, 220, 20)):
        window._add_result(Result(items=[coloured(rgb)]), fake_engine, {}, None)
        entry = window.project.results[-1]
        qtbot.waitUntil(lambda entry=entry: entry.thumbnail is not None, timeout=20000)
        thumbs.append(np.asarray(entry.thumbnail, np.float64))
    for t, channel in zip(thumbs, (0, 1)):
        centre = t[t.shape[0] // 3 : 2 * t.shape[0] // 3, t.shape[1] // 3 : 2 * t.shape[1] // 3, :3]
        # the box fills the middle of the framed view: its colour's channel leads there
        assert centre[..., channel].mean() > centre[..., 1 - channel].mean() + 40


def test_a_result_is_rendered_once_in_an_event_of_its_own(qtbot, window, fake_engine):
    """Showing a result renders nothing of it in the event that shows it (the layout changes
    it brings, the notes line and a panel's dock, paint the emptied view there and then);
    its one render comes at the next paint, after the event loop has had a turn (issue 15: the
    avatar's first render inside that event made a 120-160 ms stall)."""
    if window.viewport is None:
        pytest.skip("no 3D view in this session")
    vp = window.viewport
    window.tabs.setCurrentIndex(display.TAB_3D)
    qtbot.wait(200)
    m = box_mesh()
    m.vertex_colors = np.tile(np.array((220, 20, 20), np.uint8), (len(m.vertices), 1))
    window.project.add_result(
        __import__("app.project", fromlist=["ResultEntry"]).ResultEntry(
            Result(items=[m], notes=["a note that shows the notes line"]), "fake", {}, "Box"
        )
    )
    actors = []  # visible actors at each render
    ren = vp.plotter.renderer

    def count(*_):
        a = ren.GetActors()
        a.InitTraversal()
        actors.append(sum(a.GetNextActor().GetVisibility() for _ in range(a.GetNumberOfItems())))

    tag = vp.plotter.render_window.AddObserver("StartEvent", count)
    try:
        window.show_result(0)
        assert window.notes_label.isVisible()
        during = list(actors)
        qtbot.waitUntil(lambda: any(actors[len(during) :]), timeout=10000)
        qtbot.wait(300)
    finally:
        vp.plotter.render_window.RemoveObserver(tag)
    assert not any(during)  # only blank frames while it was being shown
    assert sum(1 for n in actors[len(during) :] if n) == 1  # then the result, rendered once
    assert vp.keys() == ["result0/0"]
