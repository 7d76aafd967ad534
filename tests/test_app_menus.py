"""Menu actions: File > New focal stack from RGB-D, Recent files, drag-and-drop, View
actions without a 3D view, Settings > ONNX model, Help > About."""

from __future__ import annotations

import json
import shutil
from typing import Literal

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from pydantic import BaseModel, Field

from app import menus
from app.settings import Settings

from tests.conftest import DATA, FakeEngine

pytestmark = pytest.mark.gui


class DepthLike(FakeEngine):
    name = "depth-like"
    title = "Depth like"

    class Params(BaseModel):
        prior: Literal["edge-aware", "onnx"] = Field("onnx", description="Prior")
        onnx_model: str = Field("", description="ONNX file")


def test_new_focal_stack_from_rgbd(qtbot, window, dialogs, tmp_path):
    pytest.importorskip("engines.depth.synth")
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).save(tmp_path / "scene.png")
    depth = np.full((40, 56), 2.0, np.float32)
    depth[:, 28:] = 0.8
    np.save(tmp_path / "scene_depth.npy", depth)
    out = tmp_path / "stack"
    dialogs.answers["getOpenFileName"] = [(str(tmp_path / "scene.png"), ""), (str(tmp_path / "scene_depth.npy"), "")]
    dialogs.answers["getInt"] = (3, True)
    dialogs.answers["getExistingDirectory"] = str(out)
    with qtbot.waitSignal(window.input_added, timeout=60000):
        menus.new_focal_stack(window)
    entry = window.project.inputs[0]
    assert entry.kind == "FocalStack" and len(entry.obj) == 3
    d = np.sort(entry.obj.focus_distances)
    assert d[0] == pytest.approx(0.8, rel=0.02) and d[-1] == pytest.approx(2.0, rel=0.02)
    meta = json.loads((out / "focus.json").read_text())
    assert len(meta["focus_distances"]) == 3


def test_new_focal_stack_with_mismatched_depth_explains(qtbot, window, dialogs, tmp_path):
    pytest.importorskip("engines.depth.synth")
    np.save(tmp_path / "small.npy", np.ones((5, 5), np.float32))
    dialogs.answers["getOpenFileName"] = [(str(DATA / "astronaut.png"), ""), (str(tmp_path / "small.npy"), "")]
    dialogs.answers["getInt"] = (3, True)
    dialogs.answers["getExistingDirectory"] = str(tmp_path / "out")
    with qtbot.waitSignal(window.runner.failed, timeout=60000):
        menus.new_focal_stack(window)
    text = dialogs.of("warning")[-1][2]
    assert "small.npy" in text and "astronaut.png" in text and "same size" in text
    assert window.project.inputs == []


def test_drop_files_onto_the_window(qtbot, window, tmp_path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(DATA / "astronaut.png"))])
    ev = QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.input_added, timeout=60000):
        window.dropEvent(ev)
    assert window.inputs_panel.input_labels() == ["astronaut.png"]


def test_recent_files_menu_reopens(qtbot, window, tmp_path):
    img = tmp_path / "recent.png"
    shutil.copy(DATA / "astronaut.png", img)
    with qtbot.waitSignal(window.input_added, timeout=60000):
        window.import_paths([img])
    menus.fill_recent(window)
    actions = [a for a in window.recent_menu.actions() if a.text() == str(img.resolve())]
    assert len(actions) == 1
    with qtbot.waitSignal(window.input_added, timeout=60000):
        actions[0].trigger()
    assert window.inputs_panel.input_labels() == ["recent.png", "recent.png"]


def test_view_actions_without_a_3d_view_say_so(window):
    assert menus._viewport(window, "reset_camera") is None
    assert "3D view is not available" in window.statusBar().currentMessage()


def test_onnx_setting_reaches_the_engine_params(window, dialogs, tmp_path, register_engines):
    register_engines(DepthLike)
    model = tmp_path / "tiny.onnx"
    model.write_bytes(b"onnx")
    dialogs.answers["getOpenFileName"] = (str(model), "")
    window.refresh_engines()
    window.engine_panel.select("depth-like")
    menus.onnx_dialog(window)
    assert Settings().onnx_model_path == str(model)
    assert window.engine_panel.params().onnx_model == str(model)
    assert "tiny.onnx" in window.onnx_action.text()


def test_about_box_lists_engines_and_skipped_plugins(window, dialogs, fake_engine, monkeypatch):
    from engines import registry

    monkeypatch.setattr(registry, "problems", ["broken-plugin: No module named 'nowhere'"])
    menus.about(window)
    ((_kind, title, text),) = dialogs.of("about")
    assert "Fake engine" in text and "broken-plugin" in text and "Skipped plug-ins" in text
