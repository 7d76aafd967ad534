"""Perform mode (under xvfb-run): a video drives the avatar's head live, a take is recorded,
scrubbed and exported as an animated GLB; with no camera the panel says so and offers a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_viewport_display  # noqa: E402

require_viewport_display()

from PIL import Image as PILImage  # noqa: E402

from engines.api import CancelToken, Result, no_progress  # noqa: E402
from engines.types import Image  # noqa: E402

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def avatar():
    from engines.avatar.engine import AvatarEngine

    img = Image(np.asarray(PILImage.open(DATA / "astronaut.png").convert("RGB")), path=DATA / "astronaut.png")
    return AvatarEngine().run([img], AvatarEngine.Params(), no_progress, CancelToken()).main


@pytest.fixture()
def perform(qtbot, avatar, monkeypatch):
    """A main window with its views, the avatar as a result, and the Perform dock open."""
    from engines.avatar.engine import AvatarEngine
    from engines.puppet import camera

    from tests.conftest import window_with_views

    monkeypatch.setattr(camera, "list_cameras", lambda max_index=4: [])  # no webcam on a test machine
    w = window_with_views(qtbot)
    if w.viewport is None:
        pytest.skip("app.viewport is not available")
    w._add_result(Result(items=[avatar]), AvatarEngine, {}, None)
    qtbot.waitUntil(lambda: w.avatar_panel is not None and w.avatar_panel.key is not None, timeout=20000)
    panel = w.avatar_panel.open_perform()
    yield w, panel
    panel.stop_tracking()
    qtbot.waitUntil(lambda: not panel.tracking, timeout=10000)
    w.runner.shutdown(10000)
    w.close()


def _head(w, panel) -> np.ndarray:
    return np.asarray(w.viewport.polydata(panel.head_key).points).copy()


def test_no_camera_shows_a_message_and_offers_a_file(qtbot, perform, dialogs):
    w, panel = perform
    qtbot.waitUntil(lambda: panel.no_camera.isVisible(), timeout=10000)
    assert "No camera" in panel.no_camera.text() and "video file" in panel.no_camera.text()
    assert panel.file_button.isEnabled() and not panel.start_button.isEnabled()
    dialogs.answers["getOpenFileName"] = (str(DATA / "carphone_30.mp4"), "")
    panel.file_button.click()
    assert panel.source_spec().path == DATA / "carphone_30.mp4"
    assert panel.start_button.isEnabled()


def test_video_drives_the_head_records_scrubs_and_exports(qtbot, perform, dialogs, tmp_path):
    import pygltflib

    w, panel = perform
    qtbot.waitUntil(lambda: panel.cameras is not None and panel.refresh_button.isEnabled(), timeout=10000)
    panel.set_video(DATA / "carphone_30.mp4")
    rest = _head(w, panel)
    panel.start_button.click()
    assert panel.tracking and panel.start_button.text() == "Stop"
    qtbot.waitUntil(lambda: panel.applied >= 5, timeout=20000)
    first = _head(w, panel)
    n = panel.applied
    qtbot.waitUntil(lambda: panel.applied >= n + 5, timeout=10000)
    later = _head(w, panel)
    assert not np.allclose(first, rest) or not np.allclose(later, rest)  # the avatar follows the video
    assert not np.allclose(first, later)  # ...and moves from frame to frame
    assert panel.preview.pixmap() is not None and not panel.preview.pixmap().isNull()
    assert "fps" in panel.stats.text() and "missed" in panel.stats.text().lower()

    results = len(w.project.results)
    panel.record_button.click()
    n = panel.received
    qtbot.waitUntil(lambda: panel.received >= n + 10, timeout=10000)
    with qtbot.waitSignal(panel.take_recorded, timeout=10000) as got:
        panel.record_button.click()
    take = got.args[0]
    assert len(take) >= 8 and take.avatar is panel.avatar and take.weights.shape == (len(take), 52)
    assert len(w.project.results) == results + 1  # the take is in Results (File > Export)
    panel.stop_tracking()
    qtbot.waitUntil(lambda: not panel.tracking, timeout=10000)

    # The timeline scrubs the take: two positions pose the head differently. The video loops
    # every second at its own frame rate, so the take's last frame can repeat its first: the
    # other position is the frame whose recorded pose differs most from the first one.
    # (chosen by the head it poses: recorded weights the head does not show, a quaternion and
    # its negative, differ in the take but not on screen)
    posed = [panel._take_vertices(i)[0] for i in range(len(take))]
    moved = np.array([np.abs(v - posed[0]).max() for v in posed])
    j = int(np.argmax(moved))
    assert moved[j] > 1e-4, moved  # the recorded performance moves the head
    # (to j first: the timeline of a new take already stands at 0, so setting 0 first would
    # move nothing and leave the last live pose drawn, which can be frame j's)
    panel.timeline.setValue(j)
    b = _head(w, panel)
    panel.timeline.setValue(0)
    a = _head(w, panel)
    assert panel.timeline.maximum() == len(take) - 1
    assert np.abs(a - b).max() > 1e-4
    panel.play_button.click()
    assert panel.playing
    qtbot.waitUntil(lambda: not panel.playing, timeout=10000)  # plays to the end and stops

    out = tmp_path / "perform_take.glb"
    dialogs.answers["getSaveFileName"] = (str(out), "Animated GLB (*.glb)")
    job = panel.export()
    assert job is not None
    qtbot.waitUntil(lambda: job.state in ("done", "failed"), timeout=30000)
    assert job.state == "done", job.message
    g = pygltflib.GLTF2().load(str(out))
    assert len(g.animations) >= 1

    # Never over an input: the source video is refused.
    dialogs.answers["getSaveFileName"] = (str(DATA / "carphone_30.mp4"), "")
    before = (DATA / "carphone_30.mp4").stat().st_mtime_ns
    assert panel.export() is None
    assert (DATA / "carphone_30.mp4").stat().st_mtime_ns == before
