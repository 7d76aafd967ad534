"""Thumbnails of the hairstyle library, rendered off-screen with the software renderer.

    python -m engines.hair.thumbs            # (re)writes resources/hairstyles/thumbs/*.png
    python -m engines.hair.thumbs --only bob # one style

Each thumbnail shows the style on the canonical head from the front and three-quarter
views side by side (the hairstyle picker shows them with the style's label). ``auto.png``,
the tile of "Auto (photo)", shows what Auto does: a portrait (a drawn head-and-shoulders
silhouette) and, beside it, the head with the silhouette of the matched hair laid over it.
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


AUTO_NAME = "auto"
AUTO_ACCENT = (70, 150, 235)
"""Colour of the matched-hair silhouette on the Auto tile (RGB)."""


def auto_thumbnail(size: int = THUMB_SIZE, style: str = "bob") -> np.ndarray:
    """RGB uint8 (size x 2*size): the "Auto (photo)" tile. Left, a portrait card (a head
    with dark hair on a sky-blue ground); right, the bald canonical head with the front
    silhouette of ``style`` laid over it in an accent colour, as the matcher compares
    silhouettes; an arrow from the photo to the head."""
    import cv2

    from engines.hair import fit_style
    from engines.hair.head import canonical_avatar
    from engines.hair.render import hair_mask, head_layers, render, view_camera

    S = 2 * size  # drawn at twice the size, then reduced (smooth edges)
    av = canonical_avatar()
    b = BOUNDS.copy()
    b[0, 1] = -0.16
    half = 0.5 * (b[1, 1] - b[0, 1])
    b[0, [0, 2]], b[1, [0, 2]] = -half, half
    cam = view_camera(b, "front", S)
    head = render(
        np.zeros((0, 16, 3), np.float32),
        None,
        cam,
        av.mesh.vertices,
        av.mesh.faces,
        vertex_colors=av.mesh.vertex_colors,
    )
    _, depth, _ = head_layers(av.mesh.vertices, av.mesh.faces, cam)
    mask = hair_mask(fit_style(av, style).points, cam, depth, thickness=5)
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    over = head.astype(np.float32)
    accent = np.array(AUTO_ACCENT, np.float32)
    over[mask > 0] = 0.35 * over[mask > 0] + 0.65 * accent
    right = over.astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(right, contours, -1, (255, 255, 255), 2, cv2.LINE_AA)

    left = np.zeros((S, S, 3), np.uint8)
    left[:] = right[2, 2]  # the same dark ground as the renders
    m, r = S // 10, S // 16
    cv2.rectangle(left, (m, m), (S - m, S - m), (236, 236, 230), -1, cv2.LINE_AA)  # the print
    inner = (m + r // 2, m + r // 2, S - m - r // 2, S - m - 2 * r)
    cv2.rectangle(left, inner[:2], inner[2:], (150, 196, 236), -1, cv2.LINE_AA)  # sky
    cx, cy = S // 2, int(S * 0.47)
    clip = np.zeros((S, S), np.uint8)
    cv2.rectangle(clip, inner[:2], inner[2:], 255, -1)
    person = left.copy()
    cv2.ellipse(
        person, (cx, inner[3] + S // 10), (int(S * 0.3), int(S * 0.2)), 0, 180, 360, (60, 70, 110), -1, cv2.LINE_AA
    )  # shoulders
    cv2.ellipse(
        person, (cx, cy - S // 40), (int(S * 0.17), int(S * 0.2)), 0, 0, 360, (70, 45, 30), -1, cv2.LINE_AA
    )  # hair
    cv2.ellipse(
        person, (cx, cy + S // 30), (int(S * 0.12), int(S * 0.15)), 0, 0, 360, (224, 182, 160), -1, cv2.LINE_AA
    )  # face
    left[clip > 0] = person[clip > 0]
    both = np.concatenate([left, right], 1)
    # The arrow: from the photo to the head, across the seam.
    y = int(S * 0.82)
    cv2.arrowedLine(
        both, (S - S // 6, y), (S + S // 6, y), (255, 255, 255), max(3, S // 40), cv2.LINE_AA, tipLength=0.35
    )
    return cv2.resize(both, (size * 2, size), interpolation=cv2.INTER_AREA)


def write_thumbnails(out_dir: Path | None = None, only: list[str] | None = None) -> list[Path]:
    import cv2

    from engines.hair.recipe import list_styles, styles_dir
    from engines.io import atomic_path

    out_dir = Path(out_dir or styles_dir() / "thumbs")
    written = []
    for s in only or [*list_styles(), AUTO_NAME]:
        p = out_dir / f"{s}.png"
        with atomic_path(p) as tmp:
            cv2.imwrite(str(tmp), (auto_thumbnail() if s == AUTO_NAME else thumbnail(s))[..., ::-1])
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
