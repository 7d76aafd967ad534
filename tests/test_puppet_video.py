"""The puppet on real video (tests/data/carphone_120.mp4: 120 frames, 176 x 144, a man talking
in a car, 22 px between the eyes), a missed frame, cancel, the live session API, avatar files as
inputs and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.api import CancelToken, Cancelled, EngineError, no_progress
from engines.avatar.arkit import ARKIT_NAMES
from engines.puppet.rotation import matrix_from_quat, yaw_pitch_roll
from tests.puppet_data import DATA, avatar

STILL = slice(0, 18)
"""Frames where the speaker pauses (mouth at rest, head nearly still: < 1.5 px a frame)."""
MAX_WEIGHT_JITTER = 0.03
"""Mean absolute frame-to-frame change of any weight on the still stretch."""
MAX_HEAD_JITTER_DEG = 0.4
"""Mean absolute frame-to-frame change of yaw, pitch and roll on the still stretch (degrees)."""


def _engine(inputs, **params):
    from engines.puppet.engine import PuppetEngine

    return PuppetEngine().run(inputs, PuppetEngine.Params(**params), no_progress, CancelToken())


@pytest.fixture(scope="module")
def carphone():
    from engines.io import load_input

    clip = load_input(DATA / "carphone_120.mp4")
    res = _engine([clip, avatar("astronaut.png")])
    return clip, res


def _mouth_opening(clip) -> np.ndarray:
    from engines.puppet.landmarks import FrameLandmarker

    with FrameLandmarker() as lm:
        L = [lm.track(f) for f in clip.frames()]
    xy = np.array([l.xy for l in L])  # noqa: E741
    return np.linalg.norm(xy[:, 13] - xy[:, 14], axis=1) / np.linalg.norm(xy[:, 468] - xy[:, 473], axis=1)


def test_every_frame_is_tracked(carphone):
    clip, res = carphone
    take = res.main
    assert len(take) == clip.frame_count == 120 and take.tracked.all() and take.missed == 0
    assert take.fps == pytest.approx(clip.fps) and take.duration == pytest.approx(119 / clip.fps)
    assert res.metrics["tracked_fraction"] == 1.0 and res.metrics["missed"] == 0


def test_jaw_follows_the_mouth(carphone):
    """jawOpen moves when the mouth moves: it correlates with the lip gap measured on the landmarks."""
    clip, res = carphone
    jaw = res.main.weight("jawOpen")
    assert np.corrcoef(jaw, _mouth_opening(clip))[0, 1] >= 0.85
    assert jaw.max() > 0.3 and np.percentile(jaw, 20) < 0.1


def test_no_jitter_on_a_still_stretch(carphone):
    clip, res = carphone
    take = res.main
    jit = np.abs(np.diff(take.weights[STILL], axis=0)).mean(0)
    assert jit.max() <= MAX_WEIGHT_JITTER, f"{take.names[int(jit.argmax())]} jitters by {jit.max():.3f} a frame"
    ypr = np.array([yaw_pitch_roll(R) for R in matrix_from_quat(take.head_rotation[STILL])])
    assert np.abs(np.diff(ypr, axis=0)).mean(0).max() <= MAX_HEAD_JITTER_DEG


def test_smoothing_reduces_jitter_without_lagging_the_jaw(carphone):
    clip, res = carphone
    raw = _engine([clip, avatar("astronaut.png")], smoothing=False).main
    take = res.main
    jit = lambda t: np.abs(np.diff(t.weights[STILL], axis=0)).mean()  # noqa: E731
    assert jit(take) < 0.8 * jit(raw)
    # the filtered jaw stays on the raw one: the best lag is 0 frames
    a, b = take.weight("jawOpen"), raw.weight("jawOpen")
    lags = {k: np.corrcoef(a[k:], b[: len(b) - k])[0, 1] for k in range(3)}
    assert max(lags, key=lags.get) == 0


def test_a_missed_frame_is_held_and_counted(tmp_path):
    """A blank frame in the middle: no face, the previous pose is held, the frame is counted."""
    from engines.io.video import VideoWriter, open_video

    clip30 = open_video(DATA / "carphone_30.mp4")
    frames = list(clip30.frames())
    frames[15] = np.full_like(frames[15], 96)
    path = tmp_path / "blank.mp4"
    with VideoWriter(path, clip30.fps, (clip30.width, clip30.height)) as w:
        for f in frames:
            w.write(f)
    res = _engine([open_video(path), avatar("astronaut.png")], calibration="0:10")
    take = res.main
    assert take.missed == 1 and not take.tracked[15] and take.tracked[np.arange(30) != 15].all()
    assert np.array_equal(take.weights[15], take.weights[14])
    assert np.array_equal(take.head_rotation[15], take.head_rotation[14])
    assert res.metrics["missed"] == 1 and any("held" in n for n in res.notes)


def test_cancel_stops_between_frames():
    from engines.io import load_input
    from engines.puppet.engine import PuppetEngine

    clip = load_input(DATA / "carphone_120.mp4")
    token = CancelToken()
    seen = []

    def progress(frac, msg=""):
        seen.append(msg)
        if "frame 11 " in msg:
            token.set()

    with pytest.raises(Cancelled):
        PuppetEngine().run([clip, avatar("astronaut.png")], PuppetEngine.Params(), progress, token)
    assert not any("frame 30 " in m for m in seen)


def test_live_session_frame_by_frame():
    """The GUI's path: push frames, get weights, head pose and the mesh per frame; calibrate;
    record and stop give a Take; a frame without a face holds the pose."""
    from engines.io.video import open_video
    from engines.puppet import LiveSession, TrackOptions

    av = avatar("astronaut.png")
    clip = open_video(DATA / "carphone_30.mp4")
    with LiveSession(av, TrackOptions(vertices=True)) as s:
        poses = []
        for i, f in enumerate(clip.frames(0, 12)):
            if i == 10:
                s.calibrate(seconds=1.0)
                s.record()
            poses.append(s.push(f, i * 1000 / clip.fps))
        blank = s.push(np.zeros((144, 176, 3), np.uint8), 12 * 1000 / clip.fps)
        take = s.stop(name="live")
    p = poses[-1]
    assert p.tracked and p.weights.shape == (52,) and set(p.weight_dict) == set(ARKIT_NAMES)
    assert p.vertices.shape == av.mesh.vertices.shape and np.isfinite(p.vertices).all()
    assert p.landmarks.shape == (478, 2) and np.allclose(p.head_rotation @ p.head_rotation.T, np.eye(3), atol=1e-9)
    assert {"track", "solve", "filter", "mesh", "total"} <= set(p.timings)
    assert not blank.tracked and s.missed == 1 and np.array_equal(blank.weights, p.weights)
    assert blank.vertices is p.vertices
    assert take.name == "live" and len(take) == 3 and take.missed == 1 and take.meta["calibrated"]
    assert take.times[0] == 0.0 and take.avatar is av


def test_mesh_update_matches_the_rig():
    """The session's fast skinning is the rig's linear blend skinning."""
    from engines.avatar.rig import pose_vertices
    from engines.puppet.retarget import Retargeter
    from engines.puppet.rotation import from_yaw_pitch_roll

    av = avatar("astronaut.png")
    w = np.zeros(52)
    w[ARKIT_NAMES.index("jawOpen")] = 0.5
    R = from_yaw_pitch_roll(10, -5, 3)
    got = Retargeter(av).vertices(w, R)
    m = av.mesh
    want = pose_vertices(m.vertices + 0.5 * m.morph_targets["jawOpen"], av.skeleton, m.joints, m.weights, {"Head": R})
    assert np.abs(got - want).max() < 1e-5


def test_avatar_files_as_inputs(tmp_path):
    """A .zip bundle and a .glb avatar load as Avatars for the puppet (the .glb back in the ICT
    layout, so the avatar's identity solves); a .glb without morph targets is refused."""
    from engines.avatar.export import write_avatar_bundle, write_avatar_glb
    from engines.io import load_input
    from engines.io.mesh import write_glb
    from engines.puppet.engine import PuppetEngine
    from engines.puppet.solve import ExpressionSolver
    from engines.types import Avatar
    from tests.conftest import box_mesh

    av = avatar("astronaut.png")
    write_avatar_bundle(av, tmp_path / "a.zip")
    write_avatar_glb(av, tmp_path / "a.glb")
    for name in ("a.zip", "a.glb"):
        got = load_input(tmp_path / name, prefer=PuppetEngine.accepts)
        assert isinstance(got, Avatar) and got.skeleton.names == av.skeleton.names
        assert np.allclose(got.mesh.vertices, av.mesh.vertices, atol=1e-6)
        assert np.array_equal(got.mesh.faces, av.mesh.faces)
        assert np.allclose(got.mesh.morph_targets["jawOpen"], av.mesh.morph_targets["jawOpen"], atol=1e-6)
        assert np.allclose(got.skeleton.positions, av.skeleton.positions, atol=1e-6)
        assert ExpressionSolver.for_avatar(got) is not None
    write_glb(box_mesh(), tmp_path / "box.glb")
    with pytest.raises(EngineError, match="morph targets"):
        load_input(tmp_path / "box.glb", prefer=PuppetEngine.accepts)


def test_command_line_glb_mp4_and_json(tmp_path, capsys):
    from app.cli import main
    from engines.avatar.export import write_avatar_bundle
    from engines.io.video import probe

    write_avatar_bundle(avatar("astronaut.png"), tmp_path / "avatar.zip")
    args = ["run", "puppet", "--input", str(DATA / "carphone_30.mp4"), "--input", str(tmp_path / "avatar.zip")]
    assert main(args + ["--out", str(tmp_path / "take.glb"), "--json", "--set", "calibration=0:10"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    m = out["metrics"]
    assert m["frames"] == 30 and m["missed"] == 0 and len(m["per_frame_ms"]["total"]) == 30
    assert {"p50", "p95", "max"} <= set(m["total_ms"]) and "jawOpen" in m["curves"]
    assert (tmp_path / "take.glb").stat().st_size > 100_000
    assert main(args + ["--out", str(tmp_path / "take.mp4"), "--quiet", "--set", "render_size=128"]) == 0
    info = probe(tmp_path / "take.mp4")
    assert info["frame_count"] == 30 and info["height"] == 128 and info["width"] > 128  # source beside the render
    assert main(args + ["--out", str(tmp_path / "take.json"), "--quiet"]) == 0
    doc = json.loads((tmp_path / "take.json").read_text())
    assert doc["names"] == list(ARKIT_NAMES) and len(doc["weights"]) == 30 and len(doc["head_rotation"][0]) == 4
    # a portrait as the second input makes the avatar first
    assert (
        main(
            [
                "run",
                "puppet",
                "--input",
                str(DATA / "carphone_30.mp4"),
                "--input",
                str(DATA / "astronaut.png"),
                "--out",
                str(tmp_path / "t2.json"),
                "--quiet",
                "--set",
                "max_frames=5",
            ]
        )
        == 0
    )
    assert len(json.loads((tmp_path / "t2.json").read_text())["times"]) == 5


def test_no_camera_is_a_clear_error():
    from engines.puppet import LiveSession
    from engines.puppet.camera import Camera

    with pytest.raises(EngineError, match="No camera 9 was found.*video file"):
        Camera(9)
    with LiveSession(None) as s:  # a source that delivers nothing: a missed frame, no landmarker needed
        pose = s.push(None, 0.0)
    assert not pose.tracked and s.missed == 1 and pose.weights.shape == (52,)
