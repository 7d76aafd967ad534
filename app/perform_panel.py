"""Perform mode: a webcam or a video file drives the avatar's face and head live.

The panel belongs to the Avatar dock ("Perform..." opens it) and drives the head that the
avatar panel has drawn (``Viewport.update_points("<key>/head", vertices)``: same actor,
new coordinates). Threads and hand-offs:

* Tracking is one long-running job on the main window's :class:`app.jobs.JobRunner` (the
  only place that makes threads): it reads frames from the source (a camera, or a video
  file paced at its own frame rate, looped), calls :meth:`engines.puppet.LiveSession.push`
  (landmarks, solve, filter and the mesh update, ``TrackOptions(vertices=True)``), draws
  the landmarks on a small preview and emits a :class:`Packet` through a queued signal.
  It stops cooperatively (the job's cancel token, checked every frame).
* The session is not thread-safe, so Record / Stop / Neutral calibration are commands put
  on a queue that the worker runs between frames; the recorded Take comes back by signal.
* On the UI thread the signal slot only keeps the newest packet; a QTimer at the display
  rate applies it (one viewport update, one preview pixmap) and drops older ones. A frame
  without a face holds the last pose (the session does that) and is counted as missed,
  as are frames the tracker was too late for (a video file is not slowed down).
* Play back and the timeline pose the recorded take with
  :meth:`engines.puppet.Retargeter.vertices` on the UI thread (a few ms a frame).
* Export writes the take (animated GLB, or an MP4 of the render) through a save dialog,
  on the job runner, never over an input file. The take is also added to Results, so
  File > Export writes it too.

Hair and extra parts (eyes, teeth) have no skin in the viewport: they follow the head by
the ``Head`` joint's rigid transform (``actor.user_matrix``), as the GLB binds them.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt

log = logging.getLogger(__name__)

PREVIEW_W, PREVIEW_H = 320, 240
VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v);;All files (*)"
EXPORT_FILTERS = {".glb": "Animated GLB (*.glb)", ".mp4": "MP4 render of the take (*.mp4)"}


# ----------------------------------------------------------------------------- worker side
@dataclass
class SourceSpec:
    """What to perform from: a camera index or a video file."""

    camera: int | None = None
    path: Path | None = None
    loop: bool = True

    @property
    def label(self) -> str:
        return f"Camera {self.camera}" if self.camera is not None else (self.path.name if self.path else "?")


@dataclass
class Packet:
    """One tracked frame, as the worker hands it to the UI thread."""

    pose: object  # engines.puppet.FramePose
    preview: np.ndarray | None
    t_read: float  # perf_counter when the frame was read
    fps: float  # tracking frames per second (last second)
    frames: int
    missed: int  # no face, or no frame from the source (the pose was held)
    late: int  # frames the tracker could not keep up with (skipped)
    recorded: int
    stats: dict = field(default_factory=dict)


class _VideoFileSource:
    """A video file read at its own frame rate (real time), looped; frames the tracker is
    too late for are skipped and counted, so the performance stays in time."""

    def __init__(self, path: Path, loop: bool = True):
        from engines.io.video import cv2_module, open_capture, probe

        self.cv2 = cv2_module()
        info = probe(path)
        self.path, self.loop = Path(path), loop
        self.fps = float(info["fps"]) or 25.0
        self.count = int(info["frame_count"])
        self.size = (int(info["width"]), int(info["height"]))
        self._open = lambda: open_capture(self.path)
        self.cap = self._open()
        self.index = 0  # frames delivered or skipped since the start (all loops)
        self.pos = 0  # position in the file
        self.late = 0
        self.t0 = None

    def _grab_next(self, decode: bool):
        if self.pos >= self.count:
            if not self.loop:
                return False, None
            self.cap.release()
            self.cap = self._open()
            self.pos = 0
        if decode:
            ok, frame = self.cap.read()
        else:
            ok, frame = self.cap.grab(), None
        self.pos += 1
        if not ok and self.loop and self.pos < self.count:  # a broken frame: a missed one
            return True, None
        if not ok:
            self.pos = self.count
            return self.loop, None
        return True, frame

    def read(self, cancel) -> tuple[bool, np.ndarray | None, float]:
        """(more, RGB frame or None, t_ms); waits until the frame is due."""
        now = time.perf_counter()
        if self.t0 is None:
            self.t0 = now
        period = 1.0 / self.fps
        due = self.t0 + self.index * period
        # Late by more than a frame: skip ahead to the frame due now.
        while now - due > period:
            more, _ = self._grab_next(decode=False)
            if not more:
                return False, None, 0.0
            self.index += 1
            self.late += 1
            due += period
        while True:
            wait = due - time.perf_counter()
            if wait <= 0 or cancel.is_set():
                break
            time.sleep(min(wait, 0.02))
        more, frame = self._grab_next(decode=True)
        t_ms = self.index * 1000.0 * period
        self.index += 1
        if not more:
            return False, None, t_ms
        return True, None if frame is None else np.ascontiguousarray(frame[:, :, ::-1]), t_ms

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class _CameraSource:
    def __init__(self, index: int):
        from engines.puppet import camera

        self.cam = camera.Camera(index)
        self.fps = self.cam.fps
        self.late = 0

    def read(self, cancel) -> tuple[bool, np.ndarray | None, float]:
        frame, t_ms = self.cam.read()
        return True, frame, t_ms

    def close(self) -> None:
        self.cam.close()


def open_source(spec: SourceSpec):
    if spec.camera is not None:
        return _CameraSource(spec.camera)
    if spec.path is None:
        from engines.api import EngineError

        raise EngineError("Choose a source first: a camera or a video file.")
    return _VideoFileSource(spec.path, spec.loop)


def preview_image(
    frame: np.ndarray | None, landmarks: np.ndarray | None, size: tuple[int, int] = (PREVIEW_W, PREVIEW_H)
) -> np.ndarray | None:
    """The frame scaled to fit ``size`` with the tracked landmarks drawn (green dots)."""
    if frame is None:
        return None
    from engines.io.video import cv2_module

    cv2 = cv2_module()
    h, w = frame.shape[:2]
    s = min(size[0] / w, size[1] / h)
    out = cv2.resize(
        frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    )
    if landmarks is not None and len(landmarks):
        pts = np.round((np.asarray(landmarks)[:, :2] + 0.5) * s - 0.5).astype(np.int32)
        oh, ow = out.shape[:2]
        ok = (pts[:, 0] >= 0) & (pts[:, 0] < ow) & (pts[:, 1] >= 0) & (pts[:, 1] < oh)
        pts = pts[ok]
        out[pts[:, 1], pts[:, 0]] = (40, 255, 80)
        if s >= 1.2:  # bigger dots on an enlarged picture
            for dx, dy in ((1, 0), (0, 1), (1, 1)):
                q = pts + (dx, dy)
                q = q[(q[:, 0] < ow) & (q[:, 1] < oh)]
                out[q[:, 1], q[:, 0]] = (40, 255, 80)
    return np.ascontiguousarray(out)


class _Signals(QtCore.QObject):
    packet = QtCore.Signal(object)
    take = QtCore.Signal(object)
    message = QtCore.Signal(str)
    opened = QtCore.Signal(str)


def track_loop(
    spec: SourceSpec, avatar, commands: "queue.SimpleQueue", sig: _Signals, progress, cancel, options=None
) -> dict:
    """The tracking job (runs on a JobRunner pool thread): source -> LiveSession -> packets."""
    from engines.puppet import LiveSession, TrackOptions

    src = open_source(spec)
    session = LiveSession(avatar, options or TrackOptions(vertices=True))
    sig.opened.emit(f"{spec.label}: {src.fps:.0f} fps")
    stamps: deque = deque(maxlen=64)
    take_name = spec.path.stem if spec.path is not None else f"camera{spec.camera}"
    takes = 0
    reported = 0.0
    try:
        while not cancel.is_set():
            while True:  # the UI's commands, between frames (the session is not thread-safe)
                try:
                    cmd = commands.get_nowait()
                except queue.Empty:
                    break
                if cmd == "record":
                    session.record()
                elif cmd == "stop" and session.recording:
                    takes += 1
                    try:
                        sig.take.emit(session.stop(name=f"{take_name}_take{takes}"))
                    except ValueError as e:
                        sig.message.emit(f"No take: {e}")
                elif cmd == "calibrate":
                    try:
                        session.calibrate(seconds=1.0)
                        sig.message.emit("Neutral set from the last second: that face and head pose are now rest.")
                    except ValueError:
                        sig.message.emit("Neutral calibration needs a tracked face: look into the camera at rest.")
            more, frame, t_ms = src.read(cancel)
            if not more:
                break
            if cancel.is_set():
                break
            t_read = time.perf_counter()
            pose = session.push(frame, t_ms)
            stamps.append(time.perf_counter())
            fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
            rec = len(session._recording) if session.recording else 0
            pkt = Packet(
                pose, preview_image(frame, pose.landmarks), t_read, fps, session.frames, session.missed, src.late, rec
            )
            sig.packet.emit(pkt)
            if stamps[-1] - reported > 1.0:  # the Jobs panel's line once a second (a repaint each)
                reported = stamps[-1]
                where = src.pos / src.count if getattr(src, "count", 0) else 0.0  # a file: the place in it
                progress(min(where, 0.999), f"{spec.label}: {fps:.1f} fps, missed {session.missed + src.late}")
        if session.recording:  # the source ended (or tracking stopped) while recording
            takes += 1
            try:
                sig.take.emit(session.stop(name=f"{take_name}_take{takes}"))
            except ValueError:
                pass
        return {"frames": session.frames, "missed": session.missed, "late": src.late}
    finally:
        session.close()
        src.close()


# ----------------------------------------------------------------------------- the panel
def _to_pixmap(rgb: np.ndarray) -> QtGui.QPixmap:
    rgb = np.ascontiguousarray(rgb[..., :3])
    h, w = rgb.shape[:2]
    return QtGui.QPixmap.fromImage(QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format_RGB888).copy())


class PerformPanel(QtWidgets.QWidget):
    """Source picker, live preview with landmarks, Record / Stop / Play back, timeline,
    neutral calibration and Export, driving the avatar panel's drawn head."""

    take_recorded = QtCore.Signal(object)
    pose_applied = QtCore.Signal(int)

    def __init__(self, avatar_panel, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.avatar_panel = avatar_panel
        self.main_window = avatar_panel.main_window
        self._own_runner = None
        self.job = None
        self.commands: queue.SimpleQueue = queue.SimpleQueue()
        self.sig = _Signals(self)
        self.sig.packet.connect(self._on_packet)
        self.sig.take.connect(self._on_take)
        self.sig.message.connect(self._message)
        self.sig.opened.connect(lambda s: self._set_state(f"Tracking {s}"))
        self.cameras: list[int] | None = None
        self.video_path: Path | None = None
        self.take = None
        self._retargeter = None
        self._retargeter_for = None
        self._latest: Packet | None = None
        self._applied_packet: Packet | None = None
        self.received = self.applied = self.dropped = 0
        self._apply_times: deque = deque(maxlen=120)
        self.last_latency_ms = float("nan")
        self.playing = False
        self._play_t0 = 0.0
        self._play_from = 0.0
        self._frame = -1
        self._tracked_avatar = None
        self._stats_at = 0.0
        self._build()
        rate = 60.0
        screen = QtGui.QGuiApplication.primaryScreen()
        if screen is not None and screen.refreshRate() > 1:
            rate = min(float(screen.refreshRate()), 60.0)
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(max(5, int(1000 / rate)))
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        self._update_buttons()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QtWidgets.QVBoxLayout(self)
        self.title = QtWidgets.QLabel("Perform: a webcam or a video drives the avatar's face and head.")
        self.title.setWordWrap(True)
        outer.addWidget(self.title)

        src = QtWidgets.QGroupBox("Source")
        sl = QtWidgets.QVBoxLayout(src)
        row = QtWidgets.QHBoxLayout()
        self.source_combo = QtWidgets.QComboBox()
        self.source_combo.setObjectName("perform_source")
        self.source_combo.setToolTip("The camera (OpenCV index) or the video file that drives the avatar")
        self.source_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.source_combo.setMinimumContentsLength(14)
        self.source_combo.currentIndexChanged.connect(lambda _: self._update_buttons())
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.refresh_button.setToolTip("Look for cameras again")
        self.refresh_button.clicked.connect(self.refresh_cameras)
        self.file_button = QtWidgets.QPushButton("Video file…")
        self.file_button.setToolTip("Perform from a video file (played at its own frame rate)")
        self.file_button.clicked.connect(self.choose_video)
        row.addWidget(self.source_combo, 1)
        row.addWidget(self.refresh_button)
        row.addWidget(self.file_button)
        sl.addLayout(row)
        self.no_camera = QtWidgets.QLabel("")
        self.no_camera.setObjectName("perform_no_camera")
        self.no_camera.setWordWrap(True)
        self.no_camera.setStyleSheet("color: #b35c00")
        self.no_camera.hide()
        sl.addWidget(self.no_camera)
        row = QtWidgets.QHBoxLayout()
        self.loop_box = QtWidgets.QCheckBox("Loop the video")
        self.loop_box.setChecked(True)
        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setObjectName("perform_start")
        self.start_button.setToolTip("Start tracking: the avatar follows the source live")
        self.start_button.clicked.connect(self.toggle_tracking)
        self.calibrate_button = QtWidgets.QPushButton("Neutral calibration")
        self.calibrate_button.setToolTip(
            "Hold a relaxed face, looking ahead, and press: the last second becomes the rest face and head pose"
        )
        self.calibrate_button.clicked.connect(self.calibrate)
        row.addWidget(self.loop_box)
        row.addStretch(1)
        row.addWidget(self.calibrate_button)
        row.addWidget(self.start_button)
        sl.addLayout(row)
        outer.addWidget(src)

        self.preview = QtWidgets.QLabel("No source yet")
        self.preview.setObjectName("perform_preview")
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumSize(PREVIEW_W, PREVIEW_H)
        self.preview.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Fixed)
        self.preview.setStyleSheet("background: #202020; color: #bbbbbb")
        outer.addWidget(self.preview)
        self.stats = QtWidgets.QLabel("")
        self.stats.setObjectName("perform_stats")
        self.stats.setWordWrap(True)
        outer.addWidget(self.stats)

        take = QtWidgets.QGroupBox("Take")
        tl = QtWidgets.QVBoxLayout(take)
        row = QtWidgets.QHBoxLayout()
        self.record_button = QtWidgets.QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record the performance into a take (press again to stop)")
        self.record_button.toggled.connect(self._record_toggled)
        self.play_button = QtWidgets.QPushButton("▶ Play back")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play the recorded take on the avatar (live tracking is paused on screen)")
        self.play_button.toggled.connect(self._play_toggled)
        self.export_button = QtWidgets.QPushButton("Export…")
        self.export_button.setToolTip(
            "Write the take: an animated GLB (morph weights and head/eye rotations) or an MP4 of the render"
        )
        self.export_button.clicked.connect(lambda: self.export())
        row.addWidget(self.record_button)
        row.addWidget(self.play_button)
        row.addWidget(self.export_button)
        tl.addLayout(row)
        row = QtWidgets.QHBoxLayout()
        self.timeline = QtWidgets.QSlider(Qt.Horizontal)
        self.timeline.setObjectName("perform_timeline")
        self.timeline.setRange(0, 0)
        self.timeline.setToolTip("Scrub the take")
        self.timeline.valueChanged.connect(self._scrubbed)
        self.time_label = QtWidgets.QLabel("0.00 / 0.00 s")
        self.time_label.setMinimumWidth(90)
        self.time_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        row.addWidget(self.timeline, 1)
        row.addWidget(self.time_label)
        tl.addLayout(row)
        outer.addWidget(take)

        self.state = QtWidgets.QLabel("")
        self.state.setWordWrap(True)
        self.state.setStyleSheet("color: gray")
        outer.addWidget(self.state)
        outer.addStretch(1)

    # -- helpers -----------------------------------------------------------------------------
    @property
    def runner(self):
        r = getattr(self.main_window, "runner", None)
        if r is None:
            if self._own_runner is None:
                from app.jobs import JobRunner

                self._own_runner = JobRunner(self)
            r = self._own_runner
        return r

    @property
    def avatar(self):
        return self.avatar_panel.avatar

    @property
    def head_key(self) -> str | None:
        k = self.avatar_panel.key
        return f"{k}/head" if k is not None else None

    @property
    def tracking(self) -> bool:
        return self.job is not None and self.job.state in ("queued", "running")

    def _set_state(self, text: str) -> None:
        self.state.setText(text)

    def _message(self, text: str) -> None:
        self._set_state(text)
        status = getattr(self.main_window, "status", None)
        if callable(status):
            status(text)

    def _error(self, title: str, text: str) -> None:
        err = getattr(self.main_window, "error", None)
        if callable(err):
            err(title, text)
        else:
            QtWidgets.QMessageBox.warning(self, title, text)
        self._set_state(text)

    def _update_buttons(self) -> None:
        has_avatar = self.avatar is not None
        has_source = self.source_spec() is not None
        self.start_button.setText("Stop" if self.tracking else "Start")
        self.start_button.setEnabled(has_avatar and (has_source or self.tracking))
        self.calibrate_button.setEnabled(self.tracking)
        self.record_button.setEnabled(self.tracking)
        has_take = self.take is not None
        self.play_button.setEnabled(has_take)
        self.export_button.setEnabled(has_take)
        self.timeline.setEnabled(has_take)
        self.source_combo.setEnabled(not self.tracking)
        self.file_button.setEnabled(not self.tracking)
        self.refresh_button.setEnabled(not self.tracking)

    # -- sources -----------------------------------------------------------------------------
    def refresh_cameras(self) -> None:
        """Probe the cameras on the job runner (opening devices can take a while)."""
        from engines.puppet import camera

        self.refresh_button.setEnabled(False)
        self.no_camera.hide()
        self._set_state("Looking for cameras…")
        self.runner.submit(
            lambda progress, cancel: camera.list_cameras(),
            "Look for cameras",
            "task",
            on_done=self._cameras_found,
            on_error=lambda m, d: self._cameras_found([], m),
        )

    def _cameras_found(self, cams, error: str = "") -> None:
        self.cameras = list(cams)
        keep = self.source_spec()
        self.source_combo.blockSignals(True)
        self.source_combo.clear()
        for i in self.cameras:
            self.source_combo.addItem(f"Camera {i}", ("camera", i))
        if self.video_path is not None:
            self.source_combo.addItem(f"Video: {self.video_path.name}", ("file", str(self.video_path)))
        self.source_combo.blockSignals(False)
        if keep is not None and keep.path is not None:
            self.source_combo.setCurrentIndex(self.source_combo.count() - 1)
        if not self.cameras:
            self.no_camera.setText(
                "No camera was found. Connect a webcam and press Refresh, or perform "
                "from a video file: press “Video file…”." + (f" ({error})" if error else "")
            )
            self.no_camera.show()
            self._set_state("No camera: choose a video file.")
        else:
            self.no_camera.hide()
            self._set_state(f"{len(self.cameras)} camera(s) found.")
        self.refresh_button.setEnabled(not self.tracking)
        self._update_buttons()

    def choose_video(self) -> None:
        settings = getattr(self.main_window, "settings", None)
        start = settings.last_dir if settings is not None else ""
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Perform from a video", start, VIDEO_FILTER)
        if path:
            self.set_video(path)

    def set_video(self, path) -> None:
        """Use a video file as the source (selected in the picker)."""
        path = Path(path)
        if not path.is_file():
            self._error("Cannot perform", f"{path} is not a file.")
            return
        self.video_path = path
        for i in range(self.source_combo.count()):
            if (self.source_combo.itemData(i) or ("",))[0] == "file":
                self.source_combo.removeItem(i)
                break
        self.source_combo.addItem(f"Video: {path.name}", ("file", str(path)))
        self.source_combo.setCurrentIndex(self.source_combo.count() - 1)
        self.preview.setText(f"{path.name}: press Start")
        self._update_buttons()

    def source_spec(self) -> SourceSpec | None:
        data = self.source_combo.currentData()
        if not data:
            return None
        kind, value = data
        if kind == "camera":
            return SourceSpec(camera=int(value))
        return SourceSpec(path=Path(value), loop=self.loop_box.isChecked())

    # -- tracking ----------------------------------------------------------------------------
    def toggle_tracking(self) -> None:
        if self.tracking:
            self.stop_tracking()
        else:
            self.start_tracking()

    def start_tracking(self) -> None:
        if self.tracking:
            return
        spec, avatar = self.source_spec(), self.avatar
        if avatar is None:
            self._error("Cannot perform", "Make an avatar first (Make avatar on a portrait).")
            return
        if spec is None:
            self._error("Cannot perform", "Choose a source first: a camera, or a video file (“Video file…”).")
            return
        if self.playing:
            self.play_button.setChecked(False)
        self.commands = queue.SimpleQueue()
        commands, sig = self.commands, self.sig
        self._latest = self._applied_packet = None
        self.received = self.applied = self.dropped = 0
        self._apply_times.clear()
        self._set_state(f"Opening {spec.label}…")
        self._tracked_avatar = avatar
        self.job = self.runner.submit(
            lambda progress, cancel: track_loop(spec, avatar, commands, sig, progress, cancel),
            f"Perform ({spec.label})",
            "perform",
            on_done=self._tracking_ended,
            on_error=self._tracking_failed,
        )
        self.runner.cancelled.connect(self._maybe_cancelled)
        self._update_buttons()

    def stop_tracking(self) -> None:
        if self.job is not None:
            if self.record_button.isChecked():
                self.record_button.setChecked(False)  # the take comes back before the job ends
            self.runner.cancel(self.job.id)
            self._set_state("Stopping…")

    def _maybe_cancelled(self, jid: int) -> None:
        if self.job is not None and jid == self.job.id:
            self._tracking_ended(None)

    def _tracking_ended(self, value) -> None:
        try:
            self.runner.cancelled.disconnect(self._maybe_cancelled)
        except (RuntimeError, TypeError):
            pass
        self.record_button.blockSignals(True)
        self.record_button.setChecked(False)
        self.record_button.blockSignals(False)
        if isinstance(value, dict):
            self._set_state(f"The source ended after {value['frames']} frames.")
        else:
            self._set_state("Tracking stopped.")
        self._update_buttons()

    def _tracking_failed(self, message: str, details: str) -> None:
        self._tracking_ended(None)
        self._error("Perform failed", message)
        self.preview.setText("The source could not be read")

    def calibrate(self) -> None:
        if self.tracking:
            self.commands.put("calibrate")

    def _record_toggled(self, on: bool) -> None:
        if not self.tracking:
            return
        if on:
            if self.playing:
                self.play_button.setChecked(False)
            self.commands.put("record")
            self.record_button.setText("■ Stop")
        else:
            self.commands.put("stop")
            self.record_button.setText("● Record")

    # -- live display ------------------------------------------------------------------------
    def _on_packet(self, pkt: Packet) -> None:
        """Only the newest packet is kept; the display timer applies it."""
        if self._latest is not None and self._latest is not self._applied_packet:
            self.dropped += 1
        self._latest = pkt
        self.received += 1

    def _tick(self) -> None:
        if self.playing:
            self._play_step()
            return
        pkt = self._latest
        if pkt is None or pkt is self._applied_packet:
            return
        self._applied_packet = pkt
        self.apply_packet(pkt)

    def apply_packet(self, pkt: Packet) -> None:
        pose = pkt.pose
        if pose.vertices is not None:
            self._show_vertices(pose.vertices, pose.head_rotation)
        if pkt.preview is not None:
            pm = _to_pixmap(pkt.preview)
            if pm.width() < self.preview.width() - 8 and pm.height() < self.preview.height() - 8:
                pm = pm.scaled(
                    self.preview.width() - 4, self.preview.height() - 4, Qt.KeepAspectRatio, Qt.SmoothTransformation
                )
            self.preview.setPixmap(pm)
        self.last_latency_ms = (time.perf_counter() - pkt.t_read) * 1000
        now = time.perf_counter()
        if now - self._stats_at < 0.25 and pose.tracked:  # the figures at 4 Hz: each repaint costs
            return
        self._stats_at = now
        while self._apply_times and now - self._apply_times[0] > 1.0:
            self._apply_times.popleft()
        disp = len(self._apply_times) / 1.0 if self._apply_times else 0.0
        missed = pkt.missed + pkt.late
        t = pose.timings or {}
        rec = f" · ● recording {pkt.recorded} frames" if pkt.recorded else ""
        self.stats.setText(
            f"Tracking {pkt.fps:.1f} fps · display {disp:.0f} fps · {t.get('total', 0):.0f} ms a frame · "
            f"latency {self.last_latency_ms:.0f} ms\nMissed {missed} of {pkt.frames + pkt.late} frames "
            f"(no face {pkt.missed}, tracker late {pkt.late}){rec}"
            + ("" if pose.tracked else " · no face: holding the last pose")
        )

    def _head_matrix(self, R: np.ndarray) -> np.ndarray | None:
        avatar = self.avatar
        sk = getattr(avatar, "skeleton", None)
        if sk is None or R is None:
            return None
        names = [str(n).lower() for n in sk.names]
        if "head" not in names:
            return None
        from engines.avatar.rig import skinning_matrices

        return skinning_matrices(sk, {sk.names[names.index("head")]: np.asarray(R)})[names.index("head")]

    def _move_points(self, vp, key: str, vertices: np.ndarray) -> None:
        """The drawn head moved in place with one render per display tick (a deferred update)."""
        vp.update_points(key, vertices, deferred=True)

    def _show_vertices(self, vertices: np.ndarray, head_R: np.ndarray | None = None) -> bool:
        """Move the drawn head (and turn the unskinned parts with it); one render."""
        vp = getattr(self.main_window, "viewport", None)
        key = self.head_key
        if vp is None or key is None:
            return False
        group = key[: -len("/head")]
        M = self._head_matrix(head_R) if head_R is not None else None
        if M is not None:
            for part in vp.keys():
                if part.startswith(group + "/") and part != key:
                    try:
                        vp.actor(part).user_matrix = M
                    except Exception:  # a part that cannot take a transform stays put
                        log.debug("no user matrix on %s", part, exc_info=True)
        try:
            self._move_points(vp, key, vertices)
        except (KeyError, ValueError):
            log.debug("the avatar is not drawn under %s", key)
            return False
        self.applied += 1
        self._apply_times.append(time.perf_counter())
        self.pose_applied.emit(self.applied)
        return True

    # -- takes -------------------------------------------------------------------------------
    def _on_take(self, take) -> None:
        self.set_take(take)
        self._message(
            f"Take {take.name}: {len(take)} frames, {take.duration:.2f} s"
            + (f", {take.missed} missed (pose held)" if take.missed else "")
        )
        self.take_recorded.emit(take)
        self._add_to_results(take)

    def set_take(self, take) -> None:
        self.take = take
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, max(0, len(take) - 1))
        self.timeline.setValue(0)
        self.timeline.blockSignals(False)
        self._frame = -1
        self._update_time_label(0)
        self._update_buttons()

    def _add_to_results(self, take) -> None:
        """The take (with its avatar) in Results, so File > Export and the project keep it."""
        w = self.main_window
        if not hasattr(w, "_add_result") or not hasattr(w, "project"):
            return
        from engines.api import Result

        try:
            from engines.puppet.engine import PuppetEngine as cls
        except ImportError:
            return
        res = Result(items=[take, take.avatar] if take.avatar is not None else [take])
        res.notes.append(f"Perform: {len(take)} frames at {take.fps:.1f} fps")
        res.metrics.update(frames=len(take), missed=int(take.missed), fps=round(float(take.fps), 2))
        try:
            w._add_result(res, cls, {"source": "perform"}, None)
        except Exception:
            log.exception("adding the take to Results")
            return
        # Showing the result redraws the avatar under a new key and brings the Avatar dock
        # forward: Perform stays in front.
        dock = getattr(w, "docks", {}).get("Perform")
        if dock is not None:
            dock.show()
            dock.raise_()

    def _take_vertices(self, i: int) -> np.ndarray:
        from engines.avatar.arkit import ARKIT_NAMES
        from engines.puppet import Retargeter
        from engines.puppet.rotation import matrix_from_quat

        take = self.take
        avatar = take.avatar if take.avatar is not None else self.avatar
        if self._retargeter is None or self._retargeter_for is not avatar:
            self._retargeter, self._retargeter_for = Retargeter(avatar), avatar
        w = np.zeros(len(ARKIT_NAMES))
        row = take.weights[i]
        for k, n in enumerate(take.names):
            if n in ARKIT_NAMES:
                w[ARKIT_NAMES.index(n)] = row[k]
        eyes = None
        if take.meta.get("gaze") == "joints":
            w[[j for j, n in enumerate(ARKIT_NAMES) if n.startswith("eyeLook")]] = 0.0
            e = matrix_from_quat(take.eye_rotation[i])
            eyes = (e[0], e[1])
        R = matrix_from_quat(take.head_rotation[i])
        return self._retargeter.vertices(w, R, eyes), R

    def show_frame(self, i: int) -> bool:
        """Pose the avatar as frame ``i`` of the take."""
        if self.take is None or len(self.take) == 0:
            return False
        i = int(np.clip(i, 0, len(self.take) - 1))
        V, R = self._take_vertices(i)
        self._frame = i
        self._update_time_label(i)
        return self._show_vertices(V, R)

    def _update_time_label(self, i: int) -> None:
        if self.take is None or len(self.take) == 0:
            self.time_label.setText("0.00 / 0.00 s")
            return
        t = self.take.times
        self.time_label.setText(f"{t[i] - t[0]:.2f} / {t[-1] - t[0]:.2f} s")

    def _scrubbed(self, value: int) -> None:
        if self.take is None:
            return
        if self.playing:  # a drag while playing continues from there
            self._play_from = float(self.take.times[value] - self.take.times[0])
            self._play_t0 = time.perf_counter()
        self.show_frame(value)

    def _play_toggled(self, on: bool) -> None:
        if on and self.take is None:
            self.play_button.setChecked(False)
            return
        self.playing = on
        self.play_button.setText("❚❚ Pause" if on else "▶ Play back")
        if on:
            t = self.take.times - self.take.times[0]
            start = self.timeline.value()
            if start >= len(t) - 1:
                start = 0
            self._play_from = float(t[start])
            self._play_t0 = time.perf_counter()
            self._frame = -1
            self._apply_times.clear()

    def _play_step(self) -> None:
        take = self.take
        t = take.times - take.times[0]
        pos = self._play_from + time.perf_counter() - self._play_t0
        i = int(np.searchsorted(t, pos, side="right") - 1)
        i = int(np.clip(i, 0, len(t) - 1))
        if i != self._frame:
            self.timeline.blockSignals(True)
            self.timeline.setValue(i)
            self.timeline.blockSignals(False)
            self.show_frame(i)
            now = time.perf_counter()
            while self._apply_times and now - self._apply_times[0] > 1.0:
                self._apply_times.popleft()
            if now - self._stats_at >= 0.25:
                self._stats_at = now
                self.stats.setText(f"Playing back: frame {i + 1} of {len(t)} · display {len(self._apply_times)} fps\n ")
        if pos >= t[-1]:
            self.play_button.setChecked(False)

    # -- export ------------------------------------------------------------------------------
    def _input_paths(self) -> set[Path]:
        """Files this take came from and the project's inputs (never written over)."""
        out = set()
        cands = [self.video_path, getattr(self.take, "source", None)]
        project = getattr(self.main_window, "project", None)
        for entry in getattr(project, "inputs", None) or []:
            cands += list(getattr(entry, "paths", None) or [])
            cands.append(getattr(getattr(entry, "obj", None), "path", None))
        for p in cands:
            if p:
                try:
                    out.add(Path(p).resolve())
                except (TypeError, OSError):
                    pass
        return out

    def export(self, path: str | None = None):
        """Write the take (GLB or MP4 by extension) on the job runner; returns the Job."""
        if self.take is None:
            self._error("Nothing to export", "Record a take first (Start, then Record and Stop).")
            return None
        if path is None:
            settings = getattr(self.main_window, "settings", None)
            folder = Path(settings.last_dir) if settings is not None else Path.home()
            default = str(folder / f"{self.take.name}.glb")
            filters = list(EXPORT_FILTERS.values())
            path, chosen = QtWidgets.QFileDialog.getSaveFileName(self, "Export the take", default, ";;".join(filters))
            if not path:
                return None
            if Path(path).suffix.lower() not in EXPORT_FILTERS:
                ext = next((e for e, f in EXPORT_FILTERS.items() if f == chosen), ".glb")
                path += ext
            if settings is not None:
                settings.last_dir = str(Path(path).parent)
        target = Path(path)
        if target.suffix.lower() not in EXPORT_FILTERS:
            self._error(
                "Cannot export",
                f"A take is written as {' or '.join(EXPORT_FILTERS)}, not "
                f"{target.suffix or 'a file with no extension'} ({target.name}).",
            )
            return None
        if target.resolve() in self._input_paths():
            self._error(
                "Cannot export",
                f"{target.name} is an input of this take: choose another name, the input is never overwritten.",
            )
            return None
        take = self.take
        from engines import io

        self._set_state(f"Exporting {target.name}…")
        return self.runner.submit(
            lambda progress, cancel: io.export(take, target),
            f"Export {target.name}",
            "export",
            on_done=lambda written: self._message("Exported " + ", ".join(p.name for p in written)),
            on_error=lambda m, d: self._error("Export failed", m),
        )

    # -- life --------------------------------------------------------------------------------
    def avatar_changed(self) -> None:
        """The avatar panel shows another avatar (or the same one under a new key)."""
        if self.tracking and self._tracked_avatar_changed():
            self.stop_tracking()
        self._update_buttons()

    def _tracked_avatar_changed(self) -> bool:
        return self._tracked_avatar is not self.avatar

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.cameras is None:
            self.cameras = []
            self.refresh_cameras()

    def closeEvent(self, event) -> None:
        self.stop_tracking()
        if self.playing:
            self.play_button.setChecked(False)
        super().closeEvent(event)
