"""Benchmark: import of a 24-megapixel JPEG to a thumbnail (target: under 1 s).

Builds a 6000 x 4000 JPEG with photo-like detail (the astronaut portrait from
scikit-image, upscaled, with sensor-like noise so the JPEG is not trivially compressible),
then times, each the best of N runs:

* ``make_thumbnail`` (what the Inputs panel shows first; libjpeg DCT scaling),
* ``read_image`` (the full-resolution decode an engine gets),
* a plain PIL full decode + thumbnail, for comparison,
* the same picture as PNG (no reduced decode exists for PNG: the whole file is decoded).

Run: ``.venv/bin/python benchmarks/import_image.py [--runs 5]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_jpeg(path: Path, w: int = 6000, h: int = 4000) -> None:
    from PIL import Image as PILImage
    from skimage import data

    base = PILImage.fromarray(data.astronaut()).resize((w, h), PILImage.BICUBIC)
    a = np.asarray(base).astype(np.int16)
    rng = np.random.default_rng(0)
    a += rng.integers(-6, 7, size=a.shape, dtype=np.int16)
    PILImage.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(path, quality=92)


def best_of(fn, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from PIL import Image as PILImage

    from engines.io.images import make_thumbnail, read_image

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "photo_24mp.jpg"
        make_jpeg(path)
        size_mb = path.stat().st_size / 1e6

        def pil_full():
            with PILImage.open(path) as im:
                im.load()
                im.thumbnail((160, 160))

        png = Path(d) / "photo_24mp.png"
        PILImage.open(path).save(png, compress_level=1)
        rows = [
            ("make_thumbnail(path, 160)", *best_of(lambda: make_thumbnail(path, 160), args.runs)),
            ("read_image(path) full 24 MP", *best_of(lambda: read_image(path), args.runs)),
            ("PIL full decode + thumbnail", *best_of(pil_full, args.runs)),
            ("PNG 24 MP: make_thumbnail", *best_of(lambda: make_thumbnail(png, 160), max(1, args.runs // 2))),
        ]
        thumb = make_thumbnail(path, 160)
    print(f"24-megapixel JPEG (6000x4000, {size_mb:.1f} MB), best/median of {args.runs} runs; target < 1 s")
    print(f"{'step':32s} {'best s':>8s} {'median s':>9s}  target")
    for name, best, med in rows:
        ok = (
            "ok"
            if name.startswith("make_thumbnail") and med < 1.0
            else ("-" if not name.startswith("make_") else "MISSED")
        )
        print(f"{name:32s} {best:8.3f} {med:9.3f}  {ok}")
    print(f"thumbnail shape: {thumb.shape}")


if __name__ == "__main__":
    main()
