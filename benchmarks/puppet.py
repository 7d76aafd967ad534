"""Puppet benchmark: speed, accuracy on a known-truth render, jitter on real video.

    .venv/bin/python benchmarks/puppet.py [--frames N] [--json]

1. Speed: tests/data/carphone_120.mp4 (176 x 144) upscaled and letterboxed to 640 x 480, pushed
   frame by frame through :class:`engines.puppet.LiveSession` with the mesh update on (the GUI's
   path, no display): per frame the landmarks, the expression/pose solve, the filters and the
   avatar's 28k vertices. Latency = frame in to pose (and vertices) out, per frame; fps =
   1000 / mean latency (one frame at a time, nothing overlapped). Target: >= 25 fps, < 60 ms.
2. Known truth: the astronaut avatar (made from tests/data/astronaut.png) rendered performing
   :func:`engines.puppet.synth.truth_curves` (60 frames, 320 x 320, H.264), tracked by the puppet
   engine (calibrated on the 8 rest frames): correlation per weight, head yaw/pitch error; with
   the defaults, the raw Face Landmarker scores and the landmarker's VIDEO mode.
3. Jitter: carphone_120's still stretch (frames 0-17): mean |frame-to-frame change| of the
   weights (max over the 52 and mean) and of yaw/pitch/roll, with and without smoothing.
The last line is the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data"


def letterbox(frame: np.ndarray, size=(640, 480)) -> np.ndarray:
    import cv2

    w, h = size
    s = min(w / frame.shape[1], h / frame.shape[0])
    img = cv2.resize(frame, (round(frame.shape[1] * s), round(frame.shape[0] * s)), interpolation=cv2.INTER_CUBIC)
    out = np.zeros((h, w, 3), np.uint8)
    y0, x0 = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
    out[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
    return out


def speed(avatar, frames: int, **options) -> dict:
    from engines.io.video import open_video
    from engines.puppet import LiveSession, TrackOptions

    clip = open_video(DATA / "carphone_120.mp4")
    video = [letterbox(f) for f in clip.frames(0, frames)]
    with LiveSession(avatar, TrackOptions(vertices=True, **options)) as s:
        s.push(video[0], 0.0)  # graph and solver set-up (first frame) kept out of the figures
        stages = {}
        lat = []
        tracked = 0
        for i, f in enumerate(video[1:], 1):
            t0 = time.perf_counter()
            pose = s.push(f, i * 1000 / clip.fps)
            lat.append((time.perf_counter() - t0) * 1000)
            tracked += bool(pose.tracked)
            for k, v in pose.timings.items():
                stages.setdefault(k, []).append(v)
    lat = np.array(lat)
    return {
        "frames": len(lat),
        "tracked": int(tracked),
        "fps": float(1000 / lat.mean()),
        "latency_ms_mean": float(lat.mean()),
        "latency_ms_p50": float(np.median(lat)),
        "latency_ms_p95": float(np.percentile(lat, 95)),
        "latency_ms_max": float(lat.max()),
        "stage_ms": {k: float(np.mean(v)) for k, v in stages.items() if k != "total"},
    }


def known_truth(**params) -> dict:
    from engines.api import CancelToken, no_progress
    from engines.puppet.engine import PuppetEngine
    from engines.puppet.rotation import matrix_from_quat, yaw_pitch_roll
    from engines.puppet.synth import CURVE_NAMES
    from tests.puppet_data import NEUTRAL_FRAMES
    from tests.puppet_data import known_truth as clip_of

    frames, truth, clip, av = clip_of()
    p = PuppetEngine.Params(calibration=f"0:{NEUTRAL_FRAMES}", **params)
    take = PuppetEngine().run([clip, av], p, no_progress, CancelToken()).main
    corr = {n: float(np.corrcoef(take.weight(n), truth["weights"][n])[0, 1]) for n in CURVE_NAMES}
    ypr = np.array([yaw_pitch_roll(R) for R in matrix_from_quat(take.head_rotation)])
    err = np.abs(ypr[:, :2] - np.c_[truth["yaw"], truth["pitch"]])
    return {
        "correlation": corr,
        "yaw_max_deg": float(err[:, 0].max()),
        "pitch_max_deg": float(err[:, 1].max()),
        "yaw_rms_deg": float(np.sqrt((err[:, 0] ** 2).mean())),
        "pitch_rms_deg": float(np.sqrt((err[:, 1] ** 2).mean())),
    }


def jitter(avatar, **params) -> dict:
    from engines.api import CancelToken, no_progress
    from engines.io.video import open_video
    from engines.puppet.engine import PuppetEngine
    from engines.puppet.rotation import matrix_from_quat, yaw_pitch_roll

    clip = open_video(DATA / "carphone_120.mp4")
    take = PuppetEngine().run([clip, avatar], PuppetEngine.Params(**params), no_progress, CancelToken()).main
    still = slice(0, 18)
    d = np.abs(np.diff(take.weights[still], axis=0)).mean(0)
    ypr = np.array([yaw_pitch_roll(R) for R in matrix_from_quat(take.head_rotation[still])])
    h = np.abs(np.diff(ypr, axis=0)).mean(0)
    from engines.puppet.landmarks import FrameLandmarker

    with FrameLandmarker() as lm:
        L = [lm.track(f) for f in clip.frames()]
    xy = np.array([x.xy for x in L])
    mouth = np.linalg.norm(xy[:, 13] - xy[:, 14], axis=1) / np.linalg.norm(xy[:, 468] - xy[:, 473], axis=1)
    return {
        "weight_jitter_max": float(d.max()),
        "weight_jitter_max_name": take.names[int(d.argmax())],
        "weight_jitter_mean": float(d.mean()),
        "head_jitter_deg": [float(x) for x in h],
        "jaw_mouth_correlation": float(np.corrcoef(take.weight("jawOpen"), mouth)[0, 1]),
        "tracked": int(take.tracked.sum()),
        "frames": len(take),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=120, help="frames of the speed run (at most 120)")
    ap.add_argument("--json", action="store_true", help="only the JSON line")
    args = ap.parse_args(argv)
    from tests.puppet_data import avatar

    t0 = time.perf_counter()
    av = avatar("astronaut.png")
    out = {"avatar_s": time.perf_counter() - t0}
    out["speed"] = {
        "default": speed(av, args.frames),
        "raw scores": speed(av, args.frames, solver="raw"),
        "video-mode landmarks": speed(av, args.frames, landmarker="video"),
    }
    out["known_truth"] = {
        "default": known_truth(),
        "no smoothing": known_truth(smoothing=False),
        "raw scores": known_truth(solver="raw"),
        "video-mode landmarks": known_truth(landmarker="video"),
    }
    out["jitter"] = {"smoothed": jitter(av), "unsmoothed": jitter(av, smoothing=False)}
    if not args.json:
        print(
            "Speed at 640x480 (carphone_120 upscaled; landmarks + solve + filter + 28k-vertex mesh update, no display)"
        )
        print(f"{'':22s} {'fps':>6s} {'mean ms':>8s} {'p50':>6s} {'p95':>6s} {'max':>6s}  per stage (ms)")
        for k, s in out["speed"].items():
            st = ", ".join(f"{a} {b:.1f}" for a, b in s["stage_ms"].items())
            print(
                f"{k:22s} {s['fps']:6.1f} {s['latency_ms_mean']:8.1f} {s['latency_ms_p50']:6.1f} "
                f"{s['latency_ms_p95']:6.1f} {s['latency_ms_max']:6.1f}  {st}  ({s['tracked']}/{s['frames']} tracked)"
            )
        print("\nKnown truth (astronaut avatar, 60 frames 320x320): correlation with the true curves; head error (deg)")
        names = list(out["known_truth"]["default"]["correlation"])
        print(f"{'':22s} " + " ".join(f"{n[:14]:>14s}" for n in names) + "   yaw max/rms  pitch max/rms")
        for k, r in out["known_truth"].items():
            print(
                f"{k:22s} "
                + " ".join(f"{r['correlation'][n]:14.3f}" for n in names)
                + f"   {r['yaw_max_deg']:4.2f}/{r['yaw_rms_deg']:4.2f}    {r['pitch_max_deg']:4.2f}/{r['pitch_rms_deg']:4.2f}"  # noqa: E501
            )
        print("\nReal video (carphone_120, 22 px between the eyes): jitter on the still stretch (frames 0-17)")
        for k, r in out["jitter"].items():
            print(
                f"{k:12s} weights: max {r['weight_jitter_max']:.4f}/frame ({r['weight_jitter_max_name']}), "
                f"mean {r['weight_jitter_mean']:.4f}; head yaw/pitch/roll "
                + "/".join(f"{x:.2f}" for x in r["head_jitter_deg"])
                + " deg/frame; "
                f"jawOpen vs lip gap r = {r['jaw_mouth_correlation']:.3f}; tracked {r['tracked']}/{r['frames']}"
            )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
