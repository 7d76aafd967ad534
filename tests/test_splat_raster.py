"""The numba tile rasteriser against a pure-torch reference that evaluates every Gaussian at
every pixel and gets its gradients from autograd: same images, same gradients."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

from engines.splat import raster  # noqa: E402
from engines.splat.model import Gaussians  # noqa: E402
from engines.splat.project import View, render  # noqa: E402


def reference_rasterize(means2d, conics, colors, opacities, depths, radii, width, height, background):
    """Dense front-to-back compositing in torch: what the tiles must reproduce exactly
    (same 1/255 cut-off, 0.99 clamp and stop before transmittance falls under 1e-4)."""
    vis = radii > 0
    order = torch.argsort(depths[vis])
    idx = torch.nonzero(vis).squeeze(1)[order]
    m, con, col, op = means2d[idx], conics[idx], colors[idx], opacities[idx]
    ys, xs = torch.meshgrid(torch.arange(height, dtype=m.dtype), torch.arange(width, dtype=m.dtype), indexing="ij")
    dx = m[:, 0, None, None] - xs  # G x H x W
    dy = m[:, 1, None, None] - ys
    power = -0.5 * (con[:, 0, None, None] * dx * dx + con[:, 2, None, None] * dy * dy) - con[:, 1, None, None] * dx * dy
    alpha = (op[:, None, None] * torch.exp(power)).clamp(max=raster.ALPHA_MAX)
    alpha = torch.where((alpha < raster.ALPHA_MIN) | (power > 0), torch.zeros_like(alpha), alpha)
    with torch.no_grad():  # a pixel stops at the first Gaussian that would leave T < 1e-4
        keep = torch.cumprod(1 - alpha, 0) >= raster.T_MIN
    alpha = alpha * keep
    T = torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), 1 - alpha[:-1]]), 0)
    w = alpha * T
    img = torch.einsum("ghw,gc->hwc", w, col)
    T_end = T[-1] * (1 - alpha[-1])
    img = img + T_end[..., None] * torch.tensor(background, dtype=m.dtype)
    return img, 1 - T_end


def tiny_scene(n=40, seed=0, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-0.6, 0.6, (n, 3))
    g = Gaussians.from_points(pts, rng.integers(0, 255, (n, 3)), max_sh_degree=1, opacity=0.5, dtype=dtype)
    with torch.no_grad():
        g.log_scales += torch.tensor(rng.normal(0, 0.3, (n, 3)))
        g.quats[:] = torch.tensor(rng.normal(size=(n, 4)))
        g.opacity_logits[:] = torch.tensor(rng.uniform(-2.5, 1.5, n))
        g.sh_rest[:] = torch.tensor(rng.normal(0, 0.3, g.sh_rest.shape))
    g.sh_degree = 1
    K = np.array([[60.0, 0, 31.5], [0, 60.0, 23.0], [0, 0, 1]])
    a = 0.3
    R = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
    view = View(K, R, np.array([0.05, -0.02, 3.0]), 64, 48)
    return g, view


def _grads(g, view, rasterizer, target):
    params = g.params()
    for p in params.values():
        p.requires_grad_(True)
        p.grad = None
    img, _, _ = render(g, view, background=(0.2, 0.3, 0.4), rasterizer=rasterizer)
    loss = ((img - target) ** 2).sum() + (img * target).sum()
    loss.backward()
    return img.detach(), {n: p.grad.detach().clone() for n, p in params.items()}


def test_forward_and_backward_match_dense_reference():
    g, view = tiny_scene()
    target = torch.tensor(np.random.default_rng(5).uniform(0, 1, (view.height, view.width, 3)))
    img_ref, g_ref = _grads(g, view, reference_rasterize, target)
    img, g_ours = _grads(g, view, raster.rasterize, target)
    assert float(img_ref.std()) > 0.05  # the scene shows something
    assert torch.allclose(img.double(), img_ref, atol=2e-6)
    for name in g_ref:
        a, b = g_ours[name].double(), g_ref[name]
        rel = float(torch.linalg.norm(a - b) / torch.linalg.norm(b))
        assert rel < 1e-4, (name, rel)


def test_tiles_cover_every_pixel_a_gaussian_reaches():
    """Big and small, on and off the image edges, crossing tile borders: identical images."""
    g, view = tiny_scene(n=150, seed=3)
    with torch.no_grad():
        g.log_scales -= 1.0
        g.log_scales[:20] += 2.0
        img_ref, a_ref = render(g, view, rasterizer=reference_rasterize)[:2]
        img, a = render(g, view)[:2]
    assert torch.allclose(img.double(), img_ref, atol=2e-6)
    assert torch.allclose(a.double(), a_ref, atol=2e-6)


def test_opaque_pixels_stop_and_keep_background_out():
    """Many opaque layers: compositing stops at T < 1e-4, so the background barely shows."""
    rng = np.random.default_rng(1)
    n = 30
    g = Gaussians.from_points(
        np.c_[rng.normal(0, 0.01, (n, 2)), np.linspace(-0.5, 0.5, n)],
        None,
        max_sh_degree=0,
        opacity=0.95,
        dtype=torch.float32,
    )
    with torch.no_grad():
        g.log_scales[:] = np.log(0.5)
    view = View(np.array([[40.0, 0, 15.5], [0, 40.0, 15.5], [0, 0, 1]]), np.eye(3), np.array([0, 0, 3.0]), 32, 32)
    img, alpha, _ = render(g, view, background=(1.0, 0.0, 0.0))
    assert 0.999 < float(alpha[16, 16]) <= 1 - raster.T_MIN  # stopped before T fell under 1e-4
    assert abs(float(img[16, 16, 0]) - 0.5) < 1e-3  # grey Gaussians, no red background


def test_projection_gradients_finite_difference():
    """The torch projection + rasteriser chain against central differences (float64)."""
    g, view = tiny_scene(n=12, seed=7)
    target = torch.tensor(np.random.default_rng(2).uniform(0, 1, (view.height, view.width, 3)))
    _, grads = _grads(g, view, raster.rasterize, target)

    def loss_at():
        with torch.no_grad():
            img = render(g, view, background=(0.2, 0.3, 0.4), rasterizer=reference_rasterize)[0]
            return float(((img - target) ** 2).sum() + (img * target).sum())

    for name, index in (("means", (3, 0)), ("log_scales", (5, 2)), ("quats", (1, 3)), ("opacity_logits", (4,))):
        p, h = getattr(g, name), 1e-6
        with torch.no_grad():
            p[index] += h
            up = loss_at()
            p[index] -= 2 * h
            down = loss_at()
            p[index] += h
        fd = (up - down) / (2 * h)
        an = float(grads[name][index])
        assert abs(fd - an) <= 1e-3 * max(1.0, abs(fd)), (name, fd, an)
