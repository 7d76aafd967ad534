"""Regularised thin-plate-spline warp (engines/tryon/tps.py)."""

import numpy as np
import pytest

from engines.tryon import tps as T
from engines.tryon.garment import make_sample_garment, prepare_garment

NAMES = [
    "shoulder_left",
    "shoulder_right",
    "neck_left",
    "neck_right",
    "neck_centre",
    "armpit_left",
    "armpit_right",
    "hem_left",
    "hem_right",
]
# Body points the engine produced for frame 10 of carphone (shoulders slanted, hips below
# the frame): a real, non-affine set of targets.
BODY = np.array(
    [[39, 120], [151, 90], [67, 104], [118, 90], [98, 113], [64, 168], [153, 144], [92, 278], [184, 254]], float
)


def garment(pattern="checker"):
    return prepare_garment(make_sample_garment(240, 260, pattern=pattern, period=12))


def test_tps_interpolates_its_centres():
    rng = np.random.default_rng(1)
    c = rng.uniform(0, 100, (12, 2))
    v = c + rng.normal(0, 5, (12, 2))
    assert np.abs(T.TPS(c, v)(c) - v).max() < 1e-6


def test_second_differences_vanish_on_affine_grids_only():
    g = 5
    D = T._second_differences(g)
    X, Y = np.meshgrid(np.arange(g), np.arange(g))
    affine = np.stack([2 * X + 0.5 * Y + 3, -X + Y], -1).reshape(-1, 2).astype(float)
    assert np.abs(D @ affine).max() < 1e-9
    bent = affine.copy()
    bent[12] += [0.7, 0.0]  # the centre node
    assert np.abs(D @ bent).max() > 0.5
    assert D.shape == (2 * g * (g - 2), g * g)


def test_unregularised_warp_hits_the_landmarks():
    g = garment()
    gp = np.array([g.landmarks[k] for k in NAMES])
    w = T.fit_warp(gp, BODY, g.parts["torso"], 5, 0.0)
    assert np.abs(w.forward(gp) - BODY).max() < 1.5


def test_affine_targets_are_fitted_exactly_with_zero_bending():
    g = garment()
    gp = np.array([g.landmarks[k] for k in NAMES])
    A = np.array([[0.6, -0.15], [0.12, 0.55]])
    body = gp @ A.T + [20, 40]
    w = T.fit_warp(gp, body, g.parts["torso"], 6, 5.0)
    assert np.abs(w.forward(gp) - body).max() < 0.5
    dist, slope = T.grid_regularisation_loss(w.dst, 6)
    assert dist < 1e-3 and slope < 1e-4


def test_regularisation_reduces_checkerboard_distortion():
    g = garment()
    gp = np.array([g.landmarks[k] for k in NAMES])
    torso = g.parts["torso"]
    spread, losses = {}, {}
    for s in (0.0, 1.0, 5.0):
        w = T.fit_warp(gp, BODY, torso, 5, s)
        spread[s] = float(np.std(w.jacobian_log_det(torso)))
        losses[s] = T.grid_regularisation_loss(w.dst, 5)
    assert spread[1.0] < 0.7 * spread[0.0]
    assert spread[5.0] < spread[1.0]
    assert losses[1.0][0] < losses[0.0][0] and losses[1.0][1] < losses[0.0][1]


def _cell_area_spread(warp: "T.GarmentWarp", torso: np.ndarray, period: int) -> float:
    """Coefficient of variation of the warped checker cells' areas (cells wholly inside)."""
    import cv2

    h, w = torso.shape
    ys, xs = np.mgrid[0:h, 0:w]
    cell = ((ys // period) * 1000 + xs // period + 1).astype(np.float32)
    cell[torso < 0.5] = 0
    mx, my, _ = warp.backward_maps((700, 500), stride=1)
    warped = cv2.remap(cell, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inside = [
        c for c in np.unique(cell) if c and (torso[cell == c] > 0.5).all() and (cell == c).sum() == period * period
    ]
    areas = np.array([(warped == c).sum() for c in inside], float)
    assert len(areas) >= 20 and areas.min() > 0
    return float(areas.std() / areas.mean())


def test_regularised_warp_keeps_checker_cells_more_even():
    g = garment()
    gp = np.array([g.landmarks[k] for k in NAMES])
    cv = {
        s: _cell_area_spread(T.fit_warp(gp, BODY * 2.0, g.parts["torso"], 5, s), g.parts["torso"], 12)
        for s in (0.0, 1.0)
    }
    assert cv[1.0] < 0.7 * cv[0.0]


def test_backward_maps_invert_the_forward_warp():
    g = garment()
    gp = np.array([g.landmarks[k] for k in NAMES])
    w = T.fit_warp(gp, BODY, g.parts["torso"], 5, 1.0)
    mx, my, (x0, y0) = w.backward_maps((300, 220), stride=4)
    fw = w.forward(np.stack([mx.ravel(), my.ravel()], 1)).reshape(mx.shape + (2,))
    yy, xx = np.mgrid[0 : mx.shape[0], 0 : mx.shape[1]]
    err = np.hypot(fw[..., 0] - xx - x0, fw[..., 1] - yy - y0)
    assert np.median(err) < 0.3


def test_body_size_is_the_torso_implied_width_for_a_person_seen_side_on():
    from engines.tryon.person import PersonFrame

    g = garment()
    pts = np.zeros((33, 2))
    vis = np.ones(33)
    mask = np.ones((400, 400), np.float32)
    for sw, expect in ((60.0, 60.0), (6.0, 87.0 / 1.45)):  # facing us / side-on, hips 87 px lower
        pts[11], pts[12] = (200 + sw / 2, 100), (200 - sw / 2, 100)
        pts[23], pts[24] = (200 + sw / 3, 187), (200 - sw / 3, 187)
        info = T.body_targets(g.landmarks, PersonFrame(pts.copy(), vis, mask))[3]
        assert info["shoulder_width"] == pytest.approx(sw)
        assert info["body_size"] == pytest.approx(max(sw, expect), rel=1e-6)
    vis[[23, 24]] = 0.0  # hips unseen: the shoulders are all there is
    info = T.body_targets(g.landmarks, PersonFrame(pts.copy(), vis, mask))[3]
    assert info["body_size"] == pytest.approx(6.0)
