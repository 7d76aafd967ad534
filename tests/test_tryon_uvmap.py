"""Garment texture coordinates carried by the flow (engines/tryon/uvmap.py)."""

import numpy as np
import pytest

from engines.tryon import tps as T
from engines.tryon.composite import warp_garment
from engines.tryon.garment import make_sample_garment, prepare_garment
from engines.tryon.uvmap import MapCarrier, fitted_maps, prefiltered, render_maps


@pytest.fixture(scope="module")
def garment():
    return prepare_garment(make_sample_garment(120, 130, pattern="stripes", period=12))


def placed(garment, dx=0.0, dy=0.0):
    """The garment's torso grid scaled 1.2x and moved by (dx, dy), sleeves by the same affine."""
    src = T.control_grid(garment.parts["torso"], 5)
    A = np.array([[1.2, 0.0, 20.0 + dx], [0.0, 1.2, 10.0 + dy]])
    warp = T.GarmentWarp(src, src @ A[:, :2].T + A[:, 2], 5)
    return warp, [A, A]


def test_rendered_maps_match_the_direct_warp(garment):
    warp, sleeves = placed(garment)
    rgb, mask = render_maps(garment, fitted_maps(garment, warp, sleeves, (200, 190)))
    rgb0, mask0 = warp_garment(garment, warp, (200, 190), sleeves)
    assert mask.sum() > 5000
    assert np.abs(mask - mask0).mean() < 0.01
    inside = (mask > 0.99) & (mask0 > 0.99)
    assert np.abs(rgb - rgb0)[inside].mean() < 2.0


def test_maps_follow_the_flow_and_blend_with_the_fit(garment):
    carrier = MapCarrier(weight=0.8, tol=8.0)
    box = (0, 0, 190, 200)
    warp, sleeves = placed(garment)
    first = fitted_maps(garment, warp, sleeves, (200, 190))
    carrier(first, None, None, box)
    # The body moved 3 px right; the fit (noisy landmarks) says 5 px.
    back = np.zeros((200, 190, 2), np.float32)
    back[..., 0] = -3.0
    valid = np.ones((200, 190), np.float32)
    warp5, sleeves5 = placed(garment, 5.0)
    fit = fitted_maps(garment, warp5, sleeves5, (200, 190))
    out = carrier(fit, back, valid, box)
    # Carried: the pattern 3 px right, so u(x) = u0(x - 3); fit: u0(x - 5).
    u = out["torso"][60:140, 60:130, 0]
    u_carried = first["torso"][60:140, 57:127, 0]
    u_fit = fit["torso"][60:140, 60:130, 0]
    expected = u_fit + 0.8 * (u_carried - u_fit)
    assert np.abs(u - expected).max() < 0.05
    assert carrier.last_carried > 0.5


def test_maps_that_parted_are_not_carried(garment):
    carrier = MapCarrier(weight=0.8, tol=4.0)
    box = (0, 0, 190, 200)
    warp, sleeves = placed(garment)
    carrier(fitted_maps(garment, warp, sleeves, (200, 190)), None, None, box)
    far, far_sleeves = placed(garment, 30.0)  # 30 px away: ~25 garment px, far over 2 tol
    fit = fitted_maps(garment, far, far_sleeves, (200, 190))
    out = carrier(fit, np.zeros((200, 190, 2), np.float32), np.ones((200, 190), np.float32), box)
    assert np.abs(out["torso"] - fit["torso"]).max() < 1e-3
    # Occluded (flow check failed) pixels use the fit alone too.
    carrier = MapCarrier(weight=0.8, tol=40.0)
    carrier(fitted_maps(garment, warp, sleeves, (200, 190)), None, None, box)
    out = carrier(fit, np.zeros((200, 190, 2), np.float32), np.zeros((200, 190), np.float32), box)
    assert np.abs(out["torso"] - fit["torso"]).max() < 1e-3


def test_blending_coordinates_keeps_stripes_sharp_where_colour_blending_smears(garment):
    """Two fits half a stripe period apart: blending maps moves a sharp pattern,
    blending colours (eq. 5 on the layer) averages two patterns into a blur."""
    box = (0, 0, 190, 200)
    warp, sleeves = placed(garment)
    a_maps = fitted_maps(garment, warp, sleeves, (200, 190))
    w2, s2 = placed(garment, 0.0, 14.0)  # about half a cycle (12 px stripes x 1.2)
    b_maps = fitted_maps(garment, w2, s2, (200, 190))
    carrier = MapCarrier(weight=0.5, tol=40.0)
    carrier(a_maps, None, None, box)
    zero, ones = np.zeros((200, 190, 2), np.float32), np.ones((200, 190), np.float32)
    blended = render_maps(garment, carrier(b_maps, zero, ones, box))[0]
    a, b = render_maps(garment, a_maps)[0], render_maps(garment, b_maps)[0]
    colour = 0.5 * a + 0.5 * b
    core = (slice(70, 130), slice(70, 120))
    contrast = lambda img: float(img[core].mean(2).std())  # noqa: E731
    assert contrast(a) > 30
    assert contrast(blended) > 0.8 * contrast(a)
    assert contrast(colour) < 0.6 * contrast(a)


def test_prefiltered_texture_stops_stripes_crawling_under_subpixel_motion(garment):
    """Drawn at 0.6x, a sharp pattern moved by 0.45 px differs from the previous frame
    moved by the same amount (aliasing); the prefiltered texture differs much less and
    keeps its contrast."""
    import cv2

    src = T.control_grid(garment.parts["torso"], 5)
    A = np.array([[0.6, 0.05, 10.0], [-0.12, 0.6, 10.0]])
    d = np.array([0.45, 0.15])
    X, Y = np.meshgrid(np.arange(120, dtype=np.float32), np.arange(120, dtype=np.float32))
    errs, contrast = {}, {}
    for name, tex in (("sharp", garment.rgb), ("prefiltered", prefiltered(garment.rgb, 0.6))):
        a, ma = render_maps(
            garment, fitted_maps(garment, T.GarmentWarp(src, src @ A[:, :2].T + A[:, 2], 5), [], (120, 120)), tex
        )
        b, mb = render_maps(
            garment, fitted_maps(garment, T.GarmentWarp(src, src @ A[:, :2].T + A[:, 2] + d, 5), [], (120, 120)), tex
        )
        moved = cv2.remap(a, X - np.float32(d[0]), Y - np.float32(d[1]), cv2.INTER_LINEAR)
        inside = cv2.erode((np.minimum(ma, mb) > 0.99).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        errs[name] = float(np.abs(b - moved)[inside].mean())
        contrast[name] = float(b[inside].mean(1).std())
    assert errs["prefiltered"] < 0.7 * errs["sharp"]
    assert contrast["prefiltered"] > 0.85 * contrast["sharp"]


def test_control_points_are_smoothed_over_time(garment):
    """The temporal module runs a One Euro filter on the TPS grid targets and the sleeve
    points: landmark jitter of +-2 px shrinks, and the sleeve affine is rebuilt exactly."""
    from engines.tryon.composite import ClassicalGenerator
    from engines.tryon.pipeline import TryOnPipeline

    p = TryOnPipeline(garment, ClassicalGenerator(), 30.0, (320, 240), temporal_weight=0.8)
    try:
        outs = []
        for i in range(30):
            warp, sleeves = placed(garment, 2.0 * (-1) ** i)
            w, s = p._smooth_controls(warp, sleeves, 100.0)
            outs.append((w.dst[:, 0].mean(), s[0][0, 2]))
        late = np.array(outs[10:])
        assert np.ptp(late[:, 0]) < 0.5 * 4.0  # grid: jitter of 4 px peak to peak, halved at least
        assert np.ptp(late[:, 1]) < 0.5 * 4.0  # sleeve translation likewise
        still, still_s = placed(garment, 0.0)
        for _ in range(40):
            w, s = p._smooth_controls(still, still_s, 100.0)
        assert np.abs(w.dst - still.dst).max() < 0.05  # settles on a still pose: no lasting lag
        assert np.abs(s[1] - still_s[1]).max() < 0.05
    finally:
        p.close()
