"""Avatar robustness: the same portraits under the changes real photos bring.

    PYTHONPATH=.bench-deps xvfb-run -a .venv/bin/python benchmarks/avatar_robustness.py [photo ...]

Each portrait in tests/data (default: astronaut.png, grace_hopper.jpg) is altered as phones
and old prints alter faces: in-plane tilt (+-25 degrees), greyscale, under-exposure (x0.5,
x0.3 in sRGB values), a harder tone curve (gamma 1.5, 2.2), a warm colour cast, heavy JPEG
compression (quality 12), light falling off to one side, and 40 % of the size. For each:
whether the engine made an avatar (or the message it gave), the head turn it fitted, the
landmark reprojection error, whether glasses were found, the skin mask's exposure gain
(:func:`engines.avatar.skin.exposure_gain`), the painted iris colour's Lab chroma, and the
identity distance (dlib's descriptor, :mod:`benchmarks.identity`; < 0.6 = same person)
between the altered photo and renders of the avatar from its camera, with the photo's
expression, frontal and turned +30 degrees (the means of ``--id-repeats``, default 2).

The issue's identity targets (front <= 0.40, +-30 degrees <= 0.50) are for real portraits
as they are; here they are a yardstick for how far each change moves the result. The rest
renders (neutral face) are saved side by side in /tmp/bench_avatar/robustness_*.png.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
OUT = Path("/tmp/bench_avatar")


def variants(rgb: np.ndarray):
    """(name, altered RGB uint8) pairs, the unaltered photo first."""
    from PIL import Image

    im = Image.fromarray(rgb)
    a = rgb.astype(np.float32) / 255.0
    yield "as it is", rgb
    for deg in (25, -25):
        yield f"tilt {deg:+d} deg", np.asarray(im.rotate(deg, resample=Image.BICUBIC, fillcolor=(200, 200, 200)))
    yield "greyscale", np.asarray(im.convert("L").convert("RGB"))
    for k in (0.5, 0.3):
        yield f"exposure x{k}", (255 * a * k).astype(np.uint8)
    for g in (1.5, 2.2):
        yield f"gamma {g}", (255 * a**g).astype(np.uint8)
    warm = a * np.array([1.15, 1.0, 0.75], np.float32)
    yield "warm cast", (255 * np.clip(warm, 0, 1)).astype(np.uint8)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=12)
    yield "JPEG q12", np.asarray(Image.open(buf).convert("RGB"))
    ramp = np.linspace(0.35, 1.2, rgb.shape[1], dtype=np.float32)[None, :, None]
    yield "side light", (255 * np.clip(a * ramp, 0, 1)).astype(np.uint8)
    yield "40 % size", np.asarray(im.resize((im.width * 2 // 5, im.height * 2 // 5), Image.BICUBIC))


def _chroma(rgb) -> float:
    import cv2

    lab = cv2.cvtColor(np.asarray(rgb, np.float32).reshape(1, 1, 3) / 255.0, cv2.COLOR_RGB2LAB).reshape(3)
    return float(np.hypot(lab[1], lab[2]))


def measure(rgb: np.ndarray, repeats: int) -> tuple[dict, np.ndarray | None]:
    import identity

    from engines.api import CancelToken, EngineError, no_progress
    from engines.avatar import bake as bake_mod
    from engines.avatar import skin as skin_mod
    from engines.avatar.engine import AS_PHOTOGRAPHED, AvatarEngine, Deformer
    from engines.avatar.quality import render_from_photo_camera
    from engines.types import Image

    seen: dict = {}
    mask_fn, bake_fn = skin_mod.skin_mask, bake_mod.bake_texture

    def mask_spy(*a, **k):
        sm = mask_fn(*a, **k)
        seen["gain"] = sm.exposure_gain
        return sm

    def bake_spy(*a, **k):
        r = bake_fn(*a, **k)
        seen["iris"] = r.iris_rgb
        return r

    skin_mod.skin_mask, bake_mod.bake_texture = mask_spy, bake_spy
    try:
        res = AvatarEngine().run([Image(rgb)], AvatarEngine.Params(), no_progress, CancelToken())
    except EngineError as e:
        return {"error": str(e)}, None
    finally:
        skin_mod.skin_mask, bake_mod.bake_texture = mask_fn, bake_fn
    av = res.main
    d = Deformer(av)
    pose = d.vertices({}, expression=av.presets.get(AS_PHOTOGRAPHED, {}))
    m = res.metrics
    row = {
        "yaw": m["yaw_deg"],
        "reproj": m["reprojection_error_pct_iod"],
        "glasses": m["glasses_found"],
        "gain": seen.get("gain", float("nan")),
        "iris_chroma": _chroma(seen["iris"]) if "iris" in seen else float("nan"),
    }
    refs = [identity.descriptor(rgb) for _ in range(repeats)]
    for key, yaw in (("front", 0.0), ("+30", 30.0)):
        img, _, _ = render_from_photo_camera(av, pose, yaw_deg=yaw)
        ds = [identity.distance(r, identity.descriptor(img)) for r in refs]
        ds = [x for x in ds if x is not None]
        row[key] = float(np.mean(ds)) if ds else None
    rest, mask, _ = render_from_photo_camera(av, d.vertices({}, expression={}))
    ys, xs = np.nonzero(mask)
    crop = rest[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if len(ys) else None
    return row, crop


def main() -> None:
    import identity
    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("photos", nargs="*", default=["astronaut.png", "grace_hopper.jpg"])
    ap.add_argument("--id-repeats", type=int, default=2)
    args = ap.parse_args()
    why = identity.available()
    if why:
        sys.exit(why)
    OUT.mkdir(parents=True, exist_ok=True)
    fmt = lambda x, f: "-" if x is None else f.format(x)  # noqa: E731
    print(
        "| photo | change | avatar | turn deg | reproj % IOD | glasses | mask gain | iris chroma | ID front | ID +30 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.photos:
        path = ROOT / name if "/" in name else ROOT / "tests" / "data" / name
        rgb = np.asarray(Image.open(path).convert("RGB"))
        tiles = []
        for label, img in variants(rgb):
            row, crop = measure(img, args.id_repeats)
            if "error" in row:
                print(f"| {path.name} | {label} | refused: {row['error']} | | | | | | | |", flush=True)
                continue
            print(
                f"| {path.name} | {label} | made | {row['yaw']:.0f} | {row['reproj']:.2f} | "
                f"{'yes' if row['glasses'] else 'no'} | {row['gain']:.2f} | {row['iris_chroma']:.1f} | "
                f"{fmt(row['front'], '{:.3f}')} | {fmt(row['+30'], '{:.3f}')} |",
                flush=True,
            )
            if crop is not None:
                tiles.append(np.asarray(Image.fromarray(crop).resize((160, 200), Image.LANCZOS)))
        if tiles:
            Image.fromarray(np.concatenate(tiles, 1)).save(OUT / f"robustness_{path.stem}.png")


if __name__ == "__main__":
    main()
