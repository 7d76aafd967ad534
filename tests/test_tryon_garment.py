"""Garment mask, landmarks and parts (engines/tryon/garment.py)."""

import numpy as np
import pytest

from engines.api import EngineError
from engines.tryon.garment import (
    TSHIRT_OUTLINE,
    garment_landmarks,
    garment_mask,
    garment_tilt,
    make_sample_garment,
    prepare_garment,
)

W, H = 240, 260


def expected(i):
    return TSHIRT_OUTLINE[i] * [W - 1, H - 1]


@pytest.mark.parametrize("kw", [{}, {"pattern": "checker"}, {"alpha": True}])
def test_mask_and_landmarks_of_a_plain_or_transparent_tshirt(kw):
    img = make_sample_garment(W, H, **kw)
    g = prepare_garment(img)
    assert not g.uncertain
    truth = make_sample_garment(W, H, alpha=True)[:, :, 3] > 0
    iou = (truth & (g.mask > 0.5)).sum() / (truth | (g.mask > 0.5)).sum()
    assert iou > 0.97
    lm = g.landmarks
    # Outline vertices: 0 neck left, 1 neck dip, 2 neck right, 9 left armpit, 6 right armpit.
    assert np.linalg.norm(lm["neck_left"] - expected(0)) < 4
    assert np.linalg.norm(lm["neck_centre"] - expected(1)) < 4
    assert np.linalg.norm(lm["neck_right"] - expected(2)) < 4
    assert np.linalg.norm(lm["armpit_left"] - expected(9)) < 6
    assert np.linalg.norm(lm["armpit_right"] - expected(6)) < 6
    assert abs(lm["hem_left"][1] - expected(8)[1]) < 3 and abs(lm["hem_left"][0] - expected(8)[0]) < 4
    assert lm["sleeve_left"][0] < 12 and lm["sleeve_right"][0] > W - 12
    # Shoulders sit on the top edge above the armpits, below the collar points.
    assert lm["neck_left"][1] < lm["shoulder_left"][1] < lm["armpit_left"][1]


def test_parts_split_at_the_seams():
    g = prepare_garment(make_sample_garment(W, H))
    lm, parts = g.landmarks, g.parts
    total = parts["torso"] + parts["sleeve_left"] + parts["sleeve_right"]
    assert np.array_equal(total > 0.5, g.mask > 0.5)  # a partition of the mask
    assert total.max() <= 1.0
    for side in ("left", "right"):
        ys, xs = np.nonzero(parts[f"sleeve_{side}"])
        assert 0.04 * g.mask.sum() < len(xs) < 0.15 * g.mask.sum()
        if side == "left":
            assert xs.max() <= lm["armpit_left"][0] + 1
        else:
            assert xs.min() >= lm["armpit_right"][0] - 1


def test_busy_background_is_reported_uncertain_and_a_user_mask_fixes_it():
    busy = make_sample_garment(W, H, busy_background=True)
    mask, uncertain, notes = garment_mask(busy, name="busy.png")
    assert uncertain
    assert any("busy.png" in n and "garment_mask_file" in n for n in notes)
    user = (make_sample_garment(W, H, alpha=True)[:, :, 3] > 0).astype(np.uint8) * 255
    g = prepare_garment(busy, user_mask=user)
    assert not g.uncertain
    assert np.array_equal(g.mask > 0.5, user > 0)


def test_blank_photo_raises_a_user_error():
    with pytest.raises(EngineError, match="No garment found in blank.png"):
        garment_mask(np.full((100, 80, 3), 240, np.uint8), name="blank.png")


def test_landmarks_of_an_empty_mask_raise():
    with pytest.raises(EngineError):
        garment_landmarks(np.zeros((50, 50), np.float32))


def test_large_photo_is_downscaled_and_landmarks_scale_with_it():
    g = prepare_garment(make_sample_garment(960, 1040), max_side=480)
    assert max(g.size) == 480
    assert np.linalg.norm(g.landmarks["neck_centre"] - TSHIRT_OUTLINE[1] * [g.size[0] - 1, g.size[1] - 1]) < 5


# A tank top (deep V neck, armholes curving in above the armpits, flared hem) and a
# vest-like sleeveless top whose armholes run almost straight up to wide straps.
TANK = [
    (0.36, 0.02),
    (0.5, 0.2),
    (0.64, 0.02),
    (0.70, 0.02),
    (0.72, 0.2),
    (0.80, 0.32),
    (0.82, 0.95),
    (0.18, 0.95),
    (0.20, 0.32),
    (0.28, 0.2),
    (0.30, 0.02),
]
VEST = [
    (0.33, 0.04),
    (0.5, 0.16),
    (0.67, 0.04),
    (0.72, 0.05),
    (0.74, 0.3),
    (0.78, 0.95),
    (0.22, 0.95),
    (0.26, 0.3),
    (0.28, 0.05),
]


def _outline_photo(outline, w=300, h=340, colour=(40, 110, 60)):
    import cv2

    img = np.full((h, w, 3), 250, np.uint8)
    cv2.fillPoly(img, [(np.array(outline) * [w - 1, h - 1]).round().astype(np.int32)], colour)
    return img


@pytest.mark.parametrize("outline, armpit", [(TANK, (0.20, 0.32)), (VEST, (0.26, 0.30))])
def test_sleeveless_tops_get_ordered_landmarks_and_no_sleeves(outline, armpit):
    w, h = 300, 340
    g = prepare_garment(_outline_photo(outline, w, h), name="tank.png")
    lm, parts = g.landmarks, g.parts
    for side, sign in (("left", 1), ("right", -1)):
        s, a, e = lm[f"shoulder_{side}"], lm[f"armpit_{side}"], lm[f"sleeve_{side}"]
        hem = lm[f"hem_{side}"]
        # Top to bottom: strap (shoulder) above the armpit above the hem; the armpit on the
        # side seam within a tenth of the height of the drawn one.
        assert s[1] < a[1] - 0.1 * h and a[1] < hem[1] - 0.3 * h
        ax = armpit[0] * (w - 1) if side == "left" else (1 - armpit[0]) * (w - 1)
        assert abs(a[0] - ax) < 0.05 * w and abs(a[1] - armpit[1] * (h - 1)) < 0.1 * h
        # The shoulder point is above the armpit at the strap's top, outside the neckline.
        assert sign * (lm[f"neck_{side}"][0] - s[0]) > 0
        assert abs(s[0] - a[0]) < 1.0 and s[1] < 0.1 * h
        # The sleeve end is a non-degenerate point beside the armpit (the sleeve affine
        # needs three points that are not on one line), and there is no sleeve part.
        area = abs(np.cross(a - s, e - s))
        assert area > 10.0
        assert parts[f"sleeve_{side}"].sum() == 0
    assert np.array_equal(parts["torso"] > 0.5, g.mask > 0.5)


def test_a_studio_sweep_gradient_stays_background():
    """A garment on a grey sweep that brightens from top to bottom (50 grey levels): the
    background is modelled as a plane, so the mask is the garment alone and is not
    flagged (a single median background colour took the sweep's dark top as garment)."""
    img = make_sample_garment(W, H, alpha=True)
    truth = img[:, :, 3] > 0
    ramp = np.linspace(200, 250, H)[:, None, None] * np.ones((1, W, 3))
    photo = np.where(truth[:, :, None], img[:, :, :3], ramp).astype(np.uint8)
    mask, uncertain, notes = garment_mask(photo, name="sweep.jpg")
    m = mask > 0.5
    assert (m & truth).sum() / (m | truth).sum() > 0.97
    assert not uncertain and not notes


@pytest.mark.parametrize("angle", [-12.0, 4.0, 20.0])
def test_a_tilted_garment_photo_is_turned_upright(angle):
    """A T-shirt photographed a little askew: it is turned upright by its mirror symmetry,
    and its landmarks keep the upright shirt's layout (before, a 5 degree tilt moved the
    right hem corner by a third of the shirt)."""
    import cv2

    base = make_sample_garment(W, H, alpha=True)
    M = cv2.getRotationMatrix2D((W / 2, H / 2), angle, 0.85)
    tilted = cv2.warpAffine(base, M, (W, H), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255, 0))
    g, g0 = prepare_garment(tilted), prepare_garment(base)
    assert any("turned" in n and f"{abs(angle):.0f} degrees" in n for n in g.notes)
    a = np.array([g0.landmarks[k] for k in sorted(g0.landmarks)])
    b = np.array([g.landmarks[k] for k in sorted(g0.landmarks)])
    a0, b0 = a - a.mean(0), b - b.mean(0)
    b0 = b0 * (np.linalg.norm(a0) / np.linalg.norm(b0))
    assert np.linalg.norm(b0 - a0, axis=1).max() < 4.0
    assert garment_tilt(g.mask) is None  # upright now


def test_an_upright_or_asymmetric_garment_is_not_turned():
    assert garment_tilt(make_sample_garment(W, H, alpha=True)[:, :, 3].astype(np.float32) / 255) is None
    # a one-shoulder top: no mirror symmetry to stand it up by
    import cv2

    m = np.zeros((200, 160), np.float32)
    cv2.fillPoly(m, [np.array([(20, 10), (60, 10), (150, 70), (140, 190), (25, 190)], np.int32)], 1.0)
    assert garment_tilt(m) is None


HOODIE = [
    (0.36, 0.10),
    (0.40, 0.0),
    (0.60, 0.0),
    (0.64, 0.10),
    (0.78, 0.14),
    (0.99, 0.80),
    (0.90, 0.83),
    (0.76, 0.38),
    (0.77, 0.95),
    (0.23, 0.95),
    (0.24, 0.38),
    (0.10, 0.83),
    (0.01, 0.80),
    (0.22, 0.14),
]
DRESS = [
    (0.38, 0.03),
    (0.5, 0.08),
    (0.62, 0.03),
    (0.74, 0.05),
    (0.86, 0.16),
    (0.80, 0.22),
    (0.70, 0.18),
    (0.68, 0.40),
    (0.90, 0.98),
    (0.10, 0.98),
    (0.32, 0.40),
    (0.30, 0.18),
    (0.20, 0.22),
    (0.14, 0.16),
    (0.26, 0.05),
]
RAGLAN = [
    (0.38, 0.02),
    (0.5, 0.09),
    (0.62, 0.02),
    (0.99, 0.75),
    (0.90, 0.79),
    (0.76, 0.40),
    (0.77, 0.97),
    (0.23, 0.97),
    (0.24, 0.40),
    (0.10, 0.79),
    (0.01, 0.75),
]


def test_a_hood_is_left_out_and_a_crew_neckline_takes_its_place():
    w, h = 300, 340
    g = prepare_garment(_outline_photo(HOODIE, w, h), name="hoodie.png")
    lm = g.landmarks
    assert any("hood" in n for n in g.notes)
    # Nothing of the garment is left above the shoulders in the middle, and the neckline
    # is a real opening: wide and dipping, between the shoulders.
    mid = g.mask[:, int(lm["neck_left"][0]) + 2 : int(lm["neck_right"][0]) - 1]
    assert mid[: int(min(lm["shoulder_left"][1], lm["shoulder_right"][1]) - 0.05 * h)].max() < 0.5
    assert lm["neck_right"][0] - lm["neck_left"][0] > 0.2 * (lm["shoulder_right"][0] - lm["shoulder_left"][0])
    assert lm["neck_centre"][1] > max(lm["neck_left"][1], lm["neck_right"][1]) + 0.02 * h


def test_sloping_shoulders_keep_their_neckline():
    """A raglan sweater: the top edge falls from the collar all the way down the sleeves,
    so the shoulder points sit far below the collar, but the neckline dips: no hood."""
    g = prepare_garment(_outline_photo(RAGLAN), name="raglan.png")
    assert not any("hood" in n for n in g.notes)
    # The shoulder points stay within a tenth of the length below the collar (on the edge
    # at the armpits they would be 27 % down, and the collar would rise beside the face).
    h = 340
    for side in ("left", "right"):
        drop = g.landmarks[f"shoulder_{side}"][1] - g.landmarks[f"neck_{side}"][1]
        assert 0 <= drop <= 0.1 * h + 1
    truth = _outline_photo(RAGLAN)[:, :, 1] < 200
    assert ((g.mask > 0.5) & truth).sum() / ((g.mask > 0.5) | truth).sum() > 0.97


def test_a_dress_is_refused_with_a_message():
    with pytest.raises(EngineError, match="Could not read the shape of a top in dress.png"):
        prepare_garment(_outline_photo(DRESS), name="dress.png")


@pytest.mark.parametrize("shape", [(1, 1), (H, W)])
def test_a_speck_of_a_user_mask_or_alpha_is_refused(shape):
    """A 1x1 mask image (or one with a few white pixels), or a PNG whose transparency keeps a
    speck, is refused with a sentence instead of warping nothing."""
    photo = make_sample_garment(W, H)
    speck = np.zeros(shape, np.uint8)
    speck[shape[0] // 2, shape[1] // 2] = 255
    if shape == (1, 1):
        speck[:] = 255  # all white, but resized to the photo it is the whole image: fine
        mask, _, notes = garment_mask(photo, user_mask=speck, name="shirt.png")
        assert mask.mean() > 0.99 and any("1x1 px" in n and "right file" in n for n in notes)
        return
    with pytest.raises(EngineError, match="mask image for shirt.png covers only 1 pixels"):
        garment_mask(photo, user_mask=speck, name="shirt.png")
    rgba = make_sample_garment(W, H, alpha=True)
    rgba[:, :, 3] = 0
    rgba[100:104, 100:103, 3] = 255
    with pytest.raises(EngineError, match="transparency"):
        garment_mask(rgba, name="shirt.png")
    # a real mask passes
    user = (make_sample_garment(W, H, alpha=True)[:, :, 3] > 0).astype(np.uint8) * 255
    assert garment_mask(photo, user_mask=user, name="shirt.png")[0].mean() > 0.1
