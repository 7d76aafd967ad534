"""The window as laid out on real screen sizes (issue 15, items 6 and 9): it fits a
1366 x 768 laptop and a 1920 x 1080 monitor with Run, Samples, Jobs and the status bar on
screen; the Avatar dock never keeps Run hidden once another input is chosen; the hair
colour row is reachable without scrolling anything; sample imports are not listed as
jobs; long notes go under the view; a recovered session shows its last result."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QAbstractScrollArea, QMessageBox, QWidget

from app import settings as settings_mod
from app.main_window import FRAME_ALLOWANCE, STATUS_CHARS, MainWindow
from app.project import ResultEntry
from app.settings import Settings
from engines.api import Result
from tests.conftest import DATA, FakeEngine, box_mesh

pytestmark = pytest.mark.gui
SCREENS = [(1366, 768), (1920, 1080)]


class _Screen:
    """What :meth:`MainWindow.fit_to_screen` reads of a QScreen: a laptop's or a monitor's
    available area, whatever screen this test session runs on."""

    def __init__(self, w: int, h: int):
        self._area = QRect(0, 0, w, h - 30)  # a desktop panel takes 30 px

    def availableGeometry(self) -> QRect:  # noqa: N802 (Qt's name)
        return self._area


def _window(qtbot, size) -> MainWindow:
    w = MainWindow(Settings(), samples=False, recovery=False, views=False)
    qtbot.addWidget(w)
    w.confirm_close = False
    w.fit_to_screen(_Screen(*size))
    with qtbot.waitExposed(w, timeout=60000):
        w.show()
    qtbot.wait(20)
    return w


def _global_rect(widget: QWidget) -> QRect:
    return QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size())


def _on_screen(w: MainWindow, widget: QWidget, area: QRect) -> bool:
    """Shown, not covered by a dock tab or clipped away, and inside the window and screen."""
    r = _global_rect(widget)
    win = QRect(w.mapToGlobal(QPoint(0, 0)), w.size())
    return widget.isVisible() and not widget.visibleRegion().isEmpty() and win.contains(r) and area.contains(win)


def _scrolling_ancestors(widget: QWidget) -> list[QAbstractScrollArea]:
    """Scroll areas around ``widget`` whose scroll bar is needed (the user must scroll them)."""
    out, p = [], widget.parentWidget()
    while p is not None:
        if isinstance(p, QAbstractScrollArea) and p.verticalScrollBar().maximum() > 0:
            out.append(p)
        p = p.parentWidget()
    return out


@pytest.fixture
def avatar_result():
    from engines.hair.head import canonical_avatar

    return Result(items=[canonical_avatar()])


@pytest.mark.parametrize("size", SCREENS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_window_fits_the_screen_and_keeps_run_reachable(qtbot, studio_home, dialogs, size, avatar_result):
    pytest.importorskip("engines.avatar.engine")
    w = _window(qtbot, size)
    try:
        area = _Screen(*size).availableGeometry()
        # Sized to the screen (1400 x 900 did not fit 1366 x 768), not forced bigger by the docks.
        assert w.width() <= area.width() - FRAME_ALLOWANCE[0] and w.height() <= area.height() - FRAME_ALLOWANCE[1]
        assert w.minimumSizeHint().height() <= area.height() - FRAME_ALLOWANCE[1]
        if size == (1920, 1080):
            assert (w.width(), w.height()) == (1400, 900)
        panel = w.engine_panel
        for widget in (panel.run_button, w.inputs_panel.samples, w.jobs_panel.clear_button, w.statusBar()):
            assert _on_screen(w, widget, area), widget
        with qtbot.waitSignal(w.input_added, timeout=60000):
            w.import_paths([DATA / "astronaut.png"])
        # An avatar result brings the Avatar dock (a tab over the Engine dock) ...
        w._add_result(avatar_result, FakeEngine, {}, 0)
        qtbot.wait(20)
        av = w.avatar_panel
        assert av is not None and _on_screen(w, av.sliders["happiness"], area)
        assert not _on_screen(w, panel.run_button, area)  # behind the Avatar tab now
        assert _scrolling_ancestors(av.sliders["surprise"]) == []  # the face controls fit the dock
        assert _on_screen(w, av.view_buttons["left"], area) and _on_screen(w, av.render_label, area)
        # ... whose hair colour row is on screen with nothing to scroll to reach it.
        av.sections.setCurrentWidget(av.hair_panel)
        qtbot.wait(20)
        hair = av.hair_panel
        for widget in (hair.color_button, *hair.preset_buttons.values()):
            assert _on_screen(w, widget, area), widget
            assert _scrolling_ancestors(widget) == []
        assert _on_screen(w, hair.grid, area)  # the grid scrolls itself, the one scroll area
        # A group photo's avatar adds the row of faces to pick from: it still fits.
        group = avatar_result.items[0]
        group.photo = np.full((240, 320, 3), 128, np.uint8)
        group.params = {
            **group.params,
            "faces": [[20 + 60 * i, 40, 70 + 60 * i, 100] for i in range(5)],
            "face_index": 0,
        }
        w._add_result(Result(items=[group]), FakeEngine, {}, 0)
        qtbot.wait(20)
        av.sections.setCurrentIndex(0)
        qtbot.wait(20)
        assert len(av.face_buttons) == 5
        for widget in (*av.face_buttons, av.sliders["surprise"], av.perform_button, av.render_label):
            assert _on_screen(w, widget, area), widget
            assert _scrolling_ancestors(widget) == []
        # Choosing the input again to run another engine on it brings Run forward.
        w.inputs_panel.inputs.setCurrentRow(-1)
        w.inputs_panel.inputs.setCurrentRow(0)
        qtbot.wait(20)
        assert _on_screen(w, panel.run_button, area)
        assert not w.docks["Avatar"].isHidden()  # still a tab beside it
        assert _on_screen(w, w.jobs_panel.clear_button, area) and _on_screen(w, w.statusBar(), area)
    finally:
        w.runner.shutdown(5000)


def test_window_fits_the_real_screen(qtbot, studio_home, dialogs):
    """Whatever screen this runs on (xvfb-run -s "-screen 0 1366x768x24" for the laptop)."""
    w = MainWindow(Settings(), samples=False, recovery=False, views=False)
    qtbot.addWidget(w)
    w.confirm_close = False
    with qtbot.waitExposed(w, timeout=60000):
        w.show()
    try:
        area = w.screen().availableGeometry()
        if area.width() < 1000 or area.height() < 700:
            pytest.skip(f"a {area.width()}x{area.height()} screen (offscreen default) is no real one")
        assert area.contains(w.frameGeometry())
        assert _on_screen(w, w.engine_panel.run_button, area) and _on_screen(w, w.statusBar(), area)
    finally:
        w.runner.shutdown(5000)


def test_sample_imports_are_not_listed_as_jobs(qtbot, studio_home, dialogs):
    import resources

    w = MainWindow(Settings(), samples=True, recovery=False, views=False)
    qtbot.addWidget(w)
    w.confirm_close = False
    w.show()
    try:
        qtbot.waitUntil(
            lambda: len(w.project.inputs) == len(resources.samples()) and not w.runner.active(), timeout=60000
        )
        assert w.jobs_panel.rows == {} and w.jobs_panel.empty.isVisible()
        with qtbot.waitSignal(w.input_added, timeout=60000):
            job = w.import_paths([DATA / "astronaut.png"])  # the user's own imports are listed
        assert job.id in w.jobs_panel.rows
    finally:
        w.runner.shutdown(5000)


def test_long_notes_go_under_the_view_in_full(qtbot, window):
    long = (
        "Only 7 % of the pixels are confident (threshold 0.50): the rest are hidden in the 3D view; "
        "lower the confidence slider to see them, or take more photos with the focus spread wider."
    )
    window._add_result(
        Result(items=[box_mesh()], notes=[long, "Scale from the EXIF focal length."]), FakeEngine, {}, None
    )
    msg = window.statusBar().currentMessage()
    assert len(msg) <= STATUS_CHARS and msg.endswith("(full notes under the view)")
    notes = window.notes_label
    assert notes.isVisible() and long in notes.text() and "EXIF focal length" in notes.text()
    assert notes.wordWrap() and notes.width() >= window.tabs.width() - 8  # all of it, wrapped under the view
    window._add_result(Result(items=[box_mesh()]), FakeEngine, {}, None)
    assert not notes.isVisible()  # a result without notes: nothing left over
    window.inputs_panel.results.setCurrentRow(0)
    assert notes.isVisible() and long in notes.text()


def test_recovered_session_shows_its_last_result(qtbot, window, dialogs):
    window.project.add_result(ResultEntry(Result(items=[box_mesh(0.5)], notes=["first"]), "fake", {}, "Box"))
    window.project.add_result(ResultEntry(Result(items=[box_mesh(0.7)], notes=["the last one"]), "fake", {}, "Box 2"))
    with qtbot.waitSignal(window.runner.finished, timeout=60000) as blocker:
        window.autosave()
    saved = blocker.args[1]
    s = Settings()
    s.data["clean_exit"] = time.time() - 3600
    s.save()
    os.utime(saved, None)
    dialogs.answers["question"] = QMessageBox.Yes
    w2 = MainWindow(Settings(), samples=False, recovery=True, views=False)
    qtbot.addWidget(w2)
    w2.confirm_close = False
    shown = []
    w2.inputs_panel.result_selected.connect(shown.append)
    with qtbot.waitSignal(w2.project_loaded, timeout=60000):
        w2.show()
    try:
        assert len(w2.project.results) == 2
        assert w2.inputs_panel.results.currentRow() == 1 and shown == [1]  # shown without a click
        assert w2.selected_result() is w2.project.results[1]
        assert "the last one" in w2.notes_label.text()
    finally:
        w2.close()
        w2.runner.shutdown(5000)
        assert not settings_mod.autosave_path().exists()


def test_opened_project_shows_its_last_result(qtbot, window, tmp_path):
    """File > Open: the project's last result is on screen without a click (issue 15)."""
    from app.project import Project

    p = Project()
    p.add_result(ResultEntry(Result(items=[box_mesh(0.5)], notes=["first"]), "fake", {}, "Box"))
    p.add_result(ResultEntry(Result(items=[box_mesh(0.7)], notes=["the last one"]), "fake", {}, "Box 2"))
    path = p.save(tmp_path / "two boxes")
    shown = []
    window.inputs_panel.result_selected.connect(shown.append)
    with qtbot.waitSignal(window.project_loaded, timeout=60000):
        assert window.open_project(path)
    assert len(window.project.results) == 2
    assert window.inputs_panel.results.currentRow() == 1 and shown == [1]
    assert window.selected_result() is window.project.results[1]
    assert "the last one" in window.notes_label.text()
