"""Eyeglass frames (engines.avatar.glasses) and the skin mask that leaves them out.

Frames are drawn on a real portrait without glasses (rims round each eye, a bridge and
arms, black and a skin-like tortoiseshell): they are found and masked; on the portraits
without glasses nothing is found; Grace Hopper's tortoiseshell frames are found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

DATA = Path(__file__).parent / "data"
pytest.importorskip("mediapipe")


def _face(name: str, face_index: int = -1, iod_px: float = 100.0):
    """The photo resampled to about ``iod_px`` between the eyes (the bake's mask frame), and
    its landmarks."""
    import cv2

    from engines.avatar.landmarks import detect_landmarks

    photo = np.asarray(PILImage.open(DATA / name).convert("RGB"))
    kw = {"face_index": face_index} if face_index >= 0 else {}
    xy = detect_landmarks(photo, name, **kw).xy
    s = iod_px / float(np.linalg.norm(xy[468] - xy[473]))
    return cv2.resize(photo, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC), (xy + 0.5) * s - 0.5


def _draw_frames(img: np.ndarray, xy: np.ndarray, colour, width_iod: float = 0.045):
    """Rims (ellipses 0.84 x 0.6 IOD, the iris in their upper half), bridge and arms; returns
    the image and the mask of the drawn frame."""
    import cv2

    iod = float(np.linalg.norm(xy[473] - xy[468]))
    across = (xy[473] - xy[468]) / iod
    down = np.array([-across[1], across[0]])
    ang = float(np.degrees(np.arctan2(across[1], across[0])))
    t = max(2, int(round(width_iod * iod)))
    m = np.zeros(img.shape[:2], np.uint8)
    centres = [xy[i] + 0.08 * iod * down for i in (468, 473)]
    for c in centres:
        cv2.ellipse(m, tuple(np.round(c).astype(int)), (int(0.42 * iod), int(0.3 * iod)), ang, 0, 360, 1, t)
    inner = [centres[0] + 0.42 * iod * across - 0.08 * iod * down, centres[1] - 0.42 * iod * across - 0.08 * iod * down]
    cv2.line(m, tuple(np.round(inner[0]).astype(int)), tuple(np.round(inner[1]).astype(int)), 1, t)
    for c, sign in ((centres[0], -1), (centres[1], 1)):
        a = c + sign * 0.42 * iod * across - 0.1 * iod * down
        cv2.line(m, tuple(np.round(a).astype(int)), tuple(np.round(a + sign * 0.35 * iod * across).astype(int)), 1, t)
    out = img.copy()
    out[m > 0] = colour
    return out, m > 0


@pytest.fixture(scope="module")
def astronaut():
    return _face("astronaut.png")


@pytest.mark.parametrize("colour", [(20, 18, 22), (150, 96, 58)], ids=["black", "tortoiseshell"])
def test_drawn_frames_are_found_and_masked(astronaut, colour):
    import cv2

    from engines.avatar.glasses import detect_glasses

    img, xy = astronaut
    framed, frame = _draw_frames(img, xy, colour)
    g = detect_glasses(framed, xy)
    assert g.found, g.scores
    covered = g.mask[frame] > 0.5
    assert covered.mean() > 0.75, covered.mean()
    # and little else: beyond the frame (grown by 0.06 IOD) under a fifth of its area
    near = cv2.dilate(frame.astype(np.uint8), np.ones((13, 13), np.uint8)) > 0
    assert (g.mask[~near] > 0.5).sum() < 0.2 * frame.sum()
    # the loops are the rims' size (0.3-0.42 IOD from the iris, the iris above the centre)
    for eye in ("image_left", "image_right"):
        assert 0.25 < g.scores[eye]["radius_iod"] < 0.5, g.scores


@pytest.mark.parametrize(
    "name,face_index", [("astronaut.png", -1), ("group1.jpg", 0), ("group1.jpg", 1), ("group1.jpg", 2)]
)
def test_no_frames_on_faces_without_glasses(name, face_index):
    from engines.avatar.glasses import detect_glasses

    img, xy = _face(name, face_index)
    g = detect_glasses(img, xy)
    assert not g.found, g.scores
    assert g.mask.max() == 0


def test_grace_hoppers_tortoiseshell_frames_are_found_and_left_out_of_the_skin():
    """Her frames are amber below and dark above: the amber passes a skin-colour test, so
    without the frame search the lower rims were baked into the cheeks."""
    from engines.avatar.skin import skin_mask

    img, xy = _face("grace_hopper.jpg")
    sm = skin_mask(img, xy)
    assert sm.glasses is not None and sm.glasses.found, sm.glasses.scores
    frame = sm.glasses.mask > 0.5
    iod = float(np.linalg.norm(xy[473] - xy[468]))
    # the frame pixels below the eyes (the lower rims, where no brow is)
    down_of = (np.mgrid[0 : img.shape[0], 0 : img.shape[1]][0] - xy[[468, 473], 1].mean()) > 0.15 * iod
    lower = frame & down_of
    assert lower.sum() > 100
    assert sm.mask[lower].mean() < 0.2
    plain = skin_mask(img, xy, find_glasses=False)
    assert plain.mask[lower].mean() > 0.5  # what the colour test alone kept


def test_skin_mask_leaves_drawn_tortoiseshell_frames_out(astronaut):
    from engines.avatar.skin import skin_mask

    img, xy = astronaut
    framed, frame = _draw_frames(img, xy, (150, 96, 58))
    inner = frame & (skin_mask(img, xy).mask > 0.9)  # frame pixels over what was skin
    assert inner.sum() > 100
    assert skin_mask(framed, xy).mask[inner].mean() < 0.25


def test_the_avatar_engine_says_it_left_the_frames_out_and_can_keep_them():
    from engines.api import CancelToken, make_params
    from engines.avatar.engine import AvatarEngine
    from engines.io import load_input

    img = load_input([DATA / "grace_hopper.jpg"])

    def run(**kw):
        return AvatarEngine().run(
            [img], make_params(AvatarEngine, {"texture_size": 1024, **kw}), lambda *a: None, CancelToken()
        )

    out, kept = run(), run(glasses="keep")
    assert out.metrics["glasses_found"] and any("Eyeglass frames" in n for n in out.notes)
    assert not kept.metrics["glasses_found"] and not any("Eyeglass frames" in n for n in kept.notes)
    # the frames change the face's texture (the rims and bridge are filled with skin)
    a, b = out.main.mesh.texture.astype(float), kept.main.mesh.texture.astype(float)
    changed = np.abs(a - b).sum(2) > 30
    assert 0.002 < changed.mean() < 0.05
