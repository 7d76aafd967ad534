"""Eyeglass frames (engines.avatar.glasses, issue 11): found or not on every face we have,
its scores, the time it takes, and what it does to the skin mask.

    .venv/bin/python benchmarks/glasses.py

Faces: the portraits in tests/data (Grace Hopper wears tortoiseshell frames; the
astronaut and the three largest faces of group1.jpg wear none), the same faces with frames
drawn on them (black and tortoiseshell rims, bridge and arms, as in the tests), all at the
bake's mask-frame scale (100 px between the eyes). Columns: found, the share of each eye's
loop on a ridge below the eye and all round (found at >= 0.5 and >= 0.65 on both eyes),
the median time of 5 runs, and on the drawn frames the mean skin-mask value over the drawn
frame pixels with and without the frame search (what would be baked into the skin).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    from test_avatar_glasses import _draw_frames, _face

    from engines.avatar.glasses import detect_glasses
    from engines.avatar.skin import skin_mask

    cases = [("grace_hopper.jpg", -1), ("astronaut.png", -1), ("group1.jpg", 0), ("group1.jpg", 1), ("group1.jpg", 2)]
    rows = []
    for name, fi in cases:
        img, xy = _face(name, fi)
        label = name + (f" face {fi}" if fi >= 0 else "")
        variants = [(label, img, None)]
        if name != "grace_hopper.jpg":
            for cname, col in (("black", (20, 18, 22)), ("tortoiseshell", (150, 96, 58))):
                framed, frame = _draw_frames(img, xy, col)
                variants.append((f"{label} + drawn {cname} frames", framed, frame))
        for lab, im, frame in variants:
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                g = detect_glasses(im, xy)
                times.append(time.perf_counter() - t0)
            sc = g.scores
            mask_in = mask_out = None
            if frame is not None:
                mask_in = float(skin_mask(im, xy).mask[frame].mean())
                mask_out = float(skin_mask(im, xy, find_glasses=False).mask[frame].mean())
            rows.append(
                (
                    lab,
                    "yes" if g.found else "no",
                    f"{sc['image_left']['below']:.2f}/{sc['image_left']['all']:.2f}",
                    f"{sc['image_right']['below']:.2f}/{sc['image_right']['all']:.2f}",
                    f"{np.median(times) * 1000:.0f}",
                    "-" if mask_out is None else f"{mask_out:.2f} -> {mask_in:.2f}",
                )
            )
    head = ("face", "found", "image-left eye below/all", "image-right eye below/all", "ms", "skin mask on the frame")
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for r in rows:
        print(" | ".join(r))


if __name__ == "__main__":
    main()
