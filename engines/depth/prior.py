"""Relative-depth priors for the fusion step: an edge-aware one that needs no weights, and
an ONNX monocular-depth model the user supplies.

HybridDepth (Ganj, Su, Guo) takes its relative depth from a single-image network
(Depth Anything / MiDaS); no such weights ship offline here, so the default prior is a
**weights-free edge-aware prior**: the confident depth-from-focus values are propagated
along the structure of the all-in-focus image by a confidence-weighted fast global
smoother (Min et al., "Fast global image smoothing based on weighted least squares",
IEEE TIP 2014): ``prior = FGS(c * x) / FGS(c)``, a normalised convolution in the
bilateral sense (Knutsson and Westin 1993), so weak or missing measurements take the
values of confident neighbours of similar colour and not of those across an edge.

The ONNX provider runs a user-supplied monocular depth model (for example a Depth
Anything V2 or MiDaS export) with onnxruntime on the all-in-focus image; its output is
read as inverse depth (Depth Anything, MiDaS) or depth, according to a parameter.

**Joint guidance** (:func:`joint_guide`): colour alone does not separate a card from a
wall of similar colour, so the smoother's guide carries the measured depth as well, as
joint bilateral upsampling guides by a second modality (Kopf et al., SIGGRAPH 2007):
the guide's channels are the all-in-focus image's lightness, its mean chroma, and the
depth from focus (inverse depth; the engine passes the confident measurements with the
rest filled by a first colour-guided pass, median-filtered so that isolated noisy values
do not become edges), scaled so that one frame's spacing in dioptres is ``gain`` grey levels.
Propagation then stops at a discontinuity that either the colour or the focus sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from engines.api import EngineError

PriorOutput = Literal["inverse-depth", "depth"]


def smoothing_lambda(shape, smoothness: float) -> float:
    """FGS lambda scaled with the image size, so that the propagation reach is a fixed
    fraction of the image (its spatial reach grows as sqrt(lambda) pixels)."""
    side = max(shape[:2]) / 500.0
    return float(smoothness * side * side)


class EdgeAwareSmoother:
    """Confidence-weighted fast global smoother guided by one RGB image (built once, reused)."""

    def __init__(self, guide_rgb: np.ndarray, lam: float, sigma_color: float = 8.0):
        import cv2

        guide = np.ascontiguousarray(guide_rgb[..., :3])
        if guide.dtype != np.uint8:
            guide = np.clip(guide, 0, 255).astype(np.uint8)
        self._fgs = cv2.ximgproc.createFastGlobalSmootherFilter(guide, float(lam), float(sigma_color))

    def __call__(
        self, values: np.ndarray, weights: np.ndarray, fallback: float | np.ndarray | None = None, eps: float = 1e-4
    ) -> np.ndarray:
        """Normalised edge-aware smoothing of ``values`` with per-pixel ``weights``.

        Where the smoothed weight is below ``eps`` (no evidence reaches), ``fallback`` (a
        value or an array) takes over smoothly; with no fallback the global weighted mean.
        """
        w = np.ascontiguousarray(weights, dtype=np.float32)
        v = np.ascontiguousarray(np.nan_to_num(values), dtype=np.float32)
        num = self._fgs.filter(v * w)
        den = self._fgs.filter(w)
        if fallback is None:
            fallback = float((v * w).sum() / max(w.sum(), 1e-12)) if w.sum() > 0 else float(np.median(v))
        return ((num + eps * np.float32(1.0) * fallback) / (den + eps)).astype(np.float32)


def joint_guide(image_rgb: np.ndarray, dioptre: np.ndarray, focus_dioptres, gain: float = 16.0) -> np.ndarray:
    """A 3-channel uint8 guide: CIELAB lightness, mean chroma ``(a + b) / 2``, and the
    depth-from-focus inverse depth (5 x 5 median) at ``gain`` levels per frame spacing.

    ``focus_dioptres`` are the frames' inverse focus distances; with ``gain`` 0 the
    all-in-focus RGB image itself is returned (colour-only guidance).
    """
    import cv2

    rgb = np.ascontiguousarray(image_rgb[..., :3])
    if rgb.dtype != np.uint8:
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    if gain <= 0:
        return rgb
    fd = np.asarray(focus_dioptres, np.float64)
    lo, hi = float(fd.min()), float(fd.max())
    if hi <= lo:
        return rgb
    step = (hi - lo) / max(len(fd) - 1, 1)
    levels = min(255.0, gain * (hi - lo) / step)  # grey levels spanned by the stack's range
    x = np.clip((np.nan_to_num(np.asarray(dioptre, np.float32), nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    q = cv2.medianBlur(np.round(x * 255.0).astype(np.uint8), 5).astype(np.float32) * (levels / 255.0)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    guide = np.dstack([lab[..., 0], 0.5 * (lab[..., 1] + lab[..., 2]), q])
    return np.clip(np.round(guide), 0, 255).astype(np.uint8)


def joint_smoother(
    image_rgb: np.ndarray,
    dioptre: np.ndarray,
    weights: np.ndarray,
    confident: np.ndarray,
    focus_dioptres,
    lam: float,
    sigma_color: float = 8.0,
    gain: float = 16.0,
    first: "EdgeAwareSmoother | None" = None,
) -> tuple[EdgeAwareSmoother, np.ndarray]:
    """The smoother of the fusion and its guide: jointly guided by colour and depth from focus.

    A first, colour-guided pass (``first``, built here when None) fills the pixels that are
    not ``confident``, so that only confident depth edges, and no measurement noise, enter
    the guide (:func:`joint_guide`). With ``gain`` 0 the guide is the colour image alone.
    Returns ``(smoother, guide)``.
    """
    guide = np.ascontiguousarray(image_rgb[..., :3])
    if gain > 0:
        first = first or EdgeAwareSmoother(guide, lam, sigma_color)
        filled = np.where(confident, dioptre, first(dioptre, weights))
        guide = joint_guide(image_rgb, filled, focus_dioptres, gain)
    return EdgeAwareSmoother(guide, lam, sigma_color), guide


@dataclass
class Prior:
    """A relative depth map in the reference grid and what its values mean."""

    values: np.ndarray
    kind: PriorOutput
    name: str


def edge_aware_prior(smoother: EdgeAwareSmoother, dioptre: np.ndarray, confidence: np.ndarray) -> Prior:
    """The weights-free prior: confident inverse depth propagated along image edges."""
    return Prior(smoother(dioptre, confidence), "inverse-depth", "weights-free edge-aware prior")


_SESSIONS: dict[tuple[str, float], object] = {}


def _session(path: Path):
    """An onnxruntime session for ``path``, cached by path and modification time."""
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _SESSIONS:
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - onnxruntime is a pinned dependency
            raise EngineError("The ONNX prior needs the onnxruntime package: pip install onnxruntime.") from e
        try:
            _SESSIONS[key] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:
            raise EngineError(
                f"{path.name} is not a usable ONNX model ({type(e).__name__}: {str(e)[:200]}); "
                "choose a monocular depth model exported to ONNX (e.g. Depth Anything V2 or MiDaS)."
            ) from None
    return _SESSIONS[key]


def check_model_path(model_path) -> Path:
    """The model file as a Path, or an EngineError telling the user what to choose."""
    if not model_path:
        raise EngineError("The ONNX prior needs a model file: set onnx_model to a .onnx monocular depth model.")
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise EngineError(f"ONNX model '{path}' not found: choose an existing .onnx file (Settings > ONNX model).")
    return path


def onnx_prior(
    image_rgb: np.ndarray,
    model_path,
    output: PriorOutput = "inverse-depth",
    input_size: int = 518,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
) -> Prior:
    """Run a monocular depth ONNX model on ``image_rgb`` and return its output at image size.

    The model takes one N x 3 x H x W float32 tensor (ImageNet-normalised RGB); fixed input
    sizes in the model are used as they are, dynamic ones get ``input_size`` on the long
    side, rounded to a multiple of 14 (the ViT patch of Depth Anything). The first output,
    squeezed to H' x W', is resized back to the image.
    """
    import cv2

    path = check_model_path(model_path)
    sess = _session(path)
    inp = sess.get_inputs()[0]
    shape = list(inp.shape)
    if len(shape) != 4:
        raise EngineError(f"{path.name} takes a {len(shape)}-D input; a depth model takes N x 3 x H x W images.")
    h0, w0 = image_rgb.shape[:2]
    mh, mw = shape[2], shape[3]
    if not (isinstance(mh, int) and isinstance(mw, int) and mh > 0 and mw > 0):
        scale = input_size / max(h0, w0)
        mh = max(14, int(round(h0 * scale / 14.0)) * 14)
        mw = max(14, int(round(w0 * scale / 14.0)) * 14)
    x = cv2.resize(image_rgb[..., :3], (mw, mh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    try:
        out = sess.run(None, {inp.name: x})[0]
    except Exception as e:
        raise EngineError(f"{path.name} failed to run on a {mw}x{mh} image ({str(e)[:200]}).") from None
    out = np.squeeze(np.asarray(out, dtype=np.float32))
    if out.ndim != 2:
        raise EngineError(f"{path.name} returned an output of shape {out.shape}; a depth model returns one H x W map.")
    if not np.isfinite(out).all():
        raise EngineError(f"{path.name} returned NaN or infinite values on this image.")
    out = cv2.resize(out, (w0, h0), interpolation=cv2.INTER_LINEAR)
    return Prior(out, output, f"ONNX model {path.name} ({output})")
