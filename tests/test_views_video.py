"""VideoView: exact frame stepping, playback on the timer, side by side with the source."""

from __future__ import annotations

import os

import numpy as np
import pytest

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.video_view import FrameSource, VideoView  # noqa: E402
from engines.types import VideoClip, VideoResult  # noqa: E402

pytestmark = pytest.mark.gui
N, W, H, FPS = 24, 64, 48, 12.0


def frame_colour(i: int) -> tuple[int, int, int]:
    return (10 * i % 256, (255 - 10 * i) % 256, 128)


def make_frames(n=N):
    frames = []
    for i in range(n):
        f = np.zeros((H, W, 3), np.uint8)
        f[:] = frame_colour(i)
        f[4:12, 4 + 2 * i : 6 + 2 * i] = 255  # a marker that moves 2 px per frame
        frames.append(f)
    return frames


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    from app.video_view import _cv2

    cv2 = _cv2()
    path = tmp_path_factory.mktemp("video") / "tiny.mp4"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    assert out.isOpened()
    for f in make_frames():
        out.write(np.ascontiguousarray(f[:, :, ::-1]))
    out.release()
    return path


@pytest.fixture
def view(qtbot):
    v = VideoView()
    qtbot.addWidget(v)
    v.resize(500, 300)
    v.show()
    return v


def mean_colour(frame):
    return frame[20:, :].reshape(-1, 3).astype(float).mean(0)


@pytest.mark.parametrize("kind", ["file", "clip"])
def test_steps_to_exact_frame_of_a_file(view, mp4, kind):
    obj = VideoResult(fps=FPS, path=mp4) if kind == "file" else VideoClip(mp4, N, FPS, W, H)
    view.show_video(obj)
    assert view.frame_count == N and view.slider.maximum() == N - 1
    for n in (17, 5, 6, 23, 0):  # forwards, backwards, single steps, the ends
        view.slider.setValue(n)
        view._apply_pending()
        assert view.index == n
        assert np.abs(mean_colour(view.current_frame) - frame_colour(n)).max() < 8, n
        assert view.counter.text().startswith(f"frame {n + 1} / {N}")
    view.seek(9)
    view.step(1)
    assert view.index == 10 and np.abs(mean_colour(view.current_frame) - frame_colour(10)).max() < 8
    view.step(-3)
    assert view.index == 7 and np.abs(mean_colour(view.current_frame) - frame_colour(7)).max() < 8
    view.seek(1000)
    assert view.index == N - 1


def test_frames_in_memory_are_shown_exactly(view):
    frames = make_frames()
    view.show_video(VideoResult(fps=FPS, frames=frames))
    view.seek(13)
    assert np.array_equal(view.current_frame, frames[13])
    # the label really shows that frame (scaled); its centre has the frame colour
    img = view.view.pixmap().toImage()
    c = img.pixelColor(img.width() // 2, img.height() * 3 // 4)
    assert abs(c.red() - frame_colour(13)[0]) <= 2 and abs(c.green() - frame_colour(13)[1]) <= 2
    # keyboard: arrows step, space plays and pauses
    from PySide6 import QtCore
    from PySide6.QtTest import QTest

    QTest.keyClick(view, QtCore.Qt.Key_Right)
    assert view.index == 14 and np.array_equal(view.current_frame, frames[14])
    QTest.keyClick(view, QtCore.Qt.Key_Left)
    QTest.keyClick(view, QtCore.Qt.Key_Left)
    assert view.index == 12
    QTest.keyClick(view, QtCore.Qt.Key_Space)
    assert view.playing
    QTest.keyClick(view, QtCore.Qt.Key_Space)
    assert not view.playing


def test_plays_on_timer_and_stops_at_end(view, qtbot):
    frames = make_frames(8)
    view.show_video(VideoResult(fps=100.0, frames=frames))
    assert view.timer.interval() == 10
    seen = []
    view.frameChanged.connect(seen.append)
    view.play()
    assert view.playing
    qtbot.waitUntil(lambda: not view.playing, timeout=5000)
    assert view.index == 7
    assert seen == list(range(1, 8))  # every frame, in order, none skipped
    view.play()  # at the end: starts again from the first frame
    assert view.index == 0 and view.playing
    view.pause()
    assert not view.playing


def test_side_by_side_with_source(view, mp4):
    frames = [255 - f for f in make_frames()]
    view.show_video(VideoResult(fps=FPS, frames=frames, source=mp4))
    assert view.side_by_side.isEnabled()
    assert not view.source_view.isVisible()
    view.side_by_side.setChecked(True)
    assert view.source_view.isVisible()
    view.seek(11)
    assert view.source_index(11) == 11
    assert np.abs(mean_colour(view.current_source_frame) - frame_colour(11)).max() < 8
    assert np.array_equal(view.current_frame, frames[11])
    # each pane says what it shows (issue 15: two unlabelled videos side by side)
    assert view.source_caption.isVisible() and view.caption.isVisible()
    assert view.source_caption.text() == f"Source: {mp4.name}"
    assert view.caption.text().startswith("Result")
    assert view.source_caption.geometry().center().x() < view.caption.geometry().center().x()  # left, right
    view.side_by_side.setChecked(False)
    assert not view.caption.isVisible() and not view.source_caption.isVisible()
    view.side_by_side.setChecked(True)
    # a result without source disables the option
    view.show_video(VideoResult(fps=FPS, frames=frames))
    assert not view.side_by_side.isEnabled() and not view.source_view.isVisible()
    assert not view.caption.isVisible()


def test_clicking_the_timeline_goes_to_the_frame_under_the_pointer(view, qtbot):
    """Issue 15: a click jumped 10 frames (a page step) towards the pointer."""
    from PySide6 import QtCore, QtWidgets

    view.show_video(VideoResult(fps=FPS, frames=make_frames()))
    sl = view.slider
    opt = QtWidgets.QStyleOptionSlider()
    sl.initStyleOption(opt)
    groove = sl.style().subControlRect(QtWidgets.QStyle.CC_Slider, opt, QtWidgets.QStyle.SC_SliderGroove, sl)
    handle = sl.style().subControlRect(QtWidgets.QStyle.CC_Slider, opt, QtWidgets.QStyle.SC_SliderHandle, sl)
    usable = groove.width() - handle.width()
    assert usable > 4 * N  # room for a click per frame
    for frame in (19, 3, 23, 12):
        x = groove.x() + handle.width() / 2 + usable * frame / (N - 1)
        qtbot.mouseClick(sl, QtCore.Qt.LeftButton, pos=QtCore.QPoint(round(x), sl.height() // 2))
        qtbot.waitUntil(lambda: view._pending is None)
        assert abs(view.index - frame) <= 1, (frame, view.index)
        assert np.abs(mean_colour(view.current_frame) - frame_colour(view.index)).max() < 8
    # a click on the handle itself leaves the frame where it is
    view.seek(12)
    sl.initStyleOption(opt)
    handle = sl.style().subControlRect(QtWidgets.QStyle.CC_Slider, opt, QtWidgets.QStyle.SC_SliderHandle, sl)
    qtbot.mouseClick(sl, QtCore.Qt.LeftButton, pos=handle.center())
    qtbot.wait(30)
    assert view.index == 12


def test_frame_source_reads_and_caches_file_frames(mp4):
    src = FrameSource(path=mp4)
    assert src.frame_count == N and src.fps == pytest.approx(FPS)
    assert np.abs(mean_colour(src.frame(3)) - frame_colour(3)).max() < 8
    assert src.frame(3) is src.frame(3)  # second read comes from the cache
    for i in range(60):
        src.frame(i % N)
    assert len(src._cache) <= 48


def test_source_frame_index_follows_time(view, mp4):
    view.show_video(VideoResult(fps=2 * FPS, frames=make_frames(2 * N)), source=mp4)
    assert view.source_index(10) == 5
    assert view.source_index(47) == N - 1


def test_bad_inputs(view, tmp_path):
    from engines.api import EngineError

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises((EngineError, OSError)):
        view.show_video(VideoResult(fps=FPS, path=bad))
    assert view.video is None and view.counter.text() == "no video"
    # a bad file does not take away what was playing
    frames = make_frames(5)
    view.show_video(VideoResult(fps=FPS, frames=frames))
    view.seek(3)
    with pytest.raises((EngineError, OSError)):
        view.show_video(VideoResult(fps=FPS, path=bad))
    with pytest.raises((EngineError, OSError)):
        view.show_video(VideoResult(fps=FPS, frames=frames, source=bad))
    assert view.frame_count == 5 and view.index == 3 and np.array_equal(view.current_frame, frames[3])
    view.show_video(VideoResult(fps=FPS, frames=[np.zeros((H, W, 3), np.uint8)]))
    from app.video_view import _cv2

    cv2 = _cv2()
    empty = tmp_path / "empty.mp4"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H)).release()  # no frames
    with pytest.raises((EngineError, OSError, ValueError)):
        view.show_video(VideoClip(empty, 0, FPS, W, H))
    assert view.frame_count == 1
    with pytest.raises(ValueError):
        view.show_video(VideoResult(fps=FPS, frames=[]))
    with pytest.raises(TypeError):
        view.show_video(42)


def test_plain_opencv_fallback_reads_exact_frames(mp4, monkeypatch):
    import sys

    import engines.io

    monkeypatch.setitem(sys.modules, "engines.io.video", None)  # "import engines.io.video" fails
    monkeypatch.delattr(engines.io, "video", raising=False)
    src = FrameSource(path=mp4)
    assert src._reader is not None and src.frame_count == N
    for i in (7, 2, 3, 20):
        assert np.abs(mean_colour(src.frame(i)) - frame_colour(i)).max() < 8, i
    src.close()
