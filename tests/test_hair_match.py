"""Hair from the photo: segmentation of real portraits and silhouette matching."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.api import EngineError
from engines.hair.head import canonical_avatar
from engines.hair.match import match_mask, match_photo, scaled_camera, style_silhouettes
from engines.hair.photo import segment_hair
from engines.hair.recipe import recipes

DATA = Path(__file__).parent / "data"
LONG = {"long_straight", "long_wavy", "shoulder_straight", "curly", "bangs"}
SHORT = {"buzz_cut", "short_crop", "pixie", "side_part", "slicked_back", "mohawk"}


@pytest.fixture(scope="module")
def avatar():
    return canonical_avatar((256, 256))


@pytest.fixture(scope="module")
def silhouettes(avatar):
    return style_silhouettes(avatar, scaled_camera(avatar.camera, 192))


def _blob(mask, seed):
    """A hand-drawn-like version of a silhouette: blurred edges, a few holes and specks."""
    rng = np.random.default_rng(seed)
    m = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2.0) > 0.3
    noise = rng.uniform(size=m.shape) < 0.03
    return m ^ noise


@pytest.mark.parametrize("seed", [0, 1])
def test_long_silhouette_matches_a_long_style_and_short_a_short_one(avatar, silhouettes, seed):
    cam = scaled_camera(avatar.camera, 192)
    r = match_mask(avatar, _blob(silhouettes["long_straight"], seed), cam=cam, silhouettes=silhouettes)
    assert r.best in LONG, r.top(3)
    assert r.scores[r.best] > 0.6
    for short in ("buzz_cut", "short_crop"):
        r = match_mask(avatar, _blob(silhouettes[short], seed), cam=cam, silhouettes=silhouettes)
        assert r.best in SHORT, (short, r.top(3))
        assert all(r.scores[s] < r.scores[r.best] for s in LONG)


def test_empty_hair_mask_matches_bald(avatar, silhouettes):
    cam = scaled_camera(avatar.camera, 192)
    r = match_mask(avatar, np.zeros((192, 192), bool), cam=cam, silhouettes=silhouettes)
    assert recipes()[r.best].is_bald


def test_segment_hair_on_a_real_portrait():
    rgb = cv2.imread(str(DATA / "astronaut.png"))[..., ::-1].copy()
    seg = segment_hair(rgb)
    m = seg.mask
    lm = seg.landmarks
    chin_y, top_y = lm[152, 1], lm[10, 1]
    assert 3000 < m.sum() < 40000
    ys, xs = np.nonzero(m)
    assert np.mean(ys < chin_y) > 0.95  # short hair: above the chin
    assert ys.min() < top_y  # and above the forehead
    on_face = m & seg.face_mask & (np.arange(m.shape[0])[:, None] > lm[105, 1] + 5)
    assert on_face.sum() < 0.02 * m.sum()  # not on the face below the brows
    assert seg.measurements["length_below_chin"] < 0.2
    # Unlike the orange suit and the flag, the hair pixels are brown.
    hair_rgb = np.median(rgb[m], axis=0)
    assert hair_rgb[0] < 160 and abs(int(hair_rgb[0]) - int(hair_rgb[2])) < 90


def test_bad_photos_are_refused(avatar):
    with pytest.raises(EngineError, match="colour"):
        match_photo(avatar, np.zeros((256, 256), np.uint8))
    with pytest.raises(EngineError, match="same photo"):
        match_photo(avatar, np.zeros((300, 200, 3), np.uint8))
    with pytest.raises(EngineError, match="No face"):
        segment_hair(np.full((240, 240, 3), 128, np.uint8))


def test_auto_colour_falls_back_when_the_hair_is_skin_or_scarce():
    """Auto takes the photo's hair colour only from real hair: a "hair" region coloured like
    the cheeks (a bald scalp) or one tiny beside the face (a close crop) gives the default."""
    from engines.hair import DEFAULT_COLOR, _photo_color, measured_color
    from engines.hair.photo import _gauss, _measure

    img = cv2.cvtColor(cv2.imread(str(DATA / "astronaut.png")), cv2.COLOR_BGR2RGB)
    seg = segment_hair(img)
    real = seg.measurements
    assert real["skin_delta_e"] > 20 and real["hair_fraction"] > 0.3
    assert measured_color(real) == real["color"]
    # the same mask painted with the skin's own colour: the measured "hair" is skin
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64)
    face = seg.face_mask.reshape(-1)
    skin = _gauss(lab[face])
    skin_rgb = np.median(img.reshape(-1, 3)[face], 0).astype(np.uint8)
    bald = img.copy()
    bald[seg.mask] = skin_rgb
    m = _measure(seg.mask, bald, seg.landmarks, skin, float(face.sum()))
    assert m["skin_delta_e"] < 12 and measured_color(m) is None
    # little hair relative to the face
    thin = seg.mask & (np.cumsum(seg.mask.reshape(-1)).reshape(seg.mask.shape) < 0.03 * face.sum())
    m = _measure(thin, img, seg.landmarks, skin, float(face.sum()))
    assert m["hair_pixels"] >= 200 and m["hair_fraction"] < 0.08 and measured_color(m) is None
    # "hair" of the background's colour beside the head: the segmentation took the background
    hair_lab = cv2.cvtColor(np.median(img[seg.mask], 0).astype(np.uint8).reshape(1, 1, 3), cv2.COLOR_RGB2LAB)
    bg = (hair_lab.reshape(3).astype(np.float64), np.eye(3))
    m = _measure(seg.mask, img, seg.landmarks, skin, float(face.sum()), bg)
    assert m["background_delta_e"] < 1.0 and measured_color(m) is None
    # and _photo_color falls back on such a measurement
    av = canonical_avatar()
    import engines.hair.photo as hp

    orig = hp._measure
    try:
        hp._measure = lambda mask, rgb, lm, *a: {**orig(mask, rgb, lm, *a), "skin_delta_e": 3.0}
        assert _photo_color(av, img, "bob", {}) == (DEFAULT_COLOR, "default")
    finally:
        hp._measure = orig
    color, source = _photo_color(av, img, "bob", {})
    # The same photo segmented again: the same colour, give or take one level (MediaPipe's
    # landmarks vary by a fraction of a pixel between runs in one process).
    rgb = lambda c: np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)])  # noqa: E731
    assert source == "photo" and np.abs(rgb(color) - rgb(real["color"])).max() <= 2, (color, real["color"])
