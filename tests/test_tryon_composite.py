"""Compositing the garment (engines/tryon/composite.py) on synthetic people."""

import numpy as np

from engines.tryon import person as P
from engines.tryon.composite import ClassicalGenerator, GarmentLayer, composite, occluders, shading_ratio
from engines.tryon.person import PersonFrame

H, W = 200, 160


def person(forearm_in_front=True) -> PersonFrame:
    pts = np.zeros((33, 2))
    vis = np.zeros(33)
    pts[P.R_SHOULDER], pts[P.L_SHOULDER] = (40, 70), (120, 70)
    pts[P.NOSE], pts[P.MOUTH_L], pts[P.MOUTH_R] = (80, 35), (86, 45), (74, 45)
    pts[P.L_EAR], pts[P.R_EAR] = (100, 30), (60, 30)
    pts[P.R_ELBOW], pts[P.R_WRIST], pts[P.R_INDEX] = (35, 130), (110, 140), (125, 138)
    vis[[P.R_SHOULDER, P.L_SHOULDER, P.NOSE, P.MOUTH_L, P.MOUTH_R, P.L_EAR, P.R_EAR]] = 1.0
    if forearm_in_front:
        vis[[P.R_ELBOW, P.R_WRIST, P.R_INDEX]] = 1.0
    mask = np.zeros((H, W), np.float32)
    mask[60:, 25:135] = 1.0
    mask[10:60, 55:105] = 1.0
    return PersonFrame(pts, vis, mask)


def test_head_and_visible_forearm_are_in_front():
    occ = occluders(person(), (H, W))
    assert occ[35, 80] > 0.9 and occ[50, 80] > 0.5  # face, chin
    assert occ[136, 70] > 0.9  # middle of the forearm
    assert occ[139, 118] > 0.5  # hand
    assert occ[100, 80] == 0 and occ[180, 80] == 0  # chest and belly stay covered
    hidden = occluders(person(forearm_in_front=False), (H, W))
    assert hidden[136, 70] == 0  # an arm the pose cannot see is not cut out


def test_classical_generator_limits_the_garment_to_the_body_with_soft_edges():
    warped_rgb = np.full((H, W, 3), (200, 30, 40), np.float32)
    warped_mask = np.zeros((H, W), np.float32)
    warped_mask[55:, 10:150] = 1.0  # wider than the body
    frame = np.full((H, W, 3), 90, np.uint8)
    layer = ClassicalGenerator(shading=0.0, feather=1.2).render(frame, person(), warped_rgb, warped_mask)
    a = layer.alpha
    assert a[100, 80] > 0.99  # chest
    assert a[100, 12] < 0.01 and a[100, 148] < 0.01  # outside the person mask
    assert a[136, 70] < 0.05  # under the forearm
    assert a[35, 80] < 0.01  # never on the face
    edge = a[100, 20:30]
    assert (edge > 0.05).any() and (edge < 0.95).any()  # feathered, not a hard cut


def test_shading_keeps_folds_and_drops_material_edges():
    frame = np.full((H, W, 3), 120, np.uint8)
    frame[100:106, :] = 96  # a fold: 20 % darker
    frame[150:, 80:] = 250  # a white shirt beside a grey jacket: a material edge
    region = np.zeros((H, W), np.float32)
    region[60:, 25:135] = 1.0
    r = shading_ratio(frame, region, body_size=80.0)
    assert 0.8 < r[103, 60] < 0.92  # the fold darkens the garment
    assert abs(r[80, 60] - 1.0) < 0.03  # flat cloth leaves it alone
    shirt = r[150:, 80:135]
    assert abs(r[170, 110] - 1.0) < 0.05  # no bright patch where the white shirt was
    assert np.abs(shirt - 1.0).max() < 0.12  # and only a faint trace of its outline


def test_composite_leaves_zero_alpha_pixels_exactly():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    alpha = np.zeros((H, W), np.float32)
    alpha[50:100, 40:120] = 1.0
    alpha[100:110, 40:120] = 0.5
    layer = GarmentLayer(np.full((H, W, 3), 10.0, np.float32), alpha)
    out = composite(frame, layer)
    assert np.array_equal(out[:50], frame[:50]) and np.array_equal(out[110:], frame[110:])
    assert (out[50:100, 40:120] == 10).all()
    mid = (frame[100:110, 40:120].astype(int) + 10) / 2
    assert np.abs(out[100:110, 40:120] - mid).max() <= 1.0
