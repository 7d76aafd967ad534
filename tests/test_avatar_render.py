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
    # the face oval reaches into the fringe, which the skin mask keeps out of the texture
    assert m["psnr_face_db"] > 16.0
    assert m["ssim_face"] > 0.5
    assert m["redetect_error_pct_iod"] < 8.0
    assert m["detected_yaw-30"] and m["detected_yaw+30"]


def test_happiness_raises_detected_mouth_corners(run):
    from engines.avatar.engine import Deformer
    from engines.avatar.landmarks import detect_landmarks
    from engines.avatar.quality import render_from_photo_camera

    av = run.main
    neutral, mask, _ = render_from_photo_camera(av, av.mesh.vertices)
    happy, _, _ = render_from_photo_camera(av, Deformer(av).vertices({"happiness": 1.0}, {}))
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
    a = detect_landmarks(render_from_photo_camera(av, av.mesh.vertices)[0], "neutral")
    b = detect_landmarks(render_from_photo_camera(av, Deformer(av).vertices({"surprise": 1.0}, {}))[0], "surprised")
    gap = lambda lm: lm.xy[14, 1] - lm.xy[13, 1]  # noqa: E731 (inner lip gap, pixels)
    assert gap(b) > gap(a) + 0.1 * a.iod_px


def _model_landmarks(av, v):
    from engines.avatar.correspondence import landmark_points
    from engines.avatar.ict import load_model, render_layout

    V = np.zeros((load_model().n_vertices, 3), np.float32)
    V[render_layout().src] = v
    return landmark_points(V)


def test_blink_closes_the_eye_without_a_hole(run):
    """Full blink: the lids meet, and where the iris was the render shows the skin of the
    lid (not the eye, not background)."""
    from engines.avatar.quality import BACKGROUND, render_from_photo_camera
    from engines.avatar.raster import project

    av = run.main
    v = av.mesh.vertices + av.mesh.morph_targets["eyeBlinkLeft"] + av.mesh.morph_targets["eyeBlinkRight"]
    img, mask, s = render_from_photo_camera(av, v)
    open_img, _, _ = render_from_photo_camera(av, av.mesh.vertices)
    cam = av.camera
    L = _model_landmarks(av, v)
    assert abs(L[159, 1] - L[145, 1]) < 0.003 and abs(L[386, 1] - L[374, 1]) < 0.003  # lids meet
    p, _ = project(
        np.asarray(cam["K"]), cam["R"], cam["t"], _model_landmarks(av, av.mesh.vertices)[[468, 473]].astype(float)
    )
    for x, y in np.round(p).astype(int):
        assert mask[y, x] and tuple(img[y, x]) != BACKGROUND
        lid, eye = (
            img[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(0),
            open_img[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(0),
        )
        assert lid.mean() > eye.mean() + 25  # skin over the dark iris


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


def test_eyes_have_a_coloured_iris_and_white_sclera(run):
    """No blank white eyes: at rest and at full fear/surprise the iris centre is darker than
    the white of the eye beside it."""
    from engines.avatar.engine import Deformer
    from engines.avatar.quality import render_from_photo_camera
    from engines.avatar.raster import project

    av = run.main
    cam = av.camera
    for emo in ({}, {"fear": 1.0}, {"surprise": 1.0}):
        v = Deformer(av).vertices(emo, {})
        img, _, _ = render_from_photo_camera(av, v)
        L = _model_landmarks(av, v)
        p, _ = project(np.asarray(cam["K"]), cam["R"], cam["t"], L[[468, 473, 33, 263]].astype(float))
        for iris, corner in ((p[0], p[2]), (p[1], p[3])):
            white = np.round(iris + 0.55 * (corner - iris)).astype(int)
            c = np.round(iris).astype(int)
            assert img[c[1], c[0]].astype(int).sum() + 120 < img[white[1], white[0]].astype(int).sum(), emo


def test_lips_reproduce_the_photo(run):
    """The lips (between the outer and inner lip contours) on the photo-camera render, with
    the photographed expression, show what the photo shows. (The teeth inside are the
    model's own, with a procedural colour, so the opening is left out.)"""
    import cv2

    from engines.avatar.landmarks import detect_landmarks
    from engines.avatar.quality import render_from_photo_camera

    av = run.main
    render, mask, s = render_from_photo_camera(av)
    assert s == 1.0
    lm = detect_landmarks(av.photo)
    outer = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
    inner = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
    mouth = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(mouth, [np.round(lm.xy[outer]).astype(np.int32)], 1)
    cv2.fillPoly(mouth, [np.round(lm.xy[inner]).astype(np.int32)], 0)
    region = mouth.astype(bool) & mask
    assert region.sum() > 200
    mse = np.mean((av.photo[region].astype(float) - render[region].astype(float)) ** 2)
    assert 10 * np.log10(255.0**2 / mse) > 22.0


def _quad_render(texture, size=40, **kw):
    """A square facing the camera, filling the middle of a size x size frame (its edges at
    half-pixel offsets), textured with ``texture``."""
    from engines.avatar.raster import render_textured

    V = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float64) * 0.5
    faces = np.array([[0, 2, 1], [0, 3, 2]])  # facing the camera (culling keeps them)
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
    f = size * 0.73
    K = np.array([[f, 0, size / 2 - 0.5], [0, f, size / 2 - 0.5], [0, 0, 1.0]])
    R, t = np.eye(3), np.array([0.0, 0.0, 2.0])
    return render_textured(V, faces, uv, texture, K, R, t, (size, size), background=(0, 0, 0), **kw)


def test_mipmapped_supersampled_render_is_antialiased():
    """A one-texel checkerboard seen from far off (about 14 texels per pixel): point
    sampling aliases it into noise, the mipmapped lookup gives its mean grey; supersampling
    gives the square's edges partial coverage, as a camera's pixels have."""
    yy, xx = np.mgrid[0:256, 0:256]
    checker = np.repeat((((xx + yy) % 2) * 255).astype(np.uint8)[..., None], 3, -1)
    plain, m = _quad_render(checker)
    assert m.sum() > 100, "the test square was not drawn"
    aa, m_aa = _quad_render(checker, supersample=4, mipmap=True)
    inner = np.zeros_like(m)
    ys, xs = np.nonzero(m)
    inner[ys.min() + 2 : ys.max() - 1, xs.min() + 2 : xs.max() - 1] = True
    assert plain[inner].std() > 20  # aliasing: a moire of the texels one lookup per pixel picks
    assert abs(float(aa[inner].mean()) - 127.5) < 8 and aa[inner].std() < 8
    # the silhouette: partially covered pixels blend with the background
    ring = (aa.mean(2) > 10) & ~m_aa
    assert ring.sum() > 10  # pixels under half covered still show some of the square
    assert aa[ring].mean() < 100  # ... in part: the background's black blends in
    assert ((plain.mean(2) > 10) & ~m).sum() == 0  # one sample per pixel: all or nothing
    assert abs(int(m_aa.sum()) - int(m.sum())) < 0.1 * m.sum()
