"""ImageView: depth colouring, colour bar range, value under the cursor, layer toggles."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402

from app.image_view import NAN_COLOR, ImageView, colorize, colormap_lut, display_rgb, nice_ticks  # noqa: E402
from engines.types import DepthMap, Image  # noqa: E402

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.gui


@pytest.fixture
def view(qtbot):
    v = ImageView()
    qtbot.addWidget(v)
    v.resize(640, 480)
    v.show()
    qtbot.waitExposed(v)
    return v


def hover(view: ImageView, x: float, y: float) -> str:
    """Send a real mouse-move event over image position (x, y); return the cursor label."""
    vp = view.canvas.viewport()
    pos = QtCore.QPointF(view.canvas.mapFromScene(QtCore.QPointF(x, y)))
    ev = QtGui.QMouseEvent(
        QtCore.QEvent.MouseMove, pos, vp.mapToGlobal(pos), QtCore.Qt.NoButton, QtCore.Qt.NoButton, QtCore.Qt.NoModifier
    )
    QtWidgets.QApplication.sendEvent(vp, ev)
    return view.cursor_label.text()


def test_depth_shows_value_under_cursor(view):
    disp = np.load(DATA / "motorcycle_disp.npz")["arr_0"]
    # Middlebury marks unknown disparity with inf: unknown depth is NaN
    depth = np.where(np.isfinite(disp), 193.001 * 994.978 / (disp + 31.086) / 1000.0, np.nan).astype(np.float32)
    view.show_depth(DepthMap(depth))
    row, col = 250, 370
    assert np.isfinite(depth[row, col])
    view.canvas.zoom(6.0)  # several screen pixels per image pixel, so the cursor can hit one exactly
    view.canvas.centerOn(col, row)
    text = hover(view, col + 0.5, row + 0.5)
    assert f"x {col}  y {row}" in text
    assert f"depth {depth[row, col]:.3f} m" in text
    assert view.value_at(col + 0.5, row + 0.5) == pytest.approx(float(depth[row, col]))
    # a pixel with unknown depth says so
    r, c = np.argwhere(~np.isfinite(depth))[0]
    view.canvas.centerOn(float(c), float(r))
    assert "depth unknown" in hover(view, c + 0.5, r + 0.5)
    assert view.value_at(-3, 5) is None


def test_readout_follows_the_shown_result(view):
    """Issue 15: after switching results the readout still said the previous one's depth."""
    a = np.full((40, 60), 1.25, np.float32)
    b = np.full((40, 60), 3.5, np.float32)
    view.show_depth(DepthMap(a))
    view.canvas.zoom(4.0)
    view.canvas.centerOn(30, 20)
    assert "depth 1.250 m" in hover(view, 30.5, 20.5)
    view.show_depth(DepthMap(b))  # the other result, the pointer not moved
    text = view.cursor_label.text()
    assert "1.250" not in text and (text.strip() == "" or "depth 3.500 m" in text)
    view.canvas.centerOn(30, 20)
    assert "depth 3.500 m" in hover(view, 30.5, 20.5)
    view.show_image(np.zeros((40, 60, 3), np.uint8))  # an image next: no depth left over
    assert "depth" not in view.cursor_label.text()


def test_depth_colours_and_colour_bar_in_metres(view):
    depth = np.tile(np.linspace(1.0, 3.0, 101, dtype=np.float32), (20, 1))
    depth[0, 0] = np.nan
    view.show_depth(DepthMap(depth))
    lo, hi = view.range
    assert lo == pytest.approx(np.percentile(depth[np.isfinite(depth)], 1))
    assert hi == pytest.approx(np.percentile(depth[np.isfinite(depth)], 99))
    assert view.colorbar.isVisible() and view.colorbar.unit == "m"
    assert (view.colorbar.lo, view.colorbar.hi) == (lo, hi)
    lut = colormap_lut("turbo")
    # near is the top of the map, far the bottom; unknown is grey
    assert tuple(view.rgb[5, 0]) == tuple(lut[255])
    assert tuple(view.rgb[5, 100]) == tuple(lut[0])
    assert tuple(view.rgb[0, 0]) == NAN_COLOR
    assert view.rgb[5, 50].tolist() == colorize(np.float32([[2.0]]), lo, hi, "turbo", invert=True)[0, 0].tolist()
    view.set_colormap("viridis")
    assert tuple(view.rgb[5, 100]) == tuple(colormap_lut("viridis")[0])
    with pytest.raises(ValueError):
        view.set_colormap("jet")
    assert nice_ticks(1.02, 2.98) == [1.5, 2.0, 2.5]


def test_toggles_between_depth_confidence_and_image(view):
    h, w = 30, 40
    depth = np.full((h, w), 2.0, np.float32)
    conf = np.zeros((h, w), np.float32)
    conf[:, 20:] = 1.0
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 1] = 200
    view.show_depth(DepthMap(depth, confidence=conf, image=img))
    assert view.available_modes() == ["depth", "confidence", "image"]
    view.set_mode("confidence")
    assert tuple(view.rgb[0, 0]) == tuple(colormap_lut("turbo")[0])
    assert tuple(view.rgb[0, 39]) == tuple(colormap_lut("turbo")[255])
    assert "confidence 1.00" in hover(view, 30.5, 3.5)
    view.set_mode("image")
    assert tuple(view.rgb[3, 3]) == (0, 200, 0)
    assert not view.colorbar.isVisible()
    view.show_depth(DepthMap(depth))
    assert view.available_modes() == ["depth"]
    with pytest.raises(ValueError):
        view.set_mode("confidence")


@pytest.mark.parametrize("kind", ["rgb8", "rgba8", "grey8", "grey16", "rgb16"])
def test_show_image_formats(view, kind):
    base = np.zeros((24, 32, 3), np.uint8)
    base[:, :16] = (250, 10, 10)
    arr = {
        "rgb8": base,
        "rgba8": np.dstack([base, np.full((24, 32), 255, np.uint8)]),
        "grey8": base[:, :, 0],
        "grey16": base[:, :, 0].astype(np.uint16) * 4,  # 10-bit data: stretched to its max
        "rgb16": base.astype(np.uint16) * 257,
    }[kind]
    view.show_image(arr)
    assert view.rgb.shape[:2] == (24, 32)
    assert view.rgb[5, 5, 0] >= 250 and view.rgb[5, 20, 0] < 20
    assert view.available_modes() == ["image"]
    assert "value" in hover(view, 5.5, 5.5)


def test_show_image_from_file_and_bad_array(view):
    from PIL import Image as PILImage

    px = np.asarray(PILImage.open(DATA / "astronaut.png").convert("RGB"))
    view.show_image(Image(px))
    assert np.array_equal(view.rgb, px)
    with pytest.raises(ValueError):
        display_rgb(np.zeros((4, 4, 2), np.uint8))


def test_wheel_zooms_and_fit_restores(view):
    view.show_image(np.zeros((100, 200, 3), np.uint8))
    s0 = view.canvas.transform().m11()
    view.canvas.zoom(2.0)
    assert view.canvas.transform().m11() == pytest.approx(2 * s0)
    assert not view.canvas.auto_fit
    view.fit()
    assert view.canvas.transform().m11() == pytest.approx(s0, rel=1e-3)


def test_2d_views_import_no_heavy_modules():
    """The window imports these views at start-up: no cv2, matplotlib or pyvista until used."""
    import subprocess
    import sys

    code = (
        "import sys, app.image_view, app.video_view; "
        "print(sorted(m for m in ('cv2', 'matplotlib', 'pyvista', 'vtk', 'torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
