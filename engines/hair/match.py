"""Pick the library style whose silhouette best matches the hair in the portrait.

Every strand style is fitted to the avatar's head and rendered from the photo's camera
(head drawn too, so hair behind the head is hidden as it is in the photo); the score is
the intersection over union of that visible-hair silhouette with the segmented hair mask
(:mod:`engines.hair.photo`). This is retrieval from a hairstyle database by silhouette,
as in Hu et al., "Single-View Hair Modeling Using A Hairstyle Database", SIGGRAPH 2015,
without their learned orientation features. Rendering is done at a reduced size (longest
side ``work_side`` pixels) so the whole library is scored in a couple of seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engines.api import EngineError
from engines.types import Avatar


@dataclass
class HairMatch:
    scores: dict[str, float]
    """Style name -> IoU, best first."""
    measurements: dict = field(default_factory=dict)
    mask: np.ndarray | None = None
    """The photo's hair mask at the working size."""
    silhouettes: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def best(self) -> str:
        return next(iter(self.scores))

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        return list(self.scores.items())[:n]


def scaled_camera(cam: dict, work_side: int) -> dict:
    w, h = cam["image_size"]
    s = work_side / max(w, h)
    K = np.asarray(cam["K"], float).copy()
    K[:2] *= s
    return {
        "K": K,
        "R": np.asarray(cam["R"], float),
        "t": np.asarray(cam["t"], float).reshape(3),
        "image_size": (max(1, round(w * s)), max(1, round(h * s))),
    }


def iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


def style_silhouettes(avatar: Avatar, cam: dict, styles: list[str] | None = None) -> dict[str, np.ndarray]:
    """Visible hair silhouette of each style on this head from ``cam`` (bool masks).

    A third of the strands is enough for a silhouette at matching size, and fits 3x faster.
    """
    from engines.hair.generate import generate
    from engines.hair.head import fit_strands, head_fit
    from engines.hair.recipe import list_styles, recipes
    from engines.hair.render import hair_mask, head_layers

    _, depth, _ = head_layers(avatar.mesh.vertices, avatar.mesh.faces, cam)
    out = {}
    for s in styles or list_styles():
        if recipes()[s].is_bald:
            out[s] = np.zeros(depth.shape, bool)
            continue
        hf = head_fit(avatar.mesh, avatar.scalp, avatar.camera)
        pts, keep = fit_strands(generate(recipes()[s])[::3], hf, standoff=recipes()[s].standoff)
        out[s] = hair_mask(pts[keep], cam, depth, thickness=3)
    return out


def match_mask(
    avatar: Avatar,
    mask: np.ndarray,
    cam: dict | None = None,
    work_side: int = 192,
    keep_silhouettes: bool = False,
    silhouettes: dict | None = None,
) -> HairMatch:
    """Rank styles by IoU against a hair mask drawn in the frame of ``cam`` (default: avatar.camera).

    ``silhouettes`` (from :func:`style_silhouettes` at the same working size) skips rendering.
    """
    import cv2

    cam = cam or avatar.camera
    if not cam or "K" not in cam:
        raise EngineError(
            "The avatar has no photo camera, so its hair cannot be matched to the photo; "
            "choose a hairstyle by name instead of auto."
        )
    wc = scaled_camera(cam, work_side)
    w, h = wc["image_size"]
    m = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA) > 0
    sil = silhouettes if silhouettes is not None else style_silhouettes(avatar, wc)
    if m.sum() < 0.002 * m.size:
        scores = {s: (1.0 if not v.any() else iou(v, m)) for s, v in sil.items()}
    else:
        scores = {s: iou(v, m) for s, v in sil.items()}
    scores = dict(sorted(scores.items(), key=lambda kv: -kv[1]))
    return HairMatch(scores, mask=m, silhouettes=sil if keep_silhouettes else {})


def match_photo(avatar: Avatar, photo_rgb: np.ndarray, keep_silhouettes: bool = False) -> HairMatch:
    """Segment the portrait's hair, score every style, attach the hair measurements."""
    from engines.hair.photo import segment_hair

    photo = np.asarray(photo_rgb)
    if photo.ndim != 3 or photo.shape[2] < 3:
        raise EngineError("Hair matching needs a colour (RGB) portrait.")
    photo = np.ascontiguousarray(photo[..., :3])
    if photo.dtype != np.uint8:
        photo = np.clip(photo / (257.0 if photo.dtype == np.uint16 else 1.0), 0, 255).astype(np.uint8)
    cam = avatar.camera
    if cam and tuple(cam.get("image_size", ())) != (photo.shape[1], photo.shape[0]):
        raise EngineError(
            f"The portrait is {photo.shape[1]}x{photo.shape[0]} but the avatar was made from a "
            f"{cam['image_size'][0]}x{cam['image_size'][1]} photo; pass the same photo."
        )
    seg = segment_hair(photo, face_index=int((avatar.params or {}).get("face_index", 0)))
    res = match_mask(avatar, seg.mask, keep_silhouettes=keep_silhouettes)
    res.measurements = dict(seg.measurements)
    res.measurements["best_iou"] = round(res.scores[res.best], 4)
    return res
