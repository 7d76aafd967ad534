"""The main window: docks (Inputs, Engine, Jobs, Avatar), central tabs (3D, 2D, Video),
menus (:mod:`app.menus`), drag-and-drop, status bar; project save/open/autosave come
from :class:`app.session.ProjectActions`, what is drawn where from :mod:`app.display`.

Start-up stays fast because the window shows first and everything heavy follows from a
zero-delay timer: engine discovery, the VTK viewport (pyvista), the 2D and video views.
Only the job runner creates threads; results reach VTK on the UI thread only. Actions a
test or script may drive (``import_paths``, ``run_engine``, ``save_project``...) are
plain methods; dialogs go through ``QMessageBox``/``QFileDialog`` static functions so
tests can replace them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import display
from app import settings as settings_mod
from app.engine_panel import EnginePanel
from app.inputs_panel import InputsPanel, describe, thumbnail_of
from app.jobs import JobRunner
from app.jobs_panel import JobsPanel
from app.project import SUFFIX, InputEntry, Project, ResultEntry, load_entry
from app.session import ProjectActions
from engines.api import EngineError, bind_inputs

log = logging.getLogger("app.main_window")
AUTOSAVE_MS = 3 * 60 * 1000
MISSING_FOCUS = "Focus distances are missing"
"""Start of engines.io.focalstack's message when no distance source exists: ask the user."""
PREFERRED_SIZE = (1400, 900)
"""The window's size where the screen has room; smaller screens get their available area."""
FRAME_ALLOWANCE = (16, 40)
"""Room (px) left for the window manager's frame and title bar on a screen smaller than
:data:`PREFERRED_SIZE` (the frame is not known before the window is shown)."""
STATUS_CHARS = 110
"""Longer status messages are cut here, the whole text going to the notes under the view."""
THUMBNAIL_DELAY_MS = 150
"""A result drawn in the 3D view gets its thumbnail from the view this long after it was
shown: after the paint that renders it (its own event), so reading the frame back is not
added to that event's stall."""
EXT_NAMES = {
    ".glb": "glTF binary",
    ".obj": "Wavefront OBJ",
    ".ply": "PLY",
    ".zip": "Avatar bundle",
    ".png": "PNG (depth: 16-bit mm)",
    ".npy": "NumPy (float32 m)",
    ".mp4": "MP4 (H.264)",
    ".jpg": "JPEG",
}


class MainWindow(ProjectActions, QMainWindow):
    input_added = Signal(int)
    result_added = Signal(int)
    import_failed = Signal(str)
    project_loaded = Signal()
    views_ready = Signal()

    def __init__(
        self,
        settings: settings_mod.Settings | None = None,
        samples: bool = True,
        recovery: bool = True,
        views: bool = True,
        warm_up: bool = False,
    ) -> None:
        super().__init__()
        self.settings = settings or settings_mod.Settings()
        self.project = Project()
        self.runner = JobRunner(self)
        self.confirm_close = True
        self._want = {"samples": samples, "recovery": recovery, "views": views, "warm_up": warm_up}
        self.viewport = self.image_view = self.video_view = None
        self.result_panels: dict = {}  # dock title -> result panel (app.display.show_panel)
        self._views_loaded = False
        self._autosaved_revision = -1
        self.setWindowTitle("Capture Studio")
        self.setAcceptDrops(True)

        self.tabs = QTabWidget()
        for title in ("3D", "2D", "Video"):
            self.tabs.addTab(self._notice(f"Loading the {title} view..."), title)
        # Under the views, the notes of what they show (a result's or an input's), in full:
        # the status bar cuts long ones off and forgets them after a few seconds.
        self.notes_label = QLabel("")
        self.notes_label.setObjectName("notes")
        self.notes_label.setWordWrap(True)
        self.notes_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.notes_label.setStyleSheet("QLabel#notes { color: palette(window-text); padding: 2px 4px; }")
        self.notes_label.hide()
        central = QWidget()
        clay = QVBoxLayout(central)
        clay.setContentsMargins(0, 0, 0, 0)
        clay.setSpacing(2)
        clay.addWidget(self.tabs, 1)
        clay.addWidget(self.notes_label)
        self.setCentralWidget(central)
        self.inputs_panel = InputsPanel()
        self.engine_panel = EnginePanel()
        self.jobs_panel = JobsPanel(self.runner)
        self.docks = {}
        for name, w, area in (
            ("Inputs", self.inputs_panel, Qt.LeftDockWidgetArea),
            ("Engine", self.engine_panel, Qt.RightDockWidgetArea),
            ("Jobs", self.jobs_panel, Qt.RightDockWidgetArea),
        ):
            self.docks[name] = self._dock(name, w, area)
        self.resizeDocks([self.docks["Inputs"], self.docks["Engine"]], [260, 340], Qt.Horizontal)
        self.fit_to_screen()
        self.inputs_panel.input_selected.connect(self.show_input)
        self.inputs_panel.inputs.itemSelectionChanged.connect(self._update_engines)
        self.inputs_panel.result_selected.connect(self.show_result)
        self.inputs_panel.sample_activated.connect(lambda p: self.import_paths([p]))
        self.inputs_panel.remove_input.connect(self.remove_input)
        self.inputs_panel.remove_result.connect(self.remove_result)
        self.engine_panel.run_requested.connect(self.run_engine)
        self.jobs_label = QLabel("")
        self.statusBar().addPermanentWidget(self.jobs_label)
        for sig in (self.runner.added, self.runner.finished, self.runner.failed, self.runner.cancelled):
            sig.connect(self._update_jobs_label)
        self._sample_jobs: set[int] = set()
        for sig in (self.runner.finished, self.runner.failed, self.runner.cancelled):
            sig.connect(self._sample_job_ended)
        self._build_menus()
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.runner.shutdown)
        QTimer.singleShot(0, self._after_show)

    # -- construction ------------------------------------------------------------------
    def fit_to_screen(self, screen=None) -> None:
        """Size the window to :data:`PREFERRED_SIZE`, or to the screen's available area where
        that is smaller (a 1366 x 768 laptop: the right column, the status bar, Samples and
        Jobs stay on screen), and place it inside that area."""
        screen = screen or self.screen() or QApplication.primaryScreen()
        if screen is None:
            self.resize(*PREFERRED_SIZE)
            return
        area = screen.availableGeometry()
        w, h = PREFERRED_SIZE
        if area.width() < w + FRAME_ALLOWANCE[0]:
            w = area.width() - FRAME_ALLOWANCE[0]
        if area.height() < h + FRAME_ALLOWANCE[1]:
            h = area.height() - FRAME_ALLOWANCE[1]
        self.resize(w, h)
        self.move(
            area.x() + max(0, (area.width() - w - FRAME_ALLOWANCE[0]) // 2),
            area.y() + max(0, (area.height() - h - FRAME_ALLOWANCE[1]) // 2),
        )

    def show_notes(self, notes: list[str] | None, title: str = "") -> None:
        """Put the notes of what the views show under them (hidden when there are none)."""
        notes = [str(n) for n in (notes or []) if str(n).strip()]
        if not notes:
            self.notes_label.clear()
            self.notes_label.hide()
            return
        from html import escape

        head = f"<b>{escape(title)}</b>: " if title else ""
        self.notes_label.setText(head + "<br>".join(escape(n) for n in notes))
        self.notes_label.setToolTip("\n".join(notes))
        self.notes_label.show()

    def _status_notes(self, notes: list[str], fallback: str, ms: int) -> None:
        """A status message for notes: cut to :data:`STATUS_CHARS`, saying where the rest is."""
        text = " ".join(notes) if notes else fallback
        if len(text) > STATUS_CHARS:
            text = text[: STATUS_CHARS - 30].rstrip() + "… (full notes under the view)"
        self.status(text, ms)

    def _bring_engine_forward(self) -> None:
        """The Engine dock (with Run) in front of the Avatar dock it shares a tab bar with."""
        dock = self.docks.get("Engine")
        if dock is not None and "Avatar" in self.docks and not self.docks["Avatar"].isHidden():
            dock.show()
            dock.raise_()

    @property
    def avatar_panel(self):
        """The avatar's controls (the result panel the avatar engine declares), once made."""
        return self.result_panels.get("Avatar")

    def _fit_avatar_dock(self, tries: int = 2) -> None:
        """Give the Avatar dock the height its controls need (taken from the Jobs dock below
        it, down to that one's own minimum), so that they show without scrolling: on a
        laptop screen a group photo's row of faces made them scroll."""
        dock, jobs, panel = self.docks.get("Avatar"), self.docks.get("Jobs"), self.avatar_panel
        if dock is None or jobs is None or panel is None or dock.isHidden() or jobs.isHidden():
            return
        inner = dock.widget()
        chrome = dock.height() - (inner.height() if inner is not None else dock.height())
        short = panel.heightForWidth(max(panel.width(), 1)) + max(chrome, 0) + 2 - dock.height()
        low = jobs.minimumSizeHint().height()
        if short <= 0 or jobs.height() <= low or tries <= 0:
            return
        # resizeDocks ignores a dock that is one of a tab group, so the Jobs dock is resized;
        # what it gets differs from the request by the splitter's few pixels: asked again.
        self.resizeDocks([jobs], [max(jobs.height() - short - 8, low)], Qt.Vertical)
        QTimer.singleShot(0, lambda: self._fit_avatar_dock(tries - 1))

    def _notice(self, text: str) -> QLabel:
        label = QLabel(text)
        label.setAlignment(Qt.AlignCenter)
        label.setWordWrap(True)
        return label

    def _dock(self, name: str, widget, area) -> QDockWidget:
        dock = QDockWidget(name, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _act(self, menu, text, slot, shortcut=None, tip="", checkable=False) -> QAction:
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        a.setStatusTip(tip)
        a.setToolTip(tip or text)
        a.setCheckable(checkable)
        a.triggered.connect(slot)
        menu.addAction(a)
        return a

    def _build_menus(self) -> None:
        from app import menus

        menus.build(self)

    def _warm_up_models(self) -> None:
        """Load the face models in the background once the window is up, so the first
        Make avatar takes as long as later ones (engines.avatar.engine.warm_up)."""
        try:
            from engines.avatar.engine import warm_up
        except ImportError:
            return
        self.runner.warm_up(warm_up, "Preparing face models")  # where the engines run

    def _after_show(self) -> None:
        self.refresh_engines()
        try:
            import resources

            self.inputs_panel.set_samples(resources.samples())
        except ImportError:
            self.inputs_panel.set_samples([])
        recovered = self._want["recovery"] and self.offer_recovery()
        self.settings.mark_running()
        if self._want["views"]:
            QTimer.singleShot(0, self.ensure_views)
        if self._want["warm_up"]:
            QTimer.singleShot(1500, self._warm_up_models)
        if self._want["samples"] and not recovered and not self.settings.get("samples_shown"):
            self.settings.set("samples_shown", True)
            # Quiet: the Jobs list starts empty instead of with a row per sample.
            self._sample_jobs = {self.import_paths([p], quiet=True).id for p in self.inputs_panel.sample_paths()}

    def _sample_job_ended(self, jid: int, *_) -> None:
        """Once the first-start samples are in, select the portrait (whichever import
        ended last was selected): Run then makes an avatar in a second or two, where a
        video would start a long multi-view reconstruction. A file of the user's own
        (e.g. given on the command line) is selected instead."""
        if jid not in self._sample_jobs:
            return
        self._sample_jobs.discard(jid)
        samples = set(self.inputs_panel.sample_paths())
        own = [i for i, e in enumerate(self.project.inputs) if any(p not in samples for p in e.paths)]
        portrait = [
            i
            for i, e in enumerate(self.project.inputs)
            if e.kind == "Image" and "portrait" in Path(e.paths[0]).stem.lower()
        ]
        rows = own[-1:] or portrait
        if not self._sample_jobs and rows:
            self.inputs_panel.inputs.setCurrentRow(rows[0], QItemSelectionModel.ClearAndSelect)

    def refresh_engines(self) -> None:
        from engines import registry

        self.engine_panel.set_onnx_default(self.settings.onnx_model_path)
        self.engine_panel.set_engines(registry.engines(), None)
        for p in registry.problems:
            self.statusBar().showMessage(f"Skipped plug-in: {p}", 8000)

    def ensure_views(self) -> None:
        """Create the 2D, video and 3D views (imports pyvista); idempotent."""
        if self._views_loaded or not self._want["views"]:
            return
        self._views_loaded = True
        display.create_views(self)
        self.views_ready.emit()
        # the GUI modules engines declare (renderers, result panels) imported while idle, not
        # in the middle of showing the first result that needs them
        from app import contributions

        QTimer.singleShot(200, contributions.preload)

    # -- messages ----------------------------------------------------------------------
    def error(self, title: str, message: str, details: str = "") -> None:
        if details:
            message += f"\n\nDetails were written to the log: {settings_mod.log_file()}"
            QMessageBox.critical(self, title, message)
        else:
            QMessageBox.warning(self, title, message)

    def status(self, text: str, ms: int = 6000) -> None:
        self.statusBar().showMessage(text, ms)

    def _update_jobs_label(self, *_):
        n = len(self.runner.active())
        self.jobs_label.setText(f"{n} job(s) running" if n else "")

    def _update_title(self) -> None:
        name = self.project.path.name if self.project.path else "Untitled"
        self.setWindowTitle(f"Capture Studio - {name}{' *' if self.project.dirty else ''}")

    # -- import --------------------------------------------------------------------------
    def import_paths(self, paths, kind: str | None = None, distances: list[float] | None = None, quiet: bool = False):
        """Load files/folders as one input in the background; returns the Job.

        ``kind`` "FocalStack"/"ImageSet" says how to read several images; ``distances``
        gives focus distances (metres) for a focal stack that has none on file; ``quiet``
        leaves the job out of the Jobs panel (the bundled samples on first start)."""
        paths = [str(p) for p in paths]
        label = Path(paths[0]).name + (f" (+{len(paths) - 1})" if len(paths) > 1 else "")
        entry = InputEntry(kind or "", paths, label, distances)

        def work(progress, cancel):
            progress(0.05, f"Reading {label}")
            obj = load_entry(entry)
            cancel.raise_if_set()
            progress(0.8, "Making a thumbnail")
            return obj, thumbnail_of(obj)

        return self.runner.submit(
            work,
            f"Import {label}",
            "import",
            on_done=lambda v: self._imported(entry, *v),
            on_error=lambda m, d: self._import_error(entry, m, d),
            meta={"quiet": True} if quiet else None,
        )

    def _imported(self, entry: InputEntry, obj, thumb) -> None:
        entry.kind, entry.obj, entry.thumbnail = type(obj).__name__, obj, thumb
        if entry.kind == "FocalStack":
            entry.focus_distances = [float(d) for d in obj.focus_distances]
        index = self.project.add_input(entry)
        notes = list(getattr(obj, "notes", []) or [])
        row = self.inputs_panel.add_input(entry.label, describe(obj), thumb, notes)
        self.inputs_panel.inputs.setCurrentRow(row, QItemSelectionModel.ClearAndSelect)
        for p in entry.paths:
            self.settings.add_recent(p)
        for n in notes:  # e.g. "downscaled to stay under 50 MP": kept in the log too
            log.info("%s: %s", entry.label, n)
        self._status_notes(notes, f"Imported {entry.label}: {describe(obj)}", 15000)
        self._update_title()
        self.input_added.emit(index)

    def _import_error(self, entry: InputEntry, message: str, details: str) -> None:
        if entry.kind == "FocalStack" and not entry.focus_distances and MISSING_FOCUS in message:
            from app.inputs_panel import FocusDistanceDialog
            from engines.io.focalstack import find_images

            distances = FocusDistanceDialog.ask(find_images(entry.paths), self)
            if distances:
                self.import_paths(entry.paths, "FocalStack", distances)
                return
        self.import_failed.emit(message)
        self.error("Import failed", f"Could not import {entry.label}.\n\n{message}", details)

    def remove_input(self, row: int) -> None:
        if 0 <= row < len(self.project.inputs):
            self.project.remove_input(row)
            self.inputs_panel.remove_row("inputs", row)
            self._update_title()

    def remove_result(self, row: int) -> None:
        if 0 <= row < len(self.project.results):
            del self.project.results[row]
            self.inputs_panel.remove_row("results", row)
            if self.viewport is not None:
                self.viewport.clear()
            display.hide_avatar_controls(self)  # its avatar is no longer drawn
            self.show_notes(None)
            self.project.touch()
            self._update_title()

    # -- engines -------------------------------------------------------------------------
    def selected_inputs(self) -> list[int]:
        rows = sorted(i.row() for i in self.inputs_panel.inputs.selectedIndexes())
        return [r for r in rows if 0 <= r < len(self.project.inputs)]

    def _update_engines(self) -> None:
        from engines import registry

        objs = [self.project.inputs[r].obj for r in self.selected_inputs()]
        self.engine_panel.set_engines(registry.engines(), objs or None)

    def run_engine(self, name: str | None = None):
        """Run the chosen engine on the selected inputs; returns the Job (None if refused)."""
        from engines import registry

        try:
            name = name or self.engine_panel.current
            if not name:
                raise EngineError("Choose an engine first (Engine panel).")
            cls = registry.get(name)
            rows = self.selected_inputs()
            if not rows:
                raise EngineError("Select an input in the Inputs panel first (import one with File > Import).")
            if len(rows) < cls.min_inputs and not getattr(cls, "slots", ()):
                raise EngineError(
                    f"{cls.title} needs {cls.min_inputs} inputs "
                    f"({', '.join(t.__name__ for t in cls.accepts)}): select them "
                    f"together with Ctrl+click in the Inputs panel."
                )
            params = self.engine_panel.params()
            try:  # each input in its slot (person_video, garment_image), by type
                inputs = bind_inputs(cls, [self.project.inputs[r].obj for r in rows])
            except EngineError as e:
                if len(rows) < cls.min_inputs:
                    raise EngineError(f"{e} Select the inputs together with Ctrl+click in the Inputs panel.") from None
                raise
        except EngineError as e:
            self.error("Cannot run", str(e))
            return None
        values = params.model_dump(mode="json")
        return self.runner.run_engine(
            cls,
            inputs,
            params,
            on_done=lambda result: self._add_result(result, cls, values, rows[0]),
            on_error=lambda m, d: self.error(f"{cls.title} failed", m, d),
        )

    def remake_result(self, main_item, **changes):
        """Run the engine of the result whose main item is ``main_item`` again, on the same
        input, with some parameters changed (e.g. another face of a group photo): a new
        result, the old one kept. Returns the Job (None if refused, with a message)."""
        from engines import registry
        from engines.api import make_params

        entry = next((e for e in self.project.results if e.result.main is main_item), None)
        try:
            if entry is None or entry.input is None or not (0 <= entry.input < len(self.project.inputs)):
                raise EngineError(
                    "The input this result was made from is no longer in the Inputs panel; "
                    "import it again and run the engine from the Engine panel."
                )
            cls = registry.get(entry.engine)
            params = make_params(cls, {**entry.params, **changes})
            inputs = [self.project.inputs[entry.input].obj]
        except EngineError as e:
            self.error("Cannot run again", str(e))
            return None
        values = params.model_dump(mode="json")
        row = entry.input
        return self.runner.run_engine(
            cls,
            inputs,
            params,
            on_done=lambda result: self._add_result(result, cls, values, row),
            on_error=lambda m, d: self.error(f"{cls.title} failed", m, d),
        )

    def _add_result(self, result, cls, values: dict, input_row: int | None) -> None:
        n = sum(1 for r in self.project.results if r.engine == cls.name) + 1
        entry = ResultEntry(result, cls.name, values, f"{cls.title} #{n}", input_row)
        entry.thumbnail = thumbnail_of(result.main)
        index = self.project.add_result(entry)
        kinds = ", ".join(type(i).__name__ for i in result.items) or "nothing"
        row = self.inputs_panel.add_result(entry.label, kinds, entry.thumbnail, list(result.notes))
        self.inputs_panel.results.setCurrentRow(row)
        # Not "Imported ..." left over from before: say what the run made.
        self._status_notes(list(result.notes), f"{entry.label}: {kinds}", 10000)
        self._update_title()
        self.result_added.emit(index)

    # -- showing -------------------------------------------------------------------------
    def show_input(self, row: int) -> None:
        if not (0 <= row < len(self.project.inputs)):
            return
        # An input was chosen to run an engine on: Run must not stay behind the Avatar tab.
        self._bring_engine_forward()
        entry = self.project.inputs[row]
        self.show_notes(list(getattr(entry.obj, "notes", []) or []), entry.label)
        self.ensure_views()
        try:
            tab = display.show_input(self, self.project.inputs[row].obj)
        except Exception as e:  # a view failing must not cost the session
            log.exception("showing input %s", row)
            self.status(f"Could not show this input: {e}")
            return
        if tab is not None:
            self.tabs.setCurrentIndex(tab)

    def show_result(self, row: int) -> None:
        if not (0 <= row < len(self.project.results)):
            return
        self.ensure_views()
        entry = self.project.results[row]
        # the notes line's layout change resizes the 3D view, which repaints there and then:
        # made while the view is empty, that paint is a blank frame, not a render of the old
        # scene or (in this event) of the new one (display.show_result)
        if self.viewport is not None:
            self.viewport.clear(render=False)
        self.show_notes(list(entry.result.notes or []), entry.label)
        try:
            tab = display.show_result(self, entry.result, f"result{row}")
        except Exception as e:
            log.exception("showing result %s", row)
            self.status(f"Could not show this result: {e}")
            return
        if tab is not None:
            self.tabs.setCurrentIndex(tab)
        QTimer.singleShot(0, self._fit_avatar_dock)  # once the panel's new layout is in place
        if entry.thumbnail is None and tab == display.TAB_3D:  # a mesh, points: the view
            # from the frame the view paints for it, read back once that paint is done (an
            # event of its own, after the render's)
            QTimer.singleShot(THUMBNAIL_DELAY_MS, self, lambda: self._thumbnail_from_view(row, entry))

    def _thumbnail_from_view(self, row: int, entry) -> None:
        if entry.thumbnail is not None or row >= len(self.project.results) or self.project.results[row] is not entry:
            return
        keys = self.viewport.keys() if self.viewport is not None else []
        if not any(k.startswith(f"result{row}/") for k in keys):
            return  # another result is shown by now
        entry.thumbnail = display.view_thumbnail(self)
        self.inputs_panel.set_result_thumbnail(row, entry.thumbnail)

    def selected_result(self) -> ResultEntry | None:
        row = self.inputs_panel.results.currentRow()
        return self.project.results[row] if 0 <= row < len(self.project.results) else None

    # -- drag and drop ---------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.import_dropped(paths)

    def import_dropped(self, paths: list[str]) -> None:
        """Several images dropped together are one focal stack or image set; anything
        else (a folder, a video, a project) is imported on its own."""
        from engines.io import classify

        images = [p for p in paths if classify(Path(p)) == "image"]
        for p in paths:
            if p.endswith(SUFFIX):
                self.open_project(p)
            elif p not in images or len(images) == 1:
                self.import_paths([p])
        if len(images) > 1:
            self.import_paths(images)

    def closeEvent(self, event) -> None:
        if self.confirm_close and self.project.dirty and not self.project.empty:
            answer = QMessageBox.question(
                self,
                "Save changes?",
                "Save the project before closing?",
                QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel,
                QMessageBox.Save,
            )
            if answer == QMessageBox.Cancel or (answer == QMessageBox.Save and not self.save_project()):
                event.ignore()
                return
        self.autosave_timer.stop()
        self.runner.shutdown()
        from app.project import remove_project_files

        remove_project_files(settings_mod.autosave_path())  # and its results folder
        self.settings.mark_clean_exit()
        event.accept()
