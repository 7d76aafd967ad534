"""Video reading (lazy, RGB, verified frame counts) and atomic H.264 MP4 writing."""

from pathlib import Path

import numpy as np
import pytest

from engines.api import Cancelled, EngineError
from engines.io import export, load_input
from engines.io.video import VideoWriter, iter_frames, open_video, probe, read_frame, write_video_result
from engines.types import VideoClip, VideoResult

DATA = Path(__file__).parent / "data"


def _frames(n=10, w=64, h=48):
    out = []
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        f[:, :, 0] = 40 + 15 * i  # red ramps up over time
        f[:, : w // 2, 2] = 200  # blue left half
        out.append(f)
    return out


def test_mp43_avi_reads_lazily():
    clip = load_input(DATA / "vtest_24.avi")
    assert isinstance(clip, VideoClip)
    assert (clip.frame_count, clip.width, clip.height) == (24, 768, 576)
    assert clip.fps == pytest.approx(10.0)
    frames = list(clip.frames(0, 24))
    assert len(frames) == 24 and frames[0].shape == (576, 768, 3) and frames[0].dtype == np.uint8
    # random access agrees with sequential decoding
    for i in (17, 3, 4, 23):
        assert np.array_equal(read_frame(clip.path, i), frames[i])
    assert not np.array_equal(frames[0], frames[23])


def test_mp4_rgb_order():
    clip = open_video(DATA / "carphone_30.mp4")
    assert clip.frame_count == 30 and (clip.width, clip.height) == (176, 144)
    f = clip.frame(0)
    import cv2

    cap = cv2.VideoCapture(str(DATA / "carphone_30.mp4"))
    ok, bgr = cap.read()
    cap.release()
    assert ok and np.array_equal(f, bgr[:, :, ::-1])


def test_iter_frames_range():
    got = list(iter_frames(DATA / "carphone_30.mp4", 5, 9))
    assert len(got) == 4
    assert np.array_equal(got[0], read_frame(DATA / "carphone_30.mp4", 5))


def test_write_read_back_h264_odd_size(tmp_path):
    frames = _frames(12, w=61, h=45)
    with VideoWriter(tmp_path / "out.mp4", 12, (61, 45)) as w:
        for f in frames:
            w.write(f)
    info = probe(tmp_path / "out.mp4")
    assert info["frame_count"] == 12 and info["fps"] == pytest.approx(12.0)
    assert (info["width"], info["height"]) == (62, 46)  # padded to even for yuv420p
    import cv2

    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
    cap.release()
    assert "".join(chr((fourcc >> 8 * i) & 255) for i in range(4)).lower() in ("avc1", "h264")
    back = list(iter_frames(tmp_path / "out.mp4"))
    for i in (0, 6, 11):
        err = np.abs(back[i][:45, :61].astype(int) - frames[i]).mean()
        assert err < 4, (i, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


@pytest.mark.parametrize("exc", [RuntimeError, Cancelled])
def test_writer_leaves_nothing_on_exception(tmp_path, exc):
    with pytest.raises(exc):
        with VideoWriter(tmp_path / "broken.mp4", 10, (32, 32)) as w:
            w.write(np.zeros((32, 32, 3), np.uint8))
            raise exc()
    assert list(tmp_path.iterdir()) == []


def test_writer_with_no_frames_saves_nothing(tmp_path):
    with pytest.raises(EngineError):
        with VideoWriter(tmp_path / "none.mp4", 10, (32, 32)):
            pass
    assert list(tmp_path.iterdir()) == []


def test_video_result_export(tmp_path):
    res = VideoResult(fps=8, frames=_frames(6))
    assert export(res, tmp_path / "r.mp4") == [tmp_path / "r.mp4"]
    assert probe(tmp_path / "r.mp4")["frame_count"] == 6
    # a result that is a non-H.264 file gets re-encoded
    res2 = VideoResult(fps=10, path=DATA / "vtest_24.avi")
    write_video_result(res2, tmp_path / "v.mp4")
    info = probe(tmp_path / "v.mp4")
    assert info["frame_count"] == 24 and (info["width"], info["height"]) == (768, 576)


@pytest.mark.parametrize("case", ["zero_frames.avi", "zero_frames.mp4", "cut.mp4", "garbage.mp4", "missing.mp4"])
def test_bad_videos(tmp_path, case):
    p = tmp_path / case
    if case.startswith("zero_frames"):
        # made by ffmpeg with -frames:v 0: a container with no frames
        p.write_bytes((DATA / case).read_bytes())
    elif case == "cut.mp4":
        p.write_bytes((DATA / "carphone_30.mp4").read_bytes()[:2000])
    elif case == "garbage.mp4":
        p.write_bytes(b"\0" * 5000)
    with pytest.raises(EngineError) as e:
        open_video(p)
    assert p.name in str(e.value)
    if case == "zero_frames.avi":
        assert "no frames" in str(e.value)


def test_frame_out_of_range():
    with pytest.raises(EngineError, match="30 frames"):
        read_frame(DATA / "carphone_30.mp4", 30)


@pytest.mark.parametrize("claimed", [100, 5, 0])
def test_frame_count_header_is_verified(monkeypatch, tmp_path, claimed):
    """Containers can lie about their length; probe counts when the header does not hold."""
    import cv2

    import engines.io.video as video

    class LyingCapture:
        def __init__(self, *a):
            self.cap = cv2.VideoCapture(*a)

        def get(self, prop):
            return float(claimed) if prop == cv2.CAP_PROP_FRAME_COUNT else self.cap.get(prop)

        def __getattr__(self, name):
            return getattr(self.cap, name)

    class FakeCv2:
        def __getattr__(self, name):
            return LyingCapture if name == "VideoCapture" else getattr(cv2, name)

    monkeypatch.setattr(video, "cv2_module", lambda: FakeCv2())
    p = tmp_path / "copy.mp4"
    p.write_bytes((DATA / "carphone_30.mp4").read_bytes())
    assert video.probe(p)["frame_count"] == 30


@pytest.mark.parametrize("ext", [".mov", ".mkv"])
def test_other_containers(tmp_path, ext):
    import subprocess

    import imageio_ffmpeg

    out = tmp_path / f"clip{ext}"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-i",
            str(DATA / "carphone_30.mp4"),
            "-c",
            "copy",
            str(out),
        ],
        check=True,
    )
    clip = load_input(out)
    assert clip.frame_count == 30 and (clip.width, clip.height) == (176, 144)
    assert np.array_equal(clip.frame(12), read_frame(DATA / "carphone_30.mp4", 12))


def test_cv2_qt_plugin_path_is_cleared(monkeypatch):
    import os

    import cv2

    from engines.io.video import cv2_module

    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", os.path.join(os.path.dirname(cv2.__file__), "qt", "plugins"))
    cv2_module()
    assert "QT_QPA_PLATFORM_PLUGIN_PATH" not in os.environ
    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", "/opt/my/qt/plugins")  # a user's own setting stays
    cv2_module()
    assert os.environ["QT_QPA_PLATFORM_PLUGIN_PATH"] == "/opt/my/qt/plugins"


def test_phone_display_rotation_is_applied(tmp_path):
    """A phone's portrait video: landscape frames plus a 90 degree display rotation in the
    container. Frames come out upright, as ffmpeg and players show them."""
    import subprocess

    import imageio_ffmpeg

    from engines.io.video import iter_frames, open_video

    src = Path(__file__).parent / "data" / "carphone_30.mp4"
    rotated = tmp_path / "portrait.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-y",
            "-display_rotation",
            "90",
            "-i",
            str(src),
            "-c",
            "copy",
            str(rotated),
        ],
        check=True,
    )
    clip = open_video(rotated)
    assert (clip.width, clip.height, clip.frame_count) == (144, 176, 30)
    upright = next(iter(iter_frames(rotated)))
    original = next(iter(iter_frames(src)))
    assert upright.shape == (176, 144, 3)
    assert np.array_equal(upright, np.rot90(original, 1))
