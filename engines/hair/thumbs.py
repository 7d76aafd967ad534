"""Thumbnails of the hairstyle library, rendered off-screen with the software renderer.

    python -m engines.hair.thumbs            # (re)writes resources/hairstyles/thumbs/*.png
    python -m engines.hair.thumbs --only bob # one style

Each thumbnail shows the style on the canonical head from the front and three-quarter
views side by side (the hairstyle picker shows them with the style's label).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

THUMB_SIZE = 128
BOUNDS = np.array([[-0.16, -0.36, -0.16], [0.16, 0.17, 0.16]])


def thumbnail(style: str, size: int = THUMB_SIZE, color: str = "dark brown") -> np.ndarray:
    """RGB uint8 (size x 2*size): the style on the canonical head, front and three-quarter."""
    from engines.hair import apply_hair
    from engines.hair.head import canonical_avatar
    from engines.hair.render import render, view_camera

    av = apply_hair(canonical_avatar(), style, color)
    pts = av.hair.points if av.hair is not None else np.zeros((0, 16, 3), np.float32)
    cols = av.hair.colors if av.hair is not None else None
    # Frame the style: down to the chin for short hair, to the tips for long hair.
    b = BOUNDS.copy()
    if len(pts):
        b[0, 1] = float(np.clip(pts[..., 1].min() - 0.02, BOUNDS[0, 1], -0.16))
        b[1, 1] = float(max(BOUNDS[1, 1], pts[..., 1].max() + 0.01))
        half = 0.5 * (b[1, 1] - b[0, 1])
        b[0, [0, 2]], b[1, [0, 2]] = -half, half
    views = []
    for v in ("front", "three_quarter"):
        cam = view_camera(b, v, size * 2)
        img = render(pts, cols, cam, av.mesh.vertices, av.mesh.faces, vertex_colors=av.mesh.vertex_colors)
        views.append(img)
    import cv2

    both = np.concatenate(views, 1)
    return cv2.resize(both, (size * 2, size), interpolation=cv2.INTER_AREA)


def write_thumbnails(out_dir: Path | None = None, only: list[str] | None = None) -> list[Path]:
    from engines.hair.recipe import list_styles, styles_dir
    from engines.io import atomic_path

    import cv2

    out_dir = Path(out_dir or styles_dir() / "thumbs")
    written = []
    for s in only or list_styles():
        p = out_dir / f"{s}.png"
        with atomic_path(p) as tmp:
            cv2.imwrite(str(tmp), thumbnail(s)[..., ::-1])
        written.append(p)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args(argv)
    for p in write_thumbnails(a.out, a.only):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
