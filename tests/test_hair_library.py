"""The hairstyle library on the canonical head: every style generates, is distinct from
every other one and looks like its name; bad recipes and names are refused clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.api import EngineError
from engines.hair import apply_hair, fit_style, list_styles
from engines.hair.generate import HEAD_RADII
from engines.hair.head import canonical_avatar
from engines.hair.match import iou, scaled_camera, style_silhouettes
from engines.hair.recipe import get_recipe, load_recipe_file, recipes, styles_dir

EXPECTED = {
    "buzz_cut",
    "short_crop",
    "pixie",
    "side_part",
    "slicked_back",
    "bob",
    "shoulder_straight",
    "long_straight",
    "long_wavy",
    "curly",
    "afro",
    "ponytail",
    "bun",
    "braid",
    "bangs",
    "mohawk",
}


@pytest.fixture(scope="module")
def avatar():
    return canonical_avatar((384, 384))


@pytest.fixture(scope="module")
def fitted(avatar):
    return {s: fit_style(avatar, s) for s in list_styles() if not recipes()[s].is_bald}


def test_library_has_the_named_styles_and_bald():
    names = set(list_styles())
    assert EXPECTED <= names
    assert "bald" in names and recipes()["bald"].is_bald
    assert len(names - {"bald"}) >= 16
    labels = [recipes()[n].label for n in names]
    assert len(set(labels)) == len(labels)
    for n in EXPECTED:
        assert (styles_dir() / "thumbs" / f"{n}.png").exists(), f"no thumbnail for {n}"


def test_every_style_generates_enough_strands(fitted):
    for s, st in fitted.items():
        S, P, _ = st.points.shape
        assert S >= 5000, (s, S)
        assert 16 <= P <= 48, (s, P)
        assert np.isfinite(st.points).all(), s
        assert st.colors.shape == (S, 3)
        seg = np.linalg.norm(np.diff(st.points, axis=1), axis=2)
        assert seg.max() < 0.08, (s, seg.max())  # no strand jumps across the head


def test_front_silhouettes_are_pairwise_distinct(avatar):
    cam = scaled_camera(avatar.camera, 160)
    sil = style_silhouettes(avatar, cam, sorted(EXPECTED))
    worst = max((iou(sil[a], sil[b]), a, b) for a in sil for b in sil if a < b)
    assert worst[0] < 0.9, worst
    for s, m in sil.items():
        assert m.sum() > 100, s


def _below_chin(st):
    return -st.points[..., 1].min()


def test_styles_look_like_their_names(fitted):
    top = HEAD_RADII[1]
    low = {s: -st.points[..., 1].min() for s, st in fitted.items()}  # how far below the ear plane
    # Long hair reaches far below the chin (about 0.12 m), short styles stay above it.
    assert low["long_straight"] > 0.3 and low["long_wavy"] > 0.25
    assert low["long_straight"] > low["shoulder_straight"] > low["bob"]
    for s in ("buzz_cut", "short_crop", "pixie", "side_part", "bun", "mohawk"):
        assert low[s] < 0.12, (s, low[s])
    # Buzz cut: every point within 1.5 cm of the root it grew from.
    b = fitted["buzz_cut"].points
    assert np.linalg.norm(b - b[:, :1], axis=2).max() < 0.015
    # Afro: a halo much wider than the head; mohawk: a narrow, tall crest.
    afro_w = np.ptp(fitted["afro"].points[..., 0])
    assert afro_w > 2.0 * HEAD_RADII[0] * 1.4
    m = fitted["mohawk"].points.reshape(-1, 3)
    crest = m[m[:, 1] > top + 0.03]
    lo, hi = np.percentile(crest[:, 0], [2, 98])
    assert len(crest) > 1000 and hi - lo < 0.06, (len(crest), hi - lo)
    # Bun: a compact mass above the crown; ponytail and braid: a tail behind the head.
    bun = fitted["bun"].points.reshape(-1, 3)
    assert bun[:, 1].max() > top + 0.02
    for s in ("ponytail", "braid"):
        tail = fitted[s].points[:, -1]
        assert np.median(tail[:, 2]) < -HEAD_RADII[2], s
        assert np.median(tail[:, 1]) < -0.1, s
    braid_tail = fitted["braid"].points[:, -8:].reshape(-1, 3)
    assert np.ptp(braid_tail[:, 0]) < 0.1
    # Bangs: the fringe covers the forehead down to just above the brows, not the eyes.
    f = fitted["bangs"].points.reshape(-1, 3)
    forehead = f[(np.abs(f[:, 0]) < 0.03) & (f[:, 2] > 0.05)]
    assert len(forehead) > 500 and 0.015 < forehead[:, 1].min() < 0.05


def test_no_style_crosses_the_face_and_short_cuts_lie_on_the_head(avatar, fitted):
    """Issue 15 on the canonical head: no strand in front of the face plane between brows
    and chin (long styles crossed it in profile), and short cuts stay close to the skin
    (short crop and side part stuck out 4.0-5.3 cm, like a brim)."""
    from tests.hair_shape import (
        SHORT_CUT_REACH,
        in_front_of_face,
        is_short_cut,
        skin_distance,
    )

    assert len(fitted) == 16 and {"short_crop", "side_part", "pixie", "buzz_cut"} <= {
        s for s in fitted if is_short_cut(recipes()[s])
    }
    for s, st in fitted.items():
        front = in_front_of_face(avatar.mesh, st.points)
        assert front.sum() == 0, (s, int(front.sum()))
        if is_short_cut(recipes()[s]):
            assert skin_distance(avatar.mesh, st.points).max() < SHORT_CUT_REACH, s


def test_unknown_style_bad_color_and_auto_without_photo_are_refused(avatar):
    with pytest.raises(EngineError, match="Unknown hairstyle 'beehive'"):
        apply_hair(avatar, "beehive", "#000000")
    with pytest.raises(EngineError, match="not understood"):
        apply_hair(avatar, "bob", "sparkly")
    with pytest.raises(EngineError, match="needs the portrait"):
        apply_hair(avatar, "auto", "#000000")


def test_broken_recipe_file_names_the_file(tmp_path):
    bad = tmp_path / "wild.json"
    bad.write_text('{"length": {"front": -3}}')
    with pytest.raises(EngineError, match="wild.json.*length.front"):
        load_recipe_file(bad)
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    with pytest.raises(EngineError, match="junk.json"):
        load_recipe_file(junk)


def test_a_new_style_is_one_json_file(tmp_path, avatar):
    from engines.hair.generate import generate
    from engines.hair.head import fit_strands, head_fit

    p = tmp_path / "chin_curls.json"
    p.write_text(
        json.dumps(
            {
                "label": "Chin curls",
                "length": {"front": 0.1, "side": 0.12, "back": 0.12},
                "curl": {"kind": "helix", "radius": 0.01, "frequency": 30},
            }
        )
    )
    r = load_recipe_file(p)
    assert r.name == "chin_curls" and r.label == "Chin curls" and r.strands == 6000
    pts, keep = fit_strands(generate(r), head_fit(avatar.mesh, avatar.scalp, avatar.camera))
    assert keep.sum() >= 5000 and pts.shape[1] == r.points


def test_apply_hair_sets_params_colours_and_bald(avatar):
    a = apply_hair(avatar, "Long Straight", "#8a4b2a")
    assert a.params["hairstyle"] == "long_straight" and a.params["hair_color"] == "#8a4b2a"
    mean = a.hair.colors.astype(float).mean(0)
    assert np.abs(mean - [0x8A, 0x4B, 0x2A]).max() < 20
    assert a.hair.colors.astype(float).std(0).max() > 3  # strands vary
    assert avatar.hair is None  # the input is untouched
    b = apply_hair(a, "none", "#000000")
    assert b.hair is None and b.params["hairstyle"] == "none"
    # The scalp under the hair is darkened towards the hair colour, and bald restores it.
    sc = avatar.scalp
    assert a.mesh.vertex_colors[sc].astype(float).mean() < avatar.mesh.vertex_colors[sc].astype(float).mean() - 40
    np.testing.assert_array_equal(b.mesh.vertex_colors, avatar.mesh.vertex_colors)
    assert get_recipe("bald").is_bald
