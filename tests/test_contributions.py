"""Engines contribute viewport renderers and result panels (issue 16, item 2): a plug-in's
own result type is drawn by the renderer its engine class declares and gets the panel it
declares, through the same path the built-in engines use (the avatar's panel, the splat's
renderer)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from PySide6.QtWidgets import QLabel

from app import contributions, display, renderers
from engines import registry
from engines.api import Engine, Result
from engines.types import Image

from tests.conftest import box_mesh
from tests.test_app_qa import _window

DRAWN: list[tuple[str, int]] = []
PANEL_EVENTS: list[tuple[str, object]] = []


@dataclass
class Blob:
    """A plug-in's own result type: a few points the core viewport knows nothing about."""

    points: np.ndarray
    name: str = "blob"


def draw_blob(view, blob: Blob, key: str) -> list[str]:
    import pyvista as pv

    DRAWN.append((key, len(blob.points)))
    view.plotter.add_mesh(pv.PolyData(blob.points), name=key, render=False, reset_camera=False)
    return [key]


class BlobPanel(QLabel):
    dock_title = "Blob"

    def __init__(self, main_window):
        super().__init__("blob controls")

    def show_item(self, item, key):
        PANEL_EVENTS.append(("show", key))

    def release(self):
        PANEL_EVENTS.append(("release", None))


class BlobEngine(Engine):
    name = "blob-maker"
    title = "Make a blob"
    accepts = (Image,)
    produces = (Blob,)
    renderers = {"Blob": f"{__name__}:draw_blob"}
    panels = {"Blob": f"{__name__}:BlobPanel"}

    def run(self, inputs, params, progress, cancel):
        return Result(items=[Blob(np.random.default_rng(0).random((20, 3)))])


class BrokenEngine(BlobEngine):
    name = "broken-contributions"
    renderers = {"Lump": f"{__name__}:no_such_renderer"}
    panels = {"Lump": "no_such_module_anywhere:Panel"}


@dataclass
class Lump:
    points: np.ndarray


@pytest.fixture
def plugin():
    registry.register(BlobEngine)
    registry.register(BrokenEngine)
    contributions._failed.clear()
    DRAWN.clear()
    PANEL_EVENTS.clear()
    yield
    registry.unregister(BlobEngine.name)
    registry.unregister(BrokenEngine.name)
    contributions._failed.clear()


def test_built_in_engines_declare_their_renderers_and_panels():
    from engines.types import Avatar, Splat, Take

    assert renderers.renderer_for(Avatar(box_mesh())) is renderers.draw_avatar
    assert renderers.renderer_for(Take.__new__(Take)) is renderers.draw_take
    from app.splat_view import draw_splat

    assert renderers.renderer_for(Splat.__new__(Splat)) is draw_splat
    from app.avatar_panel import AvatarPanel

    assert display.panel_class(Avatar(box_mesh())) is AvatarPanel
    assert display.panel_class(box_mesh()) is None
    # the core types stay the viewport's own
    assert renderers.renderer_for(box_mesh()) is renderers.draw_mesh


def test_a_plugin_type_is_drawn_by_its_renderer_and_gets_its_panel(qtbot, studio_home, dialogs, plugin):
    w = _window(qtbot, views=True)
    try:
        w.ensure_views()
        if w.viewport is None:
            pytest.skip("no 3D view in this session")
        blob = Blob(np.random.default_rng(1).random((33, 3)))
        assert [i for i, _ in display.geometry_to_draw([blob])] == [0]
        w._add_result(Result(items=[blob]), BlobEngine, {}, None)
        w.show_result(len(w.project.results) - 1)
        assert DRAWN and DRAWN[-1][1] == 33
        key = DRAWN[-1][0]
        assert key in w.viewport.plotter.actors  # drawn under the key the panel is given
        assert PANEL_EVENTS[-1] == ("show", key)
        assert not w.docks["Blob"].isHidden()
        # another result replaces it: the panel is released and its dock goes
        w._add_result(Result(items=[box_mesh()]), BlobEngine, {}, None)
        w.show_result(len(w.project.results) - 1)
        assert ("release", None) in PANEL_EVENTS
        assert w.docks["Blob"].isHidden()
        assert not w.docks["Engine"].isHidden()
        # a type whose declared renderer and panel cannot be loaded is left out, with a log line
        lump = Lump(np.zeros((3, 3)))
        assert renderers.renderer_for(lump) is None
        assert display.panel_class(lump) is None
        w._add_result(Result(items=[lump, box_mesh()]), BrokenEngine, {}, None)
        w.show_result(len(w.project.results) - 1)  # the mesh beside it is still drawn
        assert any(k.endswith("/1") for k in w.viewport.plotter.actors)
    finally:
        w.runner.shutdown(5000)
