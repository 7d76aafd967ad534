"""End to end through an independent detector: render the avatar from the photo camera and
run MediaPipe on the render (numpy rasteriser, so no display is needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from engines.api import CancelToken, no_progress
from engines.types import Image

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def run():
    from engines.avatar.engine import AvatarEngine

    img = Image(np.asarray(PILImage.open(DATA / "astronaut.png").convert("RGB")), path=DATA / "astronaut.png")
    return AvatarEngine().run([img], AvatarEngine.Params(measure_quality=True), no_progress, CancelToken())


def test_render_matches_the_photo(run):
    m = run.metrics
    assert m["psnr_face_db"] > 25.0
    assert m["ssim_face"] > 0.88
    assert m["redetect_error_pct_iod"] < 3.0
    assert m["detected_yaw-30"] and m["detected_yaw+30"]


def test_happiness_raises_detected_mouth_corners(run):
    from engines.avatar.engine import Deformer
    from engines.avatar.landmarks import detect_landmarks
    from engines.avatar.quality import render_from_photo_camera

    av = run.main
    neutral, mask, _ = render_from_photo_camera(av)
    happy, _, _ = render_from_photo_camera(av, Deformer(av).vertices({"happiness": 1.0}))
    assert mask.sum() > 5000
    a, b = detect_landmarks(neutral, "neutral"), detect_landmarks(happy, "happy")
    iod = a.iod_px
    for corner in (61, 291):
        # image y grows downwards: a higher corner has a smaller y
        assert b.xy[corner, 1] < a.xy[corner, 1] - 0.03 * iod
    assert abs(b.xy[291, 0] - b.xy[61, 0]) > abs(a.xy[291, 0] - a.xy[61, 0])  # wider


def test_surprise_opens_the_mouth_on_the_render(run):
    from engines.avatar.engine import Deformer
    from engines.avatar.landmarks import detect_landmarks
    from engines.avatar.quality import render_from_photo_camera

    av = run.main
    a = detect_landmarks(render_from_photo_camera(av)[0], "neutral")
    b = detect_landmarks(render_from_photo_camera(av, Deformer(av).vertices({"surprise": 1.0}))[0], "surprised")
    gap = lambda lm: lm.xy[14, 1] - lm.xy[13, 1]  # noqa: E731 (inner lip gap, pixels)
    assert gap(b) > gap(a) + 0.1 * a.iod_px


def test_blink_closes_the_eye_without_a_hole(run):
    """Full blink: the eye region on the render becomes skin-coloured (lid), not background."""
    from engines.avatar.blendshapes import SHAPE_NAMES
    from engines.avatar.quality import BACKGROUND, render_from_photo_camera

    av = run.main
    v = av.mesh.vertices + av.mesh.morph_targets["eyeBlink_L"] + av.mesh.morph_targets["eyeBlink_R"]
    img, mask, s = render_from_photo_camera(av, v)
    assert "eyeBlink_L" in SHAPE_NAMES
    from engines.avatar.raster import project

    cam = av.camera
    p, _ = project(np.asarray(cam["K"]), cam["R"], cam["t"], v[[159, 386]])  # upper-lid centres
    for x, y in np.round(p).astype(int):
        assert mask[y, x]
        assert tuple(img[y, x]) != BACKGROUND


def test_pyvista_render_agrees_with_the_rasteriser(run):
    """The VTK photo-camera render (what the app's viewport does) lands where the numpy one does."""
    pv = pytest.importorskip("pyvista")
    from engines.avatar.quality import render_from_photo_camera

    av = run.main
    mine, mask, _ = render_from_photo_camera(av)
    w, h = av.camera["image_size"]
    m = av.mesh
    poly = pv.PolyData(m.vertices.astype(np.float64), np.hstack([np.full((len(m.faces), 1), 3), m.faces]).ravel())
    poly.active_texture_coordinates = m.uv
    pl = pv.Plotter(off_screen=True, window_size=(w, h))
    pl.set_background((0.5, 0.5, 0.5))
    pl.add_mesh(poly, texture=pv.Texture(m.texture), ambient=1.0, diffuse=0.0, specular=0.0)
    K, R, t = (np.asarray(av.camera[k], float) for k in ("K", "R", "t"))
    cam = pl.camera
    centre = -R.T @ t
    cam.position = centre
    cam.focal_point = centre + R[2] * 0.5
    cam.up = -R[1]
    cam.view_angle = float(np.degrees(2 * np.arctan(h / (2 * K[1, 1]))))
    cam.SetWindowCenter(1.0 - 2.0 * (K[0, 2] + 0.5) / w, 2.0 * (K[1, 2] + 0.5) / h - 1.0)
    pl.renderer.ResetCameraClippingRange()
    shot = np.asarray(pl.screenshot(return_img=True))[:, :, :3]
    pl.close()
    vtk_mask = np.abs(shot.astype(int) - 128).sum(2) > 12
    inter = (vtk_mask & mask).sum()
    assert inter / max(mask.sum(), 1) > 0.9 and inter / max(vtk_mask.sum(), 1) > 0.9


def test_mouth_opening_reproduces_the_photo(run):
    """Inside the inner lips (teeth of a smile) the photo-camera render shows what the photo
    shows: the mouth flaps tile the opening and take the photo (about 29 dB here; a texel map
    whose pocket seam triangles stole texels gave about 17 dB)."""
    import cv2

    from engines.avatar.landmarks import detect_landmarks
    from engines.avatar.quality import render_from_photo_camera
    from engines.avatar.topology import face_topology

    av = run.main
    render, mask, s = render_from_photo_camera(av)
    assert s == 1.0
    lm = detect_landmarks(av.photo)
    mouth = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(mouth, [np.round(lm.xy[face_topology().mouth]).astype(np.int32)], 1)
    region = mouth.astype(bool) & mask
    assert region.sum() > 200
    mse = np.mean((av.photo[region].astype(float) - render[region].astype(float)) ** 2)
    assert 10 * np.log10(255.0**2 / mse) > 26.0
