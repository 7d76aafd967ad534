"""Hair strands as an exportable mesh: one ribbon card per strand.

Real-time hair is commonly exported as camera-independent "hair cards", thin textured
quads that follow the strands (Koster, Haber & Seidel, "Real-time rendering of human hair
using programmable graphics hardware", CGI 2004; the card approach of Unreal/Unity
groom exports). Here every strand becomes one untextured card with all of its points:
two vertices per point, spread across the strand and lying tangent to the hair volume
(the width direction is perpendicular to both the strand and the direction away from the
hair's centre), so the card faces outwards where it is seen. Widths taper from root to
tip. Against 3-sided tubes this needs two thirds of the vertices and one third of the
triangles for the same strands, which keeps OBJ text and zip bundles small and fast to
write; GLB marks the material double-sided, so cards are visible from both sides.
"""

from __future__ import annotations

import numpy as np

from engines.api import EngineError
from engines.types import Mesh, Strands

CARD_WIDTH = 0.0012
"""Card width at the root, metres (a lock of a few strands; 0.3 of it at the tip)."""


def strands_to_cards(
    strands: Strands, width: float = CARD_WIDTH, taper: float = 0.3, max_strands: int | None = None
) -> Mesh:
    """A Mesh named like ``strands`` with one ribbon per strand (all points kept).

    ``max_strands`` keeps an evenly spread subset (every k-th strand) when set; ``None``
    keeps every strand. Non-finite strands are skipped.
    """
    pts = np.asarray(strands.points, np.float32)
    if pts.ndim != 3 or pts.shape[1] < 2 or pts.shape[2] != 3:
        raise EngineError("Hair strands need at least 2 points each (S x P x 3) to become a mesh.")
    keep = np.isfinite(pts).all(axis=(1, 2))
    if max_strands is not None and keep.sum() > max_strands:
        idx = np.nonzero(keep)[0]
        keep[:] = False
        keep[idx[np.linspace(0, len(idx) - 1, int(max_strands)).round().astype(int)]] = True
    P = pts.shape[1]
    cols = strands.colors[keep] if strands.colors is not None and len(strands.colors) == len(pts) else None
    pts = pts[keep]
    if len(pts) == 0:
        raise EngineError("The hair has no strands with valid points, so there is nothing to export.")
    S = len(pts)
    tangent = np.gradient(pts, axis=1)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=2, keepdims=True), 1e-12)
    centre = pts[:, 0].mean(0) - np.array([0, 0.05, 0], np.float32)  # below the crown: inside the head
    out = pts - centre
    side = np.cross(tangent, out)
    n = np.linalg.norm(side, axis=2, keepdims=True)
    fallback = np.cross(tangent, np.array([0, 0, 1], np.float32))
    side = np.where(
        n > 1e-9,
        side / np.maximum(n, 1e-12),
        fallback / np.maximum(np.linalg.norm(fallback, axis=2, keepdims=True), 1e-12),
    )
    normal = np.cross(side, tangent)
    normal /= np.maximum(np.linalg.norm(normal, axis=2, keepdims=True), 1e-12)
    half = 0.5 * width * (1.0 - (1.0 - taper) * np.linspace(0.0, 1.0, P, dtype=np.float32))[None, :, None]
    verts = np.stack([pts - half * side, pts + half * side], axis=2)  # S x P x 2 x 3
    normals = np.repeat(normal[:, :, None], 2, axis=2)
    idx = np.arange(S * P * 2, dtype=np.int64).reshape(S, P, 2)
    a, b = idx[:, :-1, 0], idx[:, :-1, 1]
    c, d = idx[:, 1:, 0], idx[:, 1:, 1]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)])
    vcols = np.repeat(np.asarray(cols, np.uint8), P * 2, axis=0) if cols is not None else None
    return Mesh(
        verts.reshape(-1, 3),
        faces,
        normals.reshape(-1, 3).astype(np.float32),
        vertex_colors=vcols,
        name=strands.name or "hair",
    )
