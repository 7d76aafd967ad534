"""Video files: lazy frame reading (OpenCV) and H.264 MP4 writing (ffmpeg).

* Reading goes through ``cv2.VideoCapture`` (its FFmpeg backend reads MP4, AVI incl.
  old MS-MPEG4 "MP43", MOV, MKV, WebM). Frames come out RGB uint8 and upright (a phone's
  display rotation is applied, as players do).
* Frame counts in container headers can be wrong (AVI indexes, variable frame rate
  MP4s), so :func:`probe` checks the last frame it was told about and counts by
  decoding when the header does not hold up ("trust but verify").
* Writing uses the ffmpeg bundled with ``imageio-ffmpeg`` (libx264, yuv420p), because
  OpenCV's writer cannot encode H.264 here. Odd sizes are padded to even (yuv420p
  needs it) by repeating the last row/column. Writes are atomic: a temp file renamed on
  success, removed on any exception or cancel.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.io import atomic_path
from engines.types import VideoClip, VideoResult

_FIX = "Check that the video plays in a media player, or convert it to MP4 (H.264) and import it again."


def cv2_module():
    """Import OpenCV without letting it redirect Qt to its own plugins."""
    import cv2

    # cv2 points Qt at its own (Qt5) plugins, which breaks PySide6's xcb platform.
    if "cv2" in os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH", ""):
        os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    return cv2


def open_capture(path: Path):
    """An opened ``cv2.VideoCapture`` that turns frames upright as players do.

    Phones store portrait video as landscape frames plus a display rotation (the
    container's display matrix); OpenCV ignores it unless asked (CAP_PROP_ORIENTATION_AUTO),
    which would hand the engines a person lying on their side.
    """
    cv2 = cv2_module()
    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path}: no such file. Check the path or choose the video again.")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise EngineError(
            f"{path.name}: no video frames could be read (unknown format, damaged file, or no video in it). {_FIX}"
        )
    if hasattr(cv2, "CAP_PROP_ORIENTATION_AUTO"):
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap


def _rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.ascontiguousarray(np.repeat(frame[:, :, None], 3, axis=2))
    return np.ascontiguousarray(frame[:, :, 2::-1])


_probe_cache: dict[tuple, dict] = {}
_probe_lock = threading.Lock()


def _count_by_decoding(cap) -> int:
    cv2 = cv2_module()
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    n = 0
    while cap.grab():
        n += 1
    return n


def probe(path: str | os.PathLike) -> dict:
    """``dict(frame_count, fps, width, height)``; EngineError for zero-frame or broken files."""
    path = Path(path)
    st = path.stat() if path.exists() else None
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size) if st else None
    with _probe_lock:
        if key in _probe_cache:
            return dict(_probe_cache[key])
    cv2 = cv2_module()
    cap = open_capture(path)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        from engines.io.limits import check_bytes

        check_bytes(w * h * 3, path, f"one {w}x{h} video frame")  # before the decoder allocates one
        ok_first, first = cap.read()
        if not ok_first or first is None:
            raise EngineError(f"{path.name}: the video has no frames that can be decoded. {_FIX}")
        h, w = first.shape[:2]
        verified = False
        if n > 1:
            # Header says n frames: frame n-1 must decode and frame n must not.
            cap.set(cv2.CAP_PROP_POS_FRAMES, n - 1)
            verified = cap.grab() and not cap.grab()
        elif n == 1:
            verified = not cap.grab()
        if not verified:
            n = _count_by_decoding(cap)
        if n == 0:
            raise EngineError(f"{path.name}: the video has no frames. {_FIX}")
    finally:
        cap.release()
    if not (0 < fps < 1000):
        fps = 25.0
    info = {"frame_count": n, "fps": fps, "width": w, "height": h}
    with _probe_lock:
        _probe_cache[key] = dict(info)
    return info


def open_video(path: str | os.PathLike) -> VideoClip:
    """A :class:`VideoClip` (frames read lazily); EngineError if it cannot be played."""
    path = Path(path)
    info = probe(path)
    return VideoClip(
        path=path, frame_count=info["frame_count"], fps=info["fps"], width=info["width"], height=info["height"]
    )


def iter_frames(path: str | os.PathLike, start: int = 0, stop: int | None = None):
    """Yield RGB uint8 frames ``start`` (inclusive) to ``stop`` (exclusive) in order."""
    cv2 = cv2_module()
    path = Path(path)
    cap = open_capture(path)
    try:
        start = max(0, int(start))
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        i = start
        while stop is None or i < stop:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            yield _rgb(frame)
            i += 1
    finally:
        cap.release()


class _Reader:
    """An open capture remembering its position, so stepping frame by frame is cheap."""

    def __init__(self, path: Path):
        self.cap = open_capture(path)
        self.next = 0
        self.lock = threading.Lock()

    def read(self, index: int):
        cv2 = cv2_module()
        with self.lock:
            if index != self.next:
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = self.cap.read()
            self.next = index + 1 if ok else -1
            return frame if ok else None


_readers: OrderedDict[tuple, _Reader] = OrderedDict()
_readers_lock = threading.Lock()


def read_frame(path: str | os.PathLike, index: int) -> np.ndarray:
    """Frame ``index`` (0-based) as RGB uint8; EngineError when out of range or broken."""
    path = Path(path)
    n = probe(path)["frame_count"]
    if not 0 <= index < n:
        raise EngineError(f"{path.name}: frame {index} does not exist; the video has {n} frames (0 to {n - 1}).")
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)  # a replaced file gets a new reader
    with _readers_lock:
        reader = _readers.pop(key, None) or _Reader(path)
        _readers[key] = reader
        while len(_readers) > 4:
            _readers.popitem(last=False)[1].cap.release()
    frame = reader.read(index)
    if frame is None:
        raise EngineError(f"{path.name}: frame {index} could not be decoded. {_FIX}")
    return _rgb(frame)


def _as_rgb8(frame: np.ndarray) -> np.ndarray:
    a = np.asarray(frame)
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a * (255.0 if a.size and a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return a[:, :, :3]


class VideoWriter:
    """Write an H.264 MP4 atomically::

        with VideoWriter("out.mp4", fps=25, size=(w, h)) as writer:
            for rgb in frames:
                writer.write(rgb)

    ``size`` is (width, height) of the frames given; odd sizes are padded to even.
    Nothing is left at ``path`` if the block raises (including Cancelled).
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], crf: int = 18):
        self.path = Path(path)
        self.fps = float(fps)
        self.size = (int(size[0]), int(size[1]))
        if self.size[0] < 1 or self.size[1] < 1 or not self.fps > 0:
            raise ValueError(f"bad video size {size} or fps {fps}")
        self.crf = int(crf)
        self.count = 0
        self._gen = None
        self._atomic = None
        self._tmp = None

    def __enter__(self) -> "VideoWriter":
        import imageio_ffmpeg

        self._atomic = atomic_path(self.path, suffix=".mp4")
        self._tmp = self._atomic.__enter__()
        w, h = self.size
        self._padded = (w + w % 2, h + h % 2)
        try:
            self._gen = imageio_ffmpeg.write_frames(
                str(self._tmp),
                self._padded,
                fps=self.fps,
                codec="libx264",
                pix_fmt_in="rgb24",
                pix_fmt_out="yuv420p",
                quality=None,
                macro_block_size=1,
                ffmpeg_log_level="error",
                output_params=["-crf", str(self.crf), "-preset", "veryfast", "-movflags", "+faststart"],
            )
            self._gen.send(None)
        except BaseException as e:
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        a = _as_rgb8(frame)
        w, h = self.size
        if a.shape[:2] != (h, w):
            raise ValueError(f"frame is {a.shape[1]}x{a.shape[0]}, the video is {w}x{h}")
        pw, ph = self._padded
        if (pw, ph) != (w, h):
            a = np.pad(a, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
        self._gen.send(np.ascontiguousarray(a))
        self.count += 1

    def __exit__(self, exc_type, exc, tb) -> bool:
        gen, self._gen = self._gen, None
        try:
            if gen is not None:
                gen.close()
            if exc_type is None and self.count == 0:
                exc = EngineError(f"{self.path.name}: no frames were written, so no video was saved.")
                exc_type = EngineError
                raise exc
        except BaseException as e:
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        self._atomic.__exit__(exc_type, exc, tb)
        return False


def write_video_result(result: VideoResult, path: str | os.PathLike) -> list[Path]:
    """Save a :class:`VideoResult` as H.264 MP4 (frames encoded, or the file copied/re-encoded)."""
    path = Path(path)
    if result.frames is not None:
        if not result.frames:
            raise EngineError(f"{path.name}: the video result has no frames to save.")
        h, w = result.frames[0].shape[:2]
        with VideoWriter(path, result.fps, (w, h)) as writer:
            for f in result.frames:
                writer.write(f)
        return [path]
    if result.path is None:
        raise EngineError(f"{path.name}: the video result has neither frames nor a file to save.")
    src = Path(result.path)
    if src.resolve() == path.resolve():
        return [path]
    if src.suffix.lower() == ".mp4" and _is_h264(src):
        with atomic_path(path) as tmp:
            shutil.copyfile(src, tmp)
        return [path]
    info = probe(src)
    with VideoWriter(path, result.fps or info["fps"], (info["width"], info["height"])) as writer:
        for f in iter_frames(src):
            writer.write(f)
    return [path]


def _is_h264(path: Path) -> bool:
    cv2 = cv2_module()
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
    finally:
        cap.release()
    fourcc = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).lower()
    return fourcc in ("avc1", "h264", "x264")
