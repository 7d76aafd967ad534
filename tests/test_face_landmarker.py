"""engines.face: the Face Landmarker (blendshapes, transform), its agreement with the legacy
face mesh, the photo contract of detect_landmarks and the VIDEO-mode FaceTracker.

Figures measured here (2 cores, mediapipe 0.10.21): mean landmark difference between the
Face Landmarker and the legacy face mesh 1.4 % (astronaut), 2.3 % (grace_hopper), 3.1 %
(group1, a 24 px inter-ocular distance) of the inter-ocular distance; astronaut smile scores
0.90/0.90, jawOpen 0.02; grace_hopper smiles 0.01; carphone frames 0-19 all tracked, jawOpen
0.014-0.043.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import cv2
import numpy as np
import pytest

from engines.api import EngineError
from engines.face import (
    ARKIT_BLENDSHAPES,
    LEFT_IRIS,
    N_LANDMARKS,
    RIGHT_IRIS,
    SCORED_BLENDSHAPES,
    FaceLandmarks,
    FaceTracker,
    arkit_weights,
    detect_landmarks,
)
from engines.face import detect as face_detect
from engines.face import landmarker
from tests.conftest import DATA

PHOTOS = ("astronaut.png", "grace_hopper.jpg", "group1.jpg")
AGREE_MEAN_PCT = 4.5
"""Bound on the mean landmarker-vs-face-mesh point difference, % of the inter-ocular distance
(measured 1.4, 2.3 and 3.1)."""


def _rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(DATA / name)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def both() -> dict[str, tuple[FaceLandmarks, FaceLandmarks]]:
    """Per photo: (Face Landmarker result, legacy face mesh result)."""
    out = {}
    for name in PHOTOS:
        rgb = _rgb(name)
        out[name] = (detect_landmarks(rgb, name), detect_landmarks(rgb, name, method="face_mesh"))
    return out


def test_astronaut_smiles(both):
    lm = both["astronaut.png"][0]
    assert lm.method == "face_landmarker"
    assert lm.xy.shape == (N_LANDMARKS, 2) and lm.z.shape == (N_LANDMARKS,)
    bs = lm.blendshapes
    assert bs["mouthSmileLeft"] > 0.5 and bs["mouthSmileRight"] > 0.5
    assert bs["jawOpen"] < 0.3
    assert all(0.0 <= v <= 1.0 for v in bs.values())


def test_grace_hopper_smiles_less(both):
    a = both["astronaut.png"][0].blendshapes
    g = both["grace_hopper.jpg"][0].blendshapes
    for k in ("mouthSmileLeft", "mouthSmileRight"):
        assert g[k] < a[k] - 0.3, (k, g[k], a[k])


def test_blendshape_names_are_arkit(both):
    assert len(ARKIT_BLENDSHAPES) == 52 == len(set(ARKIT_BLENDSHAPES))
    assert ARKIT_BLENDSHAPES[0] == "eyeBlinkLeft" and ARKIT_BLENDSHAPES[-1] == "tongueOut"
    # The model scores every ARKit name but tongueOut (its 52nd output is _neutral, dropped).
    bs = both["astronaut.png"][0].blendshapes
    assert list(bs) == list(SCORED_BLENDSHAPES) == [n for n in ARKIT_BLENDSHAPES if n != "tongueOut"]
    # ... and nothing the model gives is lost on the way: its raw category names are exactly those.
    crop = np.ascontiguousarray(_rgb("astronaut.png")[100:300, 150:350])
    with landmarker.lock:
        raw = landmarker.image_landmarker().detect(landmarker._mp_image(crop))
    assert {c.category_name for c in raw.face_blendshapes[0]} == set(SCORED_BLENDSHAPES) | {"_neutral"}
    w = arkit_weights(bs)
    assert w.shape == (52,) and w.dtype == np.float32
    assert w[ARKIT_BLENDSHAPES.index("tongueOut")] == 0.0
    assert w[ARKIT_BLENDSHAPES.index("jawOpen")] == pytest.approx(bs["jawOpen"])
    assert np.all(arkit_weights(None) == 0)
    order = sorted(ARKIT_BLENDSHAPES)
    assert arkit_weights(bs, order)[order.index("mouthSmileLeft")] == pytest.approx(bs["mouthSmileLeft"])


@pytest.mark.parametrize("name", PHOTOS)
def test_landmarks_agree_with_face_mesh(both, name):
    new, old = both[name]
    assert new.method == "face_landmarker" and old.method == "face_mesh"
    assert old.blendshapes is None and old.transform is None
    assert new.box == old.box and new.image_size == old.image_size
    iod = old.iod_px
    d = np.linalg.norm(new.xy - old.xy, axis=1) / iod * 100
    assert d.mean() < AGREE_MEAN_PCT, d.mean()
    assert np.percentile(d, 95) < 9.0
    # Same pixel convention: no systematic shift (a half-pixel slip would show on group1).
    bias = np.linalg.norm((new.xy - old.xy).mean(0))
    assert bias < 1.0 and bias / iod * 100 < 3.0
    assert abs(new.iod_px / iod - 1) < 0.03
    # z on the x scale, like the legacy mesh: the same spread and ordering of depths.
    assert 0.9 < new.z.std() / old.z.std() < 1.1
    assert np.corrcoef(new.z, old.z)[0, 1] > 0.95


@pytest.mark.parametrize("name", PHOTOS)
def test_transform_is_a_rigid_pose(both, name):
    t = both[name][0].transform
    assert t.shape == (4, 4)
    np.testing.assert_allclose(t[3], [0, 0, 0, 1], atol=1e-6)
    r = t[:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=0.02)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=0.02)
    assert t[2, 3] < 0  # the face is in front of the camera (looking along -z)
    if name != "group1.jpg":  # frontal portraits: less than ~15 degrees off
        assert r[2, 2] > np.cos(np.radians(15))


def test_blank_image_has_no_face():
    with pytest.raises(EngineError, match="No face found in the blank"):
        detect_landmarks(np.full((256, 256, 3), 128, np.uint8), "the blank")


def test_group_photo_still_yields_a_face(both):
    lm = both["group1.jpg"][0]
    assert lm.method == "face_landmarker" and lm.faces_found >= 2
    assert any("faces found" in n for n in lm.notes)
    x0, y0, x1, y1 = lm.box
    cx, cy = lm.xy.mean(0)
    assert x0 <= cx <= x1 and y0 <= cy <= y1
    assert lm.iod_px > 15


def test_fallback_to_face_mesh(monkeypatch):
    monkeypatch.setattr(landmarker, "landmarks_on_crop", lambda crop, box=None: None)
    rgb = _rgb("astronaut.png")
    lm = detect_landmarks(rgb, "astronaut.png")
    assert lm.method == "face_mesh" and lm.blendshapes is None and lm.transform is None
    assert any("legacy face mesh" in n for n in lm.notes)
    with pytest.raises(EngineError, match="could not be placed"):
        detect_landmarks(rgb, "astronaut.png", method="face_landmarker")


def test_face_tracker_on_video():
    from engines.io.video import iter_frames

    frames = list(iter_frames(DATA / "carphone_30.mp4", 0, 20))
    assert len(frames) == 20
    h, w = frames[0].shape[:2]
    with FaceTracker() as tr:
        out = [tr.track(f, round(i * 1000 / 30)) for i, f in enumerate(frames)]
        with pytest.raises(ValueError, match="must increase"):
            tr.track(frames[0], 0)
        assert tr.frames == 20 and tr.tracked == sum(o is not None for o in out)
    with pytest.raises(RuntimeError, match="closed"):
        tr.track(frames[0], 10_000)
    got = [o for o in out if o is not None]
    assert len(got) >= 18
    for o in got:
        assert o.method == "face_landmarker" and o.image_size == (w, h)
        assert o.xy.shape == (N_LANDMARKS, 2) and o.transform.shape == (4, 4)
        assert 0 <= o.xy[LEFT_IRIS, 0] < o.xy[RIGHT_IRIS, 0] < w
        assert list(o.blendshapes) == list(SCORED_BLENDSHAPES)
    jaw = np.array([o.blendshapes["jawOpen"] for o in got])
    assert np.ptp(jaw) > 0.01, jaw  # measured 0.014-0.043 over these frames
    # He talks: the mouth moves more than the jaw here.
    assert np.ptp([o.blendshapes["mouthSmileLeft"] for o in got]) > 0.05


def test_model_ships_in_the_package():
    data = resources.files("engines.face").joinpath("data")
    task = data.joinpath(landmarker.MODEL_FILE)
    assert hashlib.sha256(task.read_bytes()).hexdigest() == landmarker.MODEL_SHA256
    assert landmarker.model_bytes() == task.read_bytes()
    assert "Apache License" in data.joinpath("LICENSE").read_text()
    assert landmarker.MODEL_SHA256 in data.joinpath("README.md").read_text()
    assert "/work/shared" not in str(task) and "shared/data" not in str(task)


def test_avatar_landmarks_is_a_compatibility_layer():
    from engines.avatar import landmarks as old

    import engines.face as face

    for name in (
        "detect_landmarks",
        "FaceLandmarks",
        "LEFT_IRIS",
        "RIGHT_IRIS",
        "LEFT_IRIS_RING",
        "RIGHT_IRIS_RING",
        "MIN_FACE_PX",
        "MAX_SIDE",
        "warm_up",
    ):
        assert getattr(old, name) is getattr(face, name)
    assert face_detect.detect_landmarks is detect_landmarks
