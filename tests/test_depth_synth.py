"""Thin-lens focal-stack synthesiser (engines/depth/synth.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.depth.focus import focus_measure, to_gray
from engines.depth.synth import (
    breathing_scales,
    circle_of_confusion_px,
    disc_kernel,
    make_focal_stack,
    plane_scene,
    render_defocus,
    rgbd_from_disparity,
    write_focal_stack,
)


def test_circle_of_confusion_matches_thin_lens():
    # 50 mm f/2 focused at 2 m, point at 4 m: c = f^2/(N (s-f)) |d-s|/d = 2500/(2*1950)*0.5 mm
    c_mm = 2500.0 / (2.0 * 1950.0) * 0.5
    px = circle_of_confusion_px(4.0, 2.0, 50.0, 2.0, 36.0, 3600)
    assert px == pytest.approx(c_mm * 100.0, rel=1e-9)
    assert circle_of_confusion_px(2.0, 2.0, 50.0, 2.0, 36.0, 3600) == 0.0


@pytest.mark.parametrize("c", [0.5, 1.7, 2.6, 7.0, 15.0])
def test_disc_kernel_is_normalised_with_the_right_spread(c):
    k = disc_kernel(c)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    n = k.shape[0] // 2
    assert k.shape[0] == k.shape[1] == 2 * n + 1 and np.allclose(k, k.T) and np.allclose(k, k[::-1])
    y, x = np.mgrid[-n : n + 1, -n : n + 1]
    sigma = np.sqrt((k * x * x).sum())
    if c < 1:
        assert k[n, n] > 0.99  # a blur disc well inside one pixel leaves the pixel alone
    else:
        # A disc of diameter c has per-axis sigma c/4.
        assert sigma == pytest.approx(c / 4, rel=0.2)


def test_breathing_is_linear_in_dioptres():
    s = breathing_scales([1.0, 2.0, 4.0], 0.02)
    assert s[0] == 1.0 and s[-1] == pytest.approx(0.98)
    assert s[1] == pytest.approx(1.0 - 0.02 * (1.0 - 0.5) / 0.75)


def test_layered_rendering_keeps_foreground_edge_sharp():
    # Sharp textured card at 1 m in front of a far wall at 10 m, focused on the card.
    rng = np.random.default_rng(0)
    rgb = (rng.random((80, 120, 3)) * 255).astype(np.uint8)
    depth = np.full((80, 120), 10.0)
    depth[:, :60] = 1.0
    out = render_defocus(rgb, depth, 1.0, 50.0, 1.4, 36.0)
    src = rgb.astype(np.float32) / 255
    # Foreground untouched up to its edge: the blurred background does not leak over it.
    assert np.abs(out[:, :58] - src[:, :58]).max() < 1e-3
    # Background strongly blurred.
    assert np.std(out[:, 75:]) < 0.5 * np.std(src[:, 75:])


def test_focal_stack_sharpest_frame_follows_depth():
    rgb, depth, K = plane_scene(160, 110, seed=3)
    fd = [4.4, 1.9, 2.8]  # unsorted on purpose
    st = make_focal_stack(rgb, depth, fd, 200.0, 2.0, 200.0 * 160 / K[0, 0], noise_sigma=0.0, breathing=0.0)
    assert np.all(np.diff(st.focus_distances) > 0) and len(st) == 3
    assert st.frames[0].shape == rgb.shape and st.frames[0].dtype == np.uint8
    assert np.allclose(st.intrinsics, K)
    fm = np.stack([focus_measure(to_gray(f), "tenengrad", 9) for f in st.frames])
    near = depth < 2.1
    far = depth > 3.9
    assert near.mean() > 0.05 and far.mean() > 0.05
    assert np.mean(np.argmax(fm, 0)[near] == 0) > 0.8
    assert np.mean(np.argmax(fm, 0)[far] == 2) > 0.8


def test_noise_and_breathing_are_applied():
    rgb, depth, K = plane_scene(120, 80, seed=1)
    clean = make_focal_stack(rgb, depth, [2.0, 4.0], noise_sigma=0.0, breathing=0.0)
    noisy = make_focal_stack(rgb, depth, [2.0, 4.0], noise_sigma=0.02, breathing=0.0, seed=5)
    diff = noisy.frames[0].astype(float) - clean.frames[0].astype(float)
    assert np.std(diff) == pytest.approx(0.02 * 255, rel=0.15)
    zoom = make_focal_stack(rgb, depth, [2.0, 4.0], noise_sigma=0.0, breathing=0.05)
    assert np.array_equal(zoom.frames[0], clean.frames[0])  # the nearest frame is the reference scale
    assert np.abs(zoom.frames[1].astype(int) - clean.frames[1].astype(int)).mean() > 2


def test_plane_scene_depth_is_exact():
    rgb, depth, K = plane_scene(200, 140, seed=0)
    assert rgb.shape == (140, 200, 3) and np.isfinite(depth).all()
    # Bottom-centre pixel lies on the floor plane -y - 0.25 z = -0.9 (camera y down).
    v, u = 139, 100
    z = depth[v, u]
    y = (v - K[1, 2]) / K[0, 0] * z
    assert -y - 0.25 * z == pytest.approx(-0.9, abs=1e-9)
    assert 1.5 < depth.min() and depth.max() < 6.5


def test_rgbd_from_disparity_uses_middlebury_formula():
    disp = np.array([[10.0, np.inf], [np.nan, 20.0]], np.float32)
    rgb = np.zeros((2, 2, 3), np.uint8)
    _, depth, K = rgbd_from_disparity(rgb, disp, 1000.0, 0.2, 30.0)
    assert depth[0, 0] == pytest.approx(1000.0 * 0.2 / 40.0)
    assert np.isnan(depth[0, 1]) and np.isnan(depth[1, 0])
    assert K[0, 0] == 1000.0


def test_write_focal_stack_reads_back(tmp_path):
    from engines.io.focalstack import read_focal_stack

    rgb, depth, K = plane_scene(96, 64, seed=2)
    st = make_focal_stack(rgb, depth, [1.9, 2.5, 3.7], noise_sigma=0.01, breathing=0.01)
    paths = write_focal_stack(st, tmp_path / "stack", ext=".png")
    meta = json.loads((tmp_path / "stack" / "focus.json").read_text())
    assert meta["focus_distances"] == [1.9, 2.5, 3.7] and len(meta["files"]) == 3
    back = read_focal_stack(tmp_path / "stack")
    assert np.allclose(back.focus_distances, [1.9, 2.5, 3.7])
    assert np.array_equal(back.frames[1], st.frames[1])  # PNG is lossless
    assert len(paths) == 4


def test_random_plane_scene_is_random_but_reproducible():
    from engines.depth.synth import random_plane_scene

    a = random_plane_scene(160, 112, seed=7)
    b = random_plane_scene(160, 112, seed=7)
    c = random_plane_scene(160, 112, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    rgb, depth, K = a
    assert rgb.shape == (112, 160, 3) and rgb.dtype == np.uint8 and depth.shape == (112, 160)
    assert np.isfinite(depth).all() and 0.5 < depth.min() and depth.max() <= 8.0
    # the depth is piecewise planar: pixels on one plane have a zero second difference in 1/depth
    assert K[0, 0] > 0 and np.median(np.abs(np.diff(1 / depth, 2, axis=1))) < 1e-9
    # several surfaces: a wall plus cards (distinct depth levels)
    assert len(np.unique(np.round(depth, 1))) > 5
