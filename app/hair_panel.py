"""The hairstyle picker: a grid of thumbnails with names, None, Auto, a colour button and presets.

How to embed it (the Avatar panel does this)::

    from app.hair_panel import HairPanel

    panel = HairPanel(parent)                       # simple constructor
    panel.set_avatar(avatar, on_hair_changed)       # on_hair_changed(new_avatar) is called
                                                    # with the avatar wearing the chosen hair
    panel.set_avatar(avatar, "avatar1")             # or a viewport key: the panel then dresses
                                                    # ``avatar`` in place (hair, darkened scalp,
                                                    # params) and redraws it in the main
                                                    # window's viewport under that key
    # either way, listen to the signal if you like:
    panel.style_changed.connect(lambda style, color: ...)   # style name / "none" / "auto", "#rrggbb"
    panel.set_runner(main_window.runner)            # optional app.jobs.JobRunner: slow fits
                                                    # and "Auto" then run as background jobs
                                                    # (taken from the parent's ``runner`` when
                                                    # the parent has one)

``set_avatar`` may be called again whenever the avatar changes (new photo); the panel
then selects the avatar's current ``params["hairstyle"]``. Choosing a style fits it with
:func:`engines.hair.apply_hair` on the UI thread: a style already fitted to this head is
a cache hit (colours and the darkened scalp only), about a tenth of a second; the first
fit of a style takes a few hundred milliseconds (with a runner set, uncached fits run as
a job and a result that arrives after the user picked another style is dropped). "Auto"
segments the hair in the
avatar's photo (a classical colour model, no learned hair model is available offline)
and shows the three best-matching styles with their silhouette IoU.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

NONE_ITEM = "none"
AUTO_ITEM = "auto"


class HairPanel(QtWidgets.QWidget):
    """Pick a hairstyle and colour for an avatar."""

    style_changed = QtCore.Signal(str, str)
    """(style, "#rrggbb"): style is a library name, "none" or "auto"."""
    hair_applied = QtCore.Signal(object)
    """The new Avatar after a style or colour change (when an avatar is set)."""
    failed = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        from engines.hair.color import PRESETS

        self._avatar = None
        self._callback: Callable | None = None
        self._color = PRESETS["dark brown"]
        self._style = NONE_ITEM
        self._updating = False
        self._seq = 0
        self._key: str | None = None
        self._main_window = parent  # kept: adding the panel to a layout re-parents it
        self._runner = getattr(parent, "runner", None)

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.grid = QtWidgets.QListWidget(self)
        self.grid.setViewMode(QtWidgets.QListView.IconMode)
        self.grid.setIconSize(QtCore.QSize(112, 56))
        self.grid.setGridSize(QtCore.QSize(124, 86))
        self.grid.setResizeMode(QtWidgets.QListView.Adjust)
        self.grid.setMovement(QtWidgets.QListView.Static)
        self.grid.setWordWrap(True)
        self.grid.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.grid.setToolTip("Hairstyles: click one to try it on the avatar")
        self.grid.setMinimumHeight(2 * 86 + 12)  # at least two rows of thumbnails in a dock
        lay.addWidget(self.grid, 1)
        self._fill()

        row = QtWidgets.QHBoxLayout()
        self.color_button = QtWidgets.QPushButton("Colour…", self)
        self.color_button.setToolTip("Choose any hair colour")
        self.color_button.clicked.connect(self._pick_color)
        row.addWidget(self.color_button)
        self.preset_buttons: dict[str, QtWidgets.QToolButton] = {}
        for name, hexc in PRESETS.items():
            b = QtWidgets.QToolButton(self)
            b.setToolTip(name)
            b.setFixedSize(18, 18)
            b.setStyleSheet(f"background-color: {hexc}; border: 1px solid #555;")
            b.clicked.connect(lambda _=False, c=hexc: self.set_color(c))
            row.addWidget(b)
            self.preset_buttons[name] = b
        row.addStretch(1)
        lay.addLayout(row)
        self.match_label = QtWidgets.QLabel("", self)
        self.match_label.setWordWrap(True)
        lay.addWidget(self.match_label)
        self._update_color_button()
        self.grid.currentItemChanged.connect(self._on_item)

    # -- building ---------------------------------------------------------------------
    def _fill(self) -> None:
        from engines.hair.recipe import list_styles, recipes, styles_dir

        thumbs = styles_dir() / "thumbs"
        self.grid.clear()
        for key, label, tip in [
            (NONE_ITEM, "None", "No hair (bald head)"),
            (AUTO_ITEM, "Auto (photo)", "Match the hair in the avatar's photo"),
        ]:
            it = QtWidgets.QListWidgetItem(label)
            it.setData(QtCore.Qt.UserRole, key)
            it.setToolTip(tip)
            png = thumbs / ("bald.png" if key == NONE_ITEM else "auto.png")  # engines.hair.thumbs makes both
            if png.exists():
                it.setIcon(QtGui.QIcon(str(png)))
            self.grid.addItem(it)
        for name in list_styles():
            r = recipes()[name]
            if r.is_bald:
                continue
            it = QtWidgets.QListWidgetItem(r.label)
            it.setData(QtCore.Qt.UserRole, name)
            it.setToolTip(r.description or r.label)
            png = thumbs / f"{name}.png"
            if png.exists():
                it.setIcon(QtGui.QIcon(str(png)))
            self.grid.addItem(it)

    def styles(self) -> list[str]:
        """Style keys in grid order ("none", "auto", then the library)."""
        return [self.grid.item(i).data(QtCore.Qt.UserRole) for i in range(self.grid.count())]

    # -- state ------------------------------------------------------------------------
    @property
    def color(self) -> str:
        return self._color

    @property
    def style(self) -> str:
        return self._style

    def set_avatar(self, avatar, on_hair_changed: Callable | str | None = None) -> None:
        """Attach the avatar to dress.

        ``on_hair_changed(new_avatar)`` gets each result; given a viewport key (str)
        instead, the panel updates ``avatar`` in place and redraws it under that key.
        """
        self._avatar = avatar
        self._seq += 1  # a fit still running for the previous avatar is dropped
        if callable(on_hair_changed):
            self._callback, self._key = on_hair_changed, None
        elif isinstance(on_hair_changed, str):
            self._callback, self._key = None, on_hair_changed
        p = getattr(avatar, "params", {}) or {}
        # the colour is the avatar's own: what it wears, else the default (never the colour
        # Auto measured on the previous avatar's photo)
        from engines.hair import DEFAULT_COLOR
        from engines.hair.color import parse_color, to_hex

        own = p.get("hair_color") if str(p.get("hairstyle", NONE_ITEM)) not in (NONE_ITEM, "bald") else None
        self._color = own if isinstance(own, str) and own.startswith("#") else to_hex(parse_color(DEFAULT_COLOR))
        self._update_color_button()
        self._select(str(p.get("hairstyle", NONE_ITEM)), emit=False)
        self.match_label.setText("")
        if p.get("hair_match"):
            self.show_matches([(m["style"], m["iou"]) for m in p["hair_match"]])

    def set_runner(self, runner) -> None:
        """Use an ``app.jobs.JobRunner`` for fits that are not cached yet and for Auto."""
        self._runner = runner

    def set_style(self, style: str) -> None:
        """Select a style programmatically (emits and applies like a click)."""
        self._select(style, emit=True)

    def set_color(self, color: str) -> None:
        from engines.hair.color import parse_color, to_hex

        self._color = to_hex(parse_color(color))
        self._update_color_button()
        self._emit()

    def show_matches(self, top: list[tuple[str, float]]) -> None:
        from engines.hair.recipe import recipes

        parts = [f"{recipes()[s].label if s in recipes() else s} ({iou:.2f})" for s, iou in top]
        self.match_label.setText("Best matches to the photo (silhouette IoU): " + ", ".join(parts))

    # -- internals ----------------------------------------------------------------------
    def _select(self, style: str, emit: bool) -> None:
        keys = self.styles()
        style = style if style in keys else NONE_ITEM
        self._updating = not emit
        try:
            self.grid.setCurrentRow(keys.index(style))
        finally:
            self._updating = False
        self._style = style

    def _on_item(self, cur, _prev) -> None:
        if cur is None:
            return
        self._style = cur.data(QtCore.Qt.UserRole)
        if not self._updating:
            self._emit()

    def _pick_color(self) -> None:
        c = QtWidgets.QColorDialog.getColor(QtGui.QColor(self._color), self, "Hair colour")
        if c.isValid():
            self.set_color(c.name())

    def _update_color_button(self) -> None:
        self.color_button.setStyleSheet(f"QPushButton {{ border-left: 14px solid {self._color}; }}")

    def _emit(self) -> None:
        self.style_changed.emit(self._style, self._color)
        if self._avatar is None:
            return
        from engines.hair import apply_hair, is_cached

        self._seq += 1
        seq, avatar, style = self._seq, self._avatar, self._style
        color = "auto" if style == AUTO_ITEM else self._color
        if self._runner is not None and not is_cached(avatar, style):
            self.match_label.setText("Matching the photo's hair…" if style == AUTO_ITEM else "Fitting the hairstyle…")
            self._runner.submit(
                lambda progress, cancel: apply_hair(avatar, style, color),
                f"Hair: {style}",
                "hair",
                on_done=lambda new: self._applied(seq, style, new),
                on_error=lambda msg, details: self._failed(seq, msg),
            )
            return
        from engines.api import EngineError

        try:
            new = apply_hair(avatar, style, color)
        except EngineError as e:
            self._failed(seq, str(e))
            return
        self._applied(seq, style, new)

    def _failed(self, seq: int, message: str) -> None:
        if seq != self._seq:
            return
        self.failed.emit(message)
        self.match_label.setText(message)

    def _applied(self, seq: int, style: str, new) -> None:
        if seq != self._seq:
            return  # the user has moved on to another style meanwhile
        if style == AUTO_ITEM and new.params.get("hair_match"):
            # Show the match and select the chosen style, so a colour change does not re-match.
            self.show_matches([(m["style"], m["iou"]) for m in new.params["hair_match"]])
            self._color = new.params.get("hair_color", self._color)
            self._update_color_button()
            self._select(new.params.get("hairstyle", NONE_ITEM), emit=False)
        elif self.match_label.text().startswith(("Fitting", "Matching")):
            self.match_label.setText("")
        if self._callback is not None:
            self._callback(new)
        elif self._key is not None:
            self._dress_in_place(new)
        self.hair_applied.emit(new)

    def _dress_in_place(self, new) -> None:
        """Give the app's avatar the new hair and scalp, and redraw only what changed."""
        import logging

        from app.renderers import replace_skin, replace_strands

        av = self._avatar
        same_skin = new.mesh.texture is av.mesh.texture and new.mesh.vertex_colors is av.mesh.vertex_colors
        same_shape = (
            new.mesh.vertices.shape == av.mesh.vertices.shape
            and new.mesh.faces.shape == av.mesh.faces.shape
            and np.array_equal(new.mesh.vertices, av.mesh.vertices)
            and np.array_equal(new.mesh.faces, av.mesh.faces)
        )
        av.hair, av.mesh, av.params = new.hair, new.mesh, new.params
        vp = getattr(self._main_window, "viewport", None)
        if vp is None:
            return
        key = self._key
        try:
            if not same_skin and not (same_shape and replace_skin(vp, f"{key}/head", av.mesh)):
                vp.show(av, key)  # the head could not be recoloured in place: redraw it all
            else:
                # Only the strands changed: the hair actor is reused, its arrays swapped.
                replace_strands(vp, f"{key}/hair", av.hair)
        except Exception:  # a drawing problem must not lose the user's choice
            logging.getLogger(__name__).exception("redrawing the avatar's hair")
