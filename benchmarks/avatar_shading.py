"""How much of the photo's shading the avatar's skin keeps (issue 11: the face's sides showed
as brown patches in front of the ears, between the lit front and the skin-tone fill).

    .venv/bin/python benchmarks/avatar_shading.py [photo ...]

Per portrait, the head is fitted (:func:`engines.avatar.fit.fit_head` on MediaPipe's
landmarks) and the photo baked twice: with the photo's shading taken out (the default,
``texture_lighting="even"``) and kept (``"as_photographed"``). Over the face material's
vertices, by how squarely they faced the camera (cosine of normal and view ray): the CIE L*
of their texels in front (> 0.85) and at the face's sides (0.25 - 0.55, still seen), and the
gap between the two (front - sides). With the shading out the sides come nearer the front;
the lit front's brightest tenth (90th percentile) stays as photographed. Bake time beside.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data"


def fitted(photo: np.ndarray):
    """(vertices in metres, K, R, t in metres, landmarks) of the largest face."""
    from engines.avatar.arkit import arkit_basis
    from engines.avatar.fit import fit_head, identity_vertices
    from engines.avatar.landmarks import detect_landmarks

    lm = detect_landmarks(photo)
    h, w = photo.shape[:2]
    fit = fit_head(lm.xy, (w, h), z=lm.z, scores=getattr(lm, "blendshapes", None))
    V = identity_vertices(fit.identity) + np.tensordot(fit.expression, arkit_basis(), 1)
    return (V * 0.01).astype(np.float32), fit.K, fit.R, np.asarray(fit.t) * 0.01, lm


def main(argv: list[str]) -> None:
    import cv2
    from PIL import Image as PILImage

    from engines.avatar.bake import bake_texture, warm_up
    from engines.avatar.ict import KEPT_MATERIALS, render_layout
    from engines.types import vertex_normals

    size = 2048
    warm_up(size)
    lay = render_layout()
    face = np.unique(lay.faces[lay.face_material == KEPT_MATERIALS.index("M_Face")])
    print("photo | lighting | front L* | sides L* | gap | lit front (p90) L* | bake s")
    print("--- | --- | --- | --- | --- | --- | ---")
    for name in argv or ["astronaut.png", "grace_hopper.jpg", "group1.jpg"]:
        path = ROOT / name if "/" in name else DATA / name
        photo = np.asarray(PILImage.open(path).convert("RGB"))
        V, K, R, t, lm = fitted(photo)
        Vr = V[lay.src].astype(np.float64)
        view = (-R.T @ t) - Vr
        view /= np.linalg.norm(view, axis=1, keepdims=True)
        facing = (vertex_normals(Vr, lay.faces) * view).sum(1)[face]
        uv = lay.uv[face]
        rows = np.clip(((1 - uv[:, 1]) * size).astype(int), 0, size - 1)
        cols = np.clip((uv[:, 0] * size).astype(int), 0, size - 1)
        for even in (True, False):
            t0 = time.perf_counter()
            tex = bake_texture(V, K, R, t, photo, lm.xy, size=size, delight=even).texture
            dt = time.perf_counter() - t0
            L = cv2.cvtColor(tex, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32)[rows, cols] * 100 / 255
            front = float(np.median(L[facing > 0.85]))
            sides = float(np.median(L[(facing > 0.25) & (facing < 0.55)]))
            p90 = float(np.percentile(L[facing > 0.85], 90))
            label = "even" if even else "as_photographed"
            print(f"{name} | {label} | {front:.1f} | {sides:.1f} | {front - sides:.1f} | {p90:.1f} | {dt:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
