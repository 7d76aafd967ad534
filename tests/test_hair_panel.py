"""The hairstyle picker (widget only, runs offscreen)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engines.hair.head import canonical_avatar
from engines.hair.recipe import list_styles


@pytest.fixture
def panel(qtbot):
    from app.hair_panel import HairPanel

    p = HairPanel()
    qtbot.addWidget(p)
    return p


def test_grid_lists_none_auto_and_every_style_with_a_thumbnail(panel):
    keys = panel.styles()
    assert keys[:2] == ["none", "auto"]
    assert set(keys[2:]) == {s for s in list_styles() if s != "bald"}
    for i in range(panel.grid.count()):
        it = panel.grid.item(i)
        assert it.text()
        assert not it.icon().isNull(), it.text()  # "Auto (photo)" too (issue 15)


def test_auto_tile_thumbnail_is_its_own_picture():
    """The Auto tile shows a portrait card and a head with a matched-hair silhouette in
    the accent colour: neither blank nor a copy of another tile."""
    import cv2

    from engines.hair.recipe import styles_dir
    from engines.hair.thumbs import AUTO_ACCENT, THUMB_SIZE

    thumbs = styles_dir() / "thumbs"
    auto = cv2.imread(str(thumbs / "auto.png"))[..., ::-1].astype(int)
    assert auto.shape == (THUMB_SIZE, 2 * THUMB_SIZE, 3)
    head = auto[:, THUMB_SIZE:]
    assert AUTO_ACCENT[2] - AUTO_ACCENT[0] > 100  # a blue: no hair or skin colour
    accent = head[..., 2] - head[..., 0] > 60
    assert 0.03 < accent.mean() < 0.5  # the matched silhouette laid over the head
    for other in ("bald", *[s for s in list_styles() if s != "bald"]):
        o = cv2.imread(str(thumbs / f"{other}.png"))[..., ::-1].astype(int)
        assert np.abs(o - auto).mean() > 10, other


def test_clicking_a_style_emits_and_dresses_the_avatar(panel, qtbot):
    got = []
    av = canonical_avatar()
    panel.set_avatar(av, got.append)
    with qtbot.waitSignal(panel.style_changed) as sig:
        panel.set_style("bob")
    assert sig.args == ["bob", panel.color]
    assert got and got[-1].hair is not None and got[-1].params["hairstyle"] == "bob"
    n = len(got[-1].hair.points)
    # A preset recolours the same style.
    with qtbot.waitSignal(panel.style_changed) as sig:
        panel.preset_buttons["platinum"].click()
    assert sig.args[0] == "bob" and sig.args[1] == "#e2d6bb"
    assert len(got[-1].hair.points) == n
    assert got[-1].hair.colors.astype(float).mean() > 150
    # None removes the hair.
    panel.set_style("none")
    assert got[-1].hair is None and got[-1].params["hairstyle"] == "none"


def test_auto_without_a_photo_reports_instead_of_crashing(panel, qtbot):
    av = canonical_avatar()
    panel.set_avatar(av, lambda a: None)
    with qtbot.waitSignal(panel.failed) as sig:
        panel.set_style("auto")
    assert "portrait" in sig.args[0]
    assert "portrait" in panel.match_label.text()


def test_set_avatar_selects_its_style_and_shows_matches(panel):
    av = canonical_avatar()
    av.params.update(
        {
            "hairstyle": "afro",
            "hair_color": "#123456",
            "hair_match": [
                {"style": "afro", "iou": 0.71},
                {"style": "curly", "iou": 0.6},
                {"style": "bob", "iou": 0.5},
            ],
        }
    )
    panel.set_avatar(av)
    assert panel.style == "afro" and panel.color == "#123456"
    assert panel.grid.currentItem().data(0x0100) == "afro"
    assert "Afro (0.71)" in panel.match_label.text()


def test_uncached_fits_run_as_jobs_and_stale_results_are_dropped(panel, qtbot):
    from app.jobs import JobRunner

    runner = JobRunner(max_threads=1)
    got = []
    av = canonical_avatar((320, 320))
    # A head no other test has analysed (the fit cache is keyed by the head's geometry).
    av.mesh = dataclasses.replace(av.mesh, vertices=av.mesh.vertices * np.float32(1.013))
    panel.set_runner(runner)
    panel.set_avatar(av, got.append)
    panel.set_style("curly")  # slow: goes to the pool
    assert "Fitting" in panel.match_label.text()
    panel.set_style("braid")  # the user changes their mind before curly is done
    qtbot.waitUntil(lambda: runner.wait(0) and len(got) >= 1, timeout=30000)
    qtbot.wait(50)
    assert [a.params["hairstyle"] for a in got] == ["braid"]
    assert panel.match_label.text() == ""
    runner.shutdown()


def test_colour_does_not_carry_over_to_the_next_avatar(panel):
    """Auto's measured colour belongs to that avatar: the next one (bald, or made without
    hair) starts from the default colour, one wearing hair shows its own."""
    from engines.hair import DEFAULT_COLOR
    from engines.hair.color import parse_color, to_hex

    a = canonical_avatar()
    a.params.update({"hairstyle": "bob", "hair_color": "#c9a469", "hair_color_source": "photo"})
    panel.set_avatar(a, lambda new: None)
    assert panel.color == "#c9a469"
    b = canonical_avatar()
    b.params.update({"hairstyle": "none"})
    panel.set_avatar(b, lambda new: None)
    assert panel.color == to_hex(parse_color(DEFAULT_COLOR))
    c = canonical_avatar()
    c.params.update({"hairstyle": "pixie", "hair_color": "#372723"})
    panel.set_avatar(c, lambda new: None)
    assert panel.color == "#372723"
