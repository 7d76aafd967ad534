"""Structure from motion (engines/multiview/sfm.py, frames.py) on real and synthetic photos."""

from __future__ import annotations

import numpy as np
import pytest

from engines.multiview import evaluate as ev
from engines.multiview import frames, sfm
from engines.multiview.engine import MultiViewEngine
from tests.test_multiview_scenes import DATA, bunny_scene

SAGRADA = sorted(DATA.glob("resized_IMG_*.jpg"))


@pytest.fixture(scope="module")
def scene():
    return bunny_scene(n=24)


def _views(scene):
    return [frames.View(f"view_{i:03d}.png", im, "", scene["size"]) for i, im in enumerate(scene["images"])]


def _gt_centres(scene, names):
    idx = [int(n[5:8]) for n in names]
    return -np.einsum("nji,nj->ni", scene["R"], scene["t"])[idx]


def test_sagrada_all_four_register(tmp_path, capfd):
    views, _ = frames.load_photos(SAGRADA, 718)
    # the EXIF focal (4285 px) belongs to the 5184 px originals: it must not be used
    assert all(v.focal_px is None for v in views)
    model = sfm.run_sfm(views, tmp_path)
    # the first mapping attempt fails here and a retry succeeds: COLMAP's error line for
    # the failed attempt must not reach the log
    assert "Failed to create any sparse model" not in capfd.readouterr().err
    assert model.registered == 4 and model.total_images == 4
    assert model.mean_reprojection_error < 1.0
    assert len(model.points) > 500
    f = model.cameras.K[0, 0, 0]
    assert 450 < f < 900  # a 19 mm lens on a 22.3 mm wide sensor is ~612 px at 718 px
    frusta = sfm.frusta_mesh(model.cameras, 0.1)
    assert len(frusta.vertices) == 20 and len(frusta.faces) == 24
    # the four photos were taken a few steps apart: frusta sized by the camera gaps alone
    # were 1 % of the scene (invisible next to the points); they must be 5-8 %
    scale = model.scene_scale()
    size = MultiViewEngine._frustum_size(model.cameras.centers, scale)
    assert 0.05 - 1e-9 <= size / scale <= 0.08 + 1e-9  # the clip bounds, up to rounding
    frusta = sfm.frusta_mesh(model.cameras, size)
    depth = [np.linalg.norm(frusta.vertices[5 * i + 1 : 5 * i + 5].mean(0) - frusta.vertices[5 * i]) for i in range(4)]
    assert np.all(np.array(depth) >= 0.05 * scale)


def test_frustum_size_follows_the_scene_and_the_camera_gaps():
    size = MultiViewEngine._frustum_size
    ring = lambda n, r: np.stack(  # noqa: E731
        [r * np.cos(a := np.linspace(0, 2 * np.pi, n, endpoint=False)), r * np.sin(a), np.zeros(n)], 1
    )
    # 40 cameras on a ring of radius 3 around a scene 2 across: gap 0.47 -> 0.6 gap = 0.28
    s = size(ring(40, 3.0), 2.0)
    assert 0.05 * 2.0 <= s <= 0.08 * 2.0 and s < 0.5 * 0.47
    # cameras a few units apart before a scene 178 across (the Sagrada set): 5 % floor
    close = np.array([[0.0, 0, 0], [2.1, 0, 0], [4.2, 0.5, 0], [8.0, 1.0, 0]])
    assert size(close, 178.0) == pytest.approx(0.05 * 178.0)
    # few, far apart cameras: capped at 8 % of the scene
    assert size(ring(4, 10.0), 1.0) == pytest.approx(0.08)
    # a single camera: 6 % of the scene
    assert size(ring(1, 1.0), 1.0) == pytest.approx(0.06)


def test_synthetic_cameras_within_two_percent(tmp_path, scene):
    model = sfm.run_sfm(_views(scene), tmp_path)
    assert model.registered == 24
    err, _ = ev.camera_error(model.cameras.centers, _gt_centres(scene, model.cameras.names))
    assert err.max() < 0.02 * scene["scene_size"], err.max()
    # focal length recovered within 3 %
    assert abs(np.median(model.cameras.K[:, 0, 0]) / scene["K"][0, 0, 0] - 1) < 0.03


def test_fixed_intrinsics_stay_fixed(tmp_path, scene):
    K = scene["K"][0]
    fixed = (K[0, 0], K[0, 2] + 0.5, K[1, 2] + 0.5)  # COLMAP's pixel-centre convention
    model = sfm.run_sfm(_views(scene)[:12], tmp_path, fixed_intrinsics=fixed)
    assert model.registered == 12
    np.testing.assert_allclose(model.cameras.K[:, 0, 0], K[0, 0], rtol=1e-9)
    np.testing.assert_allclose(model.cameras.K[:, 0, 2], K[0, 2], atol=1e-9)
    err, _ = ev.camera_error(model.cameras.centers, _gt_centres(scene, model.cameras.names))
    assert err.max() < 0.02 * scene["scene_size"]


def test_exif_focal_trusted_only_when_consistent():
    # 35 mm equivalent scales with any resize
    f, _ = frames.exif_focal_px({"FocalLengthIn35mmFilm": 36}, 800, 600, (4000, 3000))
    assert f == pytest.approx(800)
    # focal-plane resolution of the original on a resized file: ignored
    exif = {
        "FocalLength": 19.0,
        "FocalPlaneXResolution": 5728.18,
        "FocalPlaneResolutionUnit": 2,
        "PixelXDimension": 718,
    }
    assert frames.exif_focal_px(exif, 718, 480, (718, 480))[0] is None
    exif["PixelXDimension"] = 5184
    assert frames.exif_focal_px(exif, 718, 480, (718, 480))[0] is None
    # an untouched photo: f_mm * px/mm, scaled to the working size
    f, _ = frames.exif_focal_px(exif, 1000, 667, (5184, 3456))
    assert f == pytest.approx(19.0 * 5728.18 / 25.4 * 1000 / 5184, rel=1e-6)


def test_duplicates_are_dropped():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (120, 160, 3), np.uint8)
    b = rng.integers(0, 255, (120, 160, 3), np.uint8)
    views = [
        frames.View(n, im, "", (160, 120))
        for n, im in (
            ("a.png", a),
            ("b.png", b),
            ("a2.png", a.copy()),
            ("b2.png", np.clip(b.astype(int) + 1, 0, 255).astype(np.uint8)),
        )
    ]
    kept, notes = frames.drop_duplicates(views)
    assert [v.name for v in kept] == ["a.png", "b.png"]
    assert "a2.png (same as a.png)" in notes[0] and "b2.png" in notes[0]


def test_unrelated_images_are_reported(tmp_path, scene):
    views, _ = frames.load_photos(SAGRADA, 718)
    views += _views(scene)[:2]  # two renders of a bunny: nothing in common with a church
    model = sfm.run_sfm(views, tmp_path)
    assert model.registered == 4 and model.total_images == 6
    assert sorted(model.unregistered) == ["view_000.png", "view_001.png"]
    why = model.notes[-1]
    assert "4 of 6 images registered" in why and "view_000.png" in why and "matches" in why


def test_photos_are_rotated_and_scaled(tmp_path):
    from PIL import Image as PILImage

    a = np.zeros((300, 400, 3), np.uint8)
    a[:, :200] = 255  # left half white
    ex = PILImage.Exif()
    ex[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    PILImage.fromarray(a).save(tmp_path / "r.jpg", exif=ex, quality=95)
    (v,), _ = frames.load_photos([tmp_path / "r.jpg"], 200)
    assert v.size == (150, 200) and v.original_size == (300, 400)
    assert v.rgb[:100].mean() > 200 and v.rgb[100:].mean() < 50  # white on top after rotation


def test_cancel_during_mapping(tmp_path):
    """A cancel set while COLMAP maps reaches its mapper through the per-image callback."""
    from engines.api import CancelToken, Cancelled

    views, _ = frames.load_photos(SAGRADA, 400)
    token = CancelToken()
    seen = []

    def progress(f, m=""):
        seen.append(m)
        if m.startswith("Reconstructing cameras"):
            token.set()

    with pytest.raises(Cancelled):
        sfm.run_sfm(views, tmp_path, progress=progress, cancel=token)
    assert [m for m in seen if m.startswith("Reconstructing")] == ["Reconstructing cameras"]


def test_fixed_intrinsics_scale_to_the_working_size_and_need_one_photo_size():
    from engines.api import EngineError

    def view(w, h, ow, oh):
        return frames.View("v", np.zeros((h, w, 3), np.uint8), "v.jpg", (ow, oh))

    views = [view(400, 300, 1600, 1200), view(400, 300, 1600, 1200)]
    assert frames.fixed_intrinsics(views, 0.0) is None  # estimated per photo
    f, cx, cy = frames.fixed_intrinsics(views, 1200.0)
    assert f == pytest.approx(300.0) and (cx, cy) == pytest.approx((200.0, 150.0))  # the image centre
    # a principal point in OpenCV pixels of the original photo, in COLMAP's convention at 1/4 size
    f, cx, cy = frames.fixed_intrinsics(views, 1200.0, cx=799.5, cy=599.5)
    assert (cx, cy) == pytest.approx((200.0, 150.0))
    with pytest.raises(EngineError, match="same size"):
        frames.fixed_intrinsics(views + [view(300, 400, 1200, 1600)], 1200.0)
