"""The Inputs dock: loaded inputs with thumbnails, the results made from them, and the
bundled samples (double-click one to import it).

:func:`thumbnail_of` is plain numpy and runs in the import job's worker thread; only the
conversion to a QPixmap happens on the UI thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

THUMB = 96


def _shrink(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    step = max(1, int(max(h, w) // (size * 2)))
    a = rgb[::step, ::step]
    h, w = a.shape[:2]
    if max(h, w) > size:
        from PIL import Image as PILImage

        k = size / max(h, w)
        a = np.asarray(
            PILImage.fromarray(np.ascontiguousarray(a)).resize(
                (max(1, round(w * k)), max(1, round(h * k))), PILImage.BILINEAR
            )
        )
    return np.ascontiguousarray(a[:, :, :3])


def _subsampled(pixels: np.ndarray, size: int):
    """Every n-th pixel, still at least 2 x ``size`` on the long side, as an Image: the
    picture is already decoded, so a thumbnail costs a stride, not a second decode."""
    from engines.types import Image

    step = max(1, int(max(pixels.shape[:2]) // (size * 2)))
    return Image(pixels[::step, ::step])


_thumbs: dict[tuple[int, int], tuple[object, np.ndarray | None]] = {}


def thumbnail_of(obj, size: int = THUMB * 2) -> np.ndarray | None:
    """An RGB uint8 thumbnail for an input or result object (None if it has no picture).

    Remembered per object (while it lives): the worker thread that made a result makes
    its thumbnail (:func:`app.display.prepare_result`), and the UI thread that lists the
    result gets that one instead of making it again."""
    import weakref

    k = (id(obj), size)
    hit = _thumbs.get(k)
    if hit is not None and hit[0]() is obj:
        return hit[1]
    thumb = _thumbnail_of(obj, size)
    try:
        _thumbs[k] = (weakref.ref(obj, lambda _r, k=k, d=_thumbs: d.pop(k, None)), thumb)
    except TypeError:  # not weak-referenceable: not remembered
        pass
    return thumb


def _thumbnail_of(obj, size: int) -> np.ndarray | None:
    from engines.types import Avatar, DepthMap, FocalStack, Image, ImageSet, VideoClip, VideoResult

    if obj is None:
        return None
    try:
        if isinstance(obj, Image):
            return _shrink(_subsampled(obj.pixels, size).rgb8(), size)
        if isinstance(obj, FocalStack):
            return _shrink(_subsampled(obj.frames[len(obj.frames) // 2], size).rgb8(), size)
        if isinstance(obj, VideoClip):
            return _shrink(obj.frame(0), size)
        if isinstance(obj, ImageSet):
            return image_set_mosaic(obj.paths, size)
        if isinstance(obj, DepthMap):
            return _shrink(depth_colours(obj.depth), size)
        if isinstance(obj, Avatar) and obj.photo is not None:
            return _shrink(Image(obj.photo).rgb8(), size)
        if isinstance(obj, VideoResult):
            return _shrink(_video_result_frame(obj), size)
    except Exception:  # a thumbnail is a nicety; the input itself loaded fine
        return None
    return None


def image_set_mosaic(paths, size: int, most: int = 4) -> np.ndarray:
    """A thumbnail showing a set's photos together: up to ``most`` of them, spread over the
    set (first, last and between), in a 2 x 2 grid (one photo alone fills the square)."""
    from engines.io.images import make_thumbnail

    paths = list(paths)
    if len(paths) <= 1:
        return make_thumbnail(paths[0], size)
    k = min(most, len(paths))
    picks = [paths[i] for i in np.unique(np.linspace(0, len(paths) - 1, k).round().astype(int))]
    cols = 2
    rows = int(np.ceil(len(picks) / cols))
    gap = 2
    cell = (size - gap * (cols - 1)) // cols
    out = np.full((rows * cell + gap * (rows - 1), size, 3), 40, np.uint8)
    for i, p in enumerate(picks):
        try:
            t = make_thumbnail(p, cell * 2)
        except Exception:  # one unreadable photo leaves its cell empty
            continue
        # cover the square cell: crop the centre of the photo
        h, w = t.shape[:2]
        side = min(h, w)
        t = t[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
        t = _shrink(t, cell) if side > cell else t
        t = _fit(t, cell)
        r, c = divmod(i, cols)
        y, x = r * (cell + gap), c * (cell + gap)
        out[y : y + cell, x : x + cell] = t
    return out


def _fit(rgb: np.ndarray, side: int) -> np.ndarray:
    """Resize a square RGB picture to exactly ``side`` x ``side``."""
    if rgb.shape[0] == side and rgb.shape[1] == side:
        return rgb
    from PIL import Image as PILImage

    return np.asarray(PILImage.fromarray(np.ascontiguousarray(rgb)).resize((side, side), PILImage.BILINEAR))


def _video_result_frame(video) -> np.ndarray:
    """The middle frame of a VideoResult (in memory or its MP4): the first frames of
    a try-on often show little of the garment."""
    from engines.types import Image

    if video.frames:
        return Image(video.frames[len(video.frames) // 2]).rgb8()
    from engines.io.video import probe, read_frame

    return read_frame(video.path, probe(video.path)["frame_count"] // 2)


def depth_colours(depth: np.ndarray) -> np.ndarray:
    """Depth as an RGB picture (near = warm), NaN as black, for thumbnails."""
    d = np.asarray(depth, np.float32)
    ok = np.isfinite(d)
    out = np.zeros(d.shape + (3,), np.uint8)
    if ok.any():
        lo, hi = np.percentile(d[ok], [2, 98])
        t = np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1)
        out[..., 0] = (255 * (1 - t)).astype(np.uint8)
        out[..., 1] = (255 * (1 - np.abs(2 * t - 1))).astype(np.uint8)
        out[..., 2] = (255 * t).astype(np.uint8)
        out[~ok] = 0
    return out


def to_pixmap(rgb: np.ndarray | None, size: int = THUMB) -> QPixmap:
    if rgb is None:
        pm = QPixmap(size, size)
        pm.fill(Qt.lightGray)
        return pm
    a = np.ascontiguousarray(rgb[:, :, :3], dtype=np.uint8)
    h, w = a.shape[:2]
    img = QImage(a.data, w, h, 3 * w, QImage.Format_RGB888).copy()
    return QPixmap.fromImage(img).scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation)


def describe(obj) -> str:
    """One line about an input: what it is and its size."""
    from engines.types import FocalStack, Image, ImageSet, VideoClip

    if isinstance(obj, Image):
        w, h = obj.size
        return f"Image {w}x{h}"
    if isinstance(obj, FocalStack):
        w, h = obj.size
        d = obj.focus_distances
        return f"Focal stack, {len(obj)} frames {w}x{h}, {d.min():.2f}-{d.max():.2f} m"
    if isinstance(obj, VideoClip):
        return f"Video {obj.width}x{obj.height}, {obj.frame_count} frames at {obj.fps:.3g} fps"
    if isinstance(obj, ImageSet):
        return f"Image set, {len(obj)} photos"
    return type(obj).__name__


class _List(QListWidget):
    def __init__(self, icons: bool, multi: bool = False) -> None:
        super().__init__()
        self.setSelectionMode(QAbstractItemView.ExtendedSelection if multi else QAbstractItemView.SingleSelection)
        self.setWordWrap(True)
        self.setTextElideMode(Qt.ElideRight)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        if icons:
            self.setIconSize(QSize(THUMB, THUMB))
            self.setUniformItemSizes(False)
        self.setContextMenuPolicy(Qt.CustomContextMenu)


class InputsPanel(QWidget):
    input_selected = Signal(int)
    result_selected = Signal(int)
    sample_activated = Signal(str)
    remove_input = Signal(int)
    remove_result = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.inputs = _List(icons=True, multi=True)
        self.inputs.setToolTip(
            "Imported inputs. Drop files or folders on the window to add more; "
            "Ctrl+click to select several for engines that take more than one."
        )
        self.results = _List(icons=True)
        self.results.setToolTip("Results of engine runs; select one to show it, File > Export to save it.")
        self.samples = _List(icons=False)
        self.samples.setToolTip("Bundled samples: double-click to import one")
        self.inputs.currentRowChanged.connect(lambda r: r >= 0 and self.input_selected.emit(r))
        self.results.currentRowChanged.connect(lambda r: r >= 0 and self.result_selected.emit(r))
        self.samples.itemActivated.connect(lambda it: self.sample_activated.emit(it.data(Qt.UserRole)))
        self.inputs.customContextMenuRequested.connect(lambda pos: self._menu(self.inputs, pos, self.remove_input))
        self.results.customContextMenuRequested.connect(lambda pos: self._menu(self.results, pos, self.remove_result))
        for lst, sig in ((self.inputs, self.remove_input), (self.results, self.remove_result)):
            sc = QShortcut(QKeySequence.Delete, lst, context=Qt.WidgetShortcut)
            sc.activated.connect(lambda lst=lst, sig=sig: lst.currentRow() >= 0 and sig.emit(lst.currentRow()))
        split = QSplitter(Qt.Vertical)
        for title, w in (("Inputs", self.inputs), ("Results", self.results), ("Samples", self.samples)):
            box = QWidget()
            lay = QVBoxLayout(box)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.addWidget(QLabel(f"<b>{title}</b>"))
            lay.addWidget(w)
            split.addWidget(box)
        split.setSizes([300, 200, 90])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(split)

    def _menu(self, lst: QListWidget, pos, signal) -> None:
        row = lst.row(lst.itemAt(pos)) if lst.itemAt(pos) else -1
        if row < 0:
            return
        menu = QMenu(self)
        menu.addAction("Remove", lambda: signal.emit(row))
        menu.exec(lst.mapToGlobal(pos))

    # -- filling -----------------------------------------------------------------------
    def add_input(self, label: str, detail: str, thumb: np.ndarray | None, notes: list[str] | None = None) -> int:
        item = QListWidgetItem(QIcon(to_pixmap(thumb)), f"{label}\n{detail}" + ("\n(see notes)" if notes else ""))
        item.setToolTip("\n".join([detail, *(notes or [])]))
        self.inputs.addItem(item)
        return self.inputs.count() - 1

    def add_result(self, label: str, detail: str, thumb: np.ndarray | None, notes: list[str] | None = None) -> int:
        item = QListWidgetItem(QIcon(to_pixmap(thumb, 48)), f"{label}\n{detail}")
        item.setToolTip("\n".join([detail, *(notes or [])]))  # notes outlast the status bar
        self.results.addItem(item)
        return self.results.count() - 1

    def set_result_thumbnail(self, row: int, thumb: np.ndarray | None) -> None:
        item = self.results.item(row)
        if item is not None and thumb is not None:
            item.setIcon(QIcon(to_pixmap(thumb, 48)))

    def remove_row(self, which: str, row: int) -> None:
        lst = self.inputs if which == "inputs" else self.results
        lst.takeItem(row)

    def clear(self) -> None:
        self.inputs.clear()
        self.results.clear()

    def input_labels(self) -> list[str]:
        return [self.inputs.item(i).text().split("\n")[0] for i in range(self.inputs.count())]

    def sample_paths(self) -> list[str]:
        return [self.samples.item(i).data(Qt.UserRole) for i in range(self.samples.count())]

    def set_samples(self, paths: list[Path]) -> None:
        self.samples.clear()
        for p in paths:
            kind = "folder" if p.is_dir() else p.suffix.lower().lstrip(".")
            item = QListWidgetItem(f"{p.stem}  ({kind})")
            item.setData(Qt.UserRole, str(p))
            item.setToolTip(f"{p}\nDouble-click to import")
            self.samples.addItem(item)
        self.samples.setVisible(bool(paths))


class FocusDistanceDialog(QDialog):
    """Asks for the focus distance of each frame of a focal stack that has none on file
    (no focus.json, no ``*_<metres>`` names, no EXIF SubjectDistance)."""

    def __init__(self, files: list[Path], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Focus distances")
        self.files = [Path(f) for f in files]
        self.table = QTableWidget(len(self.files), 2)
        self.table.setHorizontalHeaderLabels(["Photo", "Focused at (m)"])
        self.table.setIconSize(QSize(64, 64))
        self.spins: list[QDoubleSpinBox] = []
        n = len(self.files)
        for i, f in enumerate(self.files):
            try:
                from engines.io.images import make_thumbnail

                icon = QIcon(to_pixmap(make_thumbnail(f, 64), 64))
            except Exception:  # the reader will report a broken file by name later
                icon = QIcon(to_pixmap(None, 64))
            item = QTableWidgetItem(icon, f.name)
            item.setFlags(item.flags() & ~Qt.ItemIsEditable)
            self.table.setItem(i, 0, item)
            spin = QDoubleSpinBox()
            spin.setRange(0.01, 10000.0)
            spin.setDecimals(3)
            spin.setSuffix(" m")
            # A first guess, evenly spaced in dioptres from 0.3 m to 3 m: edit it.
            spin.setValue(round(1.0 / np.linspace(1 / 0.3, 1 / 3.0, max(n, 2))[i], 3))
            spin.setToolTip("The distance this photo was focused at, in metres")
            self.table.setCellWidget(i, 1, spin)
            self.table.setRowHeight(i, 68)
            self.spins.append(spin)
        self.table.resizeColumnsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(
            QLabel(
                "These photos carry no focus distances (no focus.json, no "
                "<i>name_&lt;metres&gt;.jpg</i> names, no EXIF). Enter the distance "
                "each one was focused at:"
            )
        )
        lay.addWidget(self.table)
        lay.addWidget(buttons)
        self.resize(420, min(600, 140 + 70 * n))

    def distances(self) -> list[float]:
        return [s.value() for s in self.spins]

    @staticmethod
    def ask(files: list[Path], parent=None) -> list[float] | None:
        dlg = FocusDistanceDialog(files, parent)
        return dlg.distances() if dlg.exec() == QDialog.Accepted else None
