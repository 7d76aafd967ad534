"""Inputs to the multiview engine: bad photo sets, mixed resolutions, orbit videos, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.api import CancelToken, EngineError, make_params
from engines.multiview import frames
from engines.multiview.engine import MultiViewEngine
from engines.types import ImageSet, VideoClip
from tests.test_multiview_scenes import DATA, load_mesh, orbit_cameras, render_views

ROOT = Path(__file__).resolve().parents[1]
SAGRADA = sorted(DATA.glob("resized_IMG_*.jpg"))


def run(inputs, **kw):
    p = make_params(MultiViewEngine, kw)
    return MultiViewEngine().run(inputs, p, lambda f, m="": None, CancelToken())


def test_fewer_than_three_images(tmp_path):
    with pytest.raises(EngineError, match="at least 3 photos.*got 2"):
        run([ImageSet(SAGRADA[:2])], stages="cameras")


def test_duplicates_leave_too_few_images(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    shutil.copy(SAGRADA[0], a)
    shutil.copy(SAGRADA[0], b)
    with pytest.raises(EngineError, match=r"at least 3 different images.*got 3 \(2 after removing duplicates\)"):
        run([ImageSet([a, b, SAGRADA[1]])], stages="cameras")


def test_mixed_resolutions_register(tmp_path):
    import cv2

    paths = []
    for i, p in enumerate(SAGRADA):
        img = cv2.imread(str(p))
        if i == 1:  # the same photo at 1.5x the size
            img = cv2.resize(img, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
        if i == 3:  # centre crop to 4:3: another aspect ratio, so per-image intrinsics
            img = img[:, 39:-39]
        out = tmp_path / f"{i}_{p.stem}.png"
        cv2.imwrite(str(out), img)
        paths.append(out)
    r = run([ImageSet(paths)], stages="cameras", max_image_size=718)
    assert r.metrics["registered"] == 4
    assert any("different resolutions" in n for n in r.notes)
    assert any("intrinsics are estimated per image" in n for n in r.notes)


def _orbit_video(path: Path, n: int, still: bool = False):
    import cv2

    v, f = load_mesh()
    K, R, t = orbit_cameras(n, (320, 240), 1.3, elevations=(30.0,))
    if still:
        K, R, t = K[:1].repeat(n, 0), R[:1].repeat(n, 0), t[:1].repeat(n, 0)
    imgs = (
        render_views(v, f, K[: n // 2 + 1], R[: n // 2 + 1], t[: n // 2 + 1], (320, 240))
        if not still
        else render_views(v, f, K[:1], R[:1], t[:1], (320, 240)) * n
    )
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    for k, im in enumerate(imgs):
        bgr = cv2.cvtColor(im, cv2.COLOR_RGB2BGR)
        if k % 2 == 1:  # every other frame motion-blurred: the picker should avoid them
            bgr = cv2.blur(bgr, (9, 1))
        w.write(bgr)
    w.release()
    return VideoClip(path, len(imgs), 25.0, 320, 240)


def test_video_frames_are_sharp_and_spread(tmp_path):
    clip = _orbit_video(tmp_path / "orbit.mp4", 120)  # half an orbit, 61 frames
    views, notes = frames.pick_video_frames(clip, 320)
    assert 20 <= len(views) <= 61
    idx = [int(v.name[6:12]) for v in views]
    assert idx == sorted(idx) and idx[-1] - idx[0] > 45  # spread along the orbit
    assert np.mean([i % 2 == 0 for i in idx]) > 0.8  # mostly the sharp frames
    r = run([clip], stages="cameras", max_image_size=320)
    assert r.metrics["registered"] >= 0.9 * len(views)
    assert r.metrics["matching"] == "sequential"


def test_video_without_motion(tmp_path):
    clip = _orbit_video(tmp_path / "still.mp4", 30, still=True)
    with pytest.raises(EngineError, match="hardly moves"):
        run([clip], stages="cameras")


@pytest.mark.slow
def test_cli_sagrada_points_json(tmp_path):
    for p in SAGRADA:
        shutil.copy(p, tmp_path / p.name)
    out = tmp_path / "out" / "points.ply"
    proc = subprocess.run(
        [
            sys.executable,
            "main.py",
            "run",
            "multiview",
            "--input",
            str(tmp_path),
            "--out",
            str(out),
            "--set",
            "stages=points",
            "--set",
            "max_image_size=718",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    m = summary["metrics"]
    assert m["registered"] == 4 and m["total_images"] == 4  # all four Sagrada Familia photos
    assert m["sparse_points"] > 500 and m["mean_reprojection_error"] < 1.0
    assert {"frames", "sfm", "depth", "fusion"} <= set(summary["timings"])
    from engines import io

    cloud = io.read(out)
    assert type(cloud).__name__ == "PointCloud" and len(cloud.points) > 10000
    assert cloud.colors is not None and cloud.colors.std() > 10


def test_images_that_do_not_overlap(tmp_path):
    import cv2

    rng = np.random.default_rng(1)
    paths = []
    for i in range(3):  # three unrelated random textures: features, but no common scene
        img = cv2.resize(rng.integers(0, 255, (60, 80, 3), np.uint8), (320, 240), interpolation=cv2.INTER_CUBIC)
        paths.append(tmp_path / f"noise{i}.png")
        cv2.imwrite(str(paths[-1]), img)
    with pytest.raises(EngineError, match="could be placed|could be recovered"):
        run([ImageSet(paths)], stages="cameras", max_features=1024)
