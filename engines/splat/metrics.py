"""Image losses and quality figures: L1, SSIM (Wang et al. 2004, 11 x 11 Gaussian window,
sigma 1.5, as 3DGS trains and evaluates with) and PSNR."""

from __future__ import annotations

import numpy as np

_windows: dict = {}


def _window(dtype, size: int = 11, sigma: float = 1.5):
    """The separable Gaussian window as (row, column) kernels for 15 channels."""
    import torch

    key = (dtype, size, sigma)
    if key not in _windows:
        x = torch.arange(size, dtype=dtype) - (size - 1) / 2
        g = torch.exp(-(x**2) / (2 * sigma**2))
        g = g / g.sum()
        _windows[key] = (
            g.view(1, 1, 1, size).expand(15, 1, 1, size).contiguous(),
            g.view(1, 1, size, 1).expand(15, 1, size, 1).contiguous(),
        )
    return _windows[key]


def ssim(a, b):
    """Mean SSIM of two H x W x 3 torch images in 0..1 (differentiable). The local means
    and moments of x, y, x^2, y^2, xy come from one separable convolution (zero padding at
    the borders, as the 3DGS code's ``ssim``)."""
    import torch
    import torch.nn.functional as F

    x = a.permute(2, 0, 1)[None]
    y = b.permute(2, 0, 1)[None]
    wx, wy = _window(a.dtype)
    pad = wx.shape[-1] // 2
    stack = torch.cat([x, y, x * x, y * y, x * y], 1)
    f = F.conv2d(F.conv2d(stack, wx, padding=(0, pad), groups=15), wy, padding=(pad, 0), groups=15)
    mx, my, xx, yy, xy = f.split(3, 1)
    sxx, syy, sxy = xx - mx * mx, yy - my * my, xy - mx * my
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return m.mean()


def splat_loss(render, target, lambda_dssim: float = 0.2):
    """(1 - lambda) L1 + lambda (1 - SSIM): the loss of Kerbl et al. 2023, section 7."""
    l1 = (render - target).abs().mean()
    return (1.0 - lambda_dssim) * l1 + lambda_dssim * (1.0 - ssim(render, target))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images (uint8 or float in 0..1)."""
    a = _unit(a)
    b = _unit(b)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def ssim_np(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two RGB images (uint8 or float in 0..1)."""
    import torch

    return float(ssim(torch.tensor(_unit(a)), torch.tensor(_unit(b))))


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    return np.clip(a.astype(np.float64), 0.0, 1.0)


def to_uint8(img) -> np.ndarray:
    """A rendered float image (torch or numpy) as H x W x 3 uint8."""
    a = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
