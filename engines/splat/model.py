"""The trainable Gaussians: parameters as torch tensors, initialisation from points,
Adam, and the adaptive density control of Kerbl et al. 2023 (section 5.2).

Each Gaussian has a position, log-scales (3), a rotation quaternion (w x y z), an opacity
logit and spherical-harmonic colour (DC plus up to 15 coefficients per channel). Parameters
start as the paper's code starts them: isotropic scales from the mean squared distance to
the three nearest points, identity rotations, opacity 0.1, DC from the point colours.

Density control, every few steps during the first part of training: Gaussians whose
view-space position gradient, averaged over the views that saw them, exceeds a threshold
are *cloned* when small (a copy at the same place; both then move apart with the gradient)
or *split* when large (two samples from the Gaussian, scales divided by 1.6, the original
removed); nearly transparent, very large in the world, or very large on screen ones are
pruned; every so often all opacities are reset to at most 0.01 so that floaters must earn
their opacity again. Adam's moments follow the Gaussians through every change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engines.splat.project import rgb_to_sh0, sh_coefficients

PARAM_NAMES = ("means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest")


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


@dataclass
class Gaussians:
    means: object
    log_scales: object
    quats: object
    opacity_logits: object
    sh_dc: object
    """N x 1 x 3"""
    sh_rest: object
    """N x (K - 1) x 3, K = (max_sh_degree + 1)^2"""
    sh_degree: int = 0
    """Degree in use now (grows during training up to ``max_sh_degree``)."""
    max_sh_degree: int = 3

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh(self):
        import torch

        return torch.cat([self.sh_dc, self.sh_rest], 1)

    def params(self) -> dict:
        return {n: getattr(self, n) for n in PARAM_NAMES}

    def set_params(self, params: dict) -> None:
        for n in PARAM_NAMES:
            setattr(self, n, params[n])

    # -- conversions
    @classmethod
    def from_points(
        cls, points: np.ndarray, colors: np.ndarray | None, max_sh_degree: int = 3, opacity: float = 0.1, dtype=None
    ) -> "Gaussians":
        import torch
        from scipy.spatial import cKDTree

        dtype = dtype or torch.float32
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        n = len(pts)
        if colors is None:
            rgb = np.full((n, 3), 0.5)
        else:
            rgb = np.asarray(colors, np.float64).reshape(-1, 3) / 255.0
        k = min(4, n)
        if n > 1:
            d, _ = cKDTree(pts).query(pts, k=k)
            d2 = np.mean(d[:, 1:] ** 2, axis=1)
        else:
            d2 = np.full(n, 1e-2)
        d2 = np.maximum(d2, 1e-7)
        log_s = np.repeat(np.log(np.sqrt(d2))[:, None], 3, 1)
        quats = np.zeros((n, 4))
        quats[:, 0] = 1.0
        K = sh_coefficients(max_sh_degree)
        t = lambda a: torch.tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
        return cls(
            t(pts),
            t(log_s),
            t(quats),
            t(np.full(n, _logit(opacity))),
            t(rgb_to_sh0(rgb)[:, None, :]),
            torch.zeros((n, K - 1, 3), dtype=dtype),
            0,
            max_sh_degree,
        )

    @classmethod
    def from_splat(cls, splat, dtype=None) -> "Gaussians":
        import torch

        dtype = dtype or torch.float32
        t = lambda a: torch.tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
        sh = np.asarray(splat.sh, np.float32)
        return cls(
            t(splat.positions),
            t(splat.log_scales),
            t(splat.rotations),
            t(splat.opacity_logits),
            t(sh[:, :1]),
            t(sh[:, 1:]),
            splat.sh_degree,
            splat.sh_degree,
        )

    def to_splat(self, cameras: list | None = None, name: str = "splat", degree: int | None = None):
        """A :class:`engines.types.Splat` (numpy) with SH up to ``degree`` (default: in use)."""
        from engines.types import Splat

        deg = self.sh_degree if degree is None else degree
        sh = self.sh.detach().cpu().numpy()[:, : sh_coefficients(deg)]
        q = self.quats.detach().cpu().numpy()
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        return Splat(
            self.means.detach().cpu().numpy(),
            self.log_scales.detach().cpu().numpy(),
            q,
            self.opacity_logits.detach().cpu().numpy(),
            sh,
            cameras=list(cameras or []),
            name=name,
        )

    def detach_copy(self) -> "Gaussians":
        return Gaussians(*(getattr(self, n).detach().clone() for n in PARAM_NAMES), self.sh_degree, self.max_sh_degree)


class Adam:
    """Adam (Kingma & Ba 2015) over named tensors with per-name learning rates; its moments
    are kept per Gaussian so that density control can select, append and reset them."""

    def __init__(self, params: dict, lrs: dict, betas=(0.9, 0.999), eps: float = 1e-15):
        import torch

        self.lrs = dict(lrs)
        self.b1, self.b2 = betas
        self.eps = eps
        self.m = {n: torch.zeros_like(p) for n, p in params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in params.items()}
        self.step_count = {n: 0 for n in params}

    def step(self, params: dict) -> None:
        import torch

        with torch.no_grad():
            for n, p in params.items():
                g = p.grad
                if g is None:
                    continue
                self.step_count[n] += 1
                k = self.step_count[n]
                m, v = self.m[n], self.v[n]
                m.mul_(self.b1).add_(g, alpha=1 - self.b1)
                v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
                mh = m / (1 - self.b1**k)
                vh = v / (1 - self.b2**k)
                p.sub_(self.lrs[n] * mh / (vh.sqrt() + self.eps))
                p.grad = None

    def select(self, keep) -> None:
        for n in self.m:
            self.m[n] = self.m[n][keep]
            self.v[n] = self.v[n][keep]

    def append(self, n_new: int) -> None:
        import torch

        for n in self.m:
            shape = (n_new,) + tuple(self.m[n].shape[1:])
            self.m[n] = torch.cat([self.m[n], torch.zeros(shape, dtype=self.m[n].dtype)])
            self.v[n] = torch.cat([self.v[n], torch.zeros(shape, dtype=self.v[n].dtype)])

    def reset(self, name: str) -> None:
        self.m[name].zero_()
        self.v[name].zero_()


@dataclass
class DensityStats:
    """View-space gradient statistics gathered between two densification steps."""

    grad_sum: object = None
    count: object = None
    max_radius: object = None

    def reset(self, n: int) -> None:
        import torch

        self.grad_sum = torch.zeros(n)
        self.count = torch.zeros(n)
        self.max_radius = torch.zeros(n)

    def add(self, means2d_grad, radii, width: int, height: int) -> None:
        import torch

        vis = radii > 0
        # gradient with respect to normalised device coordinates, as the paper thresholds it
        g = means2d_grad * torch.tensor([0.5 * width, 0.5 * height], dtype=means2d_grad.dtype)
        self.grad_sum[vis] += torch.linalg.norm(g[vis], dim=1)
        self.count[vis] += 1
        self.max_radius[vis] = torch.maximum(self.max_radius[vis], radii[vis].to(self.max_radius.dtype))


@dataclass
class DensifyReport:
    cloned: int = 0
    split: int = 0
    pruned: int = 0
    notes: list[str] = field(default_factory=list)


def _replace(g: Gaussians, opt: Adam, new: dict, keep) -> None:
    """Keep the Gaussians in ``keep`` and append ``new`` (dict of tensors), moments too."""
    import torch

    n_new = int(new["means"].shape[0]) if new else 0
    params = {}
    for name in PARAM_NAMES:
        p = getattr(g, name).detach()[keep]
        if n_new:
            p = torch.cat([p, new[name].detach()])
        params[name] = p.contiguous().requires_grad_(True)
    opt.select(keep)
    if n_new:
        opt.append(n_new)
    g.set_params(params)


def densify_and_prune(
    g: Gaussians,
    opt: Adam,
    stats: DensityStats,
    grad_threshold: float,
    extent: float,
    percent_dense: float = 0.01,
    min_opacity: float = 0.005,
    max_screen_radius: float | None = None,
    max_gaussians: int | None = None,
    generator=None,
) -> DensifyReport:
    """One round of the paper's adaptive density control (see the module docstring)."""
    import torch

    from engines.splat.project import quat_to_matrix

    rep = DensifyReport()
    with torch.no_grad():
        n = len(g)
        avg = stats.grad_sum / stats.count.clamp_min(1)
        avg[stats.count == 0] = 0
        big_grad = avg >= grad_threshold
        scale = torch.exp(g.log_scales).max(1).values
        small = scale <= percent_dense * extent
        clone = big_grad & small
        split = big_grad & ~small
        if max_gaussians is not None:
            room = max(0, int(max_gaussians) - n)
            want = int(clone.sum()) + int(split.sum())
            if want > room:
                # keep the strongest gradients within the budget
                score = torch.where(clone | split, avg, torch.full_like(avg, -1.0))
                top = torch.topk(score, room).indices if room > 0 else torch.empty(0, dtype=torch.long)
                chosen = torch.zeros(n, dtype=torch.bool)
                chosen[top] = True
                clone &= chosen
                split &= chosen
        new = {name: [] for name in PARAM_NAMES}
        if clone.any():
            for name in PARAM_NAMES:
                new[name].append(getattr(g, name).detach()[clone])
        if split.any():
            idx = torch.nonzero(split).squeeze(1)
            s = torch.exp(g.log_scales[idx]).repeat(2, 1)
            noise = torch.randn(s.shape, generator=generator, dtype=s.dtype) * s
            Rm = quat_to_matrix(g.quats[idx]).repeat(2, 1, 1)
            new["means"].append((Rm @ noise[:, :, None]).squeeze(2) + g.means[idx].repeat(2, 1))
            new["log_scales"].append(torch.log(s / 1.6))
            for name in ("quats", "opacity_logits", "sh_dc", "sh_rest"):
                p = getattr(g, name).detach()[idx]
                new[name].append(p.repeat((2,) + (1,) * (p.dim() - 1)))
        new = {k: torch.cat(v) for k, v in new.items()} if new["means"] else {}
        rep.cloned, rep.split = int(clone.sum()), int(split.sum())
        # prune: the split originals, transparent ones, and (after a reset) huge ones
        op = torch.sigmoid(g.opacity_logits.detach())
        prune = split | (op < min_opacity)
        if max_screen_radius is not None:
            prune |= (stats.max_radius > max_screen_radius) | (scale > 0.1 * extent)
        if new:
            op_new = torch.sigmoid(new["opacity_logits"])
            keep_new = op_new >= min_opacity
            new = {k: v[keep_new] for k, v in new.items()}
        # never prune to nothing: keep the most opaque ones
        if bool(prune.all()):
            prune[torch.argmax(op)] = False
        keep = ~prune
        rep.pruned = int(prune.sum()) - rep.split
        _replace(g, opt, new, keep)
    stats.reset(len(g))
    return rep


def reset_opacity(g: Gaussians, opt: Adam, value: float = 0.01) -> None:
    """Opacities to at most ``value`` (the paper's periodic reset)."""
    import torch

    with torch.no_grad():
        g.opacity_logits.clamp_(max=_logit(value))
    opt.reset("opacity_logits")
