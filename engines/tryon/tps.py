"""Warping the garment onto the body with a regularised thin-plate spline.

The warp follows Hu Ankang, "Video virtual try-on based on optical flow improvement"
(2023), section 3.1: a thin-plate spline (Bookstein, PAMI 1989) driven by a regular grid
of control points over the garment (here ``grid`` x ``grid``, at least 5 x 5; the paper
predicts 100 parameters, a 5 x 5 grid of 2-D targets x 2 sets), with their eq. 1-2
regularisation: neighbouring control points should keep equal distances (eq. 1) and
equal slopes (eq. 2), so that stripes stay straight and checks stay square.

The paper learns the grid with a network. Offline we have no such network, so the grid
targets are *solved for*: the garment landmarks (:mod:`.garment`) must land on the body
points derived from the pose (:func:`body_targets`), and the eq. 1-2 terms are imposed
through their convex surrogate, the second difference of neighbouring control points
(zero exactly when both distances and slopes are equal), weighted by ``strength``.
This is one linear least-squares solve per frame. ``strength=0`` gives the classical
TPS that interpolates the landmarks exactly, the unregularised baseline.
:func:`grid_regularisation_loss` evaluates eq. 1-2 themselves, for reports and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from engines.tryon import person as P


def _u(r2: np.ndarray) -> np.ndarray:
    """TPS kernel U(r) = r^2 log r^2 (on squared distances)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = r2 * np.log(r2)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a[:, None, :] - b[None, :, :]
    return _u((d**2).sum(-1))


class TPS:
    """A 2-D thin-plate spline through ``centres`` (n x 2) -> ``values`` (n x 2)."""

    def __init__(self, centres: np.ndarray, values: np.ndarray, smooth: float = 0.0):
        c = np.asarray(centres, np.float64)
        n = len(c)
        self.scale = float(np.ptp(c, axis=0).max()) or 1.0
        self.centres = c / self.scale
        L = self.system(self.centres, smooth)
        rhs = np.zeros((n + 3, 2))
        rhs[:n] = values
        self.coef = np.linalg.solve(L, rhs)

    @staticmethod
    def system(c: np.ndarray, smooth: float = 0.0) -> np.ndarray:
        n = len(c)
        L = np.zeros((n + 3, n + 3))
        L[:n, :n] = _kernel(c, c) + smooth * np.eye(n)
        L[:n, n] = 1.0
        L[:n, n + 1 :] = c
        L[n, :n] = 1.0
        L[n + 1 :, :n] = c.T
        return L

    def basis(self, pts: np.ndarray) -> np.ndarray:
        p = np.asarray(pts, np.float64).reshape(-1, 2) / self.scale
        return np.hstack([_kernel(p, self.centres), np.ones((len(p), 1)), p])

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        return self.basis(pts) @ self.coef


@lru_cache(maxsize=8)
def _second_differences(g: int) -> np.ndarray:
    """Rows of (1, -2, 1) along every grid row and column: the eq. 1-2 surrogate."""
    rows = []
    for i in range(g):
        for j in range(1, g - 1):
            for a, c, b in (((i, j - 1), (i, j), (i, j + 1)), ((j - 1, i), (j, i), (j + 1, i))):
                r = np.zeros(g * g)
                r[a[0] * g + a[1]] += 1.0
                r[c[0] * g + c[1]] -= 2.0
                r[b[0] * g + b[1]] += 1.0
                rows.append(r)
    return np.array(rows)


@dataclass
class GarmentWarp:
    """Control grid in garment pixels (``src``) and where it lands in the frame (``dst``)."""

    src: np.ndarray
    dst: np.ndarray
    grid: int

    def shifted(self, dx: float, dy: float) -> "GarmentWarp":
        """The same warp with the frame's origin moved (for working on a crop)."""
        return GarmentWarp(self.src, self.dst + [dx, dy], self.grid)

    def forward(self, pts: np.ndarray) -> np.ndarray:
        """Garment pixels -> frame pixels."""
        return TPS(self.src, self.dst)(pts)

    def backward_maps(self, shape: tuple[int, int], stride: int = 4):
        """cv2.remap maps (frame -> garment pixels) over the warped grid's bounding box.

        Returns (map_x, map_y, (x0, y0)) where the maps cover the box starting at x0, y0,
        or None when the garment lands outside the frame.
        """
        h, w = shape
        lo = np.floor(self.dst.min(0) - 2).astype(int)
        hi = np.ceil(self.dst.max(0) + 2).astype(int)
        x0, y0 = max(0, lo[0]), max(0, lo[1])
        x1, y1 = min(w, hi[0]), min(h, hi[1])
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        inv = TPS(self.dst, self.src)
        xs = np.arange(x0, x1 + stride, stride, dtype=np.float64)
        ys = np.arange(y0, y1 + stride, stride, dtype=np.float64)
        gx, gy = np.meshgrid(xs, ys)
        m = inv(np.stack([gx.ravel(), gy.ravel()], 1)).astype(np.float32)
        mx = _corner_resize(m[:, 0].reshape(gx.shape), stride)[: y1 - y0, : x1 - x0]
        my = _corner_resize(m[:, 1].reshape(gx.shape), stride)[: y1 - y0, : x1 - x0]
        return np.ascontiguousarray(mx), np.ascontiguousarray(my), (x0, y0)

    def jacobian_log_det(self, mask: np.ndarray, step: int = 4) -> np.ndarray:
        """log |det J| of the forward warp at garment pixels inside ``mask`` (every ``step``)."""
        ys, xs = np.nonzero(mask[::step, ::step] > 0.5)
        p = np.stack([xs, ys], 1).astype(np.float64) * step
        f = TPS(self.src, self.dst)
        e = 0.5
        dx = (f(p + [e, 0]) - f(p - [e, 0])) / (2 * e)
        dy = (f(p + [0, e]) - f(p - [0, e])) / (2 * e)
        det = dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0]
        return np.log(np.maximum(np.abs(det), 1e-6))


def _corner_resize(a: np.ndarray, stride: int) -> np.ndarray:
    """Bilinear up-sampling by ``stride`` with sample k at output pixel k*stride."""
    gh, gw = a.shape
    yy = np.arange((gh - 1) * stride + 1) / stride
    xx = np.arange((gw - 1) * stride + 1) / stride
    y0 = np.minimum(yy.astype(int), gh - 2) if gh > 1 else np.zeros(len(yy), int)
    x0 = np.minimum(xx.astype(int), gw - 2) if gw > 1 else np.zeros(len(xx), int)
    fy = (yy - y0)[:, None] if gh > 1 else np.zeros((len(yy), 1))
    fx = (xx - x0)[None, :] if gw > 1 else np.zeros((1, len(xx)))
    y1 = np.minimum(y0 + 1, gh - 1)
    x1 = np.minimum(x0 + 1, gw - 1)
    top = a[y0][:, x0] * (1 - fx) + a[y0][:, x1] * fx
    bot = a[y1][:, x0] * (1 - fx) + a[y1][:, x1] * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


def control_grid(mask: np.ndarray, grid: int) -> np.ndarray:
    """A ``grid`` x ``grid`` lattice over the garment's bounding box (row-major, x, y)."""
    ys, xs = np.nonzero(mask > 0.5)
    gx = np.linspace(xs.min(), xs.max(), grid)
    gy = np.linspace(ys.min(), ys.max(), grid)
    X, Y = np.meshgrid(gx, gy)
    return np.stack([X.ravel(), Y.ravel()], 1)


def fit_warp(
    garment_pts: np.ndarray,
    body_pts: np.ndarray,
    mask: np.ndarray,
    grid: int = 5,
    strength: float = 1.0,
    weights: np.ndarray | None = None,
) -> GarmentWarp:
    """Solve the control-grid targets so landmarks land on the body, regularised.

    Minimises  sum_k w_k |f(g_k) - b_k|^2 + strength * |D C|^2 + 1e-3 |C - C0|^2
    where f is the TPS through the grid C, D the second differences (eq. 1-2 surrogate)
    and C0 the unregularised landmark TPS at the grid (which ties down the otherwise
    free directions when ``strength`` is 0).
    """
    g_pts = np.asarray(garment_pts, np.float64)
    b_pts = np.asarray(body_pts, np.float64)
    w = np.ones(len(g_pts)) if weights is None else np.asarray(weights, np.float64)
    src = control_grid(mask, grid)
    C0 = TPS(g_pts, b_pts)(src)
    if strength <= 0:
        return GarmentWarp(src, C0, grid)
    n = len(src)
    scale = float(np.ptp(src, axis=0).max()) or 1.0
    cs = src / scale
    Linv = np.linalg.inv(TPS.system(cs))[:, :n]
    p = g_pts / scale
    B = np.hstack([_kernel(p, cs), np.ones((len(p), 1)), p]) @ Linv  # landmarks = B @ C
    D = _second_differences(grid)
    sw = np.sqrt(w)[:, None]
    mu = 1e-3
    A = np.vstack([B * sw, np.sqrt(strength) * D, np.sqrt(mu) * np.eye(n)])
    rhs = np.vstack([b_pts * sw, np.zeros((len(D), 2)), np.sqrt(mu) * C0])
    C, *_ = np.linalg.lstsq(A, rhs, rcond=None)
    return GarmentWarp(src, C, grid)


def grid_regularisation_loss(dst: np.ndarray, grid: int) -> tuple[float, float]:
    """Hu 2023 eq. 1 (distance) and eq. 2 (slope) summed over the grid, per node.

    Slopes are compared as directions (the angle between neighbouring segments), which
    equals eq. 2's slope difference for small bends and stays finite for vertical lines.
    """
    C = dst.reshape(grid, grid, 2)
    dist = slope = 0.0
    for A in (C, C.transpose(1, 0, 2)):
        a = A[:, 1:-1] - A[:, :-2]
        b = A[:, 2:] - A[:, 1:-1]
        la, lb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
        dist += float(np.abs(la - lb).sum())
        cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
        dot = (a * b).sum(-1)
        slope += float(np.abs(np.arctan2(cross, dot)).sum())
    return dist / grid**2, slope / grid**2


# ----------------------------------------------------------------------------- body targets
def body_targets(lm: dict[str, np.ndarray], person: "P.PersonFrame") -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Garment landmarks -> body points for one frame.

    Returns (garment points, body points, weights, info) for the torso warp (sleeves
    follow the arms, :func:`sleeve_affine`). Shoulders come from the pose;
    the neckline follows the garment's own layout by the shoulder similarity transform;
    armpits and hem corners follow the torso axis to the hips, or, when the hips are out
    of frame or unsure, to an anthropometric hip line 1.45 shoulder widths below.
    """
    pts, vis = person.points, person.visibility
    a, b = pts[P.R_SHOULDER], pts[P.L_SHOULDER]
    # The "image-left" shoulder is the one that makes the body's down direction (the
    # shoulder line turned clockwise) point away from the head, so a person lying down or
    # filmed with the camera on its side is dressed head-up; for an upright person this
    # is the shoulder with the smaller x (the person's right when facing us).
    head = pts[:11].mean(axis=0)  # nose, eyes, ears, mouth
    across = b - a
    side = float((head - (a + b) / 2) @ np.array([-across[1], across[0]]))
    if abs(side) > 0.05 * float(across @ across):
        left_is_r = side < 0
    else:  # head on the shoulder line (unreliable landmarks): fall back to image order
        left_is_r = a[0] <= b[0]
    sl, sr = (a, b) if left_is_r else (b, a)
    el, er = (P.R_ELBOW, P.L_ELBOW) if left_is_r else (P.L_ELBOW, P.R_ELBOW)
    hl_i, hr_i = (P.R_HIP, P.L_HIP) if left_is_r else (P.L_HIP, P.R_HIP)
    sw = max(float(np.linalg.norm(sr - sl)), 2.0)
    u = (sr - sl) / sw
    d = np.array([-u[1], u[0]])
    mid = (sl + sr) / 2
    hips_ok = vis[hl_i] >= 0.5 and vis[hr_i] >= 0.5 and person.visible(hl_i) and person.visible(hr_i)
    if hips_ok:
        hip_mid = (pts[hl_i] + pts[hr_i]) / 2
        torso = max(float((hip_mid - mid) @ d), 0.8 * sw)
        hip_w = max(float(np.linalg.norm(pts[hr_i] - pts[hl_i])), 0.6 * sw)
    else:
        torso, hip_w = 1.45 * sw, 0.75 * sw
    hip_mid = mid + d * torso

    gsl, gsr = lm["shoulder_left"], lm["shoulder_right"]
    gsw = max(float(np.linalg.norm(gsr - gsl)), 1.0)
    gu = (gsr - gsl) / gsw
    gd = np.array([-gu[1], gu[0]])
    tsl = sl - u * 0.10 * sw - d * 0.10 * sw
    tsr = sr + u * 0.10 * sw - d * 0.10 * sw
    tsw = float(np.linalg.norm(tsr - tsl))

    def similar(p):  # garment point carried by the shoulder-to-shoulder similarity
        q = p - gsl
        return tsl + ((q @ gu) * u + (q @ gd) * d) * (tsw / gsw)

    targets = {
        "shoulder_left": tsl,
        "shoulder_right": tsr,
        "neck_left": similar(lm["neck_left"]),
        "neck_right": similar(lm["neck_right"]),
        "neck_centre": similar(lm["neck_centre"]),
        "armpit_left": sl + u * 0.02 * sw + d * 0.45 * sw,
        "armpit_right": sr - u * 0.02 * sw + d * 0.45 * sw,
        "hem_left": hip_mid - u * (0.5 * hip_w + 0.12 * sw) + d * 0.12 * torso,
        "hem_right": hip_mid + u * (0.5 * hip_w + 0.12 * sw) + d * 0.12 * torso,
    }
    weight = {"neck_centre": 0.5, "neck_left": 0.7, "neck_right": 0.7}
    names = [k for k in targets if k in lm]
    g = np.array([lm[k] for k in names])
    bpts = np.array([targets[k] for k in names])
    w = np.array([weight.get(k, 1.0) for k in names])
    # The body's size for judging motion and disagreement: the shoulder width, or the one
    # a torso of this length implies (shoulders 1/1.45 of it, the default above) when
    # that is larger, as for a person seen side-on, whose shoulders overlap in the image.
    body = max(sw, float(np.linalg.norm((pts[hl_i] + pts[hr_i]) / 2 - mid)) / 1.45) if hips_ok else sw
    info = {
        "hips_in_frame": bool(hips_ok),
        "shoulder_width": sw,
        "torso_length": torso,
        "body_size": body,
        "shoulders": (sl, sr),
        "elbows": (el, er),
        "hip_mid": hip_mid,
        "across": u,
    }
    return g, bpts, w, info


def sleeve_affine(
    lm: dict[str, np.ndarray], side: str, torso: GarmentWarp, person: "P.PersonFrame", info: dict
) -> np.ndarray:
    """2 x 3 affine (garment -> frame) turning a sleeve about its shoulder along the upper arm.

    The sleeve is scaled by its seam's change of length under the torso warp, its seam
    middle is put on the shoulder joint and its axis (seam middle to sleeve end) turned
    along shoulder -> elbow, so it wraps the upper arm. Without a trustworthy elbow the
    sleeve keeps the angle it has on the garment relative to the shoulder line, hanging
    from the shoulder seam the torso warp placed.
    """
    s, a, e = lm[f"shoulder_{side}"], lm[f"armpit_{side}"], lm[f"sleeve_{side}"]
    s2, a2 = torso.forward(np.array([s, a]))
    scale = float(np.linalg.norm(a2 - s2) / max(np.linalg.norm(a - s), 1e-6))
    axis_g = e - (s + a) / 2
    k = 0 if side == "left" else 1
    shoulder_px, elbow_i = info["shoulders"][k], info["elbows"][k]
    u = info["across"]
    gu = lm["shoulder_right"] - lm["shoulder_left"]
    turn = np.arctan2(u[1], u[0]) - np.arctan2(gu[1], gu[0])
    angle = np.arctan2(axis_g[1], axis_g[0]) + turn
    anchor, pivot = (s2 + a2) / 2, (s + a) / 2
    # Trust in the elbow rises with its visibility; blending (rather than switching)
    # keeps the sleeve from flipping when the visibility hovers around a threshold.
    arm = person.points[elbow_i] - shoulder_px
    trust = float(np.clip((person.visibility[elbow_i] - 0.3) / 0.4, 0.0, 1.0))
    if trust > 0 and np.linalg.norm(arm) > 1e-3:
        arm_angle = np.arctan2(arm[1], arm[0])
        angle = angle + trust * np.angle(np.exp(1j * (arm_angle - angle)))
        anchor = (1 - trust) * anchor + trust * shoulder_px
    rot = angle - np.arctan2(axis_g[1], axis_g[0])
    c, sn = np.cos(rot) * scale, np.sin(rot) * scale
    R = np.array([[c, -sn], [sn, c]])
    t = anchor - R @ pivot
    return np.hstack([R, t[:, None]])


def garment_box(garment, warp: GarmentWarp, sleeves, shape: tuple[int, int], pad: float = 0.08):
    """Pixel box (x0, y0, x1, y1) in the frame that the warped garment can touch."""
    pts = [warp.dst]
    for side, A in zip(("left", "right"), sleeves):
        part = garment.parts.get(f"sleeve_{side}")
        if part is not None and part.any():
            ys, xs = np.nonzero(part > 0.5)
            c = np.array(
                [[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.min(), ys.max()], [xs.max(), ys.max()]], float
            )
            pts.append(c @ A[:, :2].T + A[:, 2])
    p = np.vstack(pts)
    lo, hi = p.min(0), p.max(0)
    m = pad * float((hi - lo).max()) + 4
    h, w = shape
    x0, y0 = int(max(0, np.floor(lo[0] - m))), int(max(0, np.floor(lo[1] - m)))
    x1, y1 = int(min(w, np.ceil(hi[0] + m))), int(min(h, np.ceil(hi[1] + m)))
    return (x0, y0, x1, y1) if x1 - x0 >= 4 and y1 - y0 >= 4 else None


def shift_affine(A: np.ndarray, dx: float, dy: float) -> np.ndarray:
    B = A.copy()
    B[:, 2] += [dx, dy]
    return B
