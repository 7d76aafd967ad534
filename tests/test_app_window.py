"""The main window: opens, imports into Inputs, runs an engine with progress to a result,
cancels, reports engine errors and bad files, and keeps working afterwards."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from app.main_window import MainWindow
from app.settings import Settings
from engines.types import DepthMap, Image, Mesh

from tests.conftest import DATA

pytestmark = pytest.mark.gui


def _import(qtbot, w, paths, kind=None):
    with qtbot.waitSignal(w.input_added, timeout=60000) as blocker:
        w.import_paths(paths, kind)
    return blocker.args[0]


def _run(qtbot, w, **values):
    w.engine_panel.select("fake")
    w.engine_panel.form.set_values(values)
    with qtbot.waitSignal(w.result_added, timeout=60000) as blocker:
        job = w.run_engine()
    return job, blocker.args[0]


def test_window_opens_with_docks_tabs_and_menus(window):
    assert window.isVisible()
    assert [window.tabs.tabText(i) for i in range(3)] == ["3D", "2D", "Video"]
    assert set(window.docks) >= {"Inputs", "Engine", "Jobs"}
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus[:2] == ["File", "View"] and "Help" in menus


def test_import_image_adds_it_to_inputs(qtbot, window):
    index = _import(qtbot, window, [DATA / "astronaut.png"])
    entry = window.project.inputs[index]
    assert entry.kind == "Image"
    assert entry.obj.size == (512, 512)
    assert window.inputs_panel.inputs.count() == 1
    assert window.inputs_panel.input_labels() == ["astronaut.png"]
    icon = window.inputs_panel.inputs.item(0).icon()
    assert not icon.isNull()
    # The thumbnail is the picture, not a grey square: it has the photo's colour spread.
    assert entry.thumbnail is not None and entry.thumbnail.std() > 20
    assert str((DATA / "astronaut.png").resolve()) in window.settings.recent_files


def test_run_fake_engine_shows_progress_and_result(qtbot, window, fake_engine):
    _import(qtbot, window, [DATA / "astronaut.png"])
    window.refresh_engines()
    progress = []
    window.runner.progress.connect(lambda j, f, m: progress.append(m))
    job, index = _run(qtbot, window, steps=3, size=0.5)
    assert job.state == "done"
    assert progress[-1] == "step 3 of 3"
    row = window.jobs_panel.rows[job.id]
    assert row.bar.value() == 1000 and row.message.text() == "Done"
    entry = window.project.results[index]
    assert isinstance(entry.result.main, Mesh)
    assert np.allclose(entry.result.main.bounds[1] - entry.result.main.bounds[0], 0.5)
    assert entry.params["size"] == 0.5 and entry.engine == "fake"
    assert window.inputs_panel.results.count() == 1
    assert window.selected_result() is entry


def test_cancel_leaves_no_result(qtbot, window, fake_engine):
    _import(qtbot, window, [DATA / "astronaut.png"])
    window.refresh_engines()
    window.engine_panel.select("fake")
    window.engine_panel.form.set_values({"steps": 100000, "delay": 0.001})
    job = window.run_engine()
    qtbot.waitUntil(lambda: job.state == "running" and job.fraction > 0, timeout=60000)
    row = window.jobs_panel.rows[job.id]
    with qtbot.waitSignal(window.runner.cancelled, timeout=60000, raising=False) as blocker:
        row.cancel_button.click()
    assert blocker.signal_triggered, (
        f"no cancelled signal: state={job.state} token={job.token.is_set()} "
        f"button={row.cancel_button.isEnabled()} fraction={job.fraction} message={job.message!r} "
        f"threads={window.runner.pool.activeThreadCount()}"
    )
    assert window.runner.wait(30000)
    qtbot.wait(50)
    assert window.project.results == []
    assert window.inputs_panel.results.count() == 0
    assert row.message.text() == "Cancelled"


def _run_fake_to_failure(qtbot, window, mode: str) -> None:
    _import(qtbot, window, [DATA / "astronaut.png"])
    window.refresh_engines()
    window.engine_panel.select("fake")
    window.engine_panel.form.set_values({"mode": mode})
    with qtbot.waitSignal(window.runner.failed, timeout=60000):
        window.run_engine()


def test_failing_engine_shows_its_message(qtbot, window, fake_engine, dialogs):
    _run_fake_to_failure(qtbot, window, "fail")
    warnings = dialogs.of("warning")
    assert len(warnings) == 1
    assert "The fake engine refused: the input has no box in it" in warnings[0][2]
    assert window.project.results == []


def test_crashing_engine_shows_dialog_and_logs(qtbot, window, fake_engine, dialogs, studio_home):
    from app import settings

    settings.setup_logging()
    _run_fake_to_failure(qtbot, window, "crash")
    ((_kind, _title, text),) = dialogs.of("critical")
    assert "ZeroDivisionError" in text and str(settings.log_file()) in text
    import logging

    for h in logging.getLogger().handlers:
        h.flush()
    assert "fake engine bug" in settings.log_file().read_text()


def test_run_without_input_explains(qtbot, window, fake_engine, dialogs):
    window.refresh_engines()
    window.engine_panel.select("fake")
    assert window.run_engine() is None
    assert "Select an input" in dialogs.of("warning")[0][2]


def test_bad_files_show_a_message_and_keep_what_is_loaded(qtbot, window, fake_engine, dialogs, tmp_path):
    _import(qtbot, window, [DATA / "astronaut.png"])
    truncated = tmp_path / "broken.png"
    truncated.write_bytes((DATA / "astronaut.png").read_bytes()[:300])
    unknown = tmp_path / "notes.xyz"
    unknown.write_text("hello")
    for bad in (truncated, unknown, tmp_path / "missing.jpg"):
        with qtbot.waitSignal(window.import_failed, timeout=60000) as blocker:
            window.import_paths([bad])
        assert bad.name in blocker.args[0]
    texts = [t for _k, _t, t in dialogs.of("warning")]
    assert len(texts) == 3
    assert all(name in t for name, t in zip(("broken.png", "notes.xyz", "missing.jpg"), texts))
    # Everything already loaded is still there, and the window still works.
    assert window.inputs_panel.input_labels() == ["astronaut.png"]
    window.refresh_engines()
    _job, index = _run(qtbot, window, steps=2)
    assert isinstance(window.project.results[index].result.main, Mesh)


def test_engine_list_follows_the_selected_input(qtbot, window, register_engines, fake_engine):
    from tests.conftest import FakeEngine

    class VideoOnly(FakeEngine):
        name = "video-only"
        title = "Video only"
        from engines.types import VideoClip

        accepts = (VideoClip,)

    register_engines(VideoOnly)
    window.refresh_engines()
    _import(qtbot, window, [DATA / "astronaut.png"])
    names = [window.engine_panel.combo.itemData(i) for i in range(window.engine_panel.combo.count())]
    assert "fake" in names and "video-only" not in names


def test_drop_several_images_makes_one_input(qtbot, window, tmp_path):
    a, b = tmp_path / "view_a.png", tmp_path / "view_b.png"
    shutil.copy(DATA / "astronaut.png", a)
    shutil.copy(DATA / "grace_hopper.jpg", b.with_suffix(".jpg"))
    with qtbot.waitSignal(window.input_added, timeout=60000):
        window.import_dropped([str(a), str(b.with_suffix(".jpg"))])
    assert len(window.project.inputs) == 1
    assert window.project.inputs[0].kind in ("ImageSet", "FocalStack")


def test_depth_result_label_and_export(qtbot, window, fake_engine, tmp_path):
    _import(qtbot, window, [DATA / "astronaut.png"])
    window.refresh_engines()
    _job, index = _run(qtbot, window, output="depth", size=1.5)
    depth = window.project.results[index].result.main
    assert isinstance(depth, DepthMap)
    from app import menus

    out = tmp_path / "depth.npy"
    with qtbot.waitSignal(window.runner.finished, timeout=60000):
        menus.export_dialog(window, str(out))
    back = np.load(out)
    assert back.shape == (24, 32) and np.allclose(back[:, 20], 1.5) and np.allclose(back[:, 0], 3.0)


def test_export_to_wrong_format_is_a_dialog(qtbot, window, fake_engine, tmp_path, dialogs):
    _import(qtbot, window, [DATA / "astronaut.png"])
    window.refresh_engines()
    _run(qtbot, window, output="points")
    from app import menus

    # Refused before any job starts: the result has no MP4 writer.
    assert menus.export_dialog(window, str(tmp_path / "points.mp4")) is None
    assert ".mp4" in dialogs.of("warning")[-1][2]
    assert not (tmp_path / "points.mp4").exists()


def test_about_lists_engines(window, fake_engine):
    from app import menus

    assert "Fake engine" in menus.about_text() and "<code>fake</code>" in menus.about_text()


def test_image_input_type():
    assert Image(np.zeros((2, 3, 3), np.uint8)).size == (3, 2)


def test_focal_stack_without_distances_asks_for_them(qtbot, window, tmp_path, monkeypatch):
    from app.inputs_panel import FocusDistanceDialog

    folder = tmp_path / "stack"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        shutil.copy(DATA / "astronaut.png", folder / name)
    asked = []

    def ask(files, parent=None):
        asked.append([Path(f).name for f in files])
        return [2.0, 0.5, 1.0]

    monkeypatch.setattr(FocusDistanceDialog, "ask", staticmethod(ask))
    index = _import(qtbot, window, [folder], "FocalStack")
    assert asked == [["a.png", "b.png", "c.png"]]
    entry = window.project.inputs[index]
    assert entry.kind == "FocalStack"
    assert sorted(entry.focus_distances) == [0.5, 1.0, 2.0]
    assert np.allclose(np.sort(entry.obj.focus_distances), [0.5, 1.0, 2.0])


def test_focus_distance_dialog_rows(qtbot, tmp_path):
    from app.inputs_panel import FocusDistanceDialog

    files = []
    for i in range(4):
        f = tmp_path / f"f{i}.png"
        shutil.copy(DATA / "astronaut.png", f)
        files.append(f)
    dlg = FocusDistanceDialog(files)
    qtbot.addWidget(dlg)
    assert dlg.table.rowCount() == 4 and dlg.table.item(2, 0).text() == "f2.png"
    d = dlg.distances()
    assert d[0] == pytest.approx(0.3) and d[-1] == pytest.approx(3.0) and d == sorted(d)
    dlg.spins[1].setValue(0.75)
    assert dlg.distances()[1] == 0.75


def test_result_is_drawn_in_the_3d_view(qtbot, fake_engine, studio_home):
    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.platformName() != "xcb":
        pytest.skip("the VTK viewport needs the xcb platform (run under xvfb-run)")
    pytest.importorskip("pyvista")
    w = MainWindow(Settings(), samples=False, recovery=False, views=True)
    qtbot.addWidget(w)
    w.confirm_close = False
    w.resize(900, 700)
    with qtbot.waitExposed(w, timeout=60000):
        w.show()
    w.ensure_views()
    if w.viewport is None:
        pytest.skip("app.viewport is not available")
    _import(qtbot, w, [DATA / "astronaut.png"])
    w.refresh_engines()
    _job, index = _run(qtbot, w, output="mesh", size=1.0)
    assert w.tabs.currentIndex() == 0
    assert any(k.startswith(f"result{index}/") for k in w.viewport.keys())
    shot = w.viewport.screenshot()
    h, wd = shot.shape[:2]
    centre = shot[h // 2 - 5 : h // 2 + 5, wd // 2 - 5 : wd // 2 + 5].reshape(-1, 3).astype(int)
    corner = shot[:10, :10].reshape(-1, 3).astype(int)
    # The grey box (vertex colour 200) covers the centre; the corner is background.
    assert np.abs(centre.mean(0) - corner.mean(0)).max() > 20
    w.runner.shutdown(5000)
    w.close()


def test_first_start_imports_the_bundled_samples(qtbot, studio_home, dialogs):
    import resources

    samples = resources.samples()
    assert any(p.name == "portrait.png" for p in samples)
    w = MainWindow(Settings(), samples=True, recovery=False, views=False)
    qtbot.addWidget(w)
    w.confirm_close = False
    w.show()
    qtbot.waitUntil(lambda: len(w.project.inputs) == len(samples) or bool(dialogs.calls), timeout=60000)
    assert dialogs.calls == []
    assert sorted(e.paths[0] for e in w.project.inputs) == sorted(str(p) for p in samples)
    portrait = next(e for e in w.project.inputs if e.paths[0].endswith("portrait.png"))
    assert portrait.obj.size == (512, 512)
    assert w.inputs_panel.samples.count() == len(samples)
    w.runner.shutdown(5000)
    # Only on the first start: a second window does not import them again.
    w2 = MainWindow(Settings(), samples=True, recovery=False, views=False)
    qtbot.addWidget(w2)
    w2.confirm_close = False
    w2.show()
    qtbot.wait(200)
    assert w2.project.inputs == [] and w2.runner.jobs == {}


def test_two_inputs_go_to_a_two_input_engine(qtbot, window, register_engines):
    from PySide6.QtCore import QItemSelectionModel

    from tests.conftest import FakeEngine

    class PairEngine(FakeEngine):
        name = "pair"
        title = "Pair"
        min_inputs = max_inputs = 2

    register_engines(PairEngine)
    window.refresh_engines()
    _import(qtbot, window, [DATA / "astronaut.png"])
    _import(qtbot, window, [DATA / "grace_hopper.jpg"])
    assert window.selected_inputs() == [1]  # a new import selects only itself
    lst = window.inputs_panel.inputs
    lst.setCurrentRow(0, QItemSelectionModel.Select)
    assert window.selected_inputs() == [0, 1]
    assert window.engine_panel.current == "pair"
    with qtbot.waitSignal(window.result_added, timeout=60000) as blocker:
        window.run_engine()
    assert window.project.results[blocker.args[0]].result.metrics["inputs"] == 2


def test_about_box_names_the_shipped_models_and_their_licences():
    from app import menus

    text = menus.about_text()
    assert "ICT Face Model" in text and "MIT" in text and "Permission is hereby granted" in text
    assert "Face Landmarker" in text and "Apache License" in text
