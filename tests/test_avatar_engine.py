"""Avatar engine: geometry, scale, expressions, emotions and bad input, on real portraits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from engines.api import CancelToken, Cancelled, EngineError, make_params, no_progress
from engines.types import Avatar, Image

DATA = Path(__file__).parent / "data"
MM = 1000.0
CORNER_R, CORNER_L = 61, 291  # subject's right (-x) and left (+x) mouth corners
INNER_BROWS = [107, 55, 336, 285]
BROWS = [107, 66, 105, 63, 70, 336, 296, 334, 293, 300]


def _photo(name="astronaut.png", mode="RGB") -> Image:
    return Image(np.asarray(PILImage.open(DATA / name).convert(mode)), path=DATA / name)


def _run(img: Image, **values):
    from engines.avatar.engine import AvatarEngine

    params = make_params(AvatarEngine, values)
    return AvatarEngine().run([img], params, no_progress, CancelToken())


@pytest.fixture(scope="module")
def result():
    return _run(_photo())


@pytest.fixture(scope="module")
def avatar(result) -> Avatar:
    return result.main


def _landmarks(avatar: Avatar, vertices=None) -> np.ndarray:
    """The 478 MediaPipe landmark points on the avatar's head (metres, head frame)."""
    from engines.avatar.correspondence import landmark_points
    from engines.avatar.ict import load_model, render_layout

    lay = render_layout()
    V = np.zeros((load_model().n_vertices, 3), np.float32)
    V[lay.src] = avatar.mesh.vertices if vertices is None else vertices
    return landmark_points(V)


def test_result_is_the_ict_head_with_parts_rig_and_shapes(result, avatar):
    from engines.avatar.arkit import ARKIT_NAMES
    from engines.avatar.emotions import EMOTIONS

    assert isinstance(avatar, Avatar)
    m = avatar.mesh
    assert 25_000 <= len(m.vertices) <= 32_000
    assert m.texture.shape[:2] == (2048, 2048)
    assert m.uv.shape == (len(m.vertices), 2) and m.uv.min() >= 0 and m.uv.max() <= 1
    assert set(m.face_groups) == {"head", "eyes", "teeth", "tongue", "eyelashes"}
    assert sum(len(f) for f in m.face_groups.values()) == len(m.faces)
    assert list(m.morph_targets)[:52] == list(ARKIT_NAMES) and set(EMOTIONS) <= set(m.morph_targets)
    assert len(m.morph_targets) == 58
    for name in ("jawOpen", "eyeBlinkLeft", "mouthSmileRight", "browInnerUp", "cheekPuff", "tongueOut"):
        assert np.abs(m.morph_targets[name]).max() > 0.003, name  # every shape moves something (m)
    assert avatar.skeleton.names == ["Neck", "Head", "Jaw", "LeftEye", "RightEye"]
    assert np.allclose(m.weights.sum(1), 1.0, atol=1e-5) and m.joints.max() < 5
    assert result.metrics["landmarks"] == 478
    # a full head: 18-30 cm from the chin to the crown, 13-20 cm wide
    ext = np.ptp(m.vertices[np.unique(m.faces[m.face_groups["head"]])], axis=0)
    assert 0.13 < ext[0] < 0.27 and 0.18 < ext[1] < 0.36  # width with ears and neck base


def test_normals_point_outwards(avatar):
    m = avatar.mesh
    L = _landmarks(avatar)
    n = m.normals
    head = np.unique(m.faces[m.face_groups["head"]])
    nose = head[np.argmin(np.linalg.norm(m.vertices[head] - L[1], axis=1))]
    assert n[nose, 2] > 0.7  # the nose tip faces forward
    back = head[np.argmin(m.vertices[head, 2])]
    assert n[back, 2] < -0.7  # the back of the head faces backward
    top = head[np.argmax(m.vertices[head, 1])]
    assert n[top, 1] > 0.7


def test_interpupillary_distance_is_the_parameter():
    for ipd in (63.0, 70.0):
        av = _run(_photo("grace_hopper.jpg"), ipd_mm=ipd).main
        L = _landmarks(av)
        assert np.linalg.norm(L[473] - L[468]) * MM == pytest.approx(ipd, rel=0.01)
        assert L[473, 0] > L[468, 0]  # subject's left eye on +x


def test_reprojection_and_camera(result, avatar):
    from engines.avatar.raster import project

    cam = avatar.camera
    K, R, t = (np.asarray(cam[k]) for k in ("K", "R", "t"))
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-6) and np.linalg.det(R) > 0
    from engines.avatar.engine import AS_PHOTOGRAPHED, Deformer

    posed = _landmarks(avatar, Deformer(avatar).vertices({}, avatar.presets[AS_PHOTOGRAPHED]))
    xy, z = project(K, R, t, posed.astype(np.float64))
    assert (z > 0.2).all()  # in front of the camera
    from engines.face import detect_landmarks

    lm = detect_landmarks(avatar.photo)
    err = np.linalg.norm(xy - lm.xy, axis=1)
    assert np.median(err) / lm.iod_px < 0.04  # the posed head lands on the photo's landmarks
    assert result.metrics["reprojection_error_pct_iod"] < 6
    assert abs(result.metrics["yaw_deg"]) < 15


def test_scalp_and_parts(avatar):
    v = avatar.mesh.vertices
    L = _landmarks(avatar)
    assert avatar.scalp is not None and len(avatar.scalp) > 500
    front = avatar.scalp[(v[avatar.scalp, 2] > L[10, 2] - 0.03) & (np.abs(v[avatar.scalp, 0]) < 0.03)]
    assert len(front) > 20 and v[front, 1].min() > L[[105, 334], 1].mean() + 0.025  # the forehead stays bare
    assert v[avatar.scalp, 1].mean() > L[[105, 334], 1].mean()
    assert np.isin(avatar.scalp, np.unique(avatar.mesh.faces[avatar.mesh.face_groups["head"]])).all()


def _delta(avatar, **emotions):
    from engines.avatar.engine import Deformer

    return (_landmarks(avatar, Deformer(avatar).vertices(emotions, {})) - _landmarks(avatar)) * MM


def test_zero_emotions_give_the_neutral_mesh_exactly(avatar):
    from engines.avatar.engine import Deformer

    v = Deformer(avatar).vertices(
        {e: 0.0 for e in ("happiness", "anger", "sadness", "fear", "contempt", "surprise")}, {}
    )
    assert np.array_equal(v, avatar.mesh.vertices)


def test_rest_pose_is_neutral_not_the_photo_smile(avatar):
    """The astronaut smiles: the rest face does not, 'As photographed' does, and the
    emotions act from the rest face (happiness raises the corners, sadness lowers them)."""
    from engines.avatar.engine import AS_PHOTOGRAPHED, Deformer

    preset = avatar.presets[AS_PHOTOGRAPHED]
    assert preset["mouthSmileLeft"] > 0.5 and preset["mouthSmileRight"] > 0.5
    assert avatar.expression == {}  # the default start is the neutral face
    rest = _landmarks(avatar)
    photo = _landmarks(avatar, Deformer(avatar).vertices({}, preset))
    happy, sad = _delta(avatar, happiness=1.0), _delta(avatar, sadness=1.0)
    for c in (CORNER_R, CORNER_L):
        assert (photo[c, 1] - rest[c, 1]) * MM > 4  # rest corners lower than as photographed
        assert happy[c, 1] > 4 and sad[c, 1] < -2


def test_happiness_raises_and_widens_mouth_corners(avatar):
    d = _delta(avatar, happiness=1.0)
    assert d[CORNER_R, 1] > 4 and d[CORNER_L, 1] > 4
    assert d[CORNER_R, 0] < -3 and d[CORNER_L, 0] > 3  # outward on both sides
    assert np.abs(d[BROWS, 1]).max() < 1.5


def test_surprise_raises_brows_and_opens_jaw(avatar):
    d = _delta(avatar, surprise=1.0)
    assert (d[BROWS, 1] > 3).all()
    assert d[152, 1] < -8  # chin down
    assert d[14, 1] - d[13, 1] < -8  # lips part


def test_anger_lowers_and_draws_inner_brows(avatar):
    d = _delta(avatar, anger=1.0)
    assert (d[INNER_BROWS, 1] < -1.2).all()
    assert d[107, 0] > 1 and d[336, 0] < -1  # drawn together


def test_sadness_raises_inner_brows_and_lowers_corners(avatar):
    d = _delta(avatar, sadness=1.0)
    assert (d[INNER_BROWS, 1] > 2.5).all()
    assert d[CORNER_R, 1] < -2 and d[CORNER_L, 1] < -2


def test_fear_raises_brows_and_stretches_lips(avatar):
    d = _delta(avatar, fear=1.0)
    assert (d[INNER_BROWS, 1] > 3).all() and d[70, 1] > 2 and d[300, 1] > 2
    assert d[CORNER_R, 0] < -2.5 and d[CORNER_L, 0] > 2.5


def test_contempt_raises_one_corner_only(avatar):
    d = _delta(avatar, contempt=1.0)
    assert d[CORNER_R, 1] > 3
    assert abs(d[CORNER_L, 1]) < 0.3 and np.abs(d[CORNER_L]).max() < 0.5


def test_emotions_combine_and_match_glb_targets(avatar):
    from engines.avatar.emotions import emotion_module
    from engines.avatar.engine import Deformer

    both = _delta(avatar, happiness=1.0, surprise=1.0)
    assert both[CORNER_L, 1] > 0 and both[152, 1] < -8 and (both[BROWS, 1] > 2).all()
    # a single emotion at 100 % equals its morph target (the module's weights are <= 1)
    for e in ("happiness", "fear"):
        v = Deformer(avatar).vertices({e: 1.0}, {})
        assert np.allclose(v - avatar.mesh.vertices, avatar.mesh.morph_targets[e], atol=1e-6)
    import torch

    w = emotion_module()(torch.tensor([[1.0, 1, 1, 1, 1, 1]]))
    assert float(w.max()) <= 1.0 and float(w.min()) >= 0.0


def test_tongue_out_and_eye_look_shapes(avatar):
    """tongueOut brings the tongue tip forward past the lips; eyeLookOutLeft turns the left
    eyeball (its iris moves towards +x) and leaves the right one."""
    m = avatar.mesh
    tongue = np.unique(m.faces[m.face_groups["tongue"]])
    d = m.morph_targets["tongueOut"][tongue]
    assert d[:, 2].max() > 0.02 and np.abs(d[:, 0]).max() < 0.005
    eyes = np.unique(m.faces[m.face_groups["eyes"]])
    left = eyes[m.vertices[eyes, 0] > 0]
    right = eyes[m.vertices[eyes, 0] < 0]
    out = m.morph_targets["eyeLookOutLeft"]
    front = left[m.vertices[left, 2] > np.percentile(m.vertices[left, 2], 90)]
    assert out[front, 0].mean() > 0.003 and np.abs(out[right]).max() == 0


def test_cli_style_initial_emotions():
    av = _run(_photo("grace_hopper.jpg"), happiness="0.8")
    assert av.main.emotions["happiness"] == pytest.approx(0.8)


# ----------------------------------------------------------------------------- bad input
def test_no_face_is_an_engine_error():
    with pytest.raises(EngineError, match="No face found in resized_IMG_2889.jpg"):
        _run(_photo("resized_IMG_2889.jpg"))


def test_tiny_face_is_refused_with_its_size():
    small = np.asarray(PILImage.open(DATA / "astronaut.png").convert("RGB").resize((128, 128)))
    with pytest.raises(EngineError, match=r"(px|No face)"):
        _run(Image(small))


def test_greyscale_and_rgba_photos_work():
    grey = _run(_photo(mode="L"))
    assert grey.main.mesh.texture.ndim == 3 and grey.metrics["reprojection_error_pct_iod"] < 6
    rgba = np.asarray(PILImage.open(DATA / "astronaut.png").convert("RGBA")).copy()
    rgba[:40, :40, 3] = 0
    assert _run(Image(rgba)).main.mesh.texture.shape[2] == 3


def test_huge_photo_is_reduced_with_a_note():
    import cv2

    face = np.asarray(PILImage.open(DATA / "grace_hopper.jpg").convert("RGB"))
    big = np.full((8000, 12000, 3), 200, np.uint8)
    big[2000 : 2000 + 3000, 4000 : 4000 + 2560] = cv2.resize(face, (2560, 3000))
    res = _run(Image(big))
    assert any("reduced" in n for n in res.notes)
    assert max(res.main.photo.shape[:2]) <= 4096
    assert res.main.camera["image_size"] == (res.main.photo.shape[1], res.main.photo.shape[0])


def test_group_photo_uses_the_largest_face_and_says_so():
    res = _run(_photo("group1.jpg"))
    assert res.metrics["faces_found"] > 1
    assert any("largest" in n for n in res.notes)


def test_cancel_stops_the_run():
    from engines.avatar.engine import AvatarEngine

    tok = CancelToken()
    tok.set()
    with pytest.raises(Cancelled):
        AvatarEngine().run([_photo()], AvatarEngine.Params(), no_progress, tok)


def test_wrong_input_type_is_refused():
    from engines.avatar.engine import AvatarEngine
    from engines.types import ImageSet

    with pytest.raises(EngineError):
        AvatarEngine().run([ImageSet([])], AvatarEngine.Params(), no_progress, CancelToken())


def test_profile_beyond_60_degrees_says_why(avatar):
    """A render of the head turned 80 degrees (a profile) is refused with the reason."""
    from engines.avatar.quality import render_from_photo_camera

    img, mask, _ = render_from_photo_camera(avatar, yaw_deg=80)
    assert mask.sum() > 3000
    with pytest.raises(EngineError, match="turned"):
        _run(Image(img))


def test_drawings_line_art_refused_painting_accepted():
    import cv2

    rgb = np.asarray(PILImage.open(DATA / "grace_hopper.jpg").convert("RGB"))
    line_art = 255 - cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 80, 160)
    with pytest.raises(EngineError, match="line drawings"):
        _run(Image(line_art))
    painted = cv2.stylization(rgb)
    res = _run(Image(painted))
    assert abs(res.metrics["yaw_deg"]) < 15


def test_eye_joints_agree_with_eye_look_shapes_and_jaw_joint_opens(avatar):
    """Turning the LeftEye joint by the eyeLookOutLeft angle puts the eyeball where the
    eyeLookOutLeft morph target puts it; turning the Jaw joint drops the chin."""
    from engines.avatar.arkit import eye_look_rotation
    from engines.avatar.rig import pose_vertices

    m, sk = avatar.mesh, avatar.skeleton
    eyes = np.unique(m.faces[m.face_groups["eyes"]])
    left = eyes[m.vertices[eyes, 0] > 0]
    for direction in ("Out", "In", "Up", "Down"):
        posed = pose_vertices(m.vertices, sk, m.joints, m.weights, {"LeftEye": eye_look_rotation("Left", direction)})
        shaped = m.vertices + m.morph_targets[f"eyeLook{direction}Left"]
        assert np.abs(posed[left] - shaped[left]).max() < 5e-4, direction  # 0.5 mm
        assert np.abs(posed[left] - m.vertices[left]).max() > 3e-3
    a = np.radians(20)
    jaw = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    L0 = _landmarks(avatar)
    L1 = _landmarks(avatar, pose_vertices(m.vertices, sk, m.joints, m.weights, {"Jaw": jaw}))
    assert (L1[152, 1] - L0[152, 1]) * MM < -8  # chin down
    assert abs(L1[10, 1] - L0[10, 1]) * MM < 0.5  # forehead stays
