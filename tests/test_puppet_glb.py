"""The animated GLB of a take in real clients: the Khronos glTF-Validator (no errors, no
warnings) and three.js AnimationMixer (the clip lasts as long as the take, and a morph
influence and the Head bone's rotation at sampled times are the take's). Also glTF animations
on the synthetic rig from our writer, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

from engines.api import CancelToken, EngineError, no_progress
from engines.io.gltf import GltfAnimation, read_glb, write_glb
from tests.gltf_clients import clients_missing, issues, synthetic_rig, three_animation, validate_glb
from tests.puppet_data import DATA, avatar

_WHY = clients_missing()
needs_clients = pytest.mark.skipif(_WHY is not None, reason=str(_WHY))
PARTS = ["head", "eyes", "teeth", "tongue", "eyelashes"]


@pytest.fixture(scope="module")
def take():
    from engines.io.video import open_video
    from engines.puppet.engine import PuppetEngine

    clip = open_video(DATA / "carphone_30.mp4")
    p = PuppetEngine.Params(calibration="0:10", name="carphone take")
    return PuppetEngine().run([clip, avatar("astronaut.png")], p, no_progress, CancelToken()).main


@pytest.fixture(scope="module")
def take_glb(take, tmp_path_factory):
    from engines.io import export

    path = tmp_path_factory.mktemp("take") / "take.glb"
    export(take, path)
    return path


@needs_clients
def test_animated_glb_validates(take_glb):
    rep = validate_glb(take_glb)
    assert rep["issues"]["numErrors"] == 0 and rep["issues"]["numWarnings"] == 0, issues(rep)
    assert rep["info"]["animationCount"] == 1 and rep["info"]["hasSkins"] and rep["info"]["hasMorphTargets"]


@needs_clients
def test_three_plays_the_take(take, take_glb):
    k = take.names.index("jawOpen")
    i = int(np.argmax(take.weight("jawOpen")))
    times = [0.0, take.times[i], 0.5 * (take.times[3] + take.times[4]), take.duration]
    a = three_animation(take_glb, times)
    assert a["errors"] == [] and a["warnings"] == []
    (clip,) = a["clips"]
    assert clip["name"] == "carphone take"
    assert clip["duration"] == pytest.approx(take.duration, abs=1e-5)
    tracks = {t["name"]: t for t in clip["tracks"]}
    assert set(tracks) == {f"{p}.morphTargetInfluences" for p in PARTS} | {"Head.quaternion"}
    n_targets = len(take.avatar.mesh.morph_targets)
    for p in PARTS:
        assert tracks[f"{p}.morphTargetInfluences"]["times"] == len(take)
        assert tracks[f"{p}.morphTargetInfluences"]["values"] == len(take) * n_targets
    assert tracks["Head.quaternion"]["interpolation"] == 2301  # THREE.InterpolateLinear
    for s, t in zip(a["samples"], times):
        want = np.interp(t, take.times, take.weights[:, k])
        for p in PARTS:
            assert s["morphs"][p]["jawOpen"] == pytest.approx(want, abs=1e-5)
        assert s["morphs"]["head"]["happiness"] == 0.0  # emotion targets stay at rest
        assert np.abs(np.dot(s["bones"]["Head"], _slerp_at(take.times, take.head_rotation, t))) > 1 - 1e-6


def _slerp_at(times, q, t):
    """glTF LINEAR rotation: spherical linear interpolation between the neighbouring keys."""
    i = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
    u = float(np.clip((t - times[i]) / (times[i + 1] - times[i]), 0, 1))
    a, b = q[i].astype(np.float64), q[i + 1].astype(np.float64)
    if a @ b < 0:
        b = -b
    th = np.arccos(np.clip(a @ b, -1, 1))
    if th < 1e-9:
        return a
    return (np.sin((1 - u) * th) * a + np.sin(u * th) * b) / np.sin(th)


@needs_clients
def test_joint_gaze_adds_eye_tracks(take, tmp_path):
    import dataclasses

    from engines.puppet.export import write_take_glb

    t = dataclasses.replace(take, meta={**take.meta, "gaze": "joints"})
    write_take_glb(t, tmp_path / "eyes.glb")
    rep = validate_glb(tmp_path / "eyes.glb")
    assert rep["issues"]["numErrors"] == 0 and rep["issues"]["numWarnings"] == 0, issues(rep)
    tracks = {x["name"] for x in three_animation(tmp_path / "eyes.glb")["clips"][0]["tracks"]}
    assert {"Head.quaternion", "LeftEye.quaternion", "RightEye.quaternion"} <= tracks


def test_take_glb_reads_back_as_the_avatar(take, take_glb):
    meshes = read_glb(take_glb)
    assert [m.name for m in meshes] == PARTS
    assert all(list(m.morph_targets) == list(take.avatar.mesh.morph_targets) for m in meshes)


@needs_clients
def test_rig_animation_from_the_writer(tmp_path):
    m, skel = synthetic_rig()
    T = 5
    times = np.linspace(0, 0.4, T)
    q = np.zeros((T, 4))
    q[:, 3] = np.cos(np.linspace(0, 0.3, T) / 2)
    q[:, 0] = np.sin(np.linspace(0, 0.3, T) / 2)
    anim = GltfAnimation("nod", times, morph_weights={"jawOpen": np.linspace(0, 1, T)}, rotations={"Head": q})
    write_glb([m], tmp_path / "rig.glb", skeleton=skel, morph_weights={"eyeBlinkLeft": 0.25}, animations=[anim])
    rep = validate_glb(tmp_path / "rig.glb")
    assert rep["issues"]["numErrors"] == 0 and rep["issues"]["numWarnings"] == 0, issues(rep)
    a = three_animation(tmp_path / "rig.glb", [0.1, 0.4])
    assert a["clips"][0]["duration"] == pytest.approx(0.4)
    s = a["samples"][0]
    assert s["morphs"]["head"]["jawOpen"] == pytest.approx(0.25, abs=1e-6)
    assert s["morphs"]["head"]["eyeBlinkLeft"] == pytest.approx(0.25, abs=1e-6)  # the default weight, held
    assert a["samples"][1]["bones"]["Head"] == pytest.approx(list(q[-1]), abs=1e-6)


def test_animation_refusals(tmp_path):
    m, skel = synthetic_rig()
    bad = GltfAnimation("x", [0.0, 0.0], rotations={"Head": np.tile([0, 0, 0, 1.0], (2, 1))})
    with pytest.raises(EngineError, match="increasing"):
        write_glb([m], tmp_path / "a.glb", skeleton=skel, animations=[bad])
    ghost = GltfAnimation("x", [0.0, 1.0], rotations={"Tail": np.tile([0, 0, 0, 1.0], (2, 1))})
    with pytest.raises(EngineError, match="Tail"):
        write_glb([m], tmp_path / "b.glb", skeleton=skel, animations=[ghost])
    assert not (tmp_path / "a.glb").exists() and not (tmp_path / "b.glb").exists()
