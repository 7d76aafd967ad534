"""Training on a tiny synthetic scene (ground-truth Gaussians rendered from known cameras):
PSNR rises, density control clones/splits/prunes, cancel stops between steps, and held-out
views improve too (the splat generalises, it does not just memorise)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

from engines.api import CancelToken, Cancelled  # noqa: E402
from engines.splat.metrics import psnr, ssim, ssim_np  # noqa: E402
from engines.splat.model import Adam, DensityStats, Gaussians, densify_and_prune  # noqa: E402
from engines.splat.project import View  # noqa: E402
from engines.splat.train import TrainConfig, TrainView, render_image, scene_extent, train  # noqa: E402


def orbit(n, size, radius=3.0):
    w, h = size
    f = 0.9 * w
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
    views = []
    for i in range(n):
        az, el = 2 * np.pi * i / n, np.radians(20 + 15 * (i % 2))
        c = radius * np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
        z = -c / np.linalg.norm(c)
        x = np.cross(z, [0, 1, 0])
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        views.append(View(K, R, -R @ c, w, h, f"v{i}"))
    return views


def synthetic_scene(n_gauss=600, n_views=10, size=(64, 48), seed=0):
    rng = np.random.default_rng(seed)
    gt = Gaussians.from_points(
        rng.uniform(-0.7, 0.7, (n_gauss, 3)), rng.integers(0, 255, (n_gauss, 3)), max_sh_degree=0, opacity=0.8
    )
    with torch.no_grad():
        gt.log_scales[:] = torch.tensor(np.log(0.06) + rng.normal(0, 0.3, (n_gauss, 3)), dtype=torch.float32)
        gt.quats[:] = torch.tensor(rng.normal(size=(n_gauss, 4)), dtype=torch.float32)
    views = orbit(n_views, size)
    images = [render_image(gt, v).astype(np.float32) / 255.0 for v in views]
    return gt, [TrainView(v, im, v.name) for v, im in zip(views, images)]


def start_from(gt, every=6, noise=0.03, seed=1):
    rng = np.random.default_rng(seed)
    pts = gt.means.numpy()[::every]
    return Gaussians.from_points(pts + rng.normal(0, noise, pts.shape), None, max_sh_degree=1)


def mean_psnr(g, views):
    return float(np.mean([psnr(render_image(g, tv.view), tv.image) for tv in views]))


def test_training_raises_psnr_on_seen_and_held_out_views():
    gt, views = synthetic_scene()
    train_views, held = [v for i, v in enumerate(views) if i % 5], [v for i, v in enumerate(views) if i % 5 == 0]
    g = start_from(gt)
    before_train, before_held = mean_psnr(g, train_views), mean_psnr(g, held)
    n0 = len(g)
    seen = []
    rep = train(
        g, train_views, TrainConfig(steps=240, sh_degree=1, densify_min_gap=8), progress=lambda f, m="": seen.append(f)
    )
    after_train, after_held = mean_psnr(g, train_views), mean_psnr(g, held)
    assert rep.steps == 240 and rep.stopped_by == "steps"
    assert after_train > before_train + 5.0, (before_train, after_train)
    assert after_held > before_held + 3.0, (before_held, after_held)
    assert rep.densify_rounds >= 3 and rep.cloned + rep.split > 0 and len(g) > n0
    assert g.sh_degree == 1 and float(g.sh_rest.abs().max()) > 0  # degree 1 was switched on and learned
    assert all(not p.requires_grad for p in g.params().values())
    assert seen == sorted(seen)


def test_time_budget_runs_the_whole_schedule():
    """A run cut by its time budget still densifies and ends its schedule (fraction 1)."""
    gt, views = synthetic_scene(n_gauss=200, n_views=6, size=(48, 32))
    g = start_from(gt)
    seen = []
    rep = train(
        g,
        views,
        TrainConfig(steps=100000, time_budget_s=1.5, sh_degree=0, densify_min_gap=3),
        progress=lambda f, m="": seen.append(f),
    )
    assert rep.stopped_by == "time" and 0 < rep.steps < 100000
    assert rep.densify_rounds >= 1


def test_cancel_stops_before_the_next_step():
    gt, views = synthetic_scene(n_gauss=200, n_views=6, size=(48, 32))
    g = start_from(gt)
    token = CancelToken()
    calls = []

    def preview(img, msg):
        calls.append(msg)
        token.set()

    cfg = TrainConfig(steps=1000, sh_degree=0, preview_every_s=0.0)
    with pytest.raises(Cancelled):
        train(g, views, cfg, cancel=token, preview=preview)
    assert calls == ["Step 1"]  # cancelled after the first step's preview: no second step ran


def test_split_and_clone_follow_the_paper():
    g = Gaussians.from_points(np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0.0]]), None, max_sh_degree=0)
    with torch.no_grad():
        g.log_scales[:] = torch.log(torch.tensor([[0.001] * 3, [0.5] * 3, [0.5] * 3]))
    for p in g.params().values():
        p.requires_grad_(True)
    opt = Adam(g.params(), {n: 0.01 for n in g.params()})
    stats = DensityStats()
    stats.reset(3)
    stats.grad_sum[:] = torch.tensor([1.0, 1.0, 0.0])
    stats.count[:] = 1
    rep = densify_and_prune(
        g, opt, stats, grad_threshold=0.5, extent=1.0, percent_dense=0.01, generator=torch.Generator().manual_seed(0)
    )
    assert (rep.cloned, rep.split) == (1, 1)
    # kept: the small one, its clone, the untouched big one, and two halves of the split one
    assert len(g) == 5 and opt.m["means"].shape[0] == 5
    scales = torch.exp(g.log_scales).max(1).values.detach().numpy()
    assert np.isclose(scales, 0.001).sum() == 2 and np.isclose(scales, 0.5).sum() == 1
    assert np.isclose(scales, 0.5 / 1.6).sum() == 2


def test_ssim_and_psnr_values():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (32, 40, 3))
    assert ssim_np(a, a) == pytest.approx(1.0, abs=1e-6)
    assert psnr(a, np.clip(a + 0.1, 0, 1)) < psnr(a, np.clip(a + 0.01, 0, 1))
    noisy = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    assert 0.0 < ssim_np(a, noisy) < 0.9
    t = torch.tensor(a, requires_grad=True)
    ssim(t, torch.tensor(noisy)).backward()
    assert torch.isfinite(t.grad).all()


def test_scene_extent_from_cameras():
    views = [TrainView(v, np.zeros((4, 4, 3), np.float32)) for v in orbit(8, (4, 4), radius=2.0)]
    c = np.array([tv.view.center for tv in views])
    assert scene_extent(views) == pytest.approx(1.1 * np.linalg.norm(c - c.mean(0), axis=1).max())
    # photos from nearly one spot, of a scene 10 units away: a quarter of that distance
    near = [
        TrainView(View(tv.view.K, np.eye(3), np.array([0.001 * i, 0, 0]), 4, 4), tv.image)
        for i, tv in enumerate(views[:4])
    ]
    pts = np.random.default_rng(0).normal([0, 0, 10.0], 0.5, (500, 3))
    assert scene_extent(near, pts) == pytest.approx(2.5, rel=0.05)
