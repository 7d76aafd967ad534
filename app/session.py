"""Project actions of the main window: save, open (inputs re-read in the background),
autosave every few minutes to the user's data folder, and recovery after a crash.

Opening never fails silently and never takes the window down: a project that cannot be
read is a dialog with the reason; results or inputs that cannot be read are listed while
the rest opens; a damaged autosave is set aside (renamed, kept for inspection) and
reported at start-up, and start-up goes on.

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
from app.project import SUFFIX, Project, load_entry, remove_project_files, set_aside
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
            path, _ = QFileDialog.getSaveFileName(
                self, "Save project", self.settings.last_dir, f"Capture Studio project (*{SUFFIX})"
            )
            if not path:
                return None
        project = self.project
        try:
            # Written by a pool thread while the window keeps repainting (issue 15: a 72 MB
            # save froze it for 5.8 s); the call returns once the file is complete.
            saved = self.runner.call(lambda progress, cancel: project.save(path), f"Save {Path(path).name}", "save")
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
        project = self._read_project(path)
        if project is None:
            return False
        return self._adopt_project(project, path, recovered)

    def _read_project(self, path: str | Path) -> Project | None:
        """The project at ``path``, or None after telling the user why it cannot be opened."""
        try:
            return Project.load(path)
        except EngineError as e:
            self.error("Open failed", str(e))
        except Exception as e:  # a bug: the user gets a sentence, the log the traceback
            log.exception("opening %s", path)
            self.error("Open failed", f"{Path(path).name} could not be opened ({type(e).__name__}: {e}).", "traceback")
        return None

    def _adopt_project(self, project: Project, path: str | Path, recovered: bool = False) -> bool:
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
        self.show_notes(None)
        if project.results:
            # Where the session left off: its last result on screen, not an empty view until
            # one is clicked (issue 15), for an opened project as for a recovered one.
            # Results need no inputs to be drawn.
            self.inputs_panel.results.setCurrentRow(len(project.results) - 1)

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

        problems = list(project.problems)

        def done(loaded):
            missing = [f"{e.label}: {err}" for e, _o, _t, err in loaded if err]
            for e, obj, thumb, err in loaded:
                if err is None:
                    e.obj, e.thumbnail = obj, thumb
                    self.project.inputs.append(e)
                    self.inputs_panel.add_input(e.label, describe(obj), thumb, list(getattr(obj, "notes", []) or []))
            if missing:
                self.error(
                    "Some inputs could not be re-read",
                    "The results are kept; these inputs are missing:\n" + "\n".join(missing),
                )
            if problems:
                self.error(
                    "Some results could not be opened",
                    "The rest of the project is open; these results are left out:\n" + "\n".join(problems),
                )
            if not self.project.results and self.project.inputs and self.inputs_panel.inputs.currentRow() < 0:
                self.inputs_panel.inputs.setCurrentRow(0)  # nothing to show otherwise
            self.project.dirty = recovered
            self._update_title()
            self.project_loaded.emit()

        self.runner.submit(
            work,
            f"Open {Path(path).name}",
            "project",
            on_done=done,
            on_error=lambda m, d: self.error("Open failed", m, d),
        )
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

        job = self.runner.submit(
            lambda progress, cancel: project.save(target, remember=False),
            "Autosave",
            "autosave",
            on_done=done,
            on_error=lambda m, d: log.warning("autosave failed: %s\n%s", m, d),
            meta={"quiet": True},
        )
        return job

    def offer_recovery(self) -> bool:
        """Offer the autosave left by a session that did not exit cleanly.

        Never raises: an autosave that cannot be read is set aside (renamed with
        ``.damaged-<time>``, with its results folder) and reported, and start-up goes on.
        """
        path = settings_mod.autosave_path()
        try:
            if not path.exists() or path.stat().st_mtime <= self.settings.clean_exit_time:
                return False
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
            try:
                project = Project.load(path)
            except Exception as e:  # EngineError for damage; anything else is logged too
                if not isinstance(e, EngineError):
                    log.exception("reading the autosave %s", path)
                self._set_aside_autosave(path, str(e))
                return False
            answer = QMessageBox.question(
                self,
                "Recover session?",
                f"Capture Studio did not close cleanly. Recover the session autosaved at {when}?",
                QMessageBox.Yes | QMessageBox.No,
                QMessageBox.Yes,
            )
            if answer == QMessageBox.Yes:
                return self._adopt_project(project, path, recovered=True)
            remove_project_files(path)
        except Exception:  # recovery is a courtesy: it must never stop start-up
            log.exception("crash recovery failed")
        return False

    def _set_aside_autosave(self, path: Path, reason: str) -> None:
        try:
            kept = set_aside(path)
            where = f"It was kept as {kept}."
        except OSError as e:
            log.warning("could not set the autosave aside: %s", e)
            remove_project_files(path)
            where = "It could not be kept, so it was removed."
        log.warning("damaged autosave %s: %s", path, reason)
        self.error(
            "Autosave could not be recovered",
            f"The session autosaved before Capture Studio last closed cannot be recovered: {reason} {where}",
        )
