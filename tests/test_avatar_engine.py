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


def _welded(V, F):
    u, inv = np.unique(np.round(V, 9), axis=0, return_inverse=True)
    return u, inv.reshape(-1)[F]


def test_result_is_avatar_with_dense_closed_head(result, avatar):
    assert isinstance(avatar, Avatar)
    m = avatar.mesh
    assert 10_000 <= len(m.vertices) <= 40_000
    assert m.texture.shape[0] >= 2048 and m.texture.shape[1] >= 2048
    assert m.uv.shape == (len(m.vertices), 2) and m.uv.min() >= 0 and m.uv.max() <= 1
    # closed: after welding the UV-seam copies every directed edge has its reverse exactly once
    u, F = _welded(m.vertices, m.faces)
    F = F[(F[:, 0] != F[:, 1]) & (F[:, 1] != F[:, 2]) & (F[:, 0] != F[:, 2])]
    d = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    key = d[:, 0] * (len(u) + 1) + d[:, 1]
    rev = d[:, 1] * (len(u) + 1) + d[:, 0]
    assert len(np.unique(key)) == len(key), "an edge is used twice in the same direction"
    assert np.isin(rev, key).all(), "the head has a hole"
    assert result.metrics["landmarks"] == 478


def test_normals_point_outwards(avatar):
    from engines.avatar.head import head_template
    from engines.avatar.topology import vertex_normals

    m = avatar.mesh
    v = m.vertices.astype(np.float64)
    a, b, c = v[m.faces[:, 0]], v[m.faces[:, 1]], v[m.faces[:, 2]]
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6
    assert 0.002 < volume < 0.008  # a head and neck: 2 to 8 litres, positive = outward
    n = vertex_normals(v, m.faces)
    tpl = head_template()
    assert n[1, 2] > 0.8  # nose tip faces forward
    assert n[tpl.skull_pole[0], 2] < -0.9  # back of the head faces backward
    top = tpl.skull_idx[1:].ravel()[np.argmax(v[tpl.skull_idx[1:].ravel(), 1])]
    assert n[top, 1] > 0.8


def test_interpupillary_distance_is_the_parameter():
    from engines.avatar.head import head_template

    tpl = head_template()
    for ipd in (63.0, 70.0):
        av = _run(_photo("grace_hopper.jpg"), ipd_mm=ipd).main
        left, right = av.mesh.vertices[tpl.eyeball_idx["L"][0]], av.mesh.vertices[tpl.eyeball_idx["R"][0]]
        assert np.linalg.norm(left - right) * MM == pytest.approx(ipd, rel=0.01)
        assert left[0] > right[0]  # subject's left eye on +x


def test_reprojection_and_camera(result, avatar):
    cam = avatar.camera
    assert result.metrics["reprojection_error_pct_iod"] < 1.5
    K, R, t = (np.asarray(cam[k]) for k in ("K", "R", "t"))
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-6) and np.linalg.det(R) > 0
    c = avatar.mesh.vertices[:468] @ R.T + t
    assert (c[:, 2] > 0.2).all()  # in front of the camera
    assert abs(result.metrics["yaw_deg"]) < 15


def test_scalp_and_parts(avatar):
    v = avatar.mesh.vertices
    assert avatar.scalp is not None and len(avatar.scalp) > 500
    assert v[avatar.scalp, 1].mean() > v[:468, 1].mean()  # above the face on average
    assert len(np.intersect1d(avatar.scalp, np.arange(468))) == 0  # not on the face


def test_basis_names_and_count(avatar):
    from engines.avatar.blendshapes import SHAPE_NAMES
    from engines.avatar.emotions import EMOTIONS

    names = set(avatar.mesh.morph_targets)
    assert len(SHAPE_NAMES) >= 20 and set(SHAPE_NAMES) <= names and set(EMOTIONS) <= names
    for must in ("browInnerUp", "browOuterUp_L", "browDown_R", "eyeBlink_L", "eyeWide_R", "eyeSquint_L",
                 "cheekRaise_L", "noseWrinkle_R", "mouthSmile_L", "mouthFrown_R", "mouthStretch_L",
                 "mouthPress", "mouthPucker", "mouthDimple_L", "mouthDimple_R", "jawOpen"):
        assert must in names
        assert np.abs(avatar.mesh.morph_targets[must]).max() > 0.001


def _delta(avatar, **emotions):
    from engines.avatar.engine import Deformer

    return (Deformer(avatar).vertices(emotions) - avatar.mesh.vertices) * MM


def test_zero_emotions_give_the_neutral_mesh_exactly(avatar):
    from engines.avatar.engine import Deformer

    v = Deformer(avatar).vertices({e: 0.0 for e in ("happiness", "anger", "sadness", "fear", "contempt", "surprise")})
    assert np.array_equal(v, avatar.mesh.vertices)


def test_happiness_raises_and_widens_mouth_corners(avatar):
    d = _delta(avatar, happiness=1.0)
    assert d[CORNER_R, 1] > 3 and d[CORNER_L, 1] > 3
    assert d[CORNER_R, 0] < -2 and d[CORNER_L, 0] > 2  # outward on both sides
    assert np.abs(d[BROWS, 1]).max() < 0.5


def test_surprise_raises_brows_and_opens_jaw(avatar):
    d = _delta(avatar, surprise=1.0)
    assert (d[BROWS, 1] > 2).all()
    assert d[152, 1] < -8  # chin down
    assert d[14, 1] - d[13, 1] < -6  # lips part


def test_anger_lowers_inner_brows(avatar):
    d = _delta(avatar, anger=1.0)
    assert (d[INNER_BROWS, 1] < -2.5).all()
    assert d[107, 0] > 1 and d[336, 0] < -1  # drawn together


def test_sadness_raises_inner_brows_and_lowers_corners(avatar):
    d = _delta(avatar, sadness=1.0)
    assert (d[INNER_BROWS, 1] > 2).all()
    assert d[CORNER_R, 1] < -3 and d[CORNER_L, 1] < -3


def test_fear_raises_brows_and_stretches_lips(avatar):
    d = _delta(avatar, fear=1.0)
    assert (d[INNER_BROWS, 1] > 2).all() and d[70, 1] > 1 and d[300, 1] > 1
    assert d[CORNER_R, 0] < -4 and d[CORNER_L, 0] > 4


def test_contempt_raises_one_corner_only(avatar):
    d = _delta(avatar, contempt=1.0)
    assert d[CORNER_R, 1] > 2
    assert abs(d[CORNER_L, 1]) < 0.2 and np.abs(d[CORNER_L]).max() < 0.3


def test_emotions_combine_and_match_glb_targets(avatar):
    from engines.avatar.emotions import emotion_module

    both = _delta(avatar, happiness=1.0, surprise=1.0)
    assert both[CORNER_L, 1] > 1 and both[152, 1] < -8 and (both[BROWS, 1] > 2).all()
    # a single emotion at 100 % equals its morph target (the module's weights are <= 1)
    for e in ("happiness", "fear"):
        assert np.allclose(_delta(avatar, **{e: 1.0}) / MM, avatar.mesh.morph_targets[e], atol=1e-6)
    import torch

    w = emotion_module()(torch.tensor([[1.0, 1, 1, 1, 1, 1]]))
    assert float(w.max()) <= 1.0 and float(w.min()) >= 0.0


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
    assert grey.main.mesh.texture.ndim == 3 and grey.metrics["reprojection_error_pct_iod"] < 1.5
    rgba = np.asarray(PILImage.open(DATA / "astronaut.png").convert("RGBA")).copy()
    rgba[:40, :40, 3] = 0
    assert _run(Image(rgba)).main.mesh.texture.shape[2] == 3


def test_huge_photo_is_reduced_with_a_note():
    import cv2

    face = np.asarray(PILImage.open(DATA / "grace_hopper.jpg").convert("RGB"))
    big = np.full((8000, 12000, 3), 200, np.uint8)
    big[2000:2000 + 3000, 4000:4000 + 2560] = cv2.resize(face, (2560, 3000))
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


def test_unseen_regions_are_filled_with_skin_not_black(avatar):
    """The back of the head was never in the photo: its texels are skin-coloured, and no part
    of the atlas outside the mouth pocket is black."""
    from engines.avatar.head import MOUTH_BOX, head_template
    from engines.avatar.texture import skin_tone
    from engines.avatar.raster import project

    tpl = head_template()
    tex = avatar.mesh.texture.astype(int)
    size = tex.shape[0]
    uv = avatar.mesh.uv[np.concatenate([tpl.skull_pole, tpl.skull_idx[-3:].ravel()])]
    px = np.clip((uv[:, 0] * size).astype(int), 0, size - 1)
    py = np.clip(((1 - uv[:, 1]) * size).astype(int), 0, size - 1)
    back = tex[py, px].mean(0)
    cam = avatar.camera
    xy, _ = project(np.asarray(cam["K"]), cam["R"], cam["t"], avatar.mesh.vertices[:468].astype(np.float64))
    skin = skin_tone(avatar.photo, xy)
    assert np.abs(back - skin).max() < 45, (back, skin)
    dark = tex.sum(2) < 40
    u0, v0, u1, v1 = MOUTH_BOX
    dark[int((1 - v1) * size): int((1 - v0) * size), int(u0 * size): int(u1 * size)] = False
    assert dark.mean() < 0.01
