"""Shared fixtures.

* Qt: widget-only tests run with ``QT_QPA_PLATFORM=offscreen`` when there is no X display;
  under ``xvfb-run`` the platform is left alone (the VTK viewport needs xcb).
* Every test gets its own per-user folders (``CAPTURE_STUDIO_HOME``), so settings,
  autosaves and logs never touch the real user's.
* Modal dialogs (QMessageBox, QFileDialog, QInputDialog, QColorDialog static functions)
  are replaced for every test: they return at once and are recorded in ``dialogs``, so
  the suite cannot hang on one. Set ``dialogs.answers[...]`` to script a reply.
* ``fake_engine`` registers :class:`FakeEngine` through ``engines.registry.register``
  and unregisters it afterwards; ``register_engines`` does the same for any classes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)  # cv2 points it at its own Qt5

import app  # noqa: E402,F401  (applies the PySide6 emit work-around; see app/__init__.py)
from engines.api import Engine, EngineError, Result  # noqa: E402
from engines.types import DepthMap, FocalStack, Image, ImageSet, Mesh, PointCloud, VideoClip  # noqa: E402

DATA = Path(__file__).parent / "data"


def require_viewport_display() -> None:
    """Skip the calling test module unless the VTK viewport can run: it needs an X display
    and Qt's xcb platform (pyvistaqt segfaults under ``offscreen``). Call at module level."""
    if not os.environ.get("DISPLAY"):
        pytest.skip("the 3D viewport needs an X display: run the tests under xvfb-run -a", allow_module_level=True)
    if os.environ.get("QT_QPA_PLATFORM", "xcb") != "xcb":
        from PySide6 import QtWidgets

        if QtWidgets.QApplication.instance() is not None:
            pytest.skip(
                "a Qt application with a non-xcb platform exists; the viewport needs xcb", allow_module_level=True
            )
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    pytest.importorskip("pyvista")


def shown_viewport(qapp, size=(420, 360)):
    """A shown Viewport for a module-scoped fixture: ``yield from shown_viewport(qapp)``."""
    from app.viewport import Viewport

    view = Viewport()
    view.resize(*size)
    view.show()
    qapp.processEvents()
    yield view
    view.close()
    view.deleteLater()
    qapp.processEvents()


def window_with_views(qtbot, size=(1200, 800)):
    """A main window with its 3D/2D/video views built (no samples, no recovery), shown."""
    from app.main_window import MainWindow
    from app.settings import Settings

    w = MainWindow(Settings(), samples=False, recovery=False, views=True)
    qtbot.addWidget(w)
    w.confirm_close = False
    w.resize(*size)
    with qtbot.waitExposed(w, timeout=60000):
        w.show()
    w.ensure_views()
    return w


@pytest.fixture
def window(qtbot):
    """A main window without samples, recovery or the 3D/2D/video views (fast to build)."""
    from app.main_window import MainWindow
    from app.settings import Settings

    w = MainWindow(Settings(), samples=False, recovery=False, views=False)
    qtbot.addWidget(w)
    with qtbot.waitExposed(w, timeout=60000):
        w.show()
    yield w
    w.confirm_close = False
    w.runner.shutdown(5000)


def box_mesh(size: float = 1.0) -> Mesh:
    """A closed axis-aligned cube of edge ``size`` centred on the origin."""
    v = (np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], np.float32) - 0.5) * size
    f = np.array(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 7, 5],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ]
    )
    return Mesh(v, f, vertex_colors=np.full((8, 3), 200, np.uint8), name="box")


class FakeEngine(Engine):
    """An engine for tests: reports ``steps`` progress steps, sleeping ``delay`` s each,
    checks the cancel token between steps, then fails or returns a result."""

    name = "fake"
    title = "Fake engine"
    description = "Makes a box (tests only)."
    accepts = (Image, FocalStack, VideoClip, ImageSet)
    produces = (Mesh, DepthMap, PointCloud)

    class Params(BaseModel):
        steps: int = Field(5, ge=1, le=100000, description="Progress steps")
        delay: float = Field(0.0, ge=0.0, le=10.0, description="Seconds per step")
        size: float = Field(1.0, ge=0.01, le=100.0, description="Edge length of the box, metres")
        mode: Literal["ok", "fail", "crash"] = Field("ok", description="ok, or fail with an EngineError, or crash")
        output: Literal["mesh", "depth", "points"] = Field("mesh", description="What to return")
        smooth: bool = Field(True, description="A flag (recorded in the result's metrics)")
        label: str = Field("box", description="Name of the result")

    def run(self, inputs, params, progress, cancel) -> Result:
        result = Result()
        with result.stage("steps"):
            for i in range(params.steps):
                cancel.raise_if_set()
                progress((i + 1) / params.steps, f"step {i + 1} of {params.steps}")
                if params.delay:
                    time.sleep(params.delay)
        cancel.raise_if_set()
        if params.mode == "fail":
            raise EngineError("The fake engine refused: the input has no box in it. Use a box photo.")
        if params.mode == "crash":
            raise ZeroDivisionError("fake engine bug")
        if params.output == "depth":
            d = np.full((24, 32), params.size, np.float32)
            d[:, :16] = 2 * params.size
            item = DepthMap(d, confidence=np.ones_like(d), name=params.label)
        elif params.output == "points":
            item = PointCloud(box_mesh(params.size).vertices, np.full((8, 3), 90, np.uint8), name=params.label)
        else:
            item = box_mesh(params.size)
            item.name = params.label
        result.items.append(item)
        result.metrics.update(size=params.size, smooth=params.smooth, inputs=len(inputs))
        result.notes.append(f"Made a {params.output} of size {params.size}.")
        return result


@pytest.fixture
def register_engines():
    """``register_engines(A, B)`` registers engine classes for one test."""
    from engines import registry

    added: list[str] = []

    def register(*classes):
        for c in classes:
            registry.register(c)
            added.append(c.name)
        return classes[0] if len(classes) == 1 else classes

    yield register
    for name in added:
        registry.unregister(name)


@pytest.fixture
def fake_engine(register_engines):
    return register_engines(FakeEngine)


@pytest.fixture(autouse=True)
def studio_home(tmp_path_factory, monkeypatch):
    """Per-test user folders (settings, autosave, log)."""
    home = tmp_path_factory.mktemp("studio_home")
    monkeypatch.setenv("CAPTURE_STUDIO_HOME", str(home))
    return home


class Dialogs:
    """Records modal dialog calls; ``answers`` scripts the replies by function name
    (e.g. ``answers["getOpenFileName"] = [("a.png", ""), ("b.npy", "")]``: a list is
    a sequence of replies, anything else the reply to every call)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.answers: dict = {}

    def of(self, kind: str) -> list[tuple[str, str, str]]:
        return [c for c in self.calls if c[0] == kind]

    def texts(self) -> str:
        return "\n".join(f"{k}: {t}: {m}" for k, t, m in self.calls)


@pytest.fixture(autouse=True)
def dialogs(monkeypatch):
    d = Dialogs()
    try:
        from PySide6.QtWidgets import QColorDialog, QFileDialog, QInputDialog, QMessageBox
        from PySide6.QtGui import QColor
    except ImportError:  # engine-only environments
        return d

    def answer(kind, default):
        a = d.answers.get(kind, default)
        if isinstance(a, list):  # a script of replies, one per call
            return a.pop(0) if a else default
        return a

    def message(kind, default):
        def fn(parent, title, text, *a, **k):
            d.calls.append((kind, str(title), str(text)))
            return answer(kind, default)

        return staticmethod(fn)

    for kind, default in (
        ("warning", QMessageBox.Ok),
        ("critical", QMessageBox.Ok),
        ("information", QMessageBox.Ok),
        ("question", QMessageBox.No),
        ("about", None),
    ):
        monkeypatch.setattr(QMessageBox, kind, message(kind, default))

    def file_dialog(kind, default):
        def fn(*a, **k):
            d.calls.append((kind, str(a[1] if len(a) > 1 else k.get("caption", "")), ""))
            return answer(kind, default)

        return staticmethod(fn)

    monkeypatch.setattr(QFileDialog, "getOpenFileName", file_dialog("getOpenFileName", ("", "")))
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", file_dialog("getOpenFileNames", ([], "")))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", file_dialog("getSaveFileName", ("", "")))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", file_dialog("getExistingDirectory", ""))
    monkeypatch.setattr(QInputDialog, "getInt", file_dialog("getInt", (0, False)))
    monkeypatch.setattr(QInputDialog, "getText", file_dialog("getText", ("", False)))
    monkeypatch.setattr(QColorDialog, "getColor", file_dialog("getColor", QColor()))
    return d
