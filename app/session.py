"""Project actions of the main window: save, open (inputs re-read in the background),
autosave every few minutes to the user's data folder, and recovery after a crash.

A mix-in for :class:`app.main_window.MainWindow` (it uses the window's project, runner,
panels, settings and message helpers); the file format itself is in :mod:`app.project`.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox

from app import settings as settings_mod
from app.inputs_panel import describe, thumbnail_of
from app.project import SUFFIX, Project, load_entry
from engines.api import EngineError

log = logging.getLogger("app.session")


class ProjectActions:
    def _sync_project(self) -> None:
        self.project.engine = self.engine_panel.current
        self.project.params = self.engine_panel.all_values()

    def save_project(self, path: str | Path | None = None) -> Path | None:
        self._sync_project()
        if path is None:
            path = self.project.path
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save project", self.settings.last_dir,
                                                  f"Capture Studio project (*{SUFFIX})")
            if not path:
                return None
        try:
            saved = self.project.save(path)
        except (OSError, TypeError, EngineError) as e:
            self.error("Save failed", f"Could not save the project to {path}: {e}")
            return None
        self.settings.add_recent(saved)
        self.status(f"Saved {saved}")
        self._update_title()
        return saved

    def open_project(self, path: str | Path, recovered: bool = False) -> bool:
        """Replace the session with a saved project; inputs re-load in the background
        (``project_loaded`` fires when they are in)."""
        try:
            project = Project.load(path)
        except EngineError as e:
            self.error("Open failed", str(e))
            return False
        self.runner.cancel_all()
        self.project = project
        self._autosaved_revision = -1
        self.inputs_panel.clear()
        if self.viewport is not None:
            self.viewport.clear()
        from app.display import hide_avatar_controls

        hide_avatar_controls(self)  # the old session's avatar is gone with it
        self.engine_panel.set_all_values(project.params)
        if project.engine:
            self.engine_panel.select(project.engine)
        for r in project.results:
            kinds = ", ".join(type(i).__name__ for i in r.result.items)
            r.thumbnail = thumbnail_of(r.result.main)
            self.inputs_panel.add_result(r.label, kinds, r.thumbnail, list(r.result.notes or []))
        entries, project.inputs = list(project.inputs), []
        if recovered:
            project.path, project.dirty = None, True
        else:
            self.settings.add_recent(project.path)

        def work(progress, cancel):
            out = []
            for i, e in enumerate(entries):
                cancel.raise_if_set()
                progress(i / max(len(entries), 1), f"Reading {e.label}")
                try:
                    obj = load_entry(e)
                    out.append((e, obj, thumbnail_of(obj), None))
                except Exception as err:  # reported together below
                    out.append((e, None, None, str(err)))
            return out

        def done(loaded):
            missing = [f"{e.label}: {err}" for e, _o, _t, err in loaded if err]
            for e, obj, thumb, err in loaded:
                if err is None:
                    e.obj, e.thumbnail = obj, thumb
                    self.project.inputs.append(e)
                    self.inputs_panel.add_input(e.label, describe(obj), thumb,
                                                list(getattr(obj, "notes", []) or []))
            if missing:
                self.error("Some inputs could not be re-read",
                           "The results are kept; these inputs are missing:\n" + "\n".join(missing))
            self.project.dirty = recovered
            self._update_title()
            self.project_loaded.emit()

        self.runner.submit(work, f"Open {Path(path).name}", "project", on_done=done,
                           on_error=lambda m, d: self.error("Open failed", m, d))
        self._update_title()
        return True

    def autosave(self):
        """Write the session to the autosave file in the background (a quiet job that
        the Jobs panel does not list); skipped when nothing changed since the last one."""
        if self.project.empty or self.project.revision == self._autosaved_revision:
            return None
        self._sync_project()
        project, revision = self.project, self.project.revision
        target = settings_mod.autosave_path()

        def done(path):
            self._autosaved_revision = revision

        job = self.runner.submit(lambda progress, cancel: project.save(target, remember=False),
                                 "Autosave", "autosave", on_done=done,
                                 on_error=lambda m, d: log.warning("autosave failed: %s\n%s", m, d),
                                 meta={"quiet": True})
        return job

    def offer_recovery(self) -> bool:
        """Offer the autosave left by a session that did not exit cleanly."""
        path = settings_mod.autosave_path()
        if not path.exists() or path.stat().st_mtime <= self.settings.clean_exit_time:
            return False
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
        answer = QMessageBox.question(
            self, "Recover session?",
            f"Capture Studio did not close cleanly. Recover the session autosaved at {when}?",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        if answer == QMessageBox.Yes:
            return self.open_project(path, recovered=True)
        path.unlink(missing_ok=True)
        return False
