"""The Jobs dock: one row per job with its title, a progress bar, the engine's latest
message and a Cancel button; finished rows say how the job ended until cleared."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.jobs import JobRunner

PREVIEW_WIDTH = 240  # pixels: a job row's preview image


class JobRow(QWidget):
    def __init__(self, runner: JobRunner, job_id: int, parent=None) -> None:
        super().__init__(parent)
        self.runner, self.job_id = runner, job_id
        job = runner.jobs[job_id]
        self.title = QLabel(job.title)
        self.title.setStyleSheet("font-weight: bold")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setFormat("%p%")
        self.message = QLabel("Waiting...")
        self.message.setWordWrap(True)
        self.preview = QLabel()  # the engine's latest picture of its work (a splat's render)
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this job at its next checkpoint; nothing it made is kept")
        self.cancel_button.clicked.connect(lambda: runner.cancel(job_id))
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.bar)
        lay.addWidget(self.message)
        lay.addWidget(self.preview)

    def set_preview(self, rgb, caption: str = "") -> None:
        """Show ``rgb`` (H, W, 3 uint8) at most PREVIEW_WIDTH pixels wide."""
        import numpy as np
        from PySide6.QtGui import QImage, QPixmap

        a = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[..., :3])
        if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
            return
        h, w = a.shape[:2]
        image = QImage(a.data, w, h, 3 * w, QImage.Format_RGB888).copy()
        pix = QPixmap.fromImage(image)
        if w > PREVIEW_WIDTH:
            pix = pix.scaledToWidth(PREVIEW_WIDTH, Qt.SmoothTransformation)
        self.preview.setPixmap(pix)
        self.preview.setToolTip(caption or "Preview of the work so far")
        self.preview.show()

    def set_progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(int(round(fraction * 1000)))
        if message:
            self.message.setText(message)

    def set_state(self, state: str, message: str = "") -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.hide()
        text = {"done": "Done", "failed": "Failed", "cancelled": "Cancelled"}.get(state, state)
        if state == "done":
            self.bar.setValue(1000)
        if state == "running":
            self.cancel_button.setEnabled(True)
            self.cancel_button.show()
            self.message.setText("Running...")
            return
        self.message.setText(f"{text}: {message}" if message and state == "failed" else text)


class JobsPanel(QWidget):
    """Shows the runner's jobs; rows stay after a job ends until "Clear finished"."""

    def __init__(self, runner: JobRunner, parent=None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.rows: dict[int, JobRow] = {}
        self._box = QWidget()
        self._list = QVBoxLayout(self._box)
        self._list.setContentsMargins(0, 0, 0, 0)
        self._list.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._box)
        self.empty = QLabel("No jobs yet. Choose an engine and press Run.")
        self.empty.setAlignment(Qt.AlignCenter)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.clicked.connect(self.clear_finished)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.empty)
        lay.addWidget(scroll, 1)
        lay.addWidget(self.clear_button)
        runner.added.connect(self._on_added)
        runner.started.connect(lambda j: self._state(j, "running"))
        runner.progress.connect(self._on_progress)
        runner.preview.connect(self._on_preview)
        runner.finished.connect(lambda j, _v: self._state(j, "done"))
        runner.failed.connect(lambda j, m, _d: self._state(j, "failed", m))
        runner.cancelled.connect(lambda j: self._state(j, "cancelled"))

    def _on_added(self, job_id: int) -> None:
        if self.runner.jobs[job_id].meta.get("quiet"):
            return  # housekeeping such as autosave
        row = JobRow(self.runner, job_id)
        self.rows[job_id] = row
        self._list.insertWidget(0, row)
        self.empty.hide()

    def _on_progress(self, job_id: int, fraction: float, message: str) -> None:
        row = self.rows.get(job_id)
        if row is not None:
            row.set_progress(fraction, message)

    def _on_preview(self, job_id: int, rgb, caption: str) -> None:
        row = self.rows.get(job_id)
        if row is not None:
            row.set_preview(rgb, caption)

    def _state(self, job_id: int, state: str, message: str = "") -> None:
        row = self.rows.get(job_id)
        if row is not None:
            row.set_state(state, message)

    def clear_finished(self) -> None:
        for jid in [j for j, r in self.rows.items() if self.runner.jobs[j].state in ("done", "failed", "cancelled")]:
            row = self.rows.pop(jid)
            self._list.removeWidget(row)
            row.deleteLater()
        self.empty.setVisible(not self.rows)
