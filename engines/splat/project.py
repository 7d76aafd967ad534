"""Projection of 3D Gaussians into a pinhole camera, in torch (autograd gives the gradients).

Kerbl et al. 2023, section 4, after Zwicker et al. "EWA Volume Splatting" (2001): a
Gaussian with mean ``mu`` and covariance ``Sigma = R S S^T R^T`` (rotation from a unit
quaternion, scales ``exp(log_scale)``) projects to a 2D Gaussian with mean ``pi(mu)`` and
covariance ``J W Sigma W^T J^T``, where ``W`` is the camera's rotation and ``J`` the
Jacobian of the perspective projection at ``mu``. As in the paper's code, 0.3 px^2 is added
to the 2D covariance (a low-pass filter, so no splat is thinner than a pixel), the point
at which ``J`` is taken is kept within 1.3 x the field of view, and Gaussians closer than
0.2 (scene units) to the camera are culled. View-dependent colour is spherical harmonics
up to degree 3 in the direction from the camera centre, plus 0.5, clamped at zero
(``eval_sh``, the constants of the paper's code).

Cameras follow OpenCV: ``x_cam = R x + t`` (x right, y down, z forward), pixel
``u = fx x/z + cx`` with pixel centres at integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NEAR = 0.2
LOWPASS = 0.3
SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def sh_coefficients(degree: int) -> int:
    return (degree + 1) ** 2


def rgb_to_sh0(rgb):
    """Degree-0 coefficient giving colour ``rgb`` (0..1)."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0):
    return sh0 * SH_C0 + 0.5


def sh_basis(degree: int, dirs):
    """The real SH basis (N x (degree + 1)^2) in unit directions, with the paper's signs."""
    import torch

    cols = [torch.full_like(dirs[:, 0], SH_C0)]
    if degree >= 1:
        x, y, z = dirs.unbind(1)
        cols += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        cols += [SH_C2[0] * xy, SH_C2[1] * yz, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * xz, SH_C2[4] * (xx - yy)]
    if degree >= 3:
        cols += [
            SH_C3[0] * y * (3 * xx - yy),
            SH_C3[1] * xy * z,
            SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(cols, 1)


def eval_sh(degree: int, sh, dirs):
    """Colour from SH coefficients ``sh`` (N x K x 3) in unit directions ``dirs`` (N x 3),
    using the first ``(degree + 1)^2`` coefficients. One basis matrix and one contraction:
    slicing ``sh`` per coefficient made autograd fill a zero N x K x 3 tensor per slice,
    a third of a training step's time (and einsum's batched matmul is slower than this)."""
    k = sh_coefficients(degree)
    return (sh_basis(degree, dirs)[:, :, None] * sh[:, :k]).sum(1)


def quat_to_matrix(q):
    """Rotation matrices (N x 3 x 3) from quaternions (N x 4, w x y z; normalised here)."""
    import torch

    q = q / torch.linalg.norm(q, dim=1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        1,
    ).reshape(-1, 3, 3)


def covariance_3d(log_scales, quats):
    """Sigma = R S S^T R^T (N x 3 x 3)."""
    import torch

    M = quat_to_matrix(quats) * torch.exp(log_scales)[:, None, :]
    return M @ M.transpose(1, 2)


@dataclass
class View:
    """One pinhole camera: ``K`` 3x3, ``R`` 3x3, ``t`` 3 (world to camera), size in pixels."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int
    name: str = ""

    @property
    def center(self) -> np.ndarray:
        return -np.asarray(self.R).T @ np.asarray(self.t)

    def scaled(self, width: int, height: int) -> "View":
        """The same camera for an image resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        K = np.asarray(self.K, np.float64).copy()
        K[0, 0] *= sx
        K[0, 1] *= sx
        K[1, 1] *= sy
        # pixel centres at integers: continuous (u + 0.5) scales
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return View(K, np.asarray(self.R), np.asarray(self.t), int(width), int(height), self.name)


@dataclass
class Projected:
    means2d: object
    conics: object
    colors: object
    opacities: object
    depths: object
    radii: object
    """Footprint radius in pixels (0 = culled); no gradient."""


def project(means, log_scales, quats, opacity_logits, sh, sh_degree: int, view: View) -> Projected:
    """Project Gaussians (torch tensors) into ``view``; every output but ``radii`` and
    ``depths`` carries gradients back to the inputs."""
    import torch

    dt = means.dtype
    R = torch.as_tensor(np.asarray(view.R), dtype=dt)
    t = torch.as_tensor(np.asarray(view.t), dtype=dt)
    fx, fy = float(view.K[0, 0]), float(view.K[1, 1])
    cx, cy = float(view.K[0, 2]), float(view.K[1, 2])
    pc = means @ R.T + t
    z = pc[:, 2]
    visible = z > NEAR
    zs = torch.where(visible, z, torch.ones_like(z))
    x, y = pc[:, 0], pc[:, 1]
    u = fx * x / zs + cx
    v = fy * y / zs + cy
    means2d = torch.stack([u, v], 1)
    lim_x = 1.3 * 0.5 * view.width / fx
    lim_y = 1.3 * 0.5 * view.height / fy
    xj = (x / zs).clamp(-lim_x, lim_x) * zs
    yj = (y / zs).clamp(-lim_y, lim_y) * zs
    zero = torch.zeros_like(zs)
    J = torch.stack([fx / zs, zero, -fx * xj / (zs * zs), zero, fy / zs, -fy * yj / (zs * zs)], 1).reshape(-1, 2, 3)
    # cov2 = (J W M)(J W M)^T with M = R_q S; 2x3 products written out (batched 3x3 bmm
    # and its backward took half of the projection's time)
    M = quat_to_matrix(quats) * torch.exp(log_scales)[:, None, :]
    JW = J @ R
    Tm = (JW[:, :, :, None] * M[:, None, :, :]).sum(2)  # N x 2 x 3
    a = (Tm[:, 0] * Tm[:, 0]).sum(1) + LOWPASS
    b = (Tm[:, 0] * Tm[:, 1]).sum(1)
    c = (Tm[:, 1] * Tm[:, 1]).sum(1) + LOWPASS
    det = (a * c - b * b).clamp_min(1e-12)
    conics = torch.stack([c / det, -b / det, a / det], 1)
    opacities = torch.sigmoid(opacity_logits)
    centre = torch.as_tensor(view.center, dtype=dt)
    dirs = means - centre
    dirs = dirs / torch.linalg.norm(dirs, dim=1, keepdim=True).clamp_min(1e-12)
    colors = (eval_sh(sh_degree, sh, dirs) + 0.5).clamp_min(0.0)
    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam = mid + torch.sqrt(torch.clamp(mid * mid - det, min=0.1))
        # beyond k sigma alpha = o exp(-k^2 / 2) < 1/255: see engines.splat.raster
        k = torch.sqrt(2.0 * torch.log(torch.clamp(255.0 * opacities, min=1.0)))
        radii = k * torch.sqrt(lam)
        ok = visible & torch.isfinite(means2d).all(1) & torch.isfinite(radii) & (radii > 0)
        ok &= (u + radii > -0.5) & (u - radii < view.width - 0.5) & (v + radii > -0.5) & (v - radii < view.height - 0.5)
        radii = torch.where(ok, radii, torch.zeros_like(radii))
    return Projected(means2d, conics, colors, opacities, z.detach(), radii)


def render(gaussians, view: View, sh_degree: int | None = None, background=(0.0, 0.0, 0.0), rasterizer=None):
    """Render ``gaussians`` (:class:`engines.splat.model.Gaussians`) from ``view``.

    Returns (image H x W x 3 float in 0..1-ish, alpha H x W, Projected). ``rasterizer`` is
    :func:`engines.splat.raster.rasterize` unless given (the tests pass a reference)."""
    if rasterizer is None:
        from engines.splat.raster import rasterize as rasterizer
    g = gaussians
    deg = g.sh_degree if sh_degree is None else sh_degree
    p = project(g.means, g.log_scales, g.quats, g.opacity_logits, g.sh, deg, view)
    img, alpha = rasterizer(
        p.means2d, p.conics, p.colors, p.opacities, p.depths, p.radii, view.width, view.height, background
    )
    return img, alpha, p


def fov_focal(width: int, fov_deg: float) -> float:
    return 0.5 * width / math.tan(math.radians(fov_deg) / 2)
