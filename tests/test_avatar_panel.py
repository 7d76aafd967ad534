"""Avatar panel with a real viewport (under xvfb-run): sliders deform the drawn head in place."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_viewport_display  # noqa: E402

require_viewport_display()

from PIL import Image as PILImage  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from engines.api import CancelToken, no_progress  # noqa: E402
from engines.types import Image  # noqa: E402

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.gui


class _Window:
    """What the panel needs of the main window: a viewport."""

    def __init__(self, viewport):
        self.viewport = viewport


@pytest.fixture(scope="module")
def avatar():
    from engines.avatar.engine import AvatarEngine

    img = Image(np.asarray(PILImage.open(DATA / "grace_hopper.jpg").convert("RGB")), path=DATA / "grace_hopper.jpg")
    return AvatarEngine().run([img], AvatarEngine.Params(), no_progress, CancelToken()).main


@pytest.fixture()
def setup(qapp, avatar):
    from app.avatar_panel import AvatarPanel
    from app.viewport import Viewport

    for k in avatar.emotions:
        avatar.emotions[k] = 0.0
    vp = Viewport()
    vp.resize(400, 400)
    vp.show()
    vp.show(avatar, "av")
    vp.set_view("front")
    panel = AvatarPanel(_Window(vp))
    panel.set_avatar(avatar, "av")
    panel.show()
    qapp.processEvents()
    yield panel, vp, avatar
    panel.close()
    vp.close()
    vp.deleteLater()
    panel.deleteLater()
    qapp.processEvents()


def test_sliders_deform_in_place(setup, qtbot):
    from engines.avatar.engine import Deformer

    panel, vp, avatar = setup
    assert panel.isEnabled() and set(panel.sliders) == {"happiness", "anger", "sadness", "fear", "contempt", "surprise"}
    actor, poly = vp.actor("av/head"), vp.polydata("av/head")
    before = vp.screenshot()
    slider = panel.sliders["happiness"]
    for v in (10, 40, 70, 100):  # a drag: many small steps
        slider.setValue(v)
    assert panel.value_labels["happiness"].text() == "100 %"
    assert avatar.emotions["happiness"] == 1.0
    assert vp.actor("av/head") is actor and vp.polydata("av/head") is poly  # same actor, same points
    expected = Deformer(avatar).vertices({"happiness": 1.0})
    assert np.allclose(np.asarray(poly.points), expected, atol=1e-7)
    after = vp.screenshot()
    assert np.abs(after.astype(int) - before.astype(int)).sum(2).astype(bool).sum() > 200
    assert panel.last_update_ms > 0


def test_reset_and_presets(setup):
    panel, vp, avatar = setup
    panel.sliders["anger"].setValue(80)
    panel.reset()
    assert all(s.value() == 0 for s in panel.sliders.values())
    assert np.array_equal(np.asarray(vp.polydata("av/head").points), avatar.mesh.vertices)
    panel.apply_preset("Big smile")
    assert panel.sliders["happiness"].value() == 100 and panel.value_labels["happiness"].text() == "100 %"
    assert not np.array_equal(np.asarray(vp.polydata("av/head").points), avatar.mesh.vertices)


def test_view_buttons_and_photo_camera(setup, qtbot):
    panel, vp, avatar = setup
    # "Left" is the avatar's own left profile (issue 15: it showed the right cheek). Which
    # eye is the subject's left: the one on the photo's right-hand side (a portrait faces
    # the camera); the Left view's camera is on that eye's side of the head.
    m = avatar.mesh
    eyes = m.vertices[np.unique(m.faces[m.face_groups["eyes"]])]
    mid = eyes[:, 0].mean()
    centres = [eyes[eyes[:, 0] < mid].mean(0), eyes[eyes[:, 0] >= mid].mean(0)]
    K, R, t = (np.asarray(avatar.camera[k], float) for k in ("K", "R", "t"))
    u = [(K @ (R @ c + t))[0] / (K @ (R @ c + t))[2] for c in centres]
    subject_left = centres[int(np.argmax(u))]
    for side, eye in (("left", subject_left), ("right", centres[int(np.argmin(u))])):
        qtbot.mouseClick(panel.view_buttons[side], Qt.LeftButton)
        cam = vp.plotter.camera
        d = np.asarray(cam.position) - np.asarray(cam.focal_point)
        assert abs(d[0]) > 0.9 * np.linalg.norm(d), side  # a profile
        assert np.sign(d[0]) == np.sign(eye[0] - mid), side  # from that eye's side
        other = centres[0] if eye is centres[1] else centres[1]
        assert np.linalg.norm(np.asarray(cam.position) - eye) < np.linalg.norm(np.asarray(cam.position) - other)
    qtbot.mouseClick(panel.view_buttons["photo"], Qt.LeftButton)
    R, t = np.asarray(avatar.camera["R"]), np.asarray(avatar.camera["t"])
    assert np.allclose(vp.plotter.camera.position, -R.T @ t, atol=1e-6)
    qtbot.mouseClick(panel.view_buttons["front"], Qt.LeftButton)
    d = np.asarray(vp.plotter.camera.position) - np.asarray(vp.plotter.camera.focal_point)
    assert d[2] > 0.9 * np.linalg.norm(d)


def test_side_by_side_comparison(setup):
    panel, vp, avatar = setup
    assert not panel.photo_label.pixmap().isNull() and not panel.render_label.pixmap().isNull()
    neutral = panel.render_image.copy()
    panel.apply_preset("Shocked")
    assert np.abs(panel.render_image.astype(int) - neutral.astype(int)).sum() > 0
