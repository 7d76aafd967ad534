"""Video try-on benchmark: speed, temporal stability and untouched background.

    .venv/bin/python benchmarks/tryon.py [--video PATH ...] [--frames N] [--shots DIR]

Per real video (default: the carphone and vtest clips in tests/data and
resources/samples), with the striped sample garment:

* fps at the source resolution and at 640x480 (the video resized first), temporal on,
  wall clock and per CPU-second (frames / CPU time of the process: what the machine
  would give this job alone on one core, a floor for two);
* temporal warping error (TWE), as Lai et al. ("Learning blind video temporal
  consistency", ECCV 2018) define it: output frame t-1 is warped to t by the optical
  flow of the *source* video, occlusions are masked by a forward-backward check
  (Sundaram et al. 2010), and |O_t - warp(O_{t-1})| is averaged (L1, 0..255, RGB) over
  the valid pixels of the garment region (pixels either run changed), the same flow and
  region for the temporal module on and off (off = per-frame baseline). The flow is
  DeepFlow (Weinzaepfel et al. 2013, opencv-contrib) at the source's full resolution,
  an estimator independent of the engine's DIS. Also given: the same on luma only
  (the MP4's 4:2:0 chroma, upsampled by the decoder in 2 x 2 blocks, adds a floor to
  RGB on red/blue stripes), and "TWE source", the source video's own figure in the
  same region (what flow error alone gives). "layer TWE" is the engine's own figure,
  on the garment layer before encoding, with the engine's flow. Two more columns
  explain the codec's share: "pre-enc" is the same TWE on the frames the engine handed
  to the encoder (no codec), and "bilin-chroma" on the MP4 decoded by ffmpeg with
  bilinear chroma upsampling, as browsers and players show it (OpenCV's reader, used
  for every other column, repeats each chroma sample over 2 x 2 pixels, so a sharp
  red/blue edge moving by a fraction of a pixel changes colour in 2-px steps: a floor
  that no temporal method removes);
* edge jitter: mean distance (px) between the garment's lower edges (hem) in a frame and
  the previous frame's edges carried by the flow (all edges when no hem is in view),
  on the decoded video (garment outline = pixels changed by more than 24 levels, largest
  blob, holes filled), "hem std": the standard deviation of the hem line's vertical
  position after motion compensation (signed offsets per column, where a hem is in view),
  and, as "layer
  edge jitter", the engine's own figure on the garment layer's alpha;
* SSIM (luma) of the non-garment region against the source;
* distortion of the regularised vs the plain landmark TPS on a checkerboard garment.

Saves a 2 x 5 frame grid (temporal off above, on below) per video in --shots.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.api import CancelToken, make_params, no_progress  # noqa: E402
from engines.io.video import VideoWriter, iter_frames, open_video  # noqa: E402
from engines.tryon.engine import TryOnEngine  # noqa: E402
from engines.tryon.garment import make_sample_garment  # noqa: E402
from engines.tryon.temporal import edge_jitter, warping_error  # noqa: E402
from engines.types import Image  # noqa: E402

DEFAULT_VIDEOS = [ROOT / "resources/samples/person.mp4", ROOT / "tests/data/tryon_vtest.mp4"]


def run_engine(path: Path, garment: Image, keep: list | None = None, **values):
    """(result, wall seconds, CPU seconds of this process); ``keep`` receives the frames
    as they are handed to the encoder."""
    params = make_params(TryOnEngine, values)
    write = VideoWriter.write
    if keep is not None:

        def keeping(self, frame):
            keep.append(np.array(frame))
            return write(self, frame)

        VideoWriter.write = keeping
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        r = TryOnEngine().run([open_video(path), garment], params, no_progress, CancelToken())
        return r, time.perf_counter() - t0, time.process_time() - c0
    finally:
        VideoWriter.write = write


def decode_bilinear_chroma(path: Path, size: tuple[int, int]) -> list:
    """The MP4's frames as a browser shows them: ffmpeg, chroma upsampled bilinearly."""
    import subprocess

    import imageio_ffmpeg

    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-loglevel",
        "error",
        "-i",
        str(path),
        "-vf",
        "scale=flags=bilinear+full_chroma_int+accurate_rnd,format=rgb24",
        "-f",
        "rawvideo",
        "-",
    ]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    w, h = size
    return list(np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3))


def resized_copy(path: Path, size: tuple[int, int], frames: int, out_dir: Path) -> Path:
    import cv2

    out = out_dir / f"{path.stem}_{size[0]}x{size[1]}.mp4"
    clip = open_video(path)
    with VideoWriter(out, clip.fps, size, crf=12) as w:
        for f in iter_frames(path, 0, frames or None):
            w.write(cv2.resize(f, size, interpolation=cv2.INTER_AREA if size[0] < f.shape[1] else cv2.INTER_CUBIC))
    return out


def changed(out: np.ndarray, src: np.ndarray) -> np.ndarray:
    return np.abs(out.astype(np.int16) - src).max(axis=2) > 24


def silhouette(out: np.ndarray, src: np.ndarray) -> np.ndarray:
    """The garment's outline on a decoded frame: changed pixels, largest blob, holes filled
    (a red stripe over a red bow tie changes nothing, but is still garment)."""
    from engines.tryon.garment import _fill_holes, _largest_component

    c = changed(out, src)
    return _fill_holes(_largest_component(c)) if c.any() else c


def source_flows(src: list) -> list:
    """Per consecutive pair of source frames: (backward flow t -> t-1, valid mask).

    DeepFlow both ways at full resolution; a pixel is valid when the backward flow and
    the forward flow at its target cancel (|b + f|^2 <= 0.01 (|b|^2 + |f|^2) + 0.5).
    """
    import cv2

    from engines.tryon.temporal import warp_by_flow

    flows = [None]
    for t in range(1, len(src)):
        a, b = (cv2.cvtColor(src[k], cv2.COLOR_RGB2GRAY) for k in (t - 1, t))
        deep = cv2.optflow.createOptFlow_DeepFlow()
        back, fwd = deep.calc(b, a, None), deep.calc(a, b, None)
        fwd_at = warp_by_flow(fwd, back)
        err = ((back + fwd_at) ** 2).sum(-1)
        tol = 0.01 * ((back**2).sum(-1) + (fwd_at**2).sum(-1)) + 0.5
        flows.append((back, (err <= tol).astype(np.float32)))
    return flows


def luma(frames: list) -> list:
    import cv2

    return [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]


def stability(flows: list, out: list, region: list) -> tuple[float, float]:
    """(temporal warping error, hem edge jitter) of an output video."""
    errs, jit = [], []
    for t in range(1, len(out)):
        if not (region[t].any() and region[t - 1].any()):
            continue
        back, valid = flows[t]
        errs.append(warping_error(out[t - 1], out[t], back, valid, region[t]))
        jit.append(edge_jitter(region[t - 1].astype(np.float32), region[t].astype(np.float32), back, valid))
    return float(np.nanmean(errs)), float(np.nanmean(jit))


def hem_std(flows: list, masks: list) -> float:
    """Std (px) of the hem line's position after motion compensation: per column, the
    signed vertical offset of this frame's lowest garment pixel from the previous frame's,
    carried by the source flow, pooled over columns and frames. Only columns where the
    garment ends inside the frame count (a hem in view); NaN when no hem is ever in view."""
    from engines.tryon.temporal import warp_by_flow

    offsets = []
    for t in range(1, len(masks)):
        if not (masks[t].any() and masks[t - 1].any()):
            continue
        back, valid = flows[t]
        carried = warp_by_flow(masks[t - 1].astype(np.float32), back) > 0.5
        h = masks[t].shape[0]
        lows = []
        for m in (masks[t], carried):
            low = h - 1 - np.argmax(m[::-1], axis=0)
            lows.append((low, m.any(axis=0) & (low < h - 3)))
        (a, ok_a), (b, ok_b) = lows
        cols = np.flatnonzero(ok_a & ok_b)
        cols = cols[valid[a[cols], cols] > 0.5]
        offsets.append((a - b)[cols].astype(np.float64))
    pooled = np.concatenate(offsets) if offsets else np.zeros(0)
    return float(np.std(pooled)) if pooled.size >= 10 else float("nan")


def ssim_outside(src: list, out: list, region: list) -> float:
    import cv2
    from skimage.metrics import structural_similarity

    vals = []
    for s, o, r in zip(src, out, region):
        _, m = structural_similarity(
            cv2.cvtColor(s, cv2.COLOR_RGB2GRAY), cv2.cvtColor(o, cv2.COLOR_RGB2GRAY), data_range=255, full=True
        )
        keep = cv2.dilate(r.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
        vals.append(m[keep].mean())
    return float(np.mean(vals))


def grid_image(top: list, bottom: list, region: list, scale: float = 1.0) -> np.ndarray:
    """Five frames, ``top`` above ``bottom``; for a small person each tile is a crop that
    follows the garment (same crop in both rows)."""
    import cv2

    h, w = top[0].shape[:2]
    idx = [int(i) for i in np.linspace(0, len(top) - 1, 5)]
    with_garment = [i for i in range(len(top)) if region[i].any()]
    if with_garment:  # prefer frames that show the garment
        idx = [with_garment[int(k)] for k in np.linspace(0, len(with_garment) - 1, 5)]
    sizes = [np.ptp(np.nonzero(region[i])[0]) for i in idx if region[i].any()]
    side = int(min(h, w, max(64, 4 * max(sizes, default=h)))) if sizes else min(h, w)
    small = side < 0.6 * min(h, w)
    rows = []
    for frames in (top, bottom):
        tiles = []
        for i in idx:
            f = frames[i]
            if small and region[i].any():
                ys, xs = np.nonzero(region[i])
                cx, cy = int(xs.mean()), int(ys.mean())
                x0 = int(np.clip(cx - side // 2, 0, w - side))
                y0 = int(np.clip(cy - side // 2, 0, h - side))
                f = cv2.resize(f[y0 : y0 + side, x0 : x0 + side], (256, 256), interpolation=cv2.INTER_CUBIC)
            elif small:
                f = cv2.resize(f[:side, :side], (256, 256), interpolation=cv2.INTER_CUBIC)
            tiles.append(np.pad(f, ((2, 2), (2, 2), (0, 0)), constant_values=255))
        rows.append(np.hstack(tiles))
    g = np.vstack(rows)
    if scale != 1.0 and not small:
        g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    return g


def distortion_table(video: Path) -> list[tuple]:
    """Spread of log|det J| of the torso warp, checkerboard garment, one real frame."""
    from engines.tryon import tps as T
    from engines.tryon.garment import prepare_garment
    from engines.tryon.person import PersonTracker

    g = prepare_garment(make_sample_garment(240, 260, pattern="checker", period=12))
    frames = list(iter_frames(video, 0, 12))
    with PersonTracker(open_video(video).fps) as tr:
        people = [tr(f) for f in frames]
    person = next(p for p in reversed(people) if p is not None)
    gp, bp, w, _ = T.body_targets(g.landmarks, person)
    rows = []
    for s in (0.0, 0.3, 1.0, 3.0):
        warp = T.fit_warp(gp, bp, g.parts["torso"], 5, s, w)
        spread = float(np.std(warp.jacobian_log_det(g.parts["torso"])))
        miss = float(np.abs(warp.forward(gp) - bp).max() / np.linalg.norm(person.points[11] - person.points[12]))
        d, sl = T.grid_regularisation_loss(warp.dst, 5)
        rows.append((s, spread, d, sl, miss))
    return rows


def main() -> int:
    from PIL import Image as PILImage

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", action="append", type=Path)
    ap.add_argument("--frames", type=int, default=0, help="first N frames only (0 = all)")
    ap.add_argument("--shots", type=Path, default=Path("/tmp/shots"))
    args = ap.parse_args()
    videos = args.video or DEFAULT_VIDEOS
    args.shots.mkdir(parents=True, exist_ok=True)
    garment = Image(make_sample_garment(240, 260, pattern="stripes"), path=Path("garment.png"))
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for video in videos:
            clip = open_video(video)
            n = min(clip.frame_count, args.frames or clip.frame_count)
            src = list(iter_frames(video, 0, n))
            full = max(clip.width, clip.height)
            res, outs, pre, bilin = {}, {}, {}, {}
            for mode in ("off", "on"):
                pre[mode] = []
                r, secs, cpu = run_engine(video, garment, pre[mode], temporal=mode, working_size=full, max_frames=n)
                res[mode] = (r, n / secs, n / cpu)
                outs[mode] = list(iter_frames(r.main.path))
                o = open_video(r.main.path)
                bilin[mode] = decode_bilinear_chroma(r.main.path, (o.width, o.height))
            v640 = resized_copy(video, (640, 480), n, Path(tmp))
            _, secs640, cpu640 = run_engine(v640, garment, temporal="on", working_size=640, max_frames=n)
            region = [changed(a, s) | changed(b, s) for a, b, s in zip(outs["on"], outs["off"], src)]
            flows = source_flows(src)
            twe = {m: stability(flows, outs[m], region)[0] for m in outs}
            twe_y = {m: stability(flows, luma(outs[m]), region)[0] for m in outs}
            twe_src = stability(flows, src, region)[0]
            twe_pre = {m: stability(flows, pre[m], region)[0] for m in outs}
            twe_bl = {m: stability(flows, bilin[m], region)[0] for m in outs}
            sil = {m: [silhouette(o, s) for o, s in zip(outs[m], src)] for m in outs}
            jit = {m: stability(flows, outs[m], sil[m])[1] for m in outs}
            hem_sd = {m: hem_std(flows, sil[m]) for m in outs}
            ssim = ssim_outside(src, outs["on"], region)
            people = res["on"][0].metrics["frames_with_person"]
            inner = {m: res[m][0].metrics["temporal_warping_error"] for m in outs}
            inner_jit = {m: res[m][0].metrics["edge_jitter_px"] for m in outs}
            table.append(
                (
                    video.name,
                    f"{clip.width}x{clip.height}",
                    n,
                    people,
                    res["on"][1],
                    res["on"][2],
                    n / secs640,
                    n / cpu640,
                    twe["off"],
                    twe["on"],
                    twe["on"] / twe["off"],
                    twe_y["off"],
                    twe_y["on"],
                    twe_y["on"] / twe_y["off"],
                    twe_src,
                    twe_pre["off"],
                    twe_pre["on"],
                    twe_pre["on"] / twe_pre["off"],
                    twe_bl["off"],
                    twe_bl["on"],
                    twe_bl["on"] / twe_bl["off"],
                    inner["off"],
                    inner["on"],
                    jit["off"],
                    jit["on"],
                    hem_sd["off"],
                    hem_sd["on"],
                    inner_jit["off"],
                    inner_jit["on"],
                    ssim,
                )
            )
            scale = 2.0 if max(clip.width, clip.height) < 400 else 1.0
            shot = args.shots / ("tryon_grid.png" if video == videos[0] else f"tryon_grid_{video.stem}.png")
            PILImage.fromarray(grid_image(outs["off"], outs["on"], region, scale)).save(shot)
            PILImage.fromarray(grid_image(src, outs["on"], region, scale)).save(
                args.shots / f"tryon_source_vs_ours_{video.stem}.png"
            )
            print(f"saved {shot}", file=sys.stderr)

    load = os.getloadavg()[0]
    print(
        f"\nVideo try-on (striped garment; temporal off = per-frame baseline; {os.cpu_count()} cores, "
        f"load average {load:.1f}: wall-clock fps is shared with other work, 'per CPU-s' is frames "
        "per second of this process's CPU time)\n"
    )
    head = (
        "video",
        "size",
        "frames",
        "with person",
        "fps src",
        "fps src per CPU-s",
        "fps 640x480",
        "fps 640x480 per CPU-s",
        "TWE off",
        "TWE on",
        "on/off",
        "luma TWE off",
        "luma TWE on",
        "luma on/off",
        "TWE source",
        "pre-enc TWE off",
        "pre-enc TWE on",
        "pre-enc on/off",
        "bilin-chroma TWE off",
        "bilin-chroma TWE on",
        "bilin-chroma on/off",
        "layer TWE off",
        "layer TWE on",
        "hem jitter off px",
        "hem jitter on px",
        "hem std off px",
        "hem std on px",
        "layer edge jitter off px",
        "layer edge jitter on px",
        "SSIM non-garment",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in table:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row]
        print("| " + " | ".join(cells) + " |")
    print("\nTPS regularisation (checkerboard garment on a carphone frame)\n")
    print("| strength | std log|det J| | eq.1 distance | eq.2 slope | worst landmark miss (shoulder widths) |")
    print("|---|---|---|---|---|")
    for s, spread, d, sl, miss in distortion_table(videos[0]):
        print(f"| {s:g} | {spread:.3f} | {d:.3f} | {sl:.4f} | {miss:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
