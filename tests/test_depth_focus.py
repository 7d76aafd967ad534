"""Focus measures, sub-frame interpolation and confidence (engines/depth/focus.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.depth.focus import OPERATORS, depth_from_focus, focus_measure, noise_sigma
from engines.depth.synth import make_focal_stack, plane_scene


def _textured(h=90, w=130, seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 0.7)
    return (np.dstack([img] * 3) * 255).astype(np.uint8)


@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize("edge_aware", [False, True])
def test_operators_prefer_the_sharp_image(op, edge_aware):
    import cv2

    sharp = _textured()[..., 0].astype(np.float32) / 255
    blurred = cv2.GaussianBlur(sharp, (0, 0), 1.5)
    fs, fb = focus_measure(sharp, op, 9, edge_aware), focus_measure(blurred, op, 9, edge_aware)
    assert fs.shape == sharp.shape
    assert np.mean(fs > fb) > 0.95


def test_noise_sigma_estimate():
    rng = np.random.default_rng(1)
    img = _textured()[..., 0].astype(np.float32) / 255
    flat = np.full((120, 160), 0.5, np.float32) + 0.02 * rng.standard_normal((120, 160)).astype(np.float32)
    assert noise_sigma(flat) == pytest.approx(0.02, rel=0.1)
    # Texture does not fool the robust estimate into a large noise level.
    assert noise_sigma(img) < 0.1


@pytest.mark.parametrize("between", [0.3, 0.5, 0.7])
def test_subframe_interpolation_beats_argmax_on_a_plane(between):
    # Fronto-parallel textured plane between two focus distances (in dioptres).
    rgb = _textured(100, 140)
    fd = 1.0 / np.linspace(1 / 1.5, 1 / 4.0, 7)
    dpt = 1 / fd
    d_true = 1.0 / (dpt[3] + between * (dpt[4] - dpt[3]))
    depth = np.full(rgb.shape[:2], d_true)
    st = make_focal_stack(rgb, depth, fd, 100.0, 2.0, 36.0, noise_sigma=0.0, breathing=0.0)
    res = {}
    for interp in ("none", "parabolic", "gaussian"):
        r = depth_from_focus(st.frames, st.focus_distances, "tenengrad", 9, interp)
        res[interp] = np.median(np.abs(r.depth[10:-10, 10:-10] - d_true))
    step = abs(fd[4] - fd[3])
    assert res["gaussian"] < 0.2 * step
    assert res["parabolic"] < 0.25 * step
    assert res["gaussian"] < res["none"] or res["none"] < 0.05 * step


def test_confidence_is_low_without_texture_and_high_with_it():
    rgb, depth, K = plane_scene(140, 100, seed=0)
    fd = [1.9, 2.4, 3.1, 4.2]
    st = make_focal_stack(rgb, depth, fd, 200.0, 2.0, 200.0 * 140 / K[0, 0], noise_sigma=0.01, seed=2)
    r = depth_from_focus(st.frames, st.focus_distances, "tenengrad", 9)
    assert np.mean(r.confidence > 0.5) > 0.5
    flat = np.full_like(rgb, 128)
    st2 = make_focal_stack(flat, depth, fd, noise_sigma=0.01, seed=2)
    r2 = depth_from_focus(st2.frames, st2.focus_distances, "tenengrad", 9)
    assert np.mean(r2.confidence > 0.5) < 0.01
    # Grey is 0.299 R + 0.587 G + 0.114 B of independent channel noise.
    assert r2.noise_sigma == pytest.approx(0.01 * np.sqrt(0.299**2 + 0.587**2 + 0.114**2), rel=0.2)


def test_all_in_focus_is_sharper_than_any_frame():
    rgb, depth, K = plane_scene(140, 100, seed=4)
    st = make_focal_stack(rgb, depth, [1.9, 2.6, 3.6, 5.0], 200.0, 2.0, 200.0 * 140 / K[0, 0], noise_sigma=0.0)
    r = depth_from_focus(st.frames, st.focus_distances, "tenengrad", 9)
    err_aif = np.abs(r.all_in_focus.astype(float) - rgb).mean()
    err_frames = [np.abs(f.astype(float) - rgb).mean() for f in st.frames]
    assert r.all_in_focus.shape == rgb.shape and r.all_in_focus.dtype == np.uint8
    assert err_aif < 0.9 * min(err_frames)


def test_frame_count_must_match_distances():
    rgb = _textured()
    with pytest.raises(ValueError):
        depth_from_focus([rgb, rgb], [1.0, 2.0, 3.0])


def test_second_peak_lowers_confidence():
    # A window holding two textured layers, sharp in the first and in the last frame,
    # against one layer sharp in the first frame only.
    import cv2

    a = _textured(60, 80, seed=1)[..., 0].astype(np.float32) / 255
    b = _textured(60, 80, seed=2)[..., 0].astype(np.float32) / 255

    def blur(x, s):
        return cv2.GaussianBlur(x, (0, 0), s) if s else x

    sig_a = [0, 1.0, 2.0, 3.0, 3.5, 4.0, 4.5]
    sig_b = sig_a[::-1]
    single = [blur(a, s) for s in sig_a]
    double = [0.5 * blur(a, sa) + 0.5 * blur(b, sb) for sa, sb in zip(sig_a, sig_b)]
    fd = np.linspace(1.0, 3.0, 7)
    c1 = depth_from_focus([(x * 255).astype(np.uint8) for x in single], fd, "tenengrad", 9, sigma=0.002).confidence
    c2 = depth_from_focus([(x * 255).astype(np.uint8) for x in double], fd, "tenengrad", 9, sigma=0.002).confidence
    assert np.median(c1) > 0.7
    assert np.median(c2) < 0.5 * np.median(c1)


@pytest.mark.parametrize("where", [0.75, 1.3, -0.3])
def test_subframe_fit_at_the_ends_of_the_stack(where):
    # Planes near the last frame (0.75 of the last step, or 0.3 of a step beyond it) and
    # beyond the first frame: the argmax is an end frame; inside the range the one-sided fit
    # does better, beyond it nothing is invented.
    rgb = _textured(100, 140)
    fd = 1.0 / np.linspace(1 / 1.5, 1 / 4.0, 7)
    dpt = 1 / fd
    d_true = 1.0 / (dpt[5] + where * (dpt[6] - dpt[5])) if where > 0 else 1.0 / (dpt[0] - where * (dpt[0] - dpt[1]))
    st = make_focal_stack(rgb, np.full(rgb.shape[:2], d_true), fd, 100.0, 2.0, 36.0, noise_sigma=0.0, breathing=0.0)
    r = depth_from_focus(st.frames, st.focus_distances, "tenengrad", 9, "gaussian")
    inner = (slice(10, -10), slice(10, -10))
    err_fit = np.median(np.abs(1 / r.depth[inner] - 1 / d_true))
    err_arg = np.median(np.abs(1 / r.depth_argmax[inner] - 1 / d_true))
    step = abs(dpt[6] - dpt[5])
    if 0 < where < 1:  # inside the range: as good as an inner peak
        assert err_fit < 0.2 * step and err_fit < 0.6 * err_arg
    else:  # beyond the range: the estimate stays at the end frame, no worse than the argmax
        assert err_fit <= err_arg + 1e-6


@pytest.mark.parametrize("between", [0.3, 0.7])
def test_lorentzian_fit_is_least_biased_with_sparse_frames(between):
    """Four frames over 1.5-4 m: the focus curve's tails, not its top, are sampled, and a
    natural (1/f) texture's gradient energy falls off as 1 / (a + b x^2) there."""
    from engines.depth.synth import _texture

    rgb = (255 * _texture(100, 140, np.random.default_rng(0))).astype(np.uint8)
    fd = 1.0 / np.linspace(1 / 1.5, 1 / 4.0, 4)
    dpt = 1 / fd
    x_true = dpt[1] + between * (dpt[2] - dpt[1])
    st = make_focal_stack(rgb, np.full(rgb.shape[:2], 1 / x_true), fd, 100.0, 2.0, 36.0, noise_sigma=0.0, breathing=0.0)
    step = abs(dpt[2] - dpt[1])
    err = {}
    for interp in ("parabolic", "gaussian", "lorentzian"):
        r = depth_from_focus(st.frames, st.focus_distances, "tenengrad", 9, interp)
        err[interp] = float(np.median(np.abs(r.dioptre[10:-10, 10:-10] - x_true))) / step
    assert err["lorentzian"] < 0.06
    assert err["lorentzian"] < 0.6 * err["gaussian"] and err["gaussian"] < err["parabolic"]


def _edge_bleed_stack():
    """A strongly textured near half (1.6 m) beside a weakly textured far half (3.5 m), 7
    frames: (stack, depth, focus distances)."""
    from engines.depth.synth import _texture

    rng = np.random.default_rng(0)
    h, w = 100, 140
    rgb = np.clip(128 + 6 * (_texture(h, w, rng) - 0.5), 0, 255).astype(np.uint8)
    rgb[:, :70] = (255 * _texture(h, w, rng)).astype(np.uint8)[:, :70]
    depth = np.where(np.arange(w)[None, :] < 70, 1.6, 3.5).repeat(h, 0)
    fd = 1 / np.linspace(1 / 1.5, 1 / 4.0, 7)
    st = make_focal_stack(rgb, depth, fd, 100.0, 2.0, 36.0, noise_sigma=0.01, breathing=0.0, seed=2)
    return st, depth, fd


def test_scale_consensus_distrusts_focus_lent_by_a_neighbouring_edge():
    """A strongly textured near half beside a weakly textured far half: the far pixels next
    to the boundary borrow the near half's focus peak (edge bleed). The 3 x 3 consensus test
    must lower their confidence and leave correct pixels alone."""
    st, depth, fd = _edge_bleed_stack()
    conf = {}
    for consensus in (False, True):
        r = depth_from_focus(st.frames, fd, "tenengrad", 7, "lorentzian", edge_aware=True, consensus=consensus)
        err = np.abs(np.log(r.depth / depth))
        bleed = np.zeros_like(err, bool)
        bleed[:, 70:80] = err[:, 70:80] > np.log(1.25)
        good = err < 0.05
        assert bleed.sum() > 300  # the bleed is there to be caught
        conf[consensus] = (float(r.confidence[bleed].mean()), float(r.confidence[good].mean()))
    assert conf[True][0] < 0.65 * conf[False][0]  # 0.47 -> 0.25 seen
    assert conf[True][1] > 0.97 * conf[False][1]


def _two_peaked_stack(best: int, second: int, n: int = 7, seed: int = 3):
    """Frames of one texture whose sharpness peaks at frame ``best`` (sharp) and again, lower,
    at frame ``second`` (slightly blurred); every other frame is strongly blurred."""
    import cv2

    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((80, 100)).astype(np.float32), (0, 0), 0.7)
    frames = []
    for k in range(n):
        s = 0.0 if k == best else (0.5 if k == second else 3.0)
        img = tex if s == 0 else cv2.GaussianBlur(tex, (0, 0), s)
        img = img + 0.005 * rng.standard_normal(img.shape).astype(np.float32)
        frames.append((np.dstack([np.clip(img, 0, 1)] * 3) * 255).astype(np.uint8))
    return frames, 1 / np.linspace(1 / 1.0, 1 / 4.0, n)


def test_occlusion_asymmetry_ignores_only_a_nearer_second_peak():
    """The peak-ratio test made one-sided: a second focus peak at a nearer frame than the best
    one (what a sharp occluding edge lends to the background beside it) no longer lowers the
    confidence; a second peak at a farther frame (the best may be lent) still does."""
    conf = {}
    for case, (best, second) in {"nearer second": (5, 1), "farther second": (1, 5)}.items():
        frames, fd = _two_peaked_stack(best, second)
        for asym in (False, True):
            r = depth_from_focus(frames, fd, "tenengrad", 7, "lorentzian", occlusion_asymmetry=asym)
            inner = (slice(10, -10), slice(10, -10))
            assert np.all(r.index[inner] == best)
            conf[case, asym] = float(np.median(r.confidence[inner]))
    # the second peak is high enough to matter to the symmetric test
    assert conf["nearer second", False] < 0.8 * conf["nearer second", True]
    assert conf["farther second", True] == pytest.approx(conf["farther second", False], rel=1e-6)
    assert conf["farther second", True] < 0.8 * conf["nearer second", True]


def test_occlusion_asymmetry_keeps_distrusting_a_lent_near_peak():
    """Edge bleed (far pixels beside a strongly textured near half take its peak, their own
    far peak second) is still caught with the one-sided test: their confidence stays as low."""
    st, depth, fd = _edge_bleed_stack()
    res = {
        asym: depth_from_focus(st.frames, fd, "tenengrad", 7, "lorentzian", edge_aware=True, occlusion_asymmetry=asym)
        for asym in (False, True)
    }
    err = np.abs(np.log(res[False].depth / depth))
    bleed = np.zeros_like(err, bool)
    bleed[:, 70:80] = (err[:, 70:80] > np.log(1.25)) & (res[False].depth[:, 70:80] < depth[:, 70:80])
    assert bleed.sum() > 300
    assert float(res[True].confidence[bleed].mean()) <= 1.05 * float(res[False].confidence[bleed].mean())
