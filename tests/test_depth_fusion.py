"""Global scale-and-shift fit and local scale refinement (engines/depth/fusion.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.depth.fusion import fit_scale_shift, local_scale_refinement, to_depth
from engines.depth.prior import EdgeAwareSmoother


def test_least_squares_recovers_scale_and_shift_exactly():
    rng = np.random.default_rng(0)
    prior = rng.random((120, 160)).astype(np.float64) * 3 + 0.2
    measured = 0.37 * prior - 0.051
    for robust in ("none", "huber", "ransac"):
        s, t = fit_scale_shift(prior, measured, robust=robust)
        assert s == pytest.approx(0.37, abs=1e-9)
        assert t == pytest.approx(-0.051, abs=1e-9)


def test_weights_and_invalid_pixels_are_respected():
    rng = np.random.default_rng(1)
    prior = rng.random(5000)
    measured = 2.0 * prior + 1.0
    w = np.ones_like(prior)
    measured[:1000] = 50.0  # garbage where the weight is zero
    w[:1000] = 0.0
    measured[1000:1100] = np.nan
    s, t = fit_scale_shift(prior, measured, w)
    assert (s, t) == pytest.approx((2.0, 1.0), abs=1e-9)


@pytest.mark.parametrize("robust", ["huber", "ransac"])
def test_robust_fits_resist_outliers(robust):
    rng = np.random.default_rng(2)
    prior = rng.random(20000) * 2
    measured = 1.5 * prior + 0.3 + 0.01 * rng.standard_normal(prior.size)
    out = rng.random(prior.size) < 0.2
    measured[out] = rng.random(out.sum()) * 10
    s_ls, t_ls = fit_scale_shift(prior, measured, robust="none")
    s, t = fit_scale_shift(prior, measured, robust=robust)
    assert abs(s - 1.5) < 0.03 and abs(t - 0.3) < 0.03
    assert abs(s_ls - 1.5) + abs(t_ls - 0.3) > 5 * (abs(s - 1.5) + abs(t - 0.3))


def test_fit_needs_two_pixels():
    with pytest.raises(ValueError):
        fit_scale_shift(np.array([1.0]), np.array([2.0]))


def test_to_depth_inverts_and_clamps():
    d = to_depth(np.array([0.5, 0.25, -1.0, 10.0]), "inverse-depth", 0.5, 5.0)
    assert d.tolist() == pytest.approx([2.0, 4.0, 5.0, 0.5])


def test_local_refinement_recovers_a_smooth_scale_field():
    h, w = 120, 160
    rng = np.random.default_rng(3)
    guide = (rng.random((h, w, 3)) * 40 + 100).astype(np.uint8)  # no strong edges
    xs = np.linspace(0, 1, w)[None, :].repeat(h, 0)
    global_depth = np.full((h, w), 3.0, np.float32)
    true_scale = (1.0 + 0.1 * xs).astype(np.float32)
    measured = global_depth * true_scale * (1 + 0.02 * rng.standard_normal((h, w))).astype(np.float32)
    conf = (rng.random((h, w)) < 0.3).astype(np.float32)  # sparse confident pixels
    refined, scale = local_scale_refinement(global_depth, measured, conf, EdgeAwareSmoother(guide, 50.0, 8.0))
    err_before = np.abs(global_depth - global_depth * true_scale).mean()
    err_after = np.abs(refined - global_depth * true_scale).mean()
    assert err_after < 0.25 * err_before
    assert scale.min() > 0.9 and scale.max() < 1.2


def test_measurement_weights_are_inverse_variance_like():
    from engines.depth.fusion import measurement_weights

    c = np.array([0.0, 0.1, 0.5, 0.9, 1.0, np.nan, 1.5, -0.2], np.float32)
    w = measurement_weights(c)
    assert w.dtype == np.float32
    assert w[:5].tolist() == pytest.approx([0.0, 0.01, 0.25, 0.81, 1.0], abs=1e-6)
    assert w[5] == 0.0 and w[6] == 1.0 and w[7] == 0.0
    # every measurement counts (no threshold), the confident ones far more
    assert w[1] > 0 and w[3] / w[1] > 50
