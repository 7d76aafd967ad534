"""User settings and the per-user folders (config, data, logs).

Settings are a small JSON file in ``platformdirs.user_config_dir("capture-studio")``
rather than QSettings, so they can be read and tested without a QApplication and
inspected by hand. Setting ``CAPTURE_STUDIO_HOME`` puts every per-user folder under one
directory (tests and portable installs use it).

Stored keys: recent files, the ONNX depth model chosen for the depth engine's ``onnx``
prior, the last folder used in file dialogs, and the time of the last clean exit (used
to decide whether an autosave is a crash leftover worth recovering).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

APP_NAME = "capture-studio"
MAX_RECENT = 10
LOG_NAME = "capture-studio.log"


def _base(kind: str) -> Path:
    home = os.environ.get("CAPTURE_STUDIO_HOME")
    if home:
        return Path(home) / kind
    import platformdirs

    fn = {
        "config": platformdirs.user_config_dir,
        "data": platformdirs.user_data_dir,
        "log": platformdirs.user_log_dir,
    }[kind]
    return Path(fn(APP_NAME))


def config_dir() -> Path:
    return _base("config")


def data_dir() -> Path:
    return _base("data")


def log_dir() -> Path:
    return _base("log")


def log_file() -> Path:
    return log_dir() / LOG_NAME


def autosave_path() -> Path:
    return data_dir() / "autosave" / "autosave.csproj.json"


_handler: logging.Handler | None = None


def setup_logging() -> Path:
    """Send the application's log (tracebacks of failed jobs included) to the log file.

    Idempotent; re-targets the handler when the log folder changed (tests).
    """
    global _handler
    path = log_file()
    root = logging.getLogger()
    if _handler is not None and Path(getattr(_handler, "baseFilename", "")) == path:
        return path
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    _handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    _handler.setLevel(logging.INFO)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(_handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        logging.getLogger("app").setLevel(logging.INFO)
    return path


class Settings:
    """The user's settings, saved to ``settings.json`` on every change."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or (config_dir() / "settings.json")
        self.data: dict = {}
        try:
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(self.data, dict):
                self.data = {}
        except (OSError, ValueError):
            self.data = {}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    def set(self, key: str, value) -> None:
        self.data[key] = value
        self.save()

    # -- recent files ------------------------------------------------------------------
    @property
    def recent_files(self) -> list[str]:
        return [p for p in self.data.get("recent_files", []) if isinstance(p, str)]

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path).resolve())
        items = [x for x in self.recent_files if x != p]
        self.set("recent_files", [p, *items][:MAX_RECENT])

    def clear_recent(self) -> None:
        self.set("recent_files", [])

    # -- the depth engine's ONNX prior -------------------------------------------------
    @property
    def onnx_model_path(self) -> str:
        return str(self.data.get("onnx_model_path", "") or "")

    @onnx_model_path.setter
    def onnx_model_path(self, value: str | Path | None) -> None:
        self.set("onnx_model_path", str(value or ""))

    @property
    def last_dir(self) -> str:
        return str(self.data.get("last_dir", "") or str(Path.home()))

    @last_dir.setter
    def last_dir(self, value: str | Path) -> None:
        self.set("last_dir", str(value))

    # -- crash detection ---------------------------------------------------------------
    def mark_running(self) -> None:
        self.set("running_since", time.time())

    def mark_clean_exit(self) -> None:
        self.data["clean_exit"] = time.time()
        self.data.pop("running_since", None)
        self.save()

    @property
    def clean_exit_time(self) -> float:
        return float(self.data.get("clean_exit", 0.0) or 0.0)
