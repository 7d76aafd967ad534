"""Depth from focus benchmark: HybridDepth's metrics on synthetic focal stacks from RGB-D scenes.

    .venv/bin/python benchmarks/depth.py              # quality tables + runtime at 552x383 and 12 MP
    .venv/bin/python benchmarks/depth.py --no-12mp    # skip the 12 MP timing

Scenes (all with ground-truth depth):
* motorcycle-left: Middlebury 2014 "Motorcycle" left view and its ground-truth disparity
  (tests/data, from scikit-image), calibration from skimage's docstring;
* motorcycle-right: the right view of the same pair (skimage.data.stereo_motorcycle), its
  depth forward-warped from the left ground truth (x_r = x_l - d, nearest surface wins;
  pixels seen only by the right camera are unknown and not scored). A second real
  photograph of the same scene;
* aloe: Middlebury 2006 "Aloe" (left view and ground-truth disparity, as shipped in
  OpenCV's sample data, Debian package opencv-doc; halved to 641x555 in tests/data),
  calibration from the Middlebury 2006 page (f 3740 px, baseline 160 mm, disparity
  offset 270 px at full size): a genuinely different real scene, a plant's thin leaves
  in front of a cloth backdrop at 1.4-1.9 m. Its depth range is narrow (far/near 1.3),
  so delta1 is nearly 1 for every method; AbsRel and RMSE tell the methods apart;
* planes: a procedural scene of textured planes (engines.depth.synth.plane_scene),
  whose depth is exact;
* held out (``--held-out N``, default 8): random procedural scenes
  (engines.depth.synth.random_plane_scene, seeds 100...; 320x224) with random slanted
  cards, floors and textures (1/f noise, stripes, checkerboards, weak texture, cards with
  the wall's look). No parameter was chosen on them; they check that changes generalise
  beyond the three scenes above. ``--calibration`` prints how the depth-from-focus error
  depends on the confidence on a further set (seeds 200...).

Stacks: 5 and 10 frames, focus distances uniform in dioptres over the scene's depth
range, thin-lens rendering (100 mm f/2; sensor width set so that the focal length in
pixels is the scene's), Gaussian read noise sigma 0.01 and 1 % focus breathing.
An exposure table repeats the 10-frame stacks with a random gain per frame (within
+-15 %), fused with and without exposure equalisation.
Methods: "DFF argmax" (plain: the default operator over a box window, argmax frame, no
interpolation; frames aligned as in the pipeline), "DFF+interp" (the pipeline's focus
stage: edge-aware window and Gaussian sub-frame fit), "fused" (the whole pipeline with
default parameters). Metrics as in HybridDepth:
AbsRel, RMSE and MSE (metres), delta_k = fraction with max(p/g, g/p) < 1.25^k.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.api import CancelToken, make_params, no_progress  # noqa: E402
from engines.depth.align import align_stack  # noqa: E402
from engines.depth.engine import DepthFromFocusEngine  # noqa: E402
from engines.depth.focus import OPERATORS, depth_from_focus  # noqa: E402
from engines.depth.fusion import fit_scale_shift  # noqa: E402
from engines.depth.synth import make_focal_stack, plane_scene, random_plane_scene, rgbd_from_disparity  # noqa: E402
from engines.types import FocalStack  # noqa: E402

FOCAL_PX, BASELINE_M, DOFFS_PX = 994.978, 0.193001, 31.086
# Middlebury 2006 "Aloe" at half size (641x555): f 3740 px, baseline 160 mm, disparity offset
# dmin 270 px at full size, all halved here with the disparities (tests/data/aloe_disp.npz).
ALOE_FOCAL_PX, ALOE_BASELINE_M, ALOE_DOFFS_PX = 1870.0, 0.160, 135.0
F_MM, F_NUMBER, NOISE, BREATHING = 100.0, 2.0, 0.01, 0.01


def metrics(pred, gt) -> dict:
    ok = np.isfinite(gt) & np.isfinite(pred) & (gt > 0)
    p, g = pred[ok].astype(np.float64), gt[ok].astype(np.float64)
    r = np.maximum(p / g, g / p)
    mse = float(np.mean((p - g) ** 2))
    return {
        "AbsRel": float(np.mean(np.abs(p - g) / g)),
        "RMSE": mse**0.5,
        "MSE": mse,
        "d1": float(np.mean(r < 1.25)),
        "d2": float(np.mean(r < 1.25**2)),
        "d3": float(np.mean(r < 1.25**3)),
    }


def motorcycle_right(width: int):
    """Right view with depth forward-warped from the left ground truth."""
    from skimage.data import stereo_motorcycle

    _, right, _ = stereo_motorcycle()
    disp = np.load(ROOT / "tests" / "data" / "motorcycle_disp.npz")["arr_0"]
    h, w = disp.shape
    ok = np.isfinite(disp)
    ys, xs = np.nonzero(ok)
    d = disp[ok]
    xr = np.round(xs - d).astype(int)
    inside = (xr >= 0) & (xr < w)
    ys, xr, d = ys[inside], xr[inside], d[inside]
    order = np.argsort(d)  # far first, near last: the nearest surface is written last and wins
    warped = np.full((h, w), np.nan, np.float32)
    warped[ys[order], xr[order]] = d[order]
    return rgbd_from_disparity(right, warped, FOCAL_PX, BASELINE_M, DOFFS_PX, width=width)


def scenes(width: int):
    from PIL import Image

    rgb = np.asarray(Image.open(ROOT / "tests" / "data" / "motorcycle_left.png").convert("RGB"))
    disp = np.load(ROOT / "tests" / "data" / "motorcycle_disp.npz")["arr_0"]
    yield "motorcycle-left", rgbd_from_disparity(rgb, disp, FOCAL_PX, BASELINE_M, DOFFS_PX, width=width)
    yield "motorcycle-right", motorcycle_right(width)
    aloe = np.asarray(Image.open(ROOT / "tests" / "data" / "aloe_left.jpg").convert("RGB"))
    disp = np.load(ROOT / "tests" / "data" / "aloe_disp.npz")["arr_0"]
    yield "aloe", rgbd_from_disparity(aloe, disp, ALOE_FOCAL_PX, ALOE_BASELINE_M, ALOE_DOFFS_PX, width=width)
    yield "planes", plane_scene(width, int(round(width * 500 / 741)), seed=0)


def stack_for(rgb, depth, K, frames: int, seed: int = 0) -> FocalStack:
    lo, hi = np.nanpercentile(depth, [0.5, 99.5])
    fd = 1.0 / np.linspace(1.0 / (0.97 * lo), 1.0 / (1.03 * hi), frames)
    w = rgb.shape[1]
    return make_focal_stack(rgb, depth, fd, F_MM, F_NUMBER, F_MM * w / K[0, 0], NOISE, BREATHING, seed=seed)


def run_engine(stack, **values):
    params = make_params(DepthFromFocusEngine, values)
    return DepthFromFocusEngine().run([stack], params, no_progress, CancelToken())


def held_out_scenes(count: int, first_seed: int = 100):
    for seed in range(first_seed, first_seed + count):
        yield f"random-{seed}", random_plane_scene(320, 224, seed)


def quality(width: int, frame_counts=(5, 10), scene_iter=None) -> list[dict]:
    rows = []
    for name, (rgb, depth, K) in scene_iter if scene_iter is not None else scenes(width):
        for n in frame_counts:
            st = stack_for(rgb, depth, K, n, seed=n)
            al = align_stack(st.frames, 0)
            d = DepthFromFocusEngine.Params()
            plain = depth_from_focus(st.frames, st.focus_distances, d.operator, d.window, "none", warp=al.warp)
            res = run_engine(st)
            dff = depth_from_focus(
                st.frames,
                st.focus_distances,
                d.operator,
                d.window,
                d.interpolation,
                warp=al.warp,
                edge_aware=d.edge_aware_window,
            )
            for method, pred in (
                ("DFF argmax", plain.depth_argmax),
                ("DFF+interp", dff.depth),
                ("fused", res.main.depth),
            ):
                rows.append({"scene": name, "frames": n, "method": method, **metrics(pred, depth)})
    return rows


def summary(rows: list[dict]) -> str:
    """Mean metrics per method, and in how many stacks the fused result beats the others."""
    out = []
    methods = ["DFF argmax", "DFF+interp", "fused"]
    for m in methods:
        sel = [r for r in rows if r["method"] == m]
        out.append(
            f"  {m:11s} mean AbsRel {np.mean([r['AbsRel'] for r in sel]):.4f}, mean RMSE "
            f"{np.mean([r['RMSE'] for r in sel]):.4f}, mean d1 {np.mean([r['d1'] for r in sel]):.4f}"
        )
    fused = [r for r in rows if r["method"] == "fused"]

    def other(r, m):
        return next(a for a in rows if a["scene"] == r["scene"] and a["frames"] == r["frames"] and a["method"] == m)

    better = sum(r["AbsRel"] <= other(r, "DFF+interp")["AbsRel"] for r in fused)
    red = [1 - r["RMSE"] / other(r, "DFF argmax")["RMSE"] for r in fused]
    out.append(
        f"  fused AbsRel <= DFF+interp in {better} of {len(fused)} stacks; RMSE reduction vs DFF argmax: "
        f"mean {100 * np.mean(red):.1f} %, min {100 * np.min(red):.1f} %, >= 30 % in {sum(x >= 0.3 for x in red)}"
    )
    return "\n".join(out)


def calibration_table(count: int) -> str:
    """Depth-from-focus log-depth error by confidence on random scenes (seeds 200...)."""
    bins = np.array([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001])
    sq, n, med = np.zeros(10), np.zeros(10), [[] for _ in range(10)]
    d = DepthFromFocusEngine.Params()
    for _, (rgb, depth, K) in held_out_scenes(count, 200):
        for frames in (5, 10):
            st = stack_for(rgb, depth, K, frames, seed=frames)
            al = align_stack(st.frames, 0)
            dff = depth_from_focus(
                st.frames,
                st.focus_distances,
                d.operator,
                d.window,
                d.interpolation,
                warp=al.warp,
                edge_aware=d.edge_aware_window,
            )
            e = np.log(dff.depth / depth).ravel()
            b = np.clip(np.digitize(dff.confidence.ravel(), bins) - 1, 0, 9)
            np.add.at(sq, b, e * e)
            np.add.at(n, b, 1)
            for i in range(10):
                med[i].append(np.abs(e[b == i]))
    lines = [
        "| confidence | pixels | RMS log error | median abs log error | 1/RMS^2 (rel.) | c^2 at bin centre |",
        "|---|---|---|---|---|---|",
    ]
    rms = np.sqrt(sq / np.maximum(n, 1))
    for i in range(10):
        c = 0.5 * (bins[i] + min(bins[i + 1], 1.0))
        lines.append(
            f"| {bins[i]:.1f}-{min(bins[i + 1], 1.0):.1f} | {int(n[i])} | {rms[i]:.4f} | "
            f"{np.median(np.concatenate(med[i])) if n[i] else float('nan'):.4f} | "
            f"{(rms[-1] / rms[i]) ** 2 if n[i] else float('nan'):.3f} | {c * c:.3f} |"
        )
    return "\n".join(lines)


def operator_table(width: int) -> list[dict]:
    """AbsRel of the pipeline per focus operator (10 frames), to choose the default."""
    rows = []
    for name, (rgb, depth, K) in scenes(width):
        st = stack_for(rgb, depth, K, 10, seed=10)
        for op in OPERATORS:
            rows.append({"scene": name, "operator": op, **metrics(run_engine(st, operator=op).main.depth, depth)})
    return rows


def timing(stack: FocalStack, repeats: int = 3) -> dict:
    runs = []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        res = run_engine(stack)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        runs.append(
            {
                **res.timings,
                "total": total,
                "total without mesh": total - res.timings.get("mesh", 0.0),
                "process CPU time": cpu,
            }
        )
    return {k: min(r[k] for r in runs) for k in runs[0]}


def fit_time(shape, repeats: int = 30) -> float:
    rng = np.random.default_rng(0)
    p = rng.random(shape).astype(np.float32)
    m = 0.7 * p + 0.1
    w = (rng.random(shape) > 0.3).astype(np.float32)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit_scale_shift(p, m, w, "huber")
        best = min(best, time.perf_counter() - t0)
    return best


def exposure_table(width: int, amplitude: float = 0.15, seed: int = 7) -> list[dict]:
    """Fused metrics when each frame's exposure is off by a random gain within
    +-``amplitude`` (auto exposure between shots), with and without exposure equalisation."""
    from engines.types import FocalStack

    rng = np.random.default_rng(seed)
    rows = []
    for name, (rgb, depth, K) in scenes(width):
        st = stack_for(rgb, depth, K, 10, seed=10)
        gains = 1.0 + amplitude * rng.uniform(-1.0, 1.0, len(st.frames))
        frames = [np.clip(f.astype(np.float32) * g, 0, 255).astype(np.uint8) for f, g in zip(st.frames, gains)]
        jittered = FocalStack(frames, st.focus_distances)
        for label, stack, exposure in (
            ("no gain change", st, True),
            ("gains, not equalised", jittered, False),
            ("gains, equalised", jittered, True),
        ):
            m = metrics(run_engine(stack, exposure=exposure).main.depth, depth)
            rows.append({"scene": name, "stack": label, **m})
    return rows


def timing_stacks(with_12mp: bool):
    import cv2

    rgb, depth, K = next(scenes(567))[1]
    crop = slice(7, 7 + 552)
    rgb, depth = (
        cv2.resize(rgb, (567, 383), interpolation=cv2.INTER_AREA)[:, crop],
        cv2.resize(depth, (567, 383), interpolation=cv2.INTER_NEAREST)[:, crop],
    )
    K = K.copy()
    K[1, 1] = K[0, 0]
    K[0, 2], K[1, 2] = 275.5, 191.0
    st = stack_for(rgb, depth, K, 10)
    yield "552x383", st
    if with_12mp:
        # 12 MP frames: the 552x383 stack upsampled (cubic) to 4000x3000 with fresh sensor noise;
        # rendering 12 MP thin-lens stacks takes minutes, and runtime does not depend on content.
        rng = np.random.default_rng(1)
        big = []
        for f in st.frames:
            up = cv2.resize(f, (4000, 3000), interpolation=cv2.INTER_CUBIC).astype(np.float32)
            big.append(
                np.clip(up + 255 * NOISE * rng.standard_normal(up.shape, dtype=np.float32), 0, 255).astype(np.uint8)
            )
        yield "4000x3000 (12 MP)", FocalStack(big, st.focus_distances)


def table(rows: list[dict], cols: list[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = ""
    for r in rows:
        body += "| " + " | ".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |\n"
    return head + body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=552, help="scene width for the quality tables")
    ap.add_argument("--no-12mp", action="store_true", help="skip the 12 MP timing")
    ap.add_argument("--no-operators", action="store_true", help="skip the operator comparison")
    ap.add_argument("--held-out", type=int, default=8, help="random procedural scenes to validate on (0 = none)")
    ap.add_argument(
        "--calibration",
        type=int,
        default=0,
        help="also print the confidence-vs-error table on this many further random scenes",
    )
    args = ap.parse_args()

    print(
        f"## Quality ({args.width} px wide, noise {NOISE}, breathing {BREATHING * 100:g} %, {F_MM:g} mm f/{F_NUMBER:g})\n"  # noqa: E501
    )
    rows = quality(args.width)
    print(table(rows, ["scene", "frames", "method", "AbsRel", "RMSE", "MSE", "d1", "d2", "d3"]))
    print("RMSE reduction, fused vs DFF argmax:")
    for r in rows:
        if r["method"] == "fused":
            arg = next(
                a
                for a in rows
                if a["scene"] == r["scene"] and a["frames"] == r["frames"] and a["method"] == "DFF argmax"
            )
            print(f"  {r['scene']:18s} {r['frames']:2d} frames: {100 * (1 - r['RMSE'] / arg['RMSE']):5.1f} %")
    print(summary(rows))
    if args.held_out:
        print(
            f"\n## Held-out random procedural scenes ({args.held_out} scenes, 320x224, seeds 100-{99 + args.held_out})\n"  # noqa: E501
        )
        held = quality(320, scene_iter=held_out_scenes(args.held_out))
        print(table(held, ["scene", "frames", "method", "AbsRel", "RMSE", "MSE", "d1", "d2", "d3"]))
        print(summary(held))
    if args.calibration:
        print(
            f"\n## Depth-from-focus error by confidence ({args.calibration} random scenes, seeds 200..., 5 and 10 frames)\n"  # noqa: E501
        )
        print(calibration_table(args.calibration))
    print("\n## Exposure jitter (10 frames, each frame's gain random within +-15 %, fused)\n")
    print(table(exposure_table(args.width), ["scene", "stack", "AbsRel", "RMSE", "d1"]))
    if not args.no_operators:
        print("\n## Focus operators (10 frames, whole pipeline)\n")
        print(table(operator_table(args.width), ["scene", "operator", "AbsRel", "RMSE", "d1"]))

    import os

    print(
        f"\n## Runtime per stage (seconds, best of 3 at 552x383, one run at 12 MP; 10 frames; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})\n"
    )
    for label, st in timing_stacks(not args.no_12mp):
        t = timing(st, 3 if "552" in label else 1)
        print(f"{label}: " + ", ".join(f"{k} {v:.3f}" for k, v in t.items()))
    print(
        f"\nglobal fit alone (Huber IRLS, 552x383, best of 30): {fit_time((383, 552)) * 1000:.2f} ms;"
        f" 12 MP: {fit_time((3000, 4000), 5) * 1000:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
