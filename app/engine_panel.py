"""The Engine dock: pick an engine that accepts the selected input, edit its parameters
in a form generated from its pydantic ``Params``, press Run.

One description, two front ends: the CLI builds ``--set`` options from the same model.
Field to widget: ``bool`` -> check box; ``int``/``float`` -> spin box with the field's
``ge``/``gt``/``le``/``lt`` range; ``Literal[...]`` or an Enum -> combo box; a path (a
``Path`` annotation, or a name ending in ``path``/``file``/``model``) -> line edit with a
file chooser; a field marked :class:`engines.api.Choices` -> combo box of its values (with
their icons); :class:`engines.api.Colour` -> preset list, colour swatch and picker;
anything else -> line edit validated by pydantic. The field's ``description`` is the
tooltip.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engines.api import Choices, Colour, EngineError, assign_slots, bind_inputs, field_marker, make_params

ONNX_FIELD_NAMES = ("onnx_model", "onnx_model_path")
"""Params fields filled from Settings > ONNX depth model when left empty."""

RUN_TIP = "Run the engine on the selected input (in the background)"


def input_label(obj) -> str:
    """What an input is called in the panel: its file name, else its name, else its type."""
    path = getattr(obj, "path", None)
    if path:
        return Path(str(path)).name
    name = getattr(obj, "name", None)
    return name if isinstance(name, str) and name else type(obj).__name__


def _unwrap(annotation) -> tuple[object, bool]:
    """(inner annotation, optional?) for ``X | None`` / ``Optional[X]``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _bounds(field) -> tuple[float | None, float | None]:
    lo = hi = None
    for m in field.metadata:
        if getattr(m, "ge", None) is not None:
            lo = m.ge
        if getattr(m, "gt", None) is not None:
            lo = m.gt
        if getattr(m, "le", None) is not None:
            hi = m.le
        if getattr(m, "lt", None) is not None:
            hi = m.lt
    return lo, hi


def _is_path(name: str, ann) -> bool:
    if isinstance(ann, type) and issubclass(ann, Path):
        return True
    return ann is str and name.lower().endswith(("path", "file", "model"))


class _PathEdit(QWidget):
    def __init__(self, text: str, tip: str) -> None:
        super().__init__()
        self.edit = QLineEdit(text)
        self.edit.setToolTip(tip)
        self.button = QToolButton()
        self.button.setText("...")
        self.button.setToolTip("Choose a file")
        self.button.clicked.connect(self._choose)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.edit, 1)
        lay.addWidget(self.button)

    def _choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file", self.edit.text())
        if path:
            self.edit.setText(path)


class _ColourEdit(QWidget):
    """A colour parameter: the special words and presets in a list, "Custom..." opens the
    colour dialog; a swatch shows the colour. :meth:`text` / :meth:`setText` as a line edit."""

    CUSTOM = "Custom..."

    def __init__(self, marker: Colour, tip: str) -> None:
        super().__init__()
        self.marker = marker
        self.combo = QComboBox()
        self.combo.setToolTip(tip)
        for word in marker.special:
            self.combo.addItem(word, word)
        for name, hexv in marker.preset_map().items():
            self.combo.addItem(self._swatch(hexv), name, name)
        self.combo.addItem(self.CUSTOM, None)
        self.combo.activated.connect(self._activated)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.combo, 1)

    @staticmethod
    def _swatch(hexv: str):
        from PySide6.QtGui import QColor, QIcon, QPixmap

        pm = QPixmap(16, 16)
        pm.fill(QColor(hexv))
        return QIcon(pm)

    def _activated(self, index: int) -> None:
        if self.combo.itemData(index) is not None:
            return
        from PySide6.QtGui import QColor
        from PySide6.QtWidgets import QColorDialog

        start = QColor(self.marker.preset_map().get(self.text(), self.text()) if self.text() else "#3b2619")
        c = QColorDialog.getColor(start, self, "Choose a colour")
        if c.isValid():
            self.setText(c.name())
        else:
            self.combo.setCurrentIndex(0)

    def text(self) -> str:
        return str(self.combo.currentData() or "")

    def setText(self, value: str) -> None:  # noqa: N802 (Qt naming, as QLineEdit)
        try:
            v = self.marker.check(value)
        except ValueError:
            return
        i = self.combo.findData(v)
        if i < 0:  # a custom #rrggbb: listed just above "Custom..."
            i = self.combo.count() - 1
            self.combo.insertItem(i, self._swatch(v), v, v)
        self.combo.setCurrentIndex(i)


class ParamsForm(QWidget):
    """A form for one Params model; :meth:`values` returns raw values for make_params."""

    def __init__(self, engine_cls: type, values: dict | None = None, parent=None) -> None:
        super().__init__(parent)
        self.engine_cls = engine_cls
        self.widgets: dict[str, tuple[str, QWidget, bool]] = {}
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        fields = engine_cls.Params.model_fields
        if not fields:
            form.addRow(QLabel("This engine has no parameters."))
        for name, field in fields.items():
            kind, widget, optional = self._make(name, field)
            self.widgets[name] = (kind, widget, optional)
            label = QLabel(name.replace("_", " ").capitalize())
            label.setToolTip(field.description or "")
            form.addRow(label, widget)
        self.set_values(self.defaults())
        if values:
            self.set_values(values)

    def defaults(self) -> dict:
        """Field defaults (fields without one are left empty for the user to fill)."""
        out = {}
        for name, field in self.engine_cls.Params.model_fields.items():
            if field.is_required():
                continue
            v = field.get_default(call_default_factory=True)
            out[name] = v.value if isinstance(v, enum.Enum) else v
        return out

    def _make(self, name: str, field) -> tuple[str, QWidget, bool]:
        tip = field.description or ""
        ann, optional = _unwrap(field.annotation)
        origin = typing.get_origin(ann)
        choices, colour = field_marker(field, Choices), field_marker(field, Colour)
        if choices is not None:
            from PySide6.QtCore import QSize
            from PySide6.QtGui import QIcon

            w = QComboBox()
            w.setIconSize(QSize(48, 24))
            for c in choices.allowed():
                icon = choices.icon(c) if choices.icon else None
                label = c.replace("_", " ")
                if icon:
                    w.addItem(QIcon(icon), label, c)
                else:
                    w.addItem(label, c)
            kind = "choice"
        elif colour is not None:
            w, kind = _ColourEdit(colour, tip), "colour"
        elif origin is typing.Literal or (isinstance(ann, type) and issubclass(ann, enum.Enum)):
            choices = list(typing.get_args(ann)) if origin is typing.Literal else [m.value for m in ann]
            w = QComboBox()
            if optional:
                w.addItem("(none)", None)
            for c in choices:
                w.addItem(str(c), c)
            kind = "choice"
        elif ann is bool:
            w, kind = QCheckBox(), "bool"
        elif ann in (int, float) and not optional:
            lo, hi = _bounds(field)
            if ann is int:
                w = QSpinBox()
                w.setRange(int(lo if lo is not None else -(2**31) + 1), int(hi if hi is not None else 2**31 - 1))
                kind = "int"
            else:
                w = QDoubleSpinBox()
                ref = [abs(v) for v in (lo, hi, field.default) if isinstance(v, (int, float)) and v]
                small = min(ref) if ref else 1.0
                # At least 3 decimals, more when the range or default is small.
                w.setDecimals(max(3, min(6, 3 - int(math.floor(math.log10(small))))))
                w.setRange(float(lo if lo is not None else -1e9), float(hi if hi is not None else 1e9))
                span = (hi - lo) if lo is not None and hi is not None else 10.0
                w.setSingleStep(float(10 ** math.floor(math.log10(max(span, 1e-6) / 100))))
                kind = "float"
        elif _is_path(name, ann):
            w, kind = _PathEdit("", tip), "path"
        else:
            w, kind = QLineEdit(), "text"
        w.setToolTip(tip)
        return kind, w, optional

    def set_values(self, values: dict) -> None:
        for name, value in values.items():
            if name not in self.widgets:
                continue
            kind, w, optional = self.widgets[name]
            if kind == "choice":
                i = w.findData(value)
                if i < 0:
                    i = w.findText(str(value))
                marker = field_marker(self.engine_cls.Params.model_fields[name], Choices)
                if i < 0 and marker is not None:
                    try:
                        i = w.findData(marker.check(value))
                    except ValueError:
                        pass
                if i >= 0:
                    w.setCurrentIndex(i)
            elif kind == "colour":
                w.setText("" if value is None else str(value))
            elif kind == "bool":
                w.setChecked(bool(value))
            elif kind == "int":
                w.setValue(int(value))
            elif kind == "float":
                w.setDecimals(max(w.decimals(), _decimals_needed(float(value))))
                w.setValue(float(value))
            elif kind == "path":
                w.edit.setText("" if value is None else str(value))
            else:
                w.setText("" if value is None else (value if isinstance(value, str) else _to_text(value)))

    def values(self) -> dict:
        out = {}
        for name, (kind, w, optional) in self.widgets.items():
            if kind == "choice":
                out[name] = w.currentData()
            elif kind == "colour":
                out[name] = w.text()
            elif kind == "bool":
                out[name] = w.isChecked()
            elif kind in ("int", "float"):
                out[name] = w.value()
            else:
                text = (w.edit.text() if kind == "path" else w.text()).strip()
                if text == "" and (optional or self.engine_cls.Params.model_fields[name].default is None):
                    out[name] = None
                else:
                    out[name] = _from_text(text, self.engine_cls.Params.model_fields[name])
        return out


def _decimals_needed(value: float, most: int = 8) -> int:
    """Decimals that show ``value`` exactly (up to ``most``): 0.001 needs 3."""
    for d in range(most + 1):
        if abs(round(value, d) - value) <= 1e-12 * max(1.0, abs(value)):
            return d
    return most


def _to_text(value) -> str:
    import json

    return json.dumps(value)


def _from_text(text: str, field):
    """Strings for str/Path fields; JSON for lists/tuples/dicts typed in by hand."""
    import json

    ann, _ = _unwrap(field.annotation)
    if ann in (str,) or (isinstance(ann, type) and issubclass(ann, Path)):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


class EnginePanel(QWidget):
    """Engine chooser + generated parameter form + Run button."""

    run_requested = Signal(str)
    engine_changed = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.engines: dict[str, type] = {}
        self.saved_values: dict[str, dict] = {}
        self.onnx_default = ""
        self.form: ParamsForm | None = None
        self.combo = QComboBox()
        self.combo.setToolTip("Engines that accept the selected input")
        self.combo.currentIndexChanged.connect(self._on_engine)
        self.about = QLabel("")
        self.about.setWordWrap(True)
        self.inputs: list | None = None
        self.slots_label = QLabel("")  # "person_video: dance.mp4", one line per input slot
        self.slots_label.setWordWrap(True)
        self.slots_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.slots_label.hide()
        form_host = QWidget()
        self._form_box = QVBoxLayout(form_host)
        self._form_box.setContentsMargins(0, 0, 0, 0)
        self._form_box.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setWidget(form_host)
        self.reset_button = QPushButton("Defaults")
        self.reset_button.setToolTip("Reset the parameters to the engine's defaults")
        self.reset_button.clicked.connect(self.reset_defaults)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip(RUN_TIP)
        self.run_button.clicked.connect(lambda: self.current and self.run_requested.emit(self.current))
        buttons = QHBoxLayout()
        buttons.addWidget(self.reset_button)
        buttons.addStretch(1)
        buttons.addWidget(self.run_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.combo)
        lay.addWidget(self.about)
        lay.addWidget(self.slots_label)
        lay.addWidget(scroll, 1)
        lay.addLayout(buttons)
        self._update_enabled()

    @property
    def current(self) -> str | None:
        return self.combo.currentData()

    def set_engines(self, engines: dict[str, type], inputs: list | None = None) -> None:
        """Offer the engines that accept all of ``inputs`` (every engine when None)."""
        self._remember()
        self.engines = dict(engines)
        self.inputs = list(inputs) if inputs is not None else None
        keep = self.current
        names = [
            n
            for n, e in sorted(engines.items(), key=lambda kv: kv[1].title or kv[0])
            if inputs is None or (all(isinstance(o, e.accepts) for o in inputs) and len(inputs) <= e.max_inputs)
        ]
        self.combo.blockSignals(True)
        self.combo.clear()
        for n in names:
            self.combo.addItem(engines[n].title or n, n)
        if keep in names:
            self.combo.setCurrentIndex(names.index(keep))
        self.combo.blockSignals(False)
        if not engines:
            self.about.setText("No engines are installed.")
        elif not names:
            kinds = ", ".join(sorted({type(o).__name__ for o in inputs or []}))
            self.about.setText(
                f"No engine takes this selection ({kinds}). Select one input, "
                f"or inputs an engine takes together (e.g. a video and a garment photo)."
            )
        self._build_form()

    def select(self, name: str) -> bool:
        i = self.combo.findData(name)
        if i >= 0:
            self.combo.setCurrentIndex(i)
        return i >= 0

    def _remember(self) -> None:
        if self.form is not None:
            self.saved_values[self.form.engine_cls.name] = self.form.values()

    def _on_engine(self, _index: int) -> None:
        self._remember()
        self._build_form()
        if self.current:
            self.engine_changed.emit(self.current)

    def _build_form(self) -> None:
        if self.form is not None:
            # Hide and unparent at once: deleteLater alone leaves the old form drawn
            # under the new one until the event loop gets to it.
            self.form.hide()
            self.form.setParent(None)
            self.form.deleteLater()
            self.form = None
        name = self.current
        if name and name in self.engines:
            cls = self.engines[name]
            self.about.setText(cls.description or (cls.__doc__ or "").strip().split("\n")[0])
            self.form = ParamsForm(cls, self.saved_values.get(name))
            self._form_box.insertWidget(0, self.form)
            self.set_onnx_default(self.onnx_default)
        self._update_enabled()

    def set_onnx_default(self, path: str) -> None:
        """The ONNX model from Settings, used when an ``onnx_model`` field is left empty."""
        self.onnx_default = path or ""
        if self.form is None:
            return
        for key in ONNX_FIELD_NAMES:
            if key in self.form.widgets and self.form.widgets[key][0] == "path":
                edit = self.form.widgets[key][1].edit
                base = self.form.engine_cls.Params.model_fields[key].description or ""
                edit.setToolTip(
                    f"{base}\nLeft empty: "
                    + (
                        f"the model chosen in Settings ({path})"
                        if path
                        else "none chosen yet (Settings > ONNX depth model)"
                    )
                )

    def _show_slots(self) -> str | None:
        """Label the selected inputs with the current engine's slots (``person_video:
        dance.mp4``); returns why they cannot be bound (None when they can, or when the
        engine has no slots)."""
        cls = self.engines.get(self.current) if self.current else None
        slots = getattr(cls, "slots", None) or ()
        if not slots:
            self.slots_label.hide()
            return None
        given = self.inputs or []
        try:
            bound, _left = assign_slots(cls, given)
        except EngineError as e:
            bound, problem = {s.name: None for s in slots}, str(e)
        else:
            try:
                bind_inputs(cls, given)
                problem = None
            except EngineError as e:
                problem = str(e)
        lines = []
        for s in slots:
            obj = bound.get(s.name)
            if obj is not None:
                lines.append(f"{s.name}: {input_label(obj)}")
            else:
                lines.append(f"{s.name}: {'(optional) ' if s.optional else ''}none selected ({s.kinds})")
        self.slots_label.setText("\n".join(lines))
        self.slots_label.setToolTip(
            "\n".join(f"{s.name}: {s.description or s.kinds}" for s in slots)
            + "\nSelect the inputs together (Ctrl+click) in the Inputs panel; each goes to the slot of its type."
        )
        self.slots_label.show()
        return problem

    def _update_enabled(self) -> None:
        problem = self._show_slots() if self.form is not None else None
        self.run_button.setEnabled(self.form is not None and problem is None)
        self.run_button.setToolTip(
            RUN_TIP if problem is None else f"{problem} Select it in the Inputs panel (Ctrl+click to add it)."
        )
        self.reset_button.setEnabled(self.form is not None)

    def reset_defaults(self) -> None:
        if self.form is not None:
            self.form.set_values(self.form.defaults())

    def values(self) -> dict:
        """Raw values of the current form (JSON-friendly)."""
        return self.form.values() if self.form is not None else {}

    def all_values(self) -> dict[str, dict]:
        self._remember()
        return {k: dict(v) for k, v in self.saved_values.items()}

    def set_all_values(self, values: dict[str, dict]) -> None:
        self.saved_values = {k: dict(v) for k, v in values.items()}
        if self.form is not None and self.form.engine_cls.name in self.saved_values:
            self.form.set_values(self.saved_values[self.form.engine_cls.name])

    def params(self):
        """The current values validated into the engine's Params (EngineError if bad)."""
        if self.form is None:
            raise EngineError("Choose an engine first.")
        values = self.values()
        for key in ONNX_FIELD_NAMES:  # Settings > ONNX depth model, unless typed here
            if key in values and not values[key] and self.onnx_default:
                values[key] = self.onnx_default
        return make_params(self.form.engine_cls, values)
