"""The picker embedded as the Avatar panel does it (``set_avatar(avatar, key)``), drawing
into a real viewport: run under ``xvfb-run -a`` (skipped without an X display)."""

from __future__ import annotations


import numpy as np
import pytest

from tests.conftest import require_viewport_display  # noqa: E402

require_viewport_display()

from engines.hair.head import canonical_avatar  # noqa: E402

pytestmark = pytest.mark.gui


class _Window:
    """The two things the panel looks for on its parent: ``viewport`` and ``runner``."""

    def __init__(self, viewport):
        self.viewport = viewport
        self.runner = None


def _dressable(qtbot, key: str, side: int):
    """A viewport showing a bald canonical avatar under ``key`` and a hair panel driving it,
    before the panel is given the avatar: (viewport, avatar, panel)."""
    from app.hair_panel import HairPanel
    from app.viewport import Viewport

    vp = Viewport()
    vp.resize(side, side)
    vp.show()
    av = canonical_avatar()
    vp.show(av, key)
    panel = HairPanel(None)
    panel._main_window = _Window(vp)
    qtbot.addWidget(panel)
    return vp, av, panel


def test_key_mode_dresses_the_avatar_and_draws_the_hair(qapp, qtbot):
    vp, av, panel = _dressable(qtbot, "a1", 360)
    vp.set_view("front")
    qapp.processEvents()
    bald = vp.screenshot().astype(float)
    panel.set_avatar(av, "a1")
    panel.set_style("afro")
    qapp.processEvents()
    assert av.hair is not None and av.params["hairstyle"] == "afro"  # dressed in place
    assert "a1/hair" in vp.keys()
    vp.set_view("front")
    afro = vp.screenshot().astype(float)
    changed = np.abs(afro - bald).sum(2) > 60
    assert changed.mean() > 0.05  # a big halo of hair appeared
    n_before = len(av.hair.points)
    panel.set_style("buzz_cut")  # same colour: only the hair actor is replaced
    qapp.processEvents()
    assert av.params["hairstyle"] == "buzz_cut" and len(av.hair.points) != 0 and av.hair.points.shape[1] == 16
    assert n_before > 0
    panel.set_style("none")
    qapp.processEvents()
    assert av.hair is None and "a1/hair" not in vp.keys()
    vp.close()


def test_style_switch_reuses_the_actors_and_thins_only_the_display(qapp, qtbot):
    from app.renderers import MAX_SHOWN_STRANDS, shown_strands

    vp, av, panel = _dressable(qtbot, "a2", 320)
    panel.set_avatar(av, "a2")
    head_actor = vp.actor("a2/head")
    panel.set_style("long_straight")  # bald -> hair: the scalp is darkened on the same head actor
    qapp.processEvents()
    assert vp.actor("a2/head") is head_actor
    hair_actor, hair_poly = vp.actor("a2/hair"), vp.polydata("a2/hair")
    n = len(av.hair.points)
    assert n > MAX_SHOWN_STRANDS  # the style is complete on the avatar...
    shown = min(n, MAX_SHOWN_STRANDS)
    assert hair_poly.n_lines == shown and hair_poly.n_points == shown * av.hair.points.shape[1]  # ...thinned on screen
    sel = shown_strands(n)
    np.testing.assert_allclose(hair_poly.points[: av.hair.points.shape[1]], av.hair.points[sel[0]], atol=1e-6)
    np.testing.assert_allclose(hair_poly.points[-1], av.hair.points[sel[-1], -1], atol=1e-6)
    panel.set_style("buzz_cut")  # another style: same actor, same PolyData, new arrays
    qapp.processEvents()
    assert vp.actor("a2/hair") is hair_actor and vp.polydata("a2/hair") is hair_poly
    p = av.hair.points.shape[1]
    assert hair_poly.n_points == min(len(av.hair.points), MAX_SHOWN_STRANDS) * p and p == 16
    assert len(hair_poly.point_data["RGB"]) == hair_poly.n_points
    vp.set_view("front")
    img = vp.screenshot().astype(float)
    assert img.std() > 10  # something is drawn
    vp.close()
