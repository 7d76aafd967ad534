"""Group photos: every face is found, the user picks which one becomes the avatar
(``face_index`` on the CLI, face buttons in the Avatar panel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from engines.api import CancelToken, EngineError, make_params, no_progress
from engines.types import Image

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def group():
    return Image(np.asarray(PILImage.open(DATA / "group1.jpg").convert("RGB")), path=DATA / "group1.jpg")


def _inside(box, outer, slack=0.35):
    x0, y0, x1, y1 = outer
    m = slack * max(x1 - x0, y1 - y0)
    return box[0] > x0 - m and box[1] > y0 - m and box[2] < x1 + m and box[3] < y1 + m


def test_face_index_picks_another_face(group):
    from engines.avatar.engine import AvatarEngine

    eng = AvatarEngine()
    first = eng.run([group], make_params(AvatarEngine, {}), no_progress, CancelToken())
    faces = first.main.params["faces"]
    assert len(faces) >= 4  # six people, one half hidden
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in faces]
    assert areas == sorted(areas, reverse=True)
    assert first.main.params["face_index"] == 0 and _inside(first.main.params["face_box"], faces[0])
    assert any("face_index" in n for n in first.notes)
    third = eng.run([group], make_params(AvatarEngine, {"face_index": 2}), no_progress, CancelToken())
    assert third.main.params["face_index"] == 2 and third.main.params["faces"] == faces
    assert _inside(third.main.params["face_box"], faces[2]) and not _inside(
        third.main.params["face_box"], faces[0], 0.0
    )
    # the camera looks at another place of the photo: the fitted heads differ in position
    assert np.linalg.norm(np.subtract(first.main.camera["t"], third.main.camera["t"])) > 0.05
    # a face this small (about 25 px between the eyes) is made, with a note saying so
    assert third.metrics["interocular_px"] < 30
    assert any("small" in n and "between the eyes" in n for n in third.notes)
    assert not any("between the eyes" in n for n in first.notes) or first.metrics["interocular_px"] < 30
    with pytest.raises(EngineError, match=f"face_index=9 but .* shows {len(faces)} faces"):
        eng.run([group], make_params(AvatarEngine, {"face_index": 9}), no_progress, CancelToken())


@pytest.mark.gui
def test_avatar_panel_offers_the_faces_and_makes_the_chosen_one(qtbot, group):
    from tests.conftest import require_viewport_display, window_with_views

    require_viewport_display()
    from engines.avatar.engine import AvatarEngine

    w = window_with_views(qtbot)
    try:
        w.import_paths([str(DATA / "group1.jpg")])
        qtbot.waitUntil(lambda: len(w.project.inputs) == 1, timeout=20000)
        w.inputs_panel.inputs.setCurrentRow(0)
        w.engine_panel.select("avatar")
        assert w.run_engine("avatar") is not None
        qtbot.waitUntil(lambda: len(w.project.results) == 1, timeout=60000)
        qtbot.waitUntil(lambda: w.avatar_panel is not None and w.avatar_panel.avatar is not None, timeout=20000)
        panel = w.avatar_panel
        assert panel.faces_box.isVisibleTo(panel)
        n = len(w.project.results[0].result.main.params["faces"])
        assert len(panel.face_buttons) == n
        assert panel.face_buttons[0].isChecked() and not panel.face_buttons[1].isChecked()
        assert not panel.face_buttons[1].icon().isNull()
        panel.face_buttons[1].click()
        qtbot.waitUntil(lambda: len(w.project.results) == 2, timeout=60000)
        new = w.project.results[1]
        assert new.engine == AvatarEngine.name and new.params["face_index"] == 1 and new.input == 0
        assert new.result.main.params["face_index"] == 1
        # the first avatar is kept
        assert w.project.results[0].result.main.params["face_index"] == 0
    finally:
        w.runner.shutdown(10000)
        w.close()


def test_fit_notes_question_drawings_turned_and_small_faces():
    from types import SimpleNamespace

    from engines.avatar.engine import fit_notes

    photo_like = SimpleNamespace(rms_px=3.0, yaw_deg=10.0)
    assert fit_notes(photo_like, 100.0, "p.jpg") == []
    cartoon = fit_notes(SimpleNamespace(rms_px=12.7, yaw_deg=0.0), 100.0, "toon.png")
    assert len(cartoon) == 1 and "drawing" in cartoon[0] and "12.7 %" in cartoon[0]
    turned_tiny = fit_notes(SimpleNamespace(rms_px=0.4, yaw_deg=-59.0), 20.0, "far.jpg")
    assert len(turned_tiny) == 2 and "59 degrees" in turned_tiny[0] and "20 px" in turned_tiny[1]
