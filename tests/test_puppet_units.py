"""Small parts of the puppet, without MediaPipe: the One Euro filter, rotations, neutral
calibration, retargeting onto a rig that is not an ICT avatar, the Take type, the engine's
input and parameter checks."""

from __future__ import annotations

import numpy as np
import pytest

from engines.api import EngineError
from engines.avatar.arkit import ARKIT_NAMES
from engines.puppet.filter import OneEuroFilter
from engines.puppet.retarget import Retargeter, Skinner, apply_neutral, estimate_neutral, eye_rotations
from engines.puppet.rotation import (
    from_yaw_pitch_roll,
    matrix_from_quat,
    mean_rotation,
    quat_from_matrix,
    rotvec_from_matrix,
    matrix_from_rotvec,
    yaw_pitch_roll,
)
from engines.types import RESULT_TYPES, Avatar, Take


def test_one_euro_holds_a_constant_and_follows_a_step():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    assert all(f(np.array([0.3]), t / 30)[0] == pytest.approx(0.3) for t in range(10))
    slow, fast = OneEuroFilter(1.0, 0.0), OneEuroFilter(1.0, 30.0)
    ys, yf = [], []
    for i in range(8):  # a blink: 0 -> 1 within a frame
        x = np.array([0.0 if i < 2 else 1.0])
        ys.append(slow(x, i / 30)[0])
        yf.append(fast(x, i / 30)[0])
    assert yf[3] > 0.85 and ys[3] < 0.5  # the speed term keeps it crisp, a plain low-pass lags


def test_one_euro_removes_jitter_on_a_still_signal():
    rng = np.random.default_rng(0)
    x = 0.2 + 0.02 * rng.standard_normal(300)
    f = OneEuroFilter(1.0, 8.0)
    y = np.array([f(np.array([v]), i / 30)[0] for i, v in enumerate(x)])
    assert np.abs(np.diff(y[30:])).mean() < 0.3 * np.abs(np.diff(x[30:])).mean()
    assert abs(y[30:].mean() - 0.2) < 0.005


def test_one_euro_irregular_time_steps_and_restart():
    f = OneEuroFilter(1.0, 0.0)
    f(np.array([0.0]), 0.0)
    a = f(np.array([1.0]), 1.0)[0]  # a long gap: the output nearly catches up
    assert a > 0.8
    assert f(np.array([5.0]), 0.5)[0] == 5.0  # time went backwards: restart


def test_rotations_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(20):
        y, p, r = rng.uniform(-60, 60), rng.uniform(-40, 40), rng.uniform(-30, 30)
        R = from_yaw_pitch_roll(y, p, r)
        assert np.allclose(yaw_pitch_roll(R), (y, p, r), atol=1e-9)
        q = quat_from_matrix(R)
        assert q[3] >= 0 and np.allclose(matrix_from_quat(q), R, atol=1e-9)
        assert np.allclose(matrix_from_rotvec(rotvec_from_matrix(R)), R, atol=1e-9)
    # +yaw turns the face (+Z) towards the subject's left (+X); +pitch raises it (+Y)
    assert (from_yaw_pitch_roll(10) @ [0, 0, 1])[0] > 0 and (from_yaw_pitch_roll(0, 10) @ [0, 0, 1])[1] > 0
    Rs = np.stack([from_yaw_pitch_roll(a) for a in (-5, 0, 5)])
    assert np.allclose(mean_rotation(Rs), np.eye(3), atol=1e-9)


def test_neutral_calibration():
    w = np.zeros((40, 52))
    k = ARKIT_NAMES.index("mouthSmileLeft")
    w[:, k] = 0.3
    w[20:, k] = 0.8
    n = estimate_neutral(w, np.tile(np.eye(3), (40, 1, 1)), (0, 20))
    assert n.offsets[k] == pytest.approx(0.3) and n.frames == (0, 20)
    out = apply_neutral(w, n.offsets)
    assert out[:20, k] == pytest.approx(0.0) and out[20:, k] == pytest.approx((0.8 - 0.3) / 0.7)
    assert apply_neutral(np.full(52, 1.0), n.offsets).max() == 1.0  # the full range is kept


def test_gaze_from_the_eye_look_weights():
    w = np.zeros(52)
    w[ARKIT_NAMES.index("eyeLookOutLeft")] = 1.0  # the left eye turns towards the subject's left (+X)
    w[ARKIT_NAMES.index("eyeLookInRight")] = 1.0  # the right eye towards the nose (+X too)
    L, R = eye_rotations(w)
    assert (L @ [0, 0, 1])[0] > 0.5 and (R @ [0, 0, 1])[0] > 0.4
    up = np.zeros(52)
    up[ARKIT_NAMES.index("eyeLookUpLeft")] = 1.0
    assert (eye_rotations(up)[0] @ [0, 0, 1])[1] > 0.3 and np.allclose(eye_rotations(up)[1], np.eye(3))


def test_retarget_onto_a_rig_that_is_not_an_ict_avatar():
    """Any mesh with ARKit-named targets is driven by name (here a few, one spelt differently),
    the head and eyes through its own skeleton; names it lacks are reported."""
    from engines.avatar.rig import pose_vertices
    from tests.gltf_clients import synthetic_rig

    m, skel = synthetic_rig()
    m.morph_targets["JAWOPEN"] = m.morph_targets.pop("jawOpen")
    av = Avatar(mesh=m, skeleton=skel)
    rt = Retargeter(av, gains={"eyeBlinkLeft": 2.0})
    assert "mouthSmileLeft" in rt.missing and "jawOpen" not in rt.missing
    w = np.zeros(52)
    w[ARKIT_NAMES.index("jawOpen")] = 0.5
    w[ARKIT_NAMES.index("eyeBlinkLeft")] = 0.4
    assert rt.morph_weights(w)["JAWOPEN"] == 0.5 and rt.morph_weights(w)["eyeBlinkLeft"] == pytest.approx(0.8)
    R = from_yaw_pitch_roll(20, 5)
    eyes = (from_yaw_pitch_roll(10), from_yaw_pitch_roll(-10))
    got = rt.vertices(w, R, eyes)
    base = m.vertices + 0.5 * m.morph_targets["JAWOPEN"] + 0.8 * m.morph_targets["eyeBlinkLeft"]
    want = pose_vertices(base, skel, m.joints, m.weights, {"Head": R, "LeftEye": eyes[0], "RightEye": eyes[1]})
    assert np.abs(got - want).max() < 1e-5
    assert Skinner(skel, m.joints, m.weights)(base, {}).shape == base.shape


def test_take_type():
    T = 4
    t = Take(
        fps=25.0,
        times=np.arange(T) / 25,
        names=ARKIT_NAMES,
        weights=np.zeros((T, 52)),
        head_rotation=np.tile([0, 0, 0, 1.0], (T, 1)),
        eye_rotation=np.tile([0, 0, 0, 1.0], (T, 2, 1)),
        tracked=[True, False, True, True],
    )
    assert Take in RESULT_TYPES and len(t) == 4 and t.missed == 1 and t.duration == pytest.approx(0.12)
    assert t.weight("jawOpen").shape == (4,) and t.weights.dtype == np.float32
    from engines.io import writer_extensions

    assert {".glb", ".mp4", ".json"} <= set(writer_extensions(t))


def test_engine_checks_inputs_and_parameters():
    from engines import registry
    from engines.api import make_params
    from engines.puppet.engine import PuppetEngine
    from engines.types import Image, VideoClip

    assert registry.get("puppet") is PuppetEngine
    with pytest.raises(EngineError, match="2 input"):
        PuppetEngine.check_inputs([Image(np.zeros((8, 8, 3), np.uint8))])
    clip = VideoClip(path=__import__("pathlib").Path("x.mp4"), frame_count=10, fps=30, width=8, height=8)
    with pytest.raises(EngineError, match="the avatar input is missing; it takes Avatar or Image"):
        PuppetEngine().run(
            [clip, clip], PuppetEngine.Params(), lambda *a: None, __import__("engines.api").api.CancelToken()
        )
    assert PuppetEngine._calibration_range("0:5", 30, 10) == (0, 5)
    assert PuppetEngine._calibration_range("first_second", 30, 100) == (0, 30)
    assert PuppetEngine._calibration_range("none", 30, 100) is None
    for bad in ("5:2", "0:500", "soon"):
        with pytest.raises(EngineError):
            PuppetEngine._calibration_range(bad, 30, 100)
    with pytest.raises(EngineError, match="solver"):
        make_params(PuppetEngine, {"solver": "magic"})
