"""The avatar command line with hair: ``--set hairstyle=auto --json`` reports the chosen
style, its IoU and the top three; ``hair_color`` is ``auto`` by default (measured from the
photo) and an explicit ``#rrggbb`` is kept."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from app import cli as main
from engines.hair import DEFAULT_COLOR, apply_hair, list_styles
from engines.hair.color import parse_color

DATA = Path(__file__).parent / "data"
HEX = re.compile(r"^#[0-9a-f]{6}$")


def _run_json(capsys, tmp_path, *sets: str) -> dict:
    out = tmp_path / "avatar.glb"
    args = ["run", "avatar", "--input", str(DATA / "astronaut.png"), "--out", str(out), "--json"]
    for s in sets:
        args += ["--set", s]
    assert main.main(args) == 0
    assert out.stat().st_size > 100_000
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_auto_hairstyle_reports_style_iou_top_three_and_photo_colour(capsys, tmp_path):
    m = _run_json(capsys, tmp_path, "hairstyle=auto")["metrics"]
    top = m["hair_match"]
    assert len(top) == 3 and all(t["style"] in list_styles() for t in top)
    ious = [t["iou"] for t in top]
    assert ious == sorted(ious, reverse=True) and 0.3 < ious[0] <= 1.0
    assert m["hairstyle"] == top[0]["style"] and m["hair_iou"] == pytest.approx(ious[0])
    # The astronaut's hair is short: the matcher must not dress her in a long style.
    assert m["hairstyle"] not in ("long_straight", "long_wavy", "shoulder_straight", "braid")
    assert m["hair_strands"] >= 5000
    # hair_color defaulted to auto: measured from the photo's hair, which is brown, not black or grey.
    assert m["hair_color_source"] == "photo" and HEX.match(m["hair_color"])
    assert m["hair_color"] == m["hair_photo"]["color"]
    r, g, b = (int(v) for v in parse_color(m["hair_color"]))
    assert r > b + 15 and 40 < r < 200
    assert m["hair_photo"]["hair_pixels"] > 1000


def test_named_style_keeps_an_explicit_colour(capsys, tmp_path):
    m = _run_json(capsys, tmp_path, "hairstyle=bob", "hair_color=#112233")["metrics"]
    assert m["hairstyle"] == "bob" and m["hair_color"] == "#112233"
    assert "hair_match" not in m and "hair_color_source" not in m


def test_auto_colour_without_a_photo_is_a_dark_brown():
    from engines.hair.head import canonical_avatar

    a = apply_hair(canonical_avatar(), "pixie", "auto")
    assert a.params["hair_color"] == DEFAULT_COLOR and a.params["hair_color_source"] == "default"
    assert np.abs(a.hair.colors.astype(float).mean(0) - parse_color(DEFAULT_COLOR)).max() < 20


def test_bad_colour_is_an_error_naming_the_value(capsys, tmp_path):
    args = [
        "run",
        "avatar",
        "--input",
        str(DATA / "astronaut.png"),
        "--out",
        str(tmp_path / "a.glb"),
        "--set",
        "hairstyle=bob",
        "--set",
        "hair_color=#12zz33",
    ]
    assert main.main(args) == 2
    assert "#12zz33" in capsys.readouterr().err
