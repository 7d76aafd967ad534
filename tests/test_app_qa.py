"""Regressions found by driving the app as a user would (QA pass on the shell)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QWidget

from app import display
from app.inputs_panel import thumbnail_of
from app.main_window import MainWindow
from app.settings import Settings
from engines.api import Result
from engines.types import Avatar, DepthMap, Mesh, PointCloud, VideoResult

from tests.conftest import DATA, FakeEngine, box_mesh


def test_video_result_gets_a_thumbnail_from_its_frames():
    frames = [np.zeros((40, 60, 3), np.uint8) for _ in range(3)]
    frames[1][:] = (200, 30, 10)  # the middle frame is the one shown
    thumb = thumbnail_of(VideoResult(fps=10.0, frames=frames))
    assert thumb is not None and thumb.shape[2] == 3
    assert tuple(thumb[thumb.shape[0] // 2, thumb.shape[1] // 2]) == (200, 30, 10)


def test_video_result_on_disk_gets_a_thumbnail():
    thumb = thumbnail_of(VideoResult(fps=30.0, path=DATA / "carphone_30.mp4"))
    assert thumb is not None and thumb.ndim == 3
    assert thumb.std() > 5  # a real picture, not a flat grey square


def test_point_cloud_result_is_drawn_with_its_camera_frusta():
    """Multi-view 'points' stage: [dense points, camera frusta mesh, sparse points]. The
    frusta mesh must not hide the dense cloud (it did: only the cameras were drawn)."""
    dense = PointCloud(np.random.default_rng(0).random((50, 3)), name="dense")
    sparse = PointCloud(np.zeros((5, 3)), name="sparse points")
    frusta = Mesh(np.zeros((5, 3), np.float32), np.array([[0, 1, 2]]), name="cameras")
    drawn = [i for i, _ in display.geometry_to_draw([dense, frusta, sparse])]
    assert drawn == [0, 1]
    # cameras-only stage: sparse points are the main item and drawn with the frusta
    assert [i for i, _ in display.geometry_to_draw([sparse, frusta])] == [0, 1]
    # a mesh result still hides its points and depth
    depth = DepthMap(np.ones((4, 4), np.float32))
    assert [i for i, _ in display.geometry_to_draw([box_mesh(), dense, frusta])] == [0, 2]
    # a depth result is drawn as its depth map: a surface that knows each pixel's confidence
    assert [i for i, _ in display.geometry_to_draw([depth, dense, box_mesh()])] == [0]


# -- window-level regressions ---------------------------------------------------------------


def _window(qtbot, views: bool) -> MainWindow:
    w = MainWindow(Settings(), samples=False, recovery=False, views=views)
    qtbot.addWidget(w)
    w.confirm_close = False
    with qtbot.waitExposed(w, timeout=60000):
        w.show()
    return w


@pytest.fixture
def window(qtbot, studio_home, dialogs):
    w = _window(qtbot, views=False)
    yield w
    w.runner.shutdown(5000)


def _add(w, result) -> int:
    w._add_result(result, FakeEngine, {}, None)
    return len(w.project.results) - 1


def test_avatar_dock_goes_when_another_result_is_shown(qtbot, window, monkeypatch, tmp_path):
    shown = []

    class FakePanel(QWidget):  # the result panel contract (engines.api.Engine.panels)
        dock_title = "Avatar"

        def __init__(self, _w):
            super().__init__()
            self.setMinimumSize(300, 1400)  # taller than the window (and the screen)

        def show_item(self, avatar, key):
            shown.append(key)

    import app.avatar_panel

    monkeypatch.setattr(app.avatar_panel, "AvatarPanel", FakePanel)
    height = window.height()
    a = _add(window, Result(items=[Avatar(box_mesh())]))
    window.show_result(a)
    assert shown and not window.docks["Avatar"].isHidden()
    qtbot.wait(50)
    assert window.height() <= height  # the panel scrolls; it does not stretch the window
    b = _add(window, Result(items=[box_mesh()]))
    window.show_result(b)
    assert window.docks["Avatar"].isHidden()  # its sliders would drive an avatar not drawn
    assert not window.docks["Engine"].isHidden()
    window.show_result(a)  # back to the avatar: its controls return
    assert not window.docks["Avatar"].isHidden()
    window.remove_result(a)  # and go with it
    assert window.docks["Avatar"].isHidden()
    window.show_result(_add(window, Result(items=[Avatar(box_mesh())])))
    assert not window.docks["Avatar"].isHidden()
    path = window.save_project(tmp_path / "other.capstudio")
    window.open_project(path)  # a project replaces the session; its last result, an avatar, is shown
    assert window.selected_result() is window.project.results[-1]
    assert not window.docks["Avatar"].isHidden()
    window.remove_result(len(window.project.results) - 1)
    assert isinstance(window.project.results[-1].result.main, type(box_mesh()))
    path = window.save_project(tmp_path / "meshes.capstudio")
    window.open_project(path)  # a project that ends with a mesh: no avatar controls
    assert window.docks["Avatar"].isHidden()


def test_export_with_an_extension_the_result_cannot_take_is_refused(window, dialogs, tmp_path):
    from app import menus

    window.inputs_panel.results.setCurrentRow(_add(window, Result(items=[box_mesh()])))
    dialogs.answers["getSaveFileName"] = (str(tmp_path / "box.npy"), "")
    assert menus.export_dialog(window) is None
    assert not list(tmp_path.iterdir())  # neither box.npy nor box.npy.glb
    assert any(kind == "warning" and ".npy" in text for kind, _t, text in dialogs.calls)


def test_reopened_project_keeps_input_notes(qtbot, window, tmp_path):
    """An input's notes (e.g. how a focal stack's distances were found) show as
    '(see notes)' after import; they were lost when the project was reopened."""
    import shutil

    stack = tmp_path / "stack"
    shutil.copytree(Path(__file__).resolve().parents[1] / "resources" / "samples" / "focal_stack", stack)
    with qtbot.waitSignal(window.input_added, timeout=60000):
        window.import_paths([stack], "FocalStack")
    notes = window.project.inputs[0].obj.notes
    assert notes and "(see notes)" in window.inputs_panel.inputs.item(0).text()
    path = window.save_project(tmp_path / "p.capstudio")
    with qtbot.waitSignal(window.project_loaded, timeout=60000):
        window.open_project(path)
    item = window.inputs_panel.inputs.item(0)
    reread = window.project.inputs[0].obj.notes
    assert reread and "(see notes)" in item.text() and reread[0] in item.toolTip()


def test_video_result_with_a_source_plays_side_by_side(qtbot, studio_home, dialogs):
    w = _window(qtbot, views=True)
    try:
        w.ensure_views()
        frames = [np.full((32, 48, 3), v, np.uint8) for v in (10, 120, 240)]
        video = VideoResult(fps=10.0, frames=frames, source=DATA / "carphone_30.mp4")
        w.show_result(_add(w, Result(items=[video])))
        assert w.video_view.side_by_side.isChecked()
        assert not w.video_view.source_view.isHidden()
    finally:
        w.runner.shutdown(5000)


def test_removing_an_input_keeps_results_pointing_at_their_inputs():
    from app.project import InputEntry, Project, ResultEntry

    p = Project()
    for name in ("a", "b", "c"):
        p.add_input(InputEntry("Image", [f"/x/{name}.png"], name))
    for row in (0, 1, 2):
        p.add_result(ResultEntry(Result(items=[box_mesh()]), "fake", {}, f"r{row}", row))
    p.remove_input(1)
    assert [e.label for e in p.inputs] == ["a", "c"]
    assert [r.input for r in p.results] == [0, None, 1]
    assert p.inputs[p.results[2].input].label == "c"


def test_mesh_result_gets_a_thumbnail_of_the_3d_view(qtbot, studio_home, dialogs):
    """Meshes and point clouds carry no picture: their Results entry was a grey square."""
    w = _window(qtbot, views=True)
    try:
        w.ensure_views()
        if w.viewport is None:
            pytest.skip("no 3D view on this platform")
        red = box_mesh()
        red.vertex_colors[:] = (230, 20, 20)
        row = _add(w, Result(items=[red]))  # selecting it shows it
        qtbot.waitUntil(lambda: w.project.results[row].thumbnail is not None, timeout=20000)
        thumb = w.project.results[row].thumbnail
        c = thumb[thumb.shape[0] // 2, thumb.shape[1] // 2].astype(int)
        assert c[0] > 100 and c[0] > 2 * c[1] and c[0] > 2 * c[2]  # the red box, in the middle
        icon = w.inputs_panel.results.item(row).icon().pixmap(48, 48).toImage()
        px = icon.pixelColor(icon.width() // 2, icon.height() // 2)
        assert px.red() > 2 * px.green()
    finally:
        w.runner.shutdown(5000)


def test_result_notes_stay_in_the_results_tooltip(window):
    """Notes went only to the status bar (cut off, gone after 10 s)."""
    note = "Frames aligned to frame 1: residual misalignment 0.14 px."
    row = _add(window, Result(items=[box_mesh()], notes=[note]))
    assert note in window.inputs_panel.results.item(row).toolTip()


def test_status_bar_says_what_a_run_made(window):
    window.status("Imported portrait.png: Image 512x512")
    _add(window, Result(items=[box_mesh()]))
    assert window.statusBar().currentMessage() == "Fake engine #1: Mesh"


def test_first_start_leaves_the_portrait_selected_for_run(qtbot, studio_home, dialogs):
    """The last sample import to finish used to take the selection (often the video,
    which offers a long multi-view run); the portrait is the one to press Run on."""
    import resources

    w = MainWindow(Settings(), samples=True, recovery=False, views=False)
    qtbot.addWidget(w)
    w.confirm_close = False
    w.show()
    try:
        qtbot.waitUntil(
            lambda: len(w.project.inputs) == len(resources.samples()) and not w.runner.active(), timeout=60000
        )
        qtbot.wait(50)
        assert [w.project.inputs[r].paths[0] for r in w.selected_inputs()] == [
            str(p) for p in resources.samples() if p.name == "portrait.png"
        ]
        from engines import registry

        if "avatar" in registry.engines():
            assert w.engine_panel.current == "avatar"
    finally:
        w.runner.shutdown(5000)


def test_point_size_dialog_starts_from_the_current_size(window, dialogs, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    from app import menus

    class View:
        point_size = 7.0

        def set_point_size(self, px):
            self.point_size = px

    monkeypatch.setattr(window, "viewport", View())
    monkeypatch.setattr(window, "_views_loaded", True)
    seen = []

    def get_int(parent, title, label, value, lo, hi):
        seen.append(value)
        return 9, True

    monkeypatch.setattr(QInputDialog, "getInt", staticmethod(get_int))
    menus.point_size_dialog(window)
    assert seen == [7] and window.viewport.point_size == 9  # not reset to 3 each time


def test_first_start_keeps_a_file_given_on_the_command_line_selected(qtbot, studio_home, dialogs):
    import resources

    w = MainWindow(Settings(), samples=True, recovery=False, views=False)
    qtbot.addWidget(w)
    w.confirm_close = False
    w.show()
    w.import_dropped([str(DATA / "astronaut.png")])  # what app.main does with argv files
    try:
        qtbot.waitUntil(
            lambda: len(w.project.inputs) == len(resources.samples()) + 1 and not w.runner.active(), timeout=60000
        )
        qtbot.wait(50)
        assert [w.project.inputs[r].paths[0] for r in w.selected_inputs()] == [str(DATA / "astronaut.png")]
    finally:
        w.runner.shutdown(5000)


def test_warm_up_loads_the_face_models_in_the_background(qtbot):
    """The app preloads the avatar's face models after start so the first Make avatar is
    fast; the work runs as a job where the engines run (their worker process: loading
    mediapipe and torch there does not hold this process's GIL) and finishes without error."""
    import sys

    w = MainWindow(Settings(), samples=False, recovery=False, views=False, warm_up=True)
    qtbot.addWidget(w)
    w.confirm_close = False
    with qtbot.waitSignal(w.runner.finished, timeout=120_000) as done:
        pass
    job = w.runner.jobs[done.args[0]]
    assert job.title == "Preparing face models" and job.state == "done"
    assert job.meta["process"] is True or "mediapipe" in sys.modules


def test_perform_dock_goes_when_another_result_replaces_the_avatar(window):
    """The Perform dock drives the avatar too: it is hidden with the Avatar dock."""
    from PySide6 import QtWidgets
    from PySide6.QtCore import Qt

    from app import display

    dock = window._dock("Perform", QtWidgets.QLabel("perform"), Qt.RightDockWidgetArea)
    window.docks["Perform"] = dock
    dock.show()
    assert not dock.isHidden()
    display.hide_avatar_controls(window)
    assert dock.isHidden()
