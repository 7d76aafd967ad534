"""Texture bake into the ICT atlas (engines.avatar.bake) and the skin mask (engines.avatar.skin).

The head comes from the avatar fitter (engines.avatar.fit) on the detected landmarks; where
that is not available, from a PnP pose of the neutral head on the 68 landmark
correspondences, which is enough to check the bake's own behaviour.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

DATA = Path(__file__).parent / "data"
SIZE = 1024


def _lab(rgb) -> np.ndarray:
    import cv2

    a = np.clip(np.asarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0, 0, 1)
    return cv2.cvtColor(a, cv2.COLOR_RGB2LAB).reshape(-1, 3)  # L 0-100, a, b


def _delta_e(c1, c2) -> float:
    return float(np.linalg.norm(_lab(c1)[0] - _lab(c2)[0]))


def _load(name: str) -> np.ndarray:
    return np.asarray(PILImage.open(DATA / name).convert("RGB"))


def _fitted_head(photo: np.ndarray):
    """(vertices in metres, K, R, t in metres, landmarks) for the largest face of a photo."""
    from engines.avatar.landmarks import detect_landmarks

    lm = detect_landmarks(photo)
    h, w = photo.shape[:2]
    try:
        from engines.avatar.arkit import arkit_basis
        from engines.avatar.fit import fit_head, identity_vertices
    except ImportError:  # pragma: no cover - fitter not present
        fit_head = None
    if fit_head is not None:
        fit = fit_head(lm.xy, (w, h), z=lm.z, scores=getattr(lm, "blendshapes", None))
        V = identity_vertices(fit.identity) + np.tensordot(fit.expression, arkit_basis(), 1)
        return (V * 0.01).astype(np.float32), fit.K, fit.R, np.asarray(fit.t) * 0.01, lm
    import cv2  # pragma: no cover

    from engines.avatar.correspondence import MEDIAPIPE_68
    from engines.avatar.ict import load_model

    m = load_model()
    V = m.neutral * 0.01
    f = 1.4 * max(w, h)
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
    _, rvec, tvec = cv2.solvePnP(
        V[m.landmarks68[17:]].astype(np.float64),
        lm.xy[np.asarray(MEDIAPIPE_68)[17:]],
        K,
        None,
        flags=cv2.SOLVEPNP_SQPNP,
    )
    return V.astype(np.float32), K, cv2.Rodrigues(rvec)[0], tvec.ravel(), lm


@pytest.fixture(scope="module")
def astronaut():
    from engines.avatar.bake import bake_texture, warm_up

    photo = _load("astronaut.png")
    V, K, R, t, lm = _fitted_head(photo)
    t0 = time.perf_counter()
    warm_up(SIZE)
    t_warm_up = time.perf_counter() - t0
    res = bake_texture(V, K, R, t, photo, lm.xy, size=SIZE)
    return dict(photo=photo, V=V, K=K, R=R, t=t, lm=lm, res=res, t_warm_up=t_warm_up)


def _texel(uv, size):
    """Atlas uv (v up) -> (row, col) of the texel."""
    return int(np.clip((1 - uv[1]) * size - 0.5 + 0.5, 0, size - 1)), int(np.clip(uv[0] * size, 0, size - 1))


def _face_render_vertex_at(px, V, K, R, t):
    """The face-material render vertex whose projection is nearest to a photo point, among
    those facing the camera."""
    from engines.avatar.ict import KEPT_MATERIALS, render_layout
    from engines.avatar.raster import project
    from engines.types import vertex_normals

    lay = render_layout()
    face = np.unique(lay.faces[lay.face_material == KEPT_MATERIALS.index("M_Face")])
    Vr = V[lay.src].astype(np.float64)
    N = vertex_normals(Vr, lay.faces)
    xy, _ = project(K, R, t, Vr)
    c = -R.T @ t
    view = c - Vr
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    ok = face[np.einsum("ij,ij->i", N[face], view[face]) > 0.5]
    return ok[np.argmin(np.linalg.norm(xy[ok] - px, axis=1))], lay


def test_texel_maps_cover_the_charts_once_and_are_cached():
    from engines.avatar.bake import texel_maps

    a = texel_maps(SIZE)
    assert texel_maps(SIZE) is a
    for name in ("face", "back"):
        tm = a[name]
        assert len(tm.idx) == tm.chart.sum() > 0.3 * tm.rows * tm.cols
        assert np.allclose(tm.bary.sum(1), 1.0, atol=1e-4)
        assert tm.bary.min() > -1e-3
    # the face tile is mostly one chart with the eyes and the mouth as holes
    assert a["face"].filled.sum() > a["face"].chart.sum()


def test_texture_interface(astronaut):
    res = astronaut["res"]
    assert res.texture.shape == (SIZE, SIZE, 3) and res.texture.dtype == np.uint8
    assert 0.3 < res.seen_fraction < 0.95
    assert 0.2 < res.mask_coverage <= 1.0
    assert res.skin_rgb.shape == (3,) and res.iris_rgb.shape == (3,)
    assert res.iris_measured
    assert res.photo_weight is not None and res.photo_weight.max() > 0.9


def test_cheek_texels_match_the_photo(astronaut):
    from engines.avatar.skin import patch_centres

    photo, res, lm = astronaut["photo"], astronaut["res"], astronaut["lm"]
    tex = res.texture
    for centre in patch_centres(lm.xy)[:4]:  # the four cheek patches
        v, lay = _face_render_vertex_at(centre, astronaut["V"], astronaut["K"], astronaut["R"], astronaut["t"])
        r, c = _texel(lay.uv[v], SIZE)
        baked = tex[max(r - 3, 0) : r + 4, max(c - 3, 0) : c + 4].reshape(-1, 3).mean(0)
        x, y = np.round(centre).astype(int)
        seen = photo[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3).mean(0)
        assert _delta_e(baked, seen) < 8.0, (centre, baked, seen)


def test_eyes_have_a_coloured_iris_and_a_dark_pupil(astronaut):
    from engines.avatar.bake import eye_calibration, tile_rect

    tex = astronaut["res"].texture
    lum = lambda a: float(np.asarray(a, np.float32).reshape(-1, 3).mean(0) @ [0.299, 0.587, 0.114])  # noqa: E731
    c0, r0, w, h = tile_rect("sclera", SIZE)
    cuv, rr, pp = eye_calibration().maps["sclera"]
    cx, cy = c0 + cuv[0] * w, r0 + (1 - cuv[1]) * h
    scl = tex[r0 : r0 + h, c0 : c0 + w]
    # sclera: light, a bit warm (red >= blue), at 2.2 iris radii from the cornea centre
    r_far = np.interp(2.2, pp, rr) * w
    yy, xx = np.mgrid[0:h, 0:w]
    ring = np.abs(np.hypot(xx + c0 - cx, yy + r0 - cy) - r_far) < 2
    white = scl[ring]
    # the photo's own white of the eye (the astronaut's measures about 180), never dark
    assert lum(white) > 150
    assert abs(lum(white) - lum(astronaut["res"].sclera_rgb)) < 12
    assert white[:, 0].mean() >= white[:, 2].mean()
    # iris mid-radius darker than the sclera, the pupil darker still, and the iris coloured
    r_iris = np.interp(0.65, pp, rr) * w * 0.8
    iris = scl[np.abs(np.hypot(xx + c0 - cx, yy + r0 - cy) - r_iris) < 1.5]
    pupil = tex[int(round(cy)) - 1 : int(round(cy)) + 2, int(round(cx)) - 1 : int(round(cx)) + 2]
    assert lum(iris) < 0.7 * lum(white)
    assert lum(pupil) < 0.5 * lum(iris)
    mean_iris = iris.reshape(-1, 3).mean(0)
    assert mean_iris.max() - mean_iris.min() > 12  # not grey


def test_render_from_the_photo_camera_shows_iris_and_pupil(astronaut):
    """No blank white eyes: rendered from the photo camera (zoomed in), the iris centres are
    dark and the eye openings hold light sclera pixels beside them."""
    import cv2

    from engines.avatar.ict import render_layout
    from engines.avatar.raster import render_textured
    from engines.avatar.skin import EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT

    lay = render_layout()
    lm, K, R, t = astronaut["lm"].xy, astronaut["K"], astronaut["R"], astronaut["t"]
    s = 6.0
    x0, y0 = lm[:, 0].min() - 20, lm[:, 1].min() - 20
    Kz = K.copy()
    Kz[:2] *= s
    Kz[0, 2], Kz[1, 2] = (K[0, 2] - x0 + 0.5) * s - 0.5, (K[1, 2] - y0 + 0.5) * s - 0.5
    size = (int((lm[:, 0].max() - x0 + 20) * s), int((lm[:, 1].max() - y0 + 20) * s))
    img, mask = render_textured(astronaut["V"][lay.src], lay.faces, lay.uv, astronaut["res"].texture, Kz, R, t, size)
    gray = img.astype(np.float32) @ [0.299, 0.587, 0.114]
    for centre, contour in ((468, EYE_IMAGE_LEFT), (473, EYE_IMAGE_RIGHT)):
        x, y = np.round((lm[centre] - [x0, y0] + 0.5) * s - 0.5).astype(int)
        assert mask[y, x]
        assert gray[y - 2 : y + 3, x - 2 : x + 3].mean() < 70  # pupil
        poly = np.zeros(gray.shape, np.uint8)
        cv2.fillPoly(poly, [np.round((lm[list(contour)] - [x0, y0] + 0.5) * s - 0.5).astype(np.int32)], 1)
        inside = gray[poly > 0]
        assert np.percentile(inside, 95) > 170  # sclera visible
        assert np.percentile(inside, 20) < 110  # iris visible


def test_back_of_head_is_skin_toned(astronaut):
    from engines.avatar.bake import PART_HEAD, texel_maps, tile_rect

    res = astronaut["res"]
    tm = texel_maps(SIZE)["back"]
    c0, r0, w, h = tile_rect("back", SIZE)
    # back tile texels of the head and neck, at geometry resolution -> atlas texels
    sel = tm.idx[tm.part == PART_HEAD]
    rows, cols = np.divmod(sel, tm.cols)
    r = np.clip(((rows + 0.5) * h / tm.rows).astype(int), 0, h - 1) + r0
    c = np.clip(((cols + 0.5) * w / tm.cols).astype(int), 0, w - 1) + c0
    back = res.texture[r, c].astype(np.float32)
    mean = back.mean(0)
    lab = _lab(mean)[0]
    assert lab[0] > 45  # not black
    assert lab[2] > 5  # yellowish like skin, not the blue-grey background
    assert _delta_e(mean, res.skin_rgb) < 12
    assert back.std(0).max() < 20  # a smooth fill


def test_colours_meet_across_the_face_back_seam(astronaut):
    """Render vertices that are one model vertex with a uv in the face tile and one in the
    back tile get the same colour on both sides."""
    from engines.avatar.ict import KEPT_MATERIALS, render_layout

    lay = render_layout()
    tex = astronaut["res"].texture.astype(np.float32)
    mat = np.full(len(lay.uv), -1)
    mat[lay.faces.ravel()] = np.repeat(lay.face_material, 3)
    face_v = np.flatnonzero(mat == KEPT_MATERIALS.index("M_Face"))
    back_v = np.flatnonzero(mat == KEPT_MATERIALS.index("M_BackHead"))
    # the face / back-of-head seam (not the lips' and the eyelids' seams with the sockets,
    # where the lip meets the mouth interior)
    from engines.avatar.bake import PART_EYE_SOCKET, PART_MOUTH, _part_codes

    part = _part_codes(len(lay.src) and int(lay.src.max()) + 1)
    back_f = lay.faces[lay.face_material == KEPT_MATERIALS.index("M_BackHead")]
    socket_v = np.unique(back_f[np.isin(part[lay.src[back_f]], [PART_MOUTH, PART_EYE_SOCKET]).any(1)])
    back_v = np.setdiff1d(back_v, socket_v)
    common = np.intersect1d(lay.src[face_v], lay.src[back_v])
    assert len(common) > 50

    def colour(vs):
        out = []
        for v in vs:
            r, c = _texel(lay.uv[v], SIZE)
            out.append(tex[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].reshape(-1, 3).mean(0))
        return np.array(out)

    fi = {s: v for v, s in zip(face_v, lay.src[face_v])}
    bi = {s: v for v, s in zip(back_v, lay.src[back_v])}
    a = colour([fi[s] for s in common])
    b = colour([bi[s] for s in common])
    d = np.linalg.norm(a - b, axis=1)
    assert np.median(d) < 3.0 and np.percentile(d, 90) < 8.0


def test_no_hard_seam_at_the_border_of_the_seen_face(astronaut):
    """Across the border of the photo's region (where its weight falls from 1 to 0), the
    texture changes no faster than inside the skin."""
    import cv2

    from engines.avatar.bake import texel_maps, tile_rect

    res = astronaut["res"]
    tm = texel_maps(SIZE)["face"]
    c0, r0, w, h = tile_rect("face", SIZE)
    face = res.texture[r0 : r0 + h, c0 : c0 + w]
    gray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gray = cv2.resize(gray, (tm.cols, tm.rows), interpolation=cv2.INTER_AREA)  # per geometry texel
    g = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)) / 8
    wgt = res.photo_weight
    inner = cv2.erode(tm.chart.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    border = inner & (wgt > 0.1) & (wgt < 0.9)
    # dilate-erode band around the 0.5 contour of the photo weight
    # the outer border of the seen region (its holes, the eyes, the mouth and the brows'
    # edges, follow features of the face and do not count)
    from scipy import ndimage

    region = ndimage.binary_fill_holes(wgt > 0.5).astype(np.uint8)
    band = inner & (cv2.dilate(region, np.ones((3, 3))) > 0) & (cv2.erode(region, np.ones((3, 3))) == 0)
    assert band.sum() > 100 and border.sum() > 100
    seen = inner & (wgt > 0.95)
    assert np.median(g[band]) < max(2.0, 1.5 * np.median(g[seen]))
    assert np.percentile(g[band], 95) < 12.0


def test_bake_is_deterministic(astronaut):
    from engines.avatar.bake import bake_texture

    a = astronaut
    again = bake_texture(a["V"], a["K"], a["R"], a["t"], a["photo"], a["lm"].xy, size=SIZE)
    assert np.array_equal(again.texture, a["res"].texture)
    assert again.seen_fraction == a["res"].seen_fraction


def test_warm_bake_is_deterministic_and_reports_its_stages(astronaut):
    """Speed is measured in benchmarks/avatar.py (no wall-clock limits here): a warm bake
    repeats the first exactly and reports seconds per stage."""
    from engines.avatar.bake import ATLAS_SIZE, bake_texture, warm_up

    a = astronaut
    warm_up(ATLAS_SIZE)
    first = bake_texture(a["V"], a["K"], a["R"], a["t"], a["photo"], a["lm"].xy)
    again = bake_texture(a["V"], a["K"], a["R"], a["t"], a["photo"], a["lm"].xy)
    assert np.array_equal(first.texture, again.texture)
    assert {"skin mask", "colour field solve (wait)", "blend", "procedural", "total"} <= set(again.timings)
    assert all(v >= 0 for v in again.timings.values())
    assert again.timings["total"] >= max(v for k, v in again.timings.items() if k != "total")


def test_iris_colour_override_and_cancel(astronaut):
    from engines.api import Cancelled, CancelToken
    from engines.avatar.bake import bake_texture

    a = astronaut
    res = bake_texture(a["V"], a["K"], a["R"], a["t"], a["photo"], a["lm"].xy, size=512, iris_rgb=(60, 110, 160))
    assert res.texture.shape == (512, 512, 3)
    assert res.iris_rgb[2] > res.iris_rgb[0] and not res.iris_measured
    seen = []
    bake_texture(
        a["V"], a["K"], a["R"], a["t"], a["photo"], a["lm"].xy, size=512, progress=lambda f, m="": seen.append(f)
    )
    assert seen and seen[-1] == 1.0 and all(b >= x for x, b in zip(seen, seen[1:]))
    tok = CancelToken()
    tok.set()
    with pytest.raises(Cancelled):
        bake_texture(a["V"], a["K"], a["R"], a["t"], a["photo"], a["lm"].xy, size=512, cancel=tok)


def test_skin_mask_rejects_a_coloured_collar_background_and_hair():
    """Synthetic: the astronaut's face on a saturated blue background with a saturated
    orange-red collar below the chin: the face's cheeks are skin, the collar and the
    background are not; on the real photo the hair above the forehead is not skin."""
    import cv2

    from engines.avatar.landmarks import detect_landmarks
    from engines.avatar.skin import FACE_OVAL, hair_band_centres, patch_centres, skin_mask

    photo = _load("astronaut.png")
    lm = detect_landmarks(photo).xy
    img = np.zeros_like(photo)
    img[:] = (20, 60, 220)  # background
    oval = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(oval, [np.round(lm[list(FACE_OVAL)]).astype(np.int32)], 1)
    oval = cv2.dilate(oval, np.ones((9, 9), np.uint8))
    img[oval > 0] = photo[oval > 0]
    chin_y = int(lm[152, 1]) + 4
    collar = np.zeros_like(oval)
    collar[chin_y : chin_y + 60, int(lm[:, 0].min()) - 20 : int(lm[:, 0].max()) + 20] = 1
    collar &= oval == 0
    img[collar > 0] = (235, 90, 40)
    m = skin_mask(img, lm).mask
    cheeks = [m[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].mean() for x, y in patch_centres(lm)[:4]]
    assert min(cheeks) > 0.8
    assert m[collar > 0].mean() < 0.05
    assert m[(oval == 0) & (collar == 0)].mean() < 0.02
    # the real photo: the hair band above the forehead is rejected, the cheeks kept
    real = skin_mask(photo, lm).mask
    hair = [real[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].mean() for x, y in hair_band_centres(lm)[1:3]]
    assert max(hair) < 0.2
    assert min(real[int(y), int(x)] for x, y in patch_centres(lm)[:4]) > 0.8


def test_skin_mask_in_an_underexposed_photo_still_rejects_hair_and_clothes():
    """The astronaut at 30 % exposure: every colour's Lab chroma shrinks towards the skin
    model's floors, and her brown hair and dark suit passed for skin (mask 1.0 on the hair
    band; the avatar got her hair baked over its head). The colour tests now see the photo
    brought to a standard skin exposure; the skin tone reported stays the photo's."""
    from engines.avatar.landmarks import detect_landmarks
    from engines.avatar.skin import EXPOSURE_SKIN_LUMA, hair_band_centres, patch_centres, skin_mask

    photo = _load("astronaut.png")
    dark = (photo.astype(np.float32) * 0.3).astype(np.uint8)
    lm = detect_landmarks(photo).xy
    sm = skin_mask(dark, lm)
    m = sm.mask

    def at(pts):
        return [m[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].mean() for x, y in pts]

    assert max(at(hair_band_centres(lm)[1:3])) < 0.2
    assert min(at(patch_centres(lm)[:4])) > 0.8
    chin = lm[152]
    neck = m[int(chin[1]) + 40 : int(chin[1]) + 60, int(chin[0]) - 30 : int(chin[0]) + 30]
    assert neck.mean() < 0.3  # her dark suit's collar, not skin
    assert sm.exposure_gain > 2.0
    luma = float(sm.colour.rgb @ [0.299, 0.587, 0.114])
    assert luma < 0.5 * EXPOSURE_SKIN_LUMA  # the tone as the dark photo has it
    # a normally exposed photo is tested as it is
    assert skin_mask(photo, lm).exposure_gain == 1.0


def test_skin_mask_excludes_eyes_and_inner_mouth_keeps_brows_and_lips():
    import cv2

    from engines.avatar.landmarks import detect_landmarks
    from engines.avatar.skin import EYE_IMAGE_LEFT, LIPS_INNER, skin_mask

    photo = _load("astronaut.png")
    lm = detect_landmarks(photo).xy
    m = skin_mask(photo, lm).mask

    def mean_in(idx):
        p = np.zeros(m.shape, np.uint8)
        cv2.fillPoly(p, [np.round(lm[list(idx)]).astype(np.int32)], 1)
        return float(m[p > 0].mean())

    assert mean_in(EYE_IMAGE_LEFT) < 0.15
    assert mean_in(LIPS_INNER) < 0.15  # the smile shows the teeth
    brow = lm[[105, 66, 334, 296]]
    assert min(m[int(round(y)), int(round(x))] for x, y in brow) > 0.6
    lip = lm[[0, 17]]  # outer lip centres
    assert min(m[int(round(y)), int(round(x))] for x, y in lip) > 0.6


def test_small_face_still_gives_a_smooth_face():
    """group1.jpg's largest face has about 24 px between the eyes: the bake upsamples the
    photo region, so the face tile matches the photo's colours and is smooth, not blocky."""
    import cv2

    from engines.avatar.bake import bake_texture, tile_rect
    from engines.avatar.skin import patch_centres

    photo = _load("group1.jpg")
    V, K, R, t, lm = _fitted_head(photo)
    assert lm.iod_px < 40
    res = bake_texture(V, K, R, t, photo, lm.xy, size=SIZE)
    assert res.seen_fraction > 0.3
    c0, r0, w, h = tile_rect("face", SIZE)
    face = res.texture[r0 : r0 + h, c0 : c0 + w].astype(np.float32)
    seen = cv2.resize(res.photo_weight, (w, h)) > 0.9
    gray = face @ [0.299, 0.587, 0.114]
    # blockiness: no strong second differences on a regular lattice (8 x 8 JPEG blocks,
    # pixel replication): the Laplacian stays small where the photo was seen
    lap = np.abs(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F))
    assert np.percentile(lap[seen], 99) < 12
    x, y = patch_centres(lm.xy)[0]
    v, lay = _face_render_vertex_at((x, y), V, K, R, t)
    r, c = _texel(lay.uv[v], SIZE)
    baked = res.texture[r - 2 : r + 3, c - 2 : c + 3].reshape(-1, 3).mean(0)
    ref = photo[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2].reshape(-1, 3).mean(0)
    assert _delta_e(baked, ref) < 12


def test_far_cheek_of_a_turned_face_comes_from_the_mirror(astronaut):
    """Render the baked head turned 60 degrees (as a new photo), bake that: the far cheek,
    which the new photo sees edge-on or not at all, is filled from the near one, so both
    cheeks come out close to the frontal bake's colours and carry photo weight."""
    pytest.importorskip("engines.avatar.correspondence")
    from engines.avatar.bake import bake_texture, texel_maps, tile_rect
    from engines.avatar.correspondence import landmark_points
    from engines.avatar.ict import render_layout
    from engines.avatar.raster import project, render_textured
    from engines.avatar.skin import patch_centres

    a = astronaut
    lay = render_layout()
    V = a["V"]
    c = V[:11248].mean(0)
    yaw = np.radians(60)
    Ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    Rc = np.diag([1.0, -1.0, -1.0]) @ Ry
    tc = -Rc @ c + np.array([0, 0, 0.6])
    Kc = np.array([[1400.0, 0, 256], [0, 1400.0, 256], [0, 0, 1]])
    img, _ = render_textured(
        V[lay.src], lay.faces, lay.uv, a["res"].texture, Kc, Rc, tc, (512, 512), background=(90, 120, 160)
    )
    lm_xy, _ = project(Kc, Rc, tc, landmark_points(V).astype(np.float64))
    turned = bake_texture(V, Kc, Rc, tc, img, lm_xy, size=SIZE)
    tm = texel_maps(SIZE)["face"]
    c0, r0, w, h = tile_rect("face", SIZE)
    for centre in patch_centres(a["lm"].xy)[:2]:  # the two inner cheek patches, both sides
        v, _ = _face_render_vertex_at(centre, V, a["K"], a["R"], a["t"])
        r, col = _texel(lay.uv[v], SIZE)
        before = a["res"].texture[r - 3 : r + 4, col - 3 : col + 4].reshape(-1, 3).mean(0)
        after = turned.texture[r - 3 : r + 4, col - 3 : col + 4].reshape(-1, 3).mean(0)
        assert _delta_e(before, after) < 10, (before, after)
        gr = min(int((r - r0 + 0.5) * tm.rows / h), tm.rows - 1)
        gc = min(int((col - c0 + 0.5) * tm.cols / w), tm.cols - 1)
        assert turned.photo_weight[gr, gc] > 0.5


def test_sclera_follows_the_photo():
    """The painted white of the eye: the measured sclera when the photo shows it, else
    solved from the eye opening's lightness; within the light range either way."""
    from engines.avatar.bake import SCLERA_LUM, SCLERA_RGB, sclera_for_photo

    lum = lambda a: float(np.asarray(a, np.float32) @ [0.299, 0.587, 0.114])  # noqa: E731
    iris = np.array([80, 55, 40], np.float32)
    measured = sclera_for_photo(np.array([200, 190, 180], np.float32), None)
    assert abs(lum(measured) - lum([200, 190, 180])) < 1.0
    # a bluish cast is halved towards the warm default
    cast = sclera_for_photo(np.array([170, 185, 215], np.float32), None)
    assert cast[2] - cast[0] < 0.6 * (215 - 170)
    # eyes half in shade: a darker opening gives a darker white, clamped to the range
    bright = sclera_for_photo(None, None, (150.0, 0.5), iris)
    dark = sclera_for_photo(None, None, (110.0, 0.5), iris)
    very_dark = sclera_for_photo(None, None, (30.0, 0.5), iris)
    assert lum(bright) > lum(dark) + 20
    assert abs(lum(very_dark) - SCLERA_LUM[0]) < 1.0
    assert abs(lum(sclera_for_photo(None, None, (255.0, 0.2), iris)) - SCLERA_LUM[1]) < 1.0
    # solved so that the opening's mean matches: f * 0.7 * iris + (1 - f) * sclera = opening
    assert abs(0.5 * 0.7 * lum(iris) + 0.5 * lum(dark) - 110.0) < 1.0
    # nothing measurable: the default white at the skin's exposure
    dim = sclera_for_photo(None, np.array([170, 135, 115], np.float32))
    assert abs(lum(dim) - 1.25 * lum([170, 135, 115])) < 1.0
    assert np.allclose(dim / lum(dim), SCLERA_RGB / lum(SCLERA_RGB), atol=1e-3)


def test_sclera_measured_on_a_painted_eye():
    """skin.sclera_colour finds a grey-white sclera beside a dark iris, and gives up on a
    narrow, saturated opening (skin and lids seen through a squint)."""
    import cv2

    from engines.avatar.skin import EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT, eye_opening_lightness, sclera_colour

    img = np.full((200, 300, 3), (170, 120, 100), np.uint8)
    xy = np.zeros((478, 2))
    for idx, cx, iris_c, ring in (
        (EYE_IMAGE_LEFT, 100, 468, (469, 470, 471, 472)),
        (EYE_IMAGE_RIGHT, 200, 473, (474, 475, 476, 477)),
    ):
        ang = np.linspace(0, 2 * np.pi, len(idx), endpoint=False)
        xy[list(idx)] = np.c_[cx + 30 * np.cos(ang), 100 + 12 * np.sin(ang)]
        xy[iris_c] = (cx, 100)
        xy[list(ring)] = [(cx + 9, 100), (cx, 91), (cx - 9, 100), (cx, 109)]
        cv2.ellipse(img, (cx, 100), (30, 12), 0, 0, 360, (205, 200, 192), -1)
        cv2.circle(img, (cx, 100), 9, (60, 40, 30), -1)
    c = sclera_colour(img, xy)
    assert c is not None and np.abs(c - [205, 200, 192]).max() < 6
    l_open, f_iris = eye_opening_lightness(img, xy)
    assert 0.15 < f_iris < 0.45 and 120 < l_open < 205
    # the same eyes painted as skin (a squint): no sclera
    for cx in (100, 200):
        cv2.ellipse(img, (cx, 100), (30, 12), 0, 0, 360, (170, 120, 100), -1)
    assert sclera_colour(img, xy) is None


def test_shading_gain_recovers_a_known_light_and_ignores_dark_features():
    """Skin of one colour lit by a known first-order light (plus 15 % of much darker points,
    brows and stubble): the fitted gain brings every point darker than the average shading
    to that average, leaves the lit ones as they are, and is not thrown by the dark ones."""
    from engines.avatar.bake import DELIGHT_GAIN_MAX, PART_FACE, _mesh, shading_gain, smooth_normals
    from engines.avatar.ict import load_model
    from engines.types import vertex_normals

    mesh = _mesh()
    V = (load_model().neutral * 0.01)[: mesh.n]
    N = smooth_normals(vertex_normals(V, mesh.skin_tris))
    face = mesh.part == PART_FACE
    light = np.array([0.6, 0.3, 0.74])
    light /= np.linalg.norm(light)
    shade = 0.75 + 0.3 * (N[face] @ light)
    albedo = np.array([205.0, 150.0, 125.0])
    rgb = shade[:, None] * albedo
    rng = np.random.default_rng(3)
    dark = rng.random(len(rgb)) < 0.15
    rgb[dark] *= 0.35
    gain = shading_gain(N[face], rgb, np.ones(len(rgb)))
    assert gain is not None
    g = gain(N[face])
    mean_shade = shade[~dark].mean()
    # darker than average, but not so dark that the gain is at its cap
    below = (shade < mean_shade - 0.02) & (shade > mean_shade / DELIGHT_GAIN_MAX + 0.02) & ~dark
    above = (shade > mean_shade + 0.02) & ~dark
    assert below.sum() > 500 and above.sum() > 500
    out = rgb * g
    # the darker-than-average skin brought to one colour, the average-lit skin's
    assert np.abs(out[below] / albedo - mean_shade).max() < 0.03
    assert np.abs(g[above] - 1.0).max() < 0.02  # nothing darkened
    raw = rgb[below] / albedo
    assert raw.std() > 5 * (out[below] / albedo).std()
    capped = (shade < mean_shade / DELIGHT_GAIN_MAX - 0.02) & ~dark
    assert np.allclose(g[capped], DELIGHT_GAIN_MAX)
    # too little seen skin: no gain
    assert shading_gain(N[face][:50], rgb[:50], np.ones(50)) is None


def test_even_lighting_brings_the_faces_sides_to_its_front():
    """Baked with the photo's shading taken out (the default), the skin at the face's sides
    (turned 55-75 degrees from the camera, still seen) is nearer the lightness of its front
    than when baked as photographed; the lit front itself stays as photographed."""
    import cv2

    from engines.avatar.bake import bake_texture
    from engines.avatar.ict import KEPT_MATERIALS, render_layout
    from engines.types import vertex_normals

    lay = render_layout()
    face = np.unique(lay.faces[lay.face_material == KEPT_MATERIALS.index("M_Face")])
    for name in ("group1.jpg", "astronaut.png"):
        photo = _load(name)
        V, K, R, t, lm = _fitted_head(photo)
        Vr = V[lay.src].astype(np.float64)
        view = (-R.T @ t) - Vr
        view /= np.linalg.norm(view, axis=1, keepdims=True)
        facing = (vertex_normals(Vr, lay.faces) * view).sum(1)[face]
        rc = np.array([_texel(lay.uv[v], SIZE) for v in face])
        gap, front = {}, {}
        for even in (True, False):
            tex = bake_texture(V, K, R, t, photo, lm.xy, size=SIZE, delight=even).texture
            L = cv2.cvtColor(tex, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32)[rc[:, 0], rc[:, 1]] * 100 / 255
            front[even] = np.percentile(L[facing > 0.85], 90)  # the lit front
            gap[even] = np.median(L[facing > 0.85]) - np.median(L[(facing > 0.25) & (facing < 0.55)])
        assert gap[False] > 1.5, (name, gap)  # as photographed, the sides are darker
        # (group1's man is lit from one side; the astronaut from the front, where the sides'
        # darkening is partly the camera's, not the light's)
        assert gap[True] < (0.5 * gap[False] if name == "group1.jpg" else gap[False] - 0.5), (name, gap)
        assert abs(front[True] - front[False]) < 1.5, (name, front)  # the lit front as it was


def test_a_near_black_iris_is_painted_brown_not_red():
    """A dark iris in a dim photo measures a few levels of noise, e.g. (5, 0, 0). Scaled up
    to a visible lightness that was a saturated red iris (150, 0, 0); it is now the
    fallback brown's hue at a visible lightness. Measured colours with a real hue keep it,
    and a strong cast is desaturated."""
    from engines.avatar.bake import IRIS_FALLBACK_RGB, IRIS_MAX_CHROMA, _iris_for_texture

    def lab(c):
        return _lab(c)[0]

    def hue(c):
        return np.degrees(np.arctan2(lab(c)[2], lab(c)[1]))

    for dark in ((5, 0, 0), (3, 1, 1), (0, 0, 6)):
        out = _iris_for_texture(dark)
        assert float(out @ [0.299, 0.587, 0.114]) > 40  # visible, not black
        assert abs(hue(out) - hue(IRIS_FALLBACK_RGB)) < 5  # brown
        assert np.hypot(*lab(out)[1:]) < 30
    blue = _iris_for_texture((90, 120, 160))
    assert np.allclose(blue, (90, 120, 160), atol=2)  # a plausible blue is kept
    assert blue[2] > blue[0] + 40
    cast = _iris_for_texture((200, 20, 20))
    assert np.hypot(*lab(cast)[1:]) <= IRIS_MAX_CHROMA + 1.0


def test_skin_mask_of_a_greyscale_photo_keeps_to_the_face():
    """A black-and-white astronaut: without chroma her lit hair has the skin's lightness and
    passed the colour test (patches of hair baked on the scalp); in a greyscale photo only
    the face oval and a small margin are trusted."""
    import cv2

    from engines.avatar.landmarks import detect_landmarks
    from engines.avatar.skin import FACE_OVAL, is_greyscale, iod_px, patch_centres, skin_mask

    photo = _load("astronaut.png")
    grey = np.repeat((photo.astype(np.float32) @ [0.299, 0.587, 0.114]).astype(np.uint8)[..., None], 3, -1)
    assert is_greyscale(grey) and not is_greyscale(photo)
    lm = detect_landmarks(photo).xy
    m = skin_mask(grey, lm).mask
    oval = np.zeros(m.shape, np.uint8)
    cv2.fillPoly(oval, [np.round(lm[list(FACE_OVAL)]).astype(np.int32)], 1)
    iod = iod_px(lm)
    far = cv2.dilate(oval, np.ones((int(0.3 * iod), int(0.3 * iod)), np.uint8)) == 0
    top = int(lm[list(FACE_OVAL), 1].min())
    scalp = far.copy()
    scalp[top:] = False  # above the face: her hair
    assert m[scalp].max() < 0.05
    assert min(m[int(y), int(x)] for x, y in patch_centres(lm)[:4]) > 0.8
