"""The 2D tab: images and depth maps, with zoom/pan, a colour bar in metres and the
value under the mouse cursor.

Depth is coloured through a 256-entry look-up table (OpenCV's ``applyColorMap`` tables for
turbo and viridis, imported when first needed). The colour range is the 1st to 99th
percentile of the valid depths, so a few outliers do not wash the map out; unknown
depth (NaN or <= 0) is drawn dark grey. Near is drawn with the high end of the map
(turbo: red), far with the low end (turbo: dark blue); the colour bar shows the mapping.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from engines.types import DepthMap, Image

COLORMAPS = ("turbo", "viridis")
NAN_COLOR = (45, 45, 48)


@lru_cache(maxsize=None)
def colormap_lut(name: str) -> np.ndarray:
    """256 x 3 uint8 RGB table for ``turbo`` or ``viridis``."""
    had = "QT_QPA_PLATFORM_PLUGIN_PATH" in os.environ
    import cv2

    if not had:  # cv2 points Qt at its own plugins on import; keep ours
        os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    code = {"turbo": cv2.COLORMAP_TURBO, "viridis": cv2.COLORMAP_VIRIDIS}[name]
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], code)[:, 0, :]
    lut = np.ascontiguousarray(bgr[:, ::-1])
    lut.setflags(write=False)
    return lut


def display_rgb(pixels: np.ndarray) -> np.ndarray:
    """Any supported image array as H x W x 3 (or x 4) uint8 for display.

    16-bit grey is stretched to its own maximum (it usually holds depth or 12-bit sensor
    data, which would look black at full 16-bit scale); 16-bit colour is shifted to 8 bits.
    """
    a = np.asarray(pixels)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        if a.dtype == np.uint16:
            top = max(int(a.max()), 1)
            a = (a.astype(np.float32) * (255.0 / top)).astype(np.uint8)
        elif a.dtype != np.uint8:
            a = _float_to_u8(a)
        return np.ascontiguousarray(np.repeat(a[:, :, None], 3, axis=2))
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"cannot show an array of shape {a.shape} as an image")
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = _float_to_u8(a)
    return np.ascontiguousarray(a)


def _float_to_u8(a: np.ndarray) -> np.ndarray:
    a = np.nan_to_num(a.astype(np.float32))
    scale = 255.0 if a.size and a.max() <= 1.0 else 1.0
    return np.clip(a * scale, 0, 255).astype(np.uint8)


def colorize(values: np.ndarray, lo: float, hi: float, cmap: str, invert: bool = False) -> np.ndarray:
    """Map a float field to RGB through ``cmap``; NaN and non-positive entries get NAN_COLOR."""
    v = np.asarray(values, np.float32)
    ok = np.isfinite(v)
    t = np.zeros(v.shape, np.float32)
    t[ok] = (v[ok] - lo) / max(hi - lo, 1e-12)
    if invert:
        t = 1.0 - t
    idx = np.clip(np.rint(t * 255.0), 0, 255).astype(np.uint8)
    rgb = colormap_lut(cmap)[idx]
    rgb[~ok] = NAN_COLOR
    return rgb


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values inside [lo, hi] (1, 2, 5 x 10^k steps)."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=10 * mag)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _to_qimage(rgb: np.ndarray) -> QtGui.QImage:
    h, w, c = rgb.shape
    fmt = QtGui.QImage.Format_RGBA8888 if c == 4 else QtGui.QImage.Format_RGB888
    return QtGui.QImage(rgb.data, w, h, rgb.strides[0], fmt).copy()


class ColorBar(QtWidgets.QWidget):
    """A vertical colour bar: far at the top, near at the bottom, ticks in the given unit."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.lo, self.hi, self.unit, self.cmap, self.invert = 0.0, 1.0, "m", "turbo", False
        self.setFixedWidth(78)

    def set_range(self, lo: float, hi: float, unit: str, cmap: str, invert: bool) -> None:
        self.lo, self.hi, self.unit, self.cmap, self.invert = float(lo), float(hi), unit, cmap, invert
        self.update()

    def paintEvent(self, event) -> None:
        p = QtGui.QPainter(self)
        top, bottom, x0, bw = 10, self.height() - 10, 6, 16
        if bottom - top < 10:
            return
        ramp = np.linspace(self.hi, self.lo, bottom - top, dtype=np.float32)[:, None]
        strip = np.ascontiguousarray(np.repeat(colorize(ramp, self.lo, self.hi, self.cmap, self.invert), bw, axis=1))
        p.drawImage(x0, top, _to_qimage(strip))
        p.setPen(self.palette().color(QtGui.QPalette.WindowText))
        fm = p.fontMetrics()
        for v in nice_ticks(self.lo, self.hi, count=7):
            y = bottom - (v - self.lo) / max(self.hi - self.lo, 1e-12) * (bottom - top)
            p.drawLine(x0 + bw, int(y), x0 + bw + 4, int(y))
            p.drawText(x0 + bw + 7, int(y + fm.ascent() / 2 - 1), f"{v:g} {self.unit}".strip())
        p.end()


class _Canvas(QtWidgets.QGraphicsView):
    """Zoom with the wheel (about the cursor), pan by dragging; reports the pixel under the cursor."""

    hovered = QtCore.Signal(float, float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QtWidgets.QGraphicsScene(self))
        self.item = QtWidgets.QGraphicsPixmapItem()
        self.item.setTransformationMode(QtCore.Qt.FastTransformation)  # show real pixels when zoomed in
        self.scene().addItem(self.item)
        self.setDragMode(QtWidgets.QGraphicsView.ScrollHandDrag)
        self.setTransformationAnchor(QtWidgets.QGraphicsView.AnchorUnderMouse)
        self.setBackgroundBrush(QtGui.QColor(30, 31, 34))
        self.setMouseTracking(True)
        self.auto_fit = True

    def set_rgb(self, rgb: np.ndarray, keep_view: bool) -> None:
        self.item.setPixmap(QtGui.QPixmap.fromImage(_to_qimage(rgb)))
        self.scene().setSceneRect(self.item.boundingRect())
        if not keep_view:
            self.auto_fit = True
            self.fit()

    def fit(self) -> None:
        if not self.item.pixmap().isNull():
            self.fitInView(self.item, QtCore.Qt.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        self.auto_fit = False
        self.scale(factor, factor)

    def wheelEvent(self, event: QtGui.QWheelEvent) -> None:
        self.zoom(1.2 ** (event.angleDelta().y() / 120.0))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.auto_fit:
            self.fit()

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:
        pos = self.mapToScene(event.position().toPoint())
        self.hovered.emit(pos.x(), pos.y())
        super().mouseMoveEvent(event)


class ImageView(QtWidgets.QWidget):
    """Shows an image or a depth map; depth, confidence and image layers can be toggled."""

    MODES = ("depth", "confidence", "image")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.depth: DepthMap | None = None
        self.image: np.ndarray | None = None  # the raw array of a plain image
        self.mode = "image"
        self.cmap = "turbo"
        self.range = (0.0, 1.0)
        self.rgb: np.ndarray | None = None  # what is on screen, H x W x 3/4 uint8
        self._hover: tuple[float, float] | None = None  # scene position of the pointer

        self.mode_box = QtWidgets.QComboBox()
        for m in self.MODES:
            self.mode_box.addItem(m.capitalize(), m)
        self.mode_box.setToolTip("Which layer to show: depth, its confidence, or the (all-in-focus) image")
        self.mode_box.activated.connect(lambda i: self.set_mode(self.mode_box.itemData(i)))
        self.cmap_box = QtWidgets.QComboBox()
        self.cmap_box.addItems(COLORMAPS)
        self.cmap_box.setToolTip("Colour map for depth and confidence")
        self.cmap_box.currentTextChanged.connect(self.set_colormap)
        fit = QtWidgets.QPushButton("Fit")
        fit.setToolTip("Fit the whole image in the view (wheel zooms, drag pans)")
        fit.clicked.connect(self.fit)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Show"))
        bar.addWidget(self.mode_box)
        bar.addWidget(QtWidgets.QLabel("Colours"))
        bar.addWidget(self.cmap_box)
        bar.addStretch(1)
        bar.addWidget(fit)

        self.canvas = _Canvas()
        self.canvas.hovered.connect(self._on_hover)
        self.colorbar = ColorBar()
        self.colorbar.hide()
        self.cursor_label = QtWidgets.QLabel(" ")
        self.cursor_label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        mid = QtWidgets.QHBoxLayout()
        mid.addWidget(self.canvas, 1)
        mid.addWidget(self.colorbar)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addLayout(mid, 1)
        lay.addWidget(self.cursor_label)
        self._sync_controls()

    # -- content
    def show_image(self, image) -> None:
        """Show an RGB/RGBA/grey array (uint8/uint16/float 0..1) or an :class:`Image`."""
        pixels = image.pixels if isinstance(image, Image) else np.asarray(image)
        rgb = display_rgb(pixels)
        self.depth, self.image, self.mode = None, pixels, "image"
        self._set_rgb(rgb, keep_view=False)

    def show_depth(self, depth: DepthMap) -> None:
        """Show a depth map coloured by distance, with its colour bar in metres."""
        d = depth.depth
        valid = d[np.isfinite(d) & (d > 0)]
        valid = valid[:: max(1, valid.size // 1_000_000)]  # percentiles of a sample: fast on big maps
        if valid.size:
            lo, hi = (float(x) for x in np.percentile(valid, [1, 99]))
            if hi <= lo:
                lo, hi = float(valid.min()), float(valid.max()) + 1e-3
        else:
            lo, hi = 0.0, 1.0
        self.depth, self.image, self.range, self.mode = depth, None, (lo, hi), "depth"
        self._render(keep_view=False)

    def set_mode(self, mode: str) -> None:
        """``depth``, ``confidence`` or ``image``; a layer the content lacks is refused (ValueError)."""
        if mode not in self.available_modes():
            raise ValueError(f"no {mode} layer to show here; available: {', '.join(self.available_modes())}")
        self.mode = mode
        if self.depth is not None:
            self._render(keep_view=True)
        self._sync_controls()

    def set_colormap(self, name: str) -> None:
        if name not in COLORMAPS:
            raise ValueError(f"unknown colour map {name!r}; choose from {', '.join(COLORMAPS)}")
        self.cmap = name
        if self.cmap_box.currentText() != name:
            self.cmap_box.setCurrentText(name)
        if self.depth is not None and self.mode != "image":
            self._render(keep_view=True)

    def available_modes(self) -> list[str]:
        if self.depth is None:
            return ["image"] if self.image is not None else []
        modes = ["depth"]
        if self.depth.confidence is not None:
            modes.append("confidence")
        if self.depth.image is not None:
            modes.append("image")
        return modes

    def fit(self) -> None:
        self.canvas.auto_fit = True
        self.canvas.fit()

    # -- values under the cursor
    def value_at(self, x: float, y: float) -> float | None:
        """Depth (metres) or, in confidence mode, confidence at image position (x, y); None outside."""
        if self.depth is None:
            return None
        field = (
            self.depth.confidence
            if self.mode == "confidence" and self.depth.confidence is not None
            else self.depth.depth
        )
        col, row = int(math.floor(x)), int(math.floor(y))
        if not (0 <= row < field.shape[0] and 0 <= col < field.shape[1]):
            return None
        v = float(field[row, col])
        return v if math.isfinite(v) else float("nan")

    def text_at(self, x: float, y: float) -> str:
        col, row = int(math.floor(x)), int(math.floor(y))
        if self.depth is not None:
            h, w = self.depth.depth.shape
            if not (0 <= row < h and 0 <= col < w):
                return " "
            d = float(self.depth.depth[row, col])
            parts = [f"x {col}  y {row}", f"depth {d:.3f} m" if math.isfinite(d) and d > 0 else "depth unknown"]
            if self.depth.confidence is not None:
                parts.append(f"confidence {float(self.depth.confidence[row, col]):.2f}")
            return "   ".join(parts)
        if self.image is not None:
            h, w = self.image.shape[:2]
            if not (0 <= row < h and 0 <= col < w):
                return " "
            px = np.atleast_1d(self.image[row, col]).tolist()
            return f"x {col}  y {row}   value {', '.join(f'{v:g}' for v in px)}"
        return " "

    def _on_hover(self, x: float, y: float) -> None:
        self._hover = (x, y)
        self.cursor_label.setText(self.text_at(x, y))

    def _refresh_readout(self) -> None:
        """After the content or the layer changed: the value under the pointer is read again
        from what is shown now, or cleared when the pointer is not over the picture (issue
        15: the previous result's value stayed after switching results)."""
        over = self._hover is not None and self.canvas.viewport().underMouse()
        self.cursor_label.setText(self.text_at(*self._hover) if over else " ")

    # -- drawing
    def _render(self, keep_view: bool) -> None:
        dm = self.depth
        if self.mode == "image" and dm.image is not None:
            rgb = display_rgb(dm.image)
        elif self.mode == "confidence" and dm.confidence is not None:
            rgb = colorize(dm.confidence, 0.0, 1.0, self.cmap)
        else:
            self.mode = "depth"
            d = np.where(dm.depth > 0, dm.depth, np.nan)
            rgb = colorize(d, *self.range, self.cmap, invert=True)
        self._set_rgb(rgb, keep_view)

    def _set_rgb(self, rgb: np.ndarray, keep_view: bool) -> None:
        self.rgb = rgb
        self.canvas.set_rgb(rgb, keep_view)
        self._sync_controls()
        self._refresh_readout()

    def _sync_controls(self) -> None:
        modes = self.available_modes()
        model = self.mode_box.model()
        for i, m in enumerate(self.MODES):
            model.item(i).setEnabled(m in modes)
        self.mode_box.setEnabled(len(modes) > 1)
        self.mode_box.setCurrentIndex(self.MODES.index(self.mode))
        coloured = self.depth is not None and self.mode in ("depth", "confidence")
        self.cmap_box.setEnabled(coloured)
        if coloured:
            if self.mode == "depth":
                self.colorbar.set_range(*self.range, "m", self.cmap, invert=True)
            else:
                self.colorbar.set_range(0.0, 1.0, "", self.cmap, invert=False)
        self.colorbar.setVisible(coloured)
