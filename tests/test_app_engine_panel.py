"""The parameter form generated from an engine's pydantic Params."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from app.engine_panel import EnginePanel, ParamsForm
from engines.api import EngineError, make_params
from engines.types import Image, VideoClip

from tests.conftest import FakeEngine

pytestmark = pytest.mark.gui


class RichEngine(FakeEngine):
    name = "rich"
    title = "Rich"

    class Params(BaseModel):
        count: int = Field(7, ge=2, le=40, description="How many")
        ratio: float = Field(0.005, gt=0.0, lt=0.5, description="A small fraction")
        method: Literal["fast", "exact"] = Field("exact", description="Which algorithm")
        enabled: bool = Field(False, description="Switch")
        onnx_model: str = Field("", description="ONNX depth model file")
        out_dir: Path | None = Field(None, description="Where to write")
        seed: int | None = Field(None, description="Random seed, empty for random")
        title_text: str = Field("hello", description="Free text")


def test_widgets_follow_the_field_types(qtbot):
    form = ParamsForm(RichEngine)
    qtbot.addWidget(form)
    kinds = {n: (k, type(w)) for n, (k, w, _o) in form.widgets.items()}
    assert kinds["count"] == ("int", QSpinBox)
    assert kinds["ratio"] == ("float", QDoubleSpinBox)
    assert kinds["method"] == ("choice", QComboBox)
    assert kinds["enabled"] == ("bool", QCheckBox)
    assert kinds["onnx_model"][0] == "path" and kinds["out_dir"][0] == "path"
    assert kinds["title_text"] == ("text", QLineEdit)
    count = form.widgets["count"][1]
    assert (count.minimum(), count.maximum(), count.value()) == (2, 40, 7)
    ratio = form.widgets["ratio"][1]
    assert ratio.maximum() == pytest.approx(0.5) and ratio.value() == pytest.approx(0.005)
    assert ratio.decimals() >= 4  # 0.005 must not display as 0.01
    combo = form.widgets["method"][1]
    assert [combo.itemText(i) for i in range(combo.count())] == ["fast", "exact"]
    assert combo.currentText() == "exact"
    assert count.toolTip() == "How many" and combo.toolTip() == "Which algorithm"


def test_values_round_trip_and_validate(qtbot):
    form = ParamsForm(RichEngine)
    qtbot.addWidget(form)
    form.set_values({"count": 12, "method": "fast", "enabled": True, "seed": 5, "out_dir": "/tmp/x"})
    v = form.values()
    assert v["count"] == 12 and v["method"] == "fast" and v["enabled"] is True
    assert v["seed"] == 5 and v["out_dir"] == "/tmp/x"
    form.set_values({"seed": None, "out_dir": None})
    v = form.values()
    assert v["seed"] is None and v["out_dir"] is None
    params = RichEngine.Params(**v)
    assert params.count == 12
    # Spin boxes clamp to the field's range: 99 is shown (and returned) as 40.
    form.set_values({"count": 99})
    assert form.values()["count"] == 40


def test_panel_filters_engines_and_fills_onnx_from_settings(qtbot, fake_engine):
    panel = EnginePanel()
    qtbot.addWidget(panel)

    class VideoOnly(FakeEngine):
        name = "video-only"
        title = "Video only"
        accepts = (VideoClip,)

    engines = {"fake": FakeEngine, "rich": RichEngine, "video-only": VideoOnly}
    import numpy as np

    panel.set_engines(engines, [Image(np.zeros((2, 2, 3), np.uint8))])
    names = [panel.combo.itemData(i) for i in range(panel.combo.count())]
    assert sorted(names) == ["fake", "rich"]
    panel.set_engines(engines, [Image(np.zeros((2, 2, 3), np.uint8))] * 2)  # max_inputs 1
    assert panel.combo.count() == 0 and "No engine takes this selection" in panel.about.text()
    panel.set_engines(engines, [Image(np.zeros((2, 2, 3), np.uint8))])
    assert panel.select("rich")
    panel.onnx_default = "/models/depth_anything_v2.onnx"
    assert panel.params().onnx_model == "/models/depth_anything_v2.onnx"
    panel.form.set_values({"onnx_model": "/mine.onnx"})
    assert panel.params().onnx_model == "/mine.onnx"


def test_bad_typed_value_is_an_engine_error(qtbot):
    panel = EnginePanel()
    qtbot.addWidget(panel)
    panel.set_engines({"rich": RichEngine})
    panel.form.widgets["seed"][1].setText("twelve")
    with pytest.raises(EngineError, match="seed"):
        panel.params()


def test_values_survive_switching_engines(qtbot, fake_engine):
    panel = EnginePanel()
    qtbot.addWidget(panel)
    panel.set_engines({"fake": FakeEngine, "rich": RichEngine})
    panel.select("rich")
    panel.form.set_values({"count": 33})
    panel.select("fake")
    panel.form.set_values({"size": 4.0})
    panel.select("rich")
    assert panel.values()["count"] == 33
    assert panel.all_values()["fake"]["size"] == 4.0
    panel.reset_defaults()
    assert panel.values()["count"] == 7


def test_small_float_values_are_not_rounded_away(qtbot):
    """A spin box with too few decimals would turn 0.001 into 0 (a real bug once)."""
    form = ParamsForm(FakeEngine)  # delay: 0..10, default 0
    qtbot.addWidget(form)
    assert form.widgets["delay"][1].decimals() >= 3
    form.set_values({"delay": 0.001})
    assert form.values()["delay"] == pytest.approx(0.001)
    form.set_values({"delay": 0.00025})
    assert form.values()["delay"] == pytest.approx(0.00025)


def test_avatar_hairstyle_is_a_drop_down_with_thumbnails_and_colour_a_picker(qtbot):
    """Hairstyle and hair colour are choices, not text boxes: every library style (with
    its thumbnail), the presets with swatches, a custom #rrggbb kept; values round trip."""
    from engines.avatar.engine import AvatarEngine, hairstyle_choices
    from engines.hair.color import PRESETS
    from engines.hair.recipe import list_styles

    form = ParamsForm(AvatarEngine)
    qtbot.addWidget(form)
    kind, combo, _ = form.widgets["hairstyle"]
    assert kind == "choice" and isinstance(combo, QComboBox)
    items = [combo.itemData(i) for i in range(combo.count())]
    assert items == hairstyle_choices()
    assert set(list_styles()) - {"bald"} <= set(items) and {"none", "auto"} <= set(items)
    styles = [i for i in range(combo.count()) if combo.itemData(i) not in ("none", "auto")]
    assert len(styles) == len(list_styles()) - 1 >= 16 and all(not combo.itemIcon(i).isNull() for i in styles)
    kind, colour, _ = form.widgets["hair_color"]
    assert kind == "colour"
    names = [colour.combo.itemData(i) for i in range(colour.combo.count())]
    assert names[0] == "auto" and set(PRESETS) <= set(names)
    form.set_values({"hairstyle": "Short Crop", "hair_color": "#A0B1C2"})
    v = form.values()
    assert v["hairstyle"] == "short_crop" and v["hair_color"] == "#a0b1c2"
    form.set_values({"hair_color": "blonde"})
    assert form.values()["hair_color"] == "blonde"
    p = make_params(AvatarEngine, form.values())
    assert p.hairstyle == "short_crop" and p.hair_color == "blonde"


def test_unknown_choice_is_refused_when_params_are_made():
    """A value outside the list fails at make_params (before any run), naming the choices."""
    from engines.avatar.engine import AvatarEngine

    with pytest.raises(EngineError, match="curly hair.*not one of.*short_crop"):
        make_params(AvatarEngine, {"hairstyle": "curly hair"})
    with pytest.raises(EngineError, match="not a colour"):
        make_params(AvatarEngine, {"hair_color": "reddish"})
    assert make_params(AvatarEngine, {"hairstyle": "long-wavy"}).hairstyle == "long_wavy"
