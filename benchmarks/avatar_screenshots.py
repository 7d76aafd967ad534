"""Contact sheet of an avatar as the app shows it (issue 11): the main window's 3D viewport,
driven through the Avatar panel (its emotion sliders and view buttons), from the front,
three-quarter, the subject's left profile and the back; one row per state: rest (neutral),
"As photographed", each emotion at 100 %, a row with hair, and that row as it is drawn while the
view moves (the light stand-ins of app.lod).

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/avatar_screenshots.py \\
        tests/data/grace_hopper.jpg /tmp/avatar_sheet.png [--hairstyle bob] [--size 320]

The sheet has the photo in the first column. Rows are labelled in the PNG.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VIEWS = ("front", "three-quarter", "left", "back")


def make_avatar(photo: Path, hairstyle: str, face_index: int = -1):
    from engines.api import CancelToken, no_progress
    from engines.avatar.engine import AvatarEngine
    from engines.io import load_input

    img = load_input(photo)
    kw = dict(hairstyle=hairstyle)
    if face_index >= 0:
        kw["face_index"] = face_index
    p = AvatarEngine.Params(**kw)
    return AvatarEngine().run([img], p, no_progress, CancelToken())


def label(rgb: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.fromarray(rgb)
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, 8 + 7 * len(text), 16], fill=(0, 0, 0))
    d.text((4, 2), text, fill=(255, 255, 255))
    return np.asarray(im)


def fit(rgb: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(rgb)
    im.thumbnail((side, side))
    out = np.full((side, side, 3), 40, np.uint8)
    y, x = (side - im.height) // 2, (side - im.width) // 2
    out[y : y + im.height, x : x + im.width] = np.asarray(im)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo")
    ap.add_argument("out")
    ap.add_argument("--hairstyle", default="auto")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--face-index", type=int, default=-1)
    a = ap.parse_args()

    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from app.main_window import MainWindow
    from app.settings import Settings
    from engines.avatar.emotions import EMOTIONS
    from engines.avatar.engine import AvatarEngine

    w = MainWindow(Settings(), samples=False, recovery=False, views=True)
    w.confirm_close = False
    w.resize(1400, 900)
    w.show()
    for _ in range(20):
        app.processEvents()
    vp = w.viewport
    vp.set_background((1.0, 1.0, 1.0))
    photo = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(a.photo).convert("RGB"))
    rows = []

    def settle() -> None:
        # as a user sees the view once it rests: slider and view changes draw light
        # stand-ins (app.lod) until the viewport's rest timer brings full detail back
        import time

        t_end = time.monotonic() + 0.6
        while time.monotonic() < t_end or vp.interacting:
            app.processEvents()
            time.sleep(0.02)

    def shoot(name: str) -> list[np.ndarray]:
        shots = []
        for view in VIEWS:
            w.avatar_panel.set_view(view)
            settle()
            shots.append(label(fit(vp.screenshot(), a.size), f"{name} / {view}"))
        return shots

    bald = make_avatar(Path(a.photo), "none", a.face_index)
    w._add_result(bald, AvatarEngine, {}, None)
    w.show_result(len(w.project.results) - 1)
    for _ in range(10):
        app.processEvents()
    panel = w.avatar_panel
    photo_tile = fit(photo, a.size)
    panel.reset()
    rows.append([photo_tile] + shoot("rest (neutral)"))
    panel.as_photographed()
    app.processEvents()
    rows.append([photo_tile] + shoot("as photographed"))
    for emo in EMOTIONS:
        panel.reset()
        panel._set_sliders({emo: 1.0})
        app.processEvents()
        rows.append([photo_tile] + shoot(f"{emo} 100%"))
    panel.reset()
    haired = make_avatar(Path(a.photo), a.hairstyle, a.face_index)
    w._add_result(haired, AvatarEngine, {}, None)
    w.show_result(len(w.project.results) - 1)
    for _ in range(10):
        app.processEvents()
    style = haired.main.params.get("hairstyle", a.hairstyle) if hasattr(haired.main, "params") else a.hairstyle
    rows.append([photo_tile] + shoot(f"hair: {style}"))
    # the light stand-ins (app.lod) the view draws while the user orbits or drags a slider
    moving = []
    for view in VIEWS:
        w.avatar_panel.set_view(view)
        settle()
        vp.set_interacting(True, render=False)
        vp.plotter.render()
        moving.append(label(fit(vp.screenshot(), a.size), f"while orbiting / {view}"))
        vp.set_interacting(False)
    rows.append([photo_tile] + moving)
    sheet = np.concatenate([np.concatenate(r, 1) for r in rows], 0)
    from PIL import Image

    Image.fromarray(sheet).save(a.out)
    print(a.out, sheet.shape)
    w.runner.shutdown(5000)


if __name__ == "__main__":
    main()
