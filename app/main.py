"""Start the desktop app: ``run_app(files)`` (called by ``python main.py``).

Start-up is kept short (target: window on screen in under 2.5 s) by importing only
PySide6, numpy and pydantic before the window shows; engines, pyvista/VTK, torch,
open3d and mediapipe load afterwards or when first used. Set
``CAPTURE_STUDIO_STARTUP_PROBE=1`` to print the time the window was shown and the
heavy modules loaded by then, and quit (``=views`` also times loading the 2D, video
and 3D views); ``benchmarks/startup.py`` uses it.
"""

from __future__ import annotations

import os
import sys
import time

HEAVY_MODULES = ("torch", "open3d", "mediapipe", "pyvista", "vtk", "cv2", "pyvistaqt")


def run_app(files: list[str]) -> int:
    os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)  # cv2 may have pointed it at its Qt5
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app import settings

    settings.setup_logging()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Capture Studio")
    app.setOrganizationName("capture-studio")
    _apply_style(app)

    from app.main_window import MainWindow

    probe_mode = os.environ.get("CAPTURE_STUDIO_STARTUP_PROBE", "")
    probe = probe_mode in ("1", "views")
    window = MainWindow(
        samples=not probe, recovery=not probe, views=not probe or probe_mode == "views", warm_up=not probe
    )
    window.show()
    if probe:
        app.processEvents()  # the first paint
        shown = time.time()
        loaded = [m for m in HEAVY_MODULES if m in sys.modules]
        print(f"shown {shown:.6f} heavy={','.join(loaded) or 'none'}", flush=True)

        def report():  # after the deferred start-up work (engine discovery)
            print(f"ready {time.time():.6f}", flush=True)
            if probe_mode == "views":
                window.ensure_views()
                app.processEvents()
                print(f"views {time.time():.6f} 3d={'yes' if window.viewport is not None else 'no'}", flush=True)
            window.confirm_close = False
            window.close()
            app.quit()

        QTimer.singleShot(0, report)
    elif files:
        QTimer.singleShot(0, lambda: window.import_dropped([str(f) for f in files]))
    return app.exec()


def _apply_style(app) -> None:
    from pathlib import Path

    qss = Path(__file__).with_name("style.qss")
    if qss.exists():
        app.setStyleSheet(qss.read_text(encoding="utf-8"))
