"""The main window's menus and the dialogs behind them (File, View, Settings, Help).

Kept apart from :mod:`app.main_window` so that the window holds the state and the
actions a test can drive, and this module holds the menu wiring and file dialogs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QColorDialog, QFileDialog, QInputDialog, QMenu, QMessageBox

from engines.api import EngineError

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.tif *.tiff *.webp *.bmp)"
VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.m4v *.webm)"


def build(w) -> None:
    """Create the menu bar of MainWindow ``w``."""
    from app.project import SUFFIX

    bar = w.menuBar()
    f = bar.addMenu("&File")
    w._act(
        f,
        "Import &image...",
        lambda: import_dialog(w, "image"),
        "Ctrl+I",
        "Import a photo (PNG, JPEG, TIFF, WebP, BMP)",
    )
    w._act(
        f,
        "Import &focal stack (files)...",
        lambda: import_dialog(w, "stack_files"),
        tip="Import photos of one scene focused at different distances",
    )
    w._act(
        f,
        "Import focal stack (&folder)...",
        lambda: import_dialog(w, "stack_folder"),
        tip="Import a folder of focus-bracketed photos (focus.json or *_<metres>.jpg names)",
    )
    w._act(f, "Import &video...", lambda: import_dialog(w, "video"), tip="Import a video (MP4, AVI, MOV, MKV)")
    w._act(
        f,
        "Import image &set (folder)...",
        lambda: import_dialog(w, "set"),
        tip="Import a folder of photos of one scene from many viewpoints",
    )
    w.synth_action = w._act(
        f,
        "New focal stack from &RGB-D...",
        lambda: new_focal_stack(w),
        tip="Render a thin-lens focal stack from a photo and its depth map",
    )
    f.addSeparator()
    w._act(f, "&Open project...", lambda: open_dialog(w), "Ctrl+O")
    w._act(f, "&Save project", lambda: w.save_project(), "Ctrl+S")
    w._act(f, "Save project &as...", lambda: save_as_dialog(w, SUFFIX), "Ctrl+Shift+S")
    w._act(
        f,
        "&Export selected result...",
        lambda: export_dialog(w),
        "Ctrl+E",
        "Write the selected result as OBJ, GLB, PLY, PNG, NPY or MP4",
    )
    w.recent_menu = f.addMenu("Recent &files")
    w.recent_menu.aboutToShow.connect(lambda: fill_recent(w))
    f.addSeparator()
    w._act(f, "&Quit", w.close, "Ctrl+Q")

    v = bar.addMenu("&View")
    w._act(v, "&Reset camera", lambda: _viewport(w, "reset_camera"), "R")
    views = v.addMenu("Camera &direction")
    for d in ("front", "back", "left", "right", "top"):
        w._act(views, d.capitalize(), lambda _c=False, d=d: _viewport(w, "set_view", d))
    w._act(v, "&Screenshot...", lambda: screenshot_dialog(w), "Ctrl+P", "Save the 3D view as a PNG")
    w.wire_action = w._act(v, "&Wireframe", lambda on: _viewport(w, "set_wireframe", bool(on)), "W", checkable=True)
    w._act(v, "&Background colour...", lambda: background_dialog(w))
    w._act(v, "&Point size...", lambda: point_size_dialog(w))
    v.addSeparator()
    for dock in w.docks.values():
        v.addAction(dock.toggleViewAction())

    s = bar.addMenu("&Settings")
    w.onnx_action = w._act(
        s,
        "ONNX depth model...",
        lambda: onnx_dialog(w),
        tip="A Depth Anything V2 / MiDaS ONNX file for the depth engine's 'onnx' prior",
    )
    w._act(s, "Clear ONNX depth model", lambda: set_onnx(w, ""))
    h = bar.addMenu("&Help")
    w._act(h, "&About Capture Studio", lambda: about(w))


def _viewport(w, method: str, *args):
    w.ensure_views()
    if w.viewport is None:
        w.status("The 3D view is not available in this session.")
        return None
    return getattr(w.viewport, method)(*args)


# -- import ------------------------------------------------------------------------------
def import_dialog(w, what: str) -> None:
    start = w.settings.last_dir
    if what == "image":
        path, _ = QFileDialog.getOpenFileName(w, "Import image", start, IMAGE_FILTER)
        paths, kind = ([path] if path else []), None
    elif what == "video":
        path, _ = QFileDialog.getOpenFileName(w, "Import video", start, VIDEO_FILTER)
        paths, kind = ([path] if path else []), None
    elif what == "stack_files":
        paths, _ = QFileDialog.getOpenFileNames(w, "Import focal stack (select all frames)", start, IMAGE_FILTER)
        kind = "FocalStack"
    else:
        folder = QFileDialog.getExistingDirectory(w, "Choose the folder", start)
        paths, kind = ([folder] if folder else []), ("FocalStack" if what == "stack_folder" else "ImageSet")
    if paths:
        w.settings.last_dir = str(Path(paths[0]).parent)
        w.import_paths(paths, kind)


def new_focal_stack(w) -> None:
    """RGB + depth (NPY metres or 16-bit PNG millimetres) -> a synthetic focal stack folder."""
    try:
        from engines.depth import synth
    except ImportError as e:
        w.error("Not available", f"The focal stack synthesiser is not installed ({e}).")
        return
    rgb_path, _ = QFileDialog.getOpenFileName(w, "Colour image (RGB)", w.settings.last_dir, IMAGE_FILTER)
    if not rgb_path:
        return
    depth_path, _ = QFileDialog.getOpenFileName(
        w,
        "Depth map for it (NPY in metres or 16-bit PNG in millimetres)",
        str(Path(rgb_path).parent),
        "Depth (*.npy *.png)",
    )
    if not depth_path:
        return
    frames, ok = QInputDialog.getInt(w, "Focal stack", "Number of frames:", 10, 2, 50)
    if not ok:
        return
    out = QFileDialog.getExistingDirectory(w, "Folder to write the stack into", str(Path(rgb_path).parent))
    if not out:
        return

    def work(progress, cancel):
        from engines.io.images import read_image

        progress(0.05, "Reading the colour image and depth")
        rgb = read_image(rgb_path).rgb8()
        depth = _read_depth(Path(depth_path))
        if depth.shape != rgb.shape[:2]:
            raise EngineError(
                f"{Path(depth_path).name} is {depth.shape[1]}x{depth.shape[0]} but "
                f"{Path(rgb_path).name} is {rgb.shape[1]}x{rgb.shape[0]}: use a depth map "
                f"of the same size as the photo."
            )
        ok = np.isfinite(depth) & (depth > 0)
        if ok.sum() < 16:
            raise EngineError(f"{Path(depth_path).name} holds no valid depth (all zero or NaN).")
        near, far = np.percentile(depth[ok], [2, 98])
        near = max(float(near), 0.06)
        # Evenly spaced in dioptres, as lens focus steps are.
        dist = 1.0 / np.linspace(1.0 / near, 1.0 / max(float(far), near * 1.01), frames)
        cancel.raise_if_set()
        progress(0.2, f"Rendering {frames} frames")
        stack = synth.make_focal_stack(rgb, depth, dist)
        cancel.raise_if_set()
        progress(0.9, "Writing the frames")
        synth.write_focal_stack(stack, out)
        return out

    w.runner.submit(
        work,
        "New focal stack",
        "synth",
        on_done=lambda folder: w.import_paths([folder], "FocalStack"),
        on_error=lambda m, d: w.error("Focal stack failed", m, d),
    )


def _read_depth(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        from engines.io.limits import load_npy  # the header is checked before the array is allocated

        return np.asarray(load_npy(path), np.float32).squeeze()
    from engines.io.images import read_image

    px = read_image(path).pixels
    if px.ndim == 3:
        px = px[..., 0]
    if px.dtype != np.uint16:
        raise EngineError(f"{path.name} is not a 16-bit PNG; depth PNGs hold millimetres in 16 bits.")
    return px.astype(np.float32) / 1000.0


# -- project, export ------------------------------------------------------------------------
def open_dialog(w) -> None:
    from app.project import SUFFIX

    path, _ = QFileDialog.getOpenFileName(w, "Open project", w.settings.last_dir, f"Capture Studio project (*{SUFFIX})")
    if path:
        w.open_project(path)


def save_as_dialog(w, suffix: str) -> None:
    path, _ = QFileDialog.getSaveFileName(
        w, "Save project as", w.settings.last_dir, f"Capture Studio project (*{suffix})"
    )
    if path:
        w.save_project(path)


def export_dialog(w, path: str | None = None):
    """Export the selected result; returns the export Job (or None)."""
    from app.main_window import EXT_NAMES
    from engines import io

    entry = w.selected_result()
    if entry is None:
        w.error("Nothing to export", "Select a result in the Inputs panel first (run an engine to make one).")
        return None
    exts = io.writer_extensions(entry.result)
    if not exts:
        w.error("Nothing to export", f"{entry.label} has no exportable result.")
        return None
    if path is None:
        filters = [f"{EXT_NAMES.get(e, e)} (*{e})" for e in exts]
        default = str(Path(w.settings.last_dir) / (entry.label.replace(" ", "_").replace("#", "") + exts[0]))
        path, chosen = QFileDialog.getSaveFileName(w, "Export", default, ";;".join(filters))
        if not path:
            return None
        if Path(path).suffix.lower() not in io.writers():  # none typed, or "take.v2"
            path += exts[filters.index(chosen)] if chosen in filters else exts[0]
        w.settings.last_dir = str(Path(path).parent)
    target = Path(path)
    if target.suffix.lower() not in exts:
        # Appending an extension would write "x.ply.glb" where the user asked for x.ply.
        w.error(
            "Cannot export",
            f"{entry.label} cannot be written as {target.suffix or 'a file with no extension'}"
            f" ({target.name}). Choose one of: {', '.join(exts)}.",
        )
        return None
    return w.runner.submit(
        lambda progress, cancel: io.export(entry.result, target),
        f"Export {target.name}",
        "export",
        on_done=lambda written: w.status("Exported " + ", ".join(p.name for p in written)),
        on_error=lambda m, d: w.error("Export failed", m, d),
    )


def fill_recent(w) -> None:
    from app.project import SUFFIX

    menu: QMenu = w.recent_menu
    menu.clear()
    recent = w.settings.recent_files
    for p in recent:
        act = menu.addAction(p)
        act.triggered.connect(lambda _c=False, p=p: w.open_project(p) if p.endswith(SUFFIX) else w.import_paths([p]))
    if not recent:
        menu.addAction("(none)").setEnabled(False)
    menu.addSeparator()
    menu.addAction("Clear list", w.settings.clear_recent)


# -- view --------------------------------------------------------------------------------------
def screenshot_dialog(w) -> None:
    path, _ = QFileDialog.getSaveFileName(w, "Save screenshot", w.settings.last_dir, "PNG (*.png)")
    if not path:
        return
    if not path.lower().endswith(".png"):
        path += ".png"
    try:
        _viewport(w, "screenshot", path)
        w.status(f"Saved {path}")
    except Exception as e:
        w.error("Screenshot failed", f"Could not save {path}: {e}")


def background_dialog(w) -> None:
    color = QColorDialog.getColor(parent=w, title="Background colour")
    if color.isValid():
        _viewport(w, "set_background", color.name())


def point_size_dialog(w) -> None:
    current = int(getattr(w.viewport, "point_size", 3) or 3)  # start from what is set now
    size, ok = QInputDialog.getInt(w, "Point size", "Point size (pixels):", current, 1, 30)
    if ok:
        _viewport(w, "set_point_size", size)


# -- settings, help ----------------------------------------------------------------------------
def onnx_dialog(w) -> None:
    path, _ = QFileDialog.getOpenFileName(
        w, "ONNX monocular depth model", w.settings.onnx_model_path or w.settings.last_dir, "ONNX model (*.onnx)"
    )
    if path:
        set_onnx(w, path)


def set_onnx(w, path: str) -> None:
    w.settings.onnx_model_path = path
    w.engine_panel.set_onnx_default(path)
    w.onnx_action.setText(f"ONNX depth model: {Path(path).name}..." if path else "ONNX depth model...")
    w.status(f"Depth engine ONNX prior: {path or 'none'}")


def about_text() -> str:
    from engines import registry

    rows = []
    for e in sorted(registry.engines().values(), key=lambda e: e.name):
        rows.append(
            f"<li><b>{e.title or e.name}</b> (<code>{e.name}</code>): accepts "
            f"{', '.join(t.__name__ for t in e.accepts)}; produces "
            f"{', '.join(t.__name__ for t in e.produces)}</li>"
        )
    skipped = "".join(f"<li>{p}</li>" for p in registry.problems)
    from app import settings

    return (
        "<h3>Capture Studio</h3><p>Photos, focal stacks and videos to 3D, offline.</p>"
        f"<p><b>Engines</b></p><ul>{''.join(rows) or '<li>none</li>'}</ul>"
        + (f"<p><b>Skipped plug-ins</b></p><ul>{skipped}</ul>" if skipped else "")
        + f"<p>Log file: {settings.log_file()}</p>"
        + third_party_text()
    )


def third_party_text() -> str:
    """The licences of the models shipped inside the package (read from the files beside them)."""
    import html
    from importlib import resources

    parts = ["<p><b>Models shipped with Capture Studio</b></p>"]
    for title, pkg, rel in (
        (
            "ICT Face Model Light (USC Institute for Creative Technologies), MIT licence",
            "engines.avatar",
            ("data", "ict", "LICENSE"),
        ),
        ("MediaPipe Face Landmarker (Google), Apache License 2.0", "engines.face", ("data", "LICENSE")),
    ):
        try:
            text = resources.files(pkg).joinpath(*rel).read_text()
        except (OSError, ModuleNotFoundError):
            continue
        first = "\n".join(text.strip().splitlines()[: 24 if "MIT" in title else 12])
        parts.append(f"<p><i>{html.escape(title)}</i></p><pre style='font-size:8pt'>{html.escape(first)}</pre>")
    return "".join(parts)


def about(w) -> None:
    QMessageBox.about(w, "About Capture Studio", about_text())
