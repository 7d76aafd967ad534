"""The video tab: plays a :class:`VideoResult` or :class:`VideoClip` frame by frame.

PySide6-Essentials has no QtMultimedia, so frames are decoded with OpenCV (through
:mod:`engines.io.video` when it is there) and shown as a QImage on a QTimer at the clip's
frame rate. Decoding frame by frame also gives exact stepping: the slider and the step
buttons show precisely frame N. Frames are read lazily, one per tick, and a small window
of recent frames is cached, so stepping back and forth is instant and long videos never
load into memory. Slider drags are coalesced (only the latest position is decoded); a
click on the timeline goes to the frame under the pointer (Qt's default is a page of 10
frames towards it). Side by side, each pane has a caption: the source video, the result.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from engines.types import VideoClip, VideoResult

CACHE_FRAMES = 48


def _cv2():
    had = "QT_QPA_PLATFORM_PLUGIN_PATH" in os.environ
    import cv2

    if not had:  # cv2 points Qt at its own plugins on import; keep ours
        os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    return cv2


class _CvReader:
    """Plain OpenCV reading, used when engines.io.video is not available."""

    def __init__(self, path: Path):
        cv2 = _cv2()
        self.cap = cv2.VideoCapture(str(path))
        if hasattr(cv2, "CAP_PROP_ORIENTATION_AUTO"):
            self.cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # upright, as players show it
        if not self.cap.isOpened():
            raise OSError(f"{path.name}: not a readable video")
        self.next = 0
        self.info = {
            "frame_count": int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            "fps": float(self.cap.get(cv2.CAP_PROP_FPS) or 25.0),
        }

    def read(self, index: int) -> np.ndarray:
        cv2 = _cv2()
        if index != self.next:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = self.cap.read()
        self.next = index + 1 if ok else -1
        if not ok:
            raise OSError(f"frame {index} could not be decoded")
        return np.ascontiguousarray(frame[:, :, ::-1])


class FrameSource:
    """Random access to the frames of a file or an in-memory list, with a small LRU cache."""

    def __init__(self, frames: list[np.ndarray] | None = None, path: Path | None = None, fps: float | None = None):
        self.frames, self.path = frames, Path(path) if path is not None else None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._reader = None
        if frames is not None:
            self.frame_count = len(frames)
            self.fps = float(fps or 25.0)
            return
        try:
            from engines.io import video as vio
        except ImportError:
            vio = None
        if vio is not None:
            info = vio.probe(self.path)
            self._read = lambda i: vio.read_frame(self.path, i)
        else:
            self._reader = _CvReader(self.path)
            info = self._reader.info
            self._read = self._reader.read
        self.frame_count = int(info["frame_count"])
        self.fps = float(fps or info["fps"] or 25.0)

    def frame(self, index: int) -> np.ndarray:
        index = int(np.clip(index, 0, max(self.frame_count - 1, 0)))
        if self.frames is not None:
            return np.asarray(self.frames[index])
        hit = self._cache.pop(index, None)
        if hit is None:
            hit = self._read(index)
        self._cache[index] = hit
        while len(self._cache) > CACHE_FRAMES:
            self._cache.popitem(last=False)
        return hit

    def close(self) -> None:
        self._cache.clear()
        if self._reader is not None:
            self._reader.cap.release()


def _qimage(rgb: np.ndarray) -> QtGui.QImage:
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        a = (a >> 8).astype(np.uint8) if a.dtype == np.uint16 else np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    a = np.ascontiguousarray(a[:, :, :3])
    h, w = a.shape[:2]
    return QtGui.QImage(a.data, w, h, a.strides[0], QtGui.QImage.Format_RGB888).copy()


class _FrameLabel(QtWidgets.QLabel):
    """Shows one frame scaled to fit, keeping its aspect ratio."""

    def __init__(self, title: str):
        super().__init__()
        self.setAlignment(QtCore.Qt.AlignCenter)
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Ignored)
        self.setToolTip(title)
        self._pix: QtGui.QPixmap | None = None

    def set_frame(self, rgb: np.ndarray | None) -> None:
        self._pix = None if rgb is None else QtGui.QPixmap.fromImage(_qimage(rgb))
        self._rescale()

    def _rescale(self) -> None:
        if self._pix is None:
            self.clear()
        else:
            self.setPixmap(self._pix.scaled(self.size(), QtCore.Qt.KeepAspectRatio, QtCore.Qt.SmoothTransformation))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._rescale()


class _Timeline(QtWidgets.QSlider):
    """The frame slider: a click on the groove goes to the frame under the pointer, and the
    handle is then dragged from there (not a page step towards the click)."""

    def __init__(self):
        super().__init__(QtCore.Qt.Horizontal)

    def value_at(self, x: float) -> int:
        """The value at widget x (pixels), by the style's own geometry of groove and handle."""
        opt = QtWidgets.QStyleOptionSlider()
        self.initStyleOption(opt)
        style = self.style()
        groove = style.subControlRect(QtWidgets.QStyle.CC_Slider, opt, QtWidgets.QStyle.SC_SliderGroove, self)
        handle = style.subControlRect(QtWidgets.QStyle.CC_Slider, opt, QtWidgets.QStyle.SC_SliderHandle, self)
        span = max(groove.width() - handle.width(), 1)
        pos = int(round(x - groove.x() - handle.width() / 2))
        return QtWidgets.QStyle.sliderValueFromPosition(self.minimum(), self.maximum(), pos, span, opt.upsideDown)

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:
        if event.button() == QtCore.Qt.LeftButton and self.isEnabled():
            opt = QtWidgets.QStyleOptionSlider()
            self.initStyleOption(opt)
            handle = self.style().subControlRect(
                QtWidgets.QStyle.CC_Slider, opt, QtWidgets.QStyle.SC_SliderHandle, self
            )
            if not handle.contains(event.position().toPoint()):
                self.setValue(self.value_at(event.position().x()))
        super().mousePressEvent(event)  # on the handle now: a drag can follow


def _caption(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setAlignment(QtCore.Qt.AlignCenter)
    label.setStyleSheet("font-weight: bold")
    return label


class VideoView(QtWidgets.QWidget):
    """Play/pause, exact frame slider and stepping, frame counter, optional source side by side."""

    frameChanged = QtCore.Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.video: FrameSource | None = None
        self.source: FrameSource | None = None
        self.index = 0
        self.current_frame: np.ndarray | None = None
        self.current_source_frame: np.ndarray | None = None
        self._pending: int | None = None

        self.view = _FrameLabel("Result")
        self.source_view = _FrameLabel("Source video")
        # Captions, shown side by side only (one video alone needs none).
        self.caption = _caption("Result")
        self.source_caption = _caption("Source")
        self.caption.hide()
        self.source_pane = QtWidgets.QWidget()
        sp = QtWidgets.QVBoxLayout(self.source_pane)
        sp.setContentsMargins(0, 0, 0, 0)
        sp.addWidget(self.source_caption)
        sp.addWidget(self.source_view, 1)
        self.source_pane.hide()
        result_pane = QtWidgets.QVBoxLayout()
        result_pane.setContentsMargins(0, 0, 0, 0)
        result_pane.addWidget(self.caption)
        result_pane.addWidget(self.view, 1)
        frames = QtWidgets.QHBoxLayout()
        frames.addWidget(self.source_pane, 1)
        frames.addLayout(result_pane, 1)

        self.play_button = QtWidgets.QPushButton("Play")
        self.play_button.setCheckable(True)
        self.play_button.toggled.connect(self._on_play_toggled)
        back = QtWidgets.QToolButton(text="◀")
        back.setToolTip("Previous frame")
        back.clicked.connect(lambda: self.step(-1))
        fwd = QtWidgets.QToolButton(text="▶")
        fwd.setToolTip("Next frame")
        fwd.clicked.connect(lambda: self.step(1))
        self.slider = _Timeline()
        self.slider.setToolTip("Click or drag to go to a frame")
        self.slider.setSingleStep(1)
        self.slider.setPageStep(10)
        self.slider.valueChanged.connect(self._on_slider)
        self.counter = QtWidgets.QLabel("no video")
        self.counter.setMinimumWidth(150)
        self.side_by_side = QtWidgets.QCheckBox("Side by side with source")
        self.side_by_side.setEnabled(False)
        self.side_by_side.toggled.connect(self._on_side_by_side)
        controls = QtWidgets.QHBoxLayout()
        for w in (self.play_button, back, fwd):
            controls.addWidget(w)
        controls.addWidget(self.counter)
        controls.addStretch(1)
        controls.addWidget(self.side_by_side)

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(frames, 1)
        lay.addWidget(self.slider)  # the timeline across the whole width, as in a player
        lay.addLayout(controls)

        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self._seek_timer = QtCore.QTimer(self, singleShot=True, interval=15)
        self._seek_timer.timeout.connect(self._apply_pending)
        self._set_enabled(False)
        self.setFocusPolicy(QtCore.Qt.StrongFocus)  # space plays/pauses, arrows step

    # -- loading
    def show_video(self, obj, source: str | os.PathLike | None = None) -> None:
        """Play a VideoResult (file or frames in memory), a VideoClip or a video path.

        ``source`` (or ``VideoResult.source``) enables the side-by-side view. Unreadable
        files raise the reader's error (EngineError from engines.io.video) and leave what
        was playing before in place.
        """
        if isinstance(obj, VideoResult):
            if obj.frames is None and obj.path is None:
                raise ValueError("the video result has neither frames nor a file")
            video = FrameSource(obj.frames, obj.path if obj.frames is None else None, obj.fps)
            source = source if source is not None else obj.source
        elif isinstance(obj, VideoClip):
            video = FrameSource(path=obj.path, fps=obj.fps)
        elif isinstance(obj, (str, os.PathLike)):
            video = FrameSource(path=Path(obj))
        else:
            raise TypeError(f"cannot play a {type(obj).__name__}")
        if video.frame_count < 1:
            raise ValueError("the video has no frames")
        try:
            source_video = FrameSource(path=Path(source)) if source is not None else None
        except BaseException:
            video.close()
            raise
        self.pause()
        self._close()
        self.video, self.source = video, source_video
        self.side_by_side.setEnabled(self.source is not None)
        if self.source is None:
            self.side_by_side.setChecked(False)
        self._set_captions(obj, source)
        self._show_panes()
        self.timer.setInterval(max(1, round(1000.0 / self.video.fps)))
        self.slider.blockSignals(True)
        self.slider.setRange(0, self.video.frame_count - 1)
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self._set_enabled(True)
        self.seek(0)

    def _close(self) -> None:
        for src in (self.video, self.source):
            if src is not None:
                src.close()
        self.video = self.source = None
        self.current_frame = self.current_source_frame = None
        self.view.set_frame(None)
        self.source_view.set_frame(None)
        self._set_enabled(False)
        self.counter.setText("no video")

    def _set_enabled(self, on: bool) -> None:
        for w in (self.play_button, self.slider):
            w.setEnabled(on)

    # -- navigation
    @property
    def frame_count(self) -> int:
        return self.video.frame_count if self.video is not None else 0

    def seek(self, index: int) -> None:
        """Show exactly frame ``index`` (clamped to the clip)."""
        if self.video is None:
            return
        self.index = int(np.clip(index, 0, self.video.frame_count - 1))
        self.current_frame = self.video.frame(self.index)
        self.view.set_frame(self.current_frame)
        if self.source is not None and self.side_by_side.isChecked():
            self._show_source_frame()
        if self.slider.value() != self.index:
            self.slider.blockSignals(True)
            self.slider.setValue(self.index)
            self.slider.blockSignals(False)
        t = self.index / self.video.fps
        self.counter.setText(f"frame {self.index + 1} / {self.video.frame_count}   {int(t // 60)}:{t % 60:05.2f}")
        self.frameChanged.emit(self.index)

    def source_index(self, index: int) -> int:
        """The source frame shown beside result frame ``index`` (same time, clamped)."""
        if self.source is None or self.video is None:
            return 0
        j = round(index * self.source.fps / self.video.fps)
        return int(np.clip(j, 0, self.source.frame_count - 1))

    def _show_source_frame(self) -> None:
        self.current_source_frame = self.source.frame(self.source_index(self.index))
        self.source_view.set_frame(self.current_source_frame)

    def step(self, delta: int) -> None:
        self.pause()
        self.seek(self.index + delta)

    def play(self) -> None:
        if self.video is None:
            return
        if self.index >= self.video.frame_count - 1:
            self.seek(0)
        self.play_button.setChecked(True)

    def pause(self) -> None:
        self.play_button.setChecked(False)

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def _on_play_toggled(self, on: bool) -> None:
        self.play_button.setText("Pause" if on else "Play")
        if on and self.video is not None:
            if self.index >= self.video.frame_count - 1:
                self.seek(0)
            self.timer.start()
        else:
            self.timer.stop()

    def _tick(self) -> None:
        if self.video is None or self.index >= self.video.frame_count - 1:
            self.pause()
            return
        self.seek(self.index + 1)

    def _on_slider(self, value: int) -> None:
        self._pending = value
        if not self._seek_timer.isActive():
            self._seek_timer.start()

    def _apply_pending(self) -> None:
        if self._pending is not None:
            value, self._pending = self._pending, None
            self.seek(value)

    def _set_captions(self, obj, source) -> None:
        """ "Source: <file>" and "Result: <name>" (the file's name when it has one)."""
        name = getattr(obj, "name", "") or ""
        path = getattr(obj, "path", None) if not isinstance(obj, (str, os.PathLike)) else obj
        if isinstance(obj, VideoResult) and name and name != "video":
            result = name
        else:
            result = Path(path).name if path is not None else (name or "video")
        self.caption.setText(f"Result: {result}")
        self.source_caption.setText(f"Source: {Path(source).name}" if source is not None else "Source")
        self.caption.setToolTip(str(path) if path is not None else result)
        self.source_caption.setToolTip(str(source) if source is not None else "")

    def _show_panes(self) -> None:
        both = self.source is not None and self.side_by_side.isChecked()
        self.source_pane.setVisible(both)
        self.caption.setVisible(both)

    def _on_side_by_side(self, on: bool) -> None:
        self._show_panes()
        if on and self.source is not None and self.video is not None:
            self._show_source_frame()

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        key = event.key()
        if key == QtCore.Qt.Key_Space:
            self.pause() if self.playing else self.play()
        elif key in (QtCore.Qt.Key_Right, QtCore.Qt.Key_Period):
            self.step(1)
        elif key in (QtCore.Qt.Key_Left, QtCore.Qt.Key_Comma):
            self.step(-1)
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:
        self.pause()
        self._close()
        super().closeEvent(event)
