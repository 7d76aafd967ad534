"""Person tracking (engines/tryon/person.py) and the temporal module (temporal.py)."""

from pathlib import Path

import numpy as np
import pytest

from engines.io.video import iter_frames
from engines.tryon.person import L_SHOULDER, R_SHOULDER, OneEuroFilter, PersonTracker
from engines.tryon.temporal import FlowPair, TemporalBlender, edge_jitter, warp_by_flow, warping_error

DATA = Path(__file__).parent / "data"


def test_one_euro_filter_steadies_a_still_point_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=2.0)
    # A shoulder 100 px wide, measured with 2 px of noise at 30 fps.
    still = [f(np.array([100.0]) + rng.normal(0, 2, 1), 1 / 30, scale=100)[0] for _ in range(90)]
    assert np.std(still[30:]) < 0.5 * 2.0
    f.reset()
    ramp = [f(np.array([t * 10.0]), 1 / 30, scale=100)[0] for t in range(60)]  # 300 px/s
    assert abs(ramp[-1] - 590.0) < 8  # little lag once the speed is known


def test_tracker_finds_the_carphone_man_and_knows_his_hips_are_out_of_frame():
    frames = list(iter_frames(DATA / "tryon_carphone.mp4", 0, 12))
    with PersonTracker(30.0) as tr:
        people = [tr(f) for f in frames]
    assert all(p is not None for p in people)
    p = people[-1]
    sl, sr = p.points[R_SHOULDER], p.points[L_SHOULDER]
    assert sl[0] < sr[0]  # facing the camera: his right shoulder is on the image left
    assert 70 < np.linalg.norm(sr - sl) < 120  # the suit spans most of the 176 px frame
    assert 85 < sl[1] < 144 and 85 < sr[1] < 144
    assert p.mask.shape == (144, 176)
    assert p.mask[int((sl[1] + sr[1]) / 2) + 15, int((sl[0] + sr[0]) / 2)] > 0.5
    assert p.mask[5, 5] < 0.5
    assert not p.visible(23) and not p.visible(24)
    # Smoothed shoulders move less from frame to frame than half a percent of the frame.
    steps = [np.linalg.norm(a.points[R_SHOULDER] - b.points[R_SHOULDER]) for a, b in zip(people, people[1:])]
    assert np.median(steps) < 2.0


def test_small_pedestrian_is_found_through_a_crop():
    frames = list(iter_frames(DATA / "tryon_vtest.mp4", 0, 6))
    with PersonTracker(10.0) as tr:
        people = [tr(f) for f in frames]
        crops = tr.used_crops
    found = [p for p in people if p is not None]
    assert len(found) >= 4 and crops >= 4
    for p in found:  # a pedestrian is about 100 px tall in this 768x576 shot
        assert 20 < p.points[[11, 12, 23, 24], 1].mean() < 576 and p.mask.sum() > 300


def test_noise_has_no_person():
    rng = np.random.default_rng(3)
    with PersonTracker(25.0) as tr:
        assert all(tr(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)) is None for _ in range(4))


def _moving_scene(n=8, shift=(2, 1)):
    import cv2

    rng = np.random.default_rng(5)
    tex = cv2.GaussianBlur(rng.integers(0, 255, (160, 200)).astype(np.uint8), (0, 0), 2)
    return [
        np.ascontiguousarray(tex[20 + i * shift[1] : 120 + i * shift[1], 20 + i * shift[0] : 140 + i * shift[0]])
        for i in range(n)
    ]


def test_flow_warps_the_previous_frame_onto_the_current_one():
    frames = _moving_scene()
    back, valid = FlowPair()(frames[0], frames[1])
    inner = (slice(10, -10), slice(10, -10))
    assert np.abs(np.median(back[inner][..., 0]) - 2) < 0.3 and np.abs(np.median(back[inner][..., 1]) - 1) < 0.3
    assert valid[inner].mean() > 0.9
    err = np.abs(warp_by_flow(frames[0].astype(np.float32), back) - frames[1])[inner].mean()
    assert err < 0.3 * np.abs(frames[0].astype(np.float32) - frames[1])[inner].mean()


def test_blending_along_flow_lowers_layer_flicker_without_ghosting():
    """A garment layer that jitters +-2 px around a steadily moving position."""
    import cv2

    scene = _moving_scene(12)
    h, w = scene[0].shape
    rng = np.random.default_rng(2)
    errs, jitter = {}, {}
    for weight in (0.0, 0.6):
        blender, flow = TemporalBlender(weight), FlowPair()
        e, j, prev = [], [], None
        for t, grey in enumerate(scene):
            alpha = np.zeros((h, w), np.float32)
            dx, dy = rng.integers(-2, 3, 2)
            cv2.rectangle(alpha, (30 - 2 * t + dx, 20 - t + dy), (90 - 2 * t + dx, 80 - t + dy), 1.0, -1)
            rgb = np.dstack([np.full((h, w), 200.0, np.float32), grey.astype(np.float32), np.zeros((h, w), np.float32)])
            back = valid = None
            if prev is not None:
                back, valid = flow(scene[t - 1], grey)
            out_rgb, out_a = blender(rgb, alpha, back, valid)
            if prev is not None:
                e.append(warping_error(prev[0], out_rgb * out_a[..., None], back, valid, out_a > 0.5))
                j.append(edge_jitter(prev[1], out_a, back, valid, hem_only=False))
            prev = (out_rgb * out_a[..., None], out_a)
        errs[weight], jitter[weight] = np.mean(e), np.mean(j)
    assert errs[0.6] < 0.8 * errs[0.0]
    assert jitter[0.6] < 0.8 * jitter[0.0]


def test_blender_moves_the_previous_layer_between_boxes():
    b = TemporalBlender(0.5)
    rgb = np.full((10, 10, 3), 100.0, np.float32)
    b(rgb, np.ones((10, 10), np.float32), None, None, box=(5, 5, 15, 15))
    pre, alpha = b.previous((10, 10, 20, 20))
    assert alpha[:5, :5].min() == 1.0 and alpha[5:, :].max() == 0.0 and alpha[:, 5:].max() == 0.0
    assert pre[0, 0, 0] == pytest.approx(100.0)


def test_selfie_segmenter_gives_a_person_mask_too():
    frames = list(iter_frames(DATA / "tryon_carphone.mp4", 0, 3))
    with PersonTracker(30.0, segmenter="selfie") as tr:
        p = [tr(f) for f in frames][-1]
    assert p is not None
    sl, sr = p.points[R_SHOULDER], p.points[L_SHOULDER]
    assert p.mask[int((sl[1] + sr[1]) / 2) + 15, int((sl[0] + sr[0]) / 2)] > 0.5
    assert 0.2 < (p.mask > 0.5).mean() < 0.7


def _fake_person(cx: float, cy: float, shoulder: float = 30.0, torso: float = 45.0):
    """Landmarks of a standing person centred at (cx, cy): shoulders ``shoulder`` apart,
    hips ``torso`` below them; a person mask covering the frame."""
    pts = np.zeros((33, 2))
    pts[:] = (cx, cy)
    pts[L_SHOULDER], pts[R_SHOULDER] = (cx + shoulder / 2, cy - torso / 2), (cx - shoulder / 2, cy - torso / 2)
    pts[23], pts[24] = (cx + shoulder / 3, cy + torso / 2), (cx - shoulder / 3, cy + torso / 2)
    return pts, np.ones(33), np.ones((240, 320), np.float32)


def test_a_detection_away_from_the_track_is_tentative_for_one_frame():
    """The detector jumping to somebody else is not drawn on its first frame, and the
    smoothing does not average the two people; the same place after a gap, or a walker
    moving half a torso a frame, keeps the track."""
    from engines.tryon.person import same_person, torso_frame

    tr = PersonTracker(10.0)
    try:
        script = [
            (60, 120),
            (70, 120),
            (80, 121),  # a walker, ~1/4 torso a frame
            (250, 110),
            (252, 110),  # somebody else: tentative, then confirmed
            None,  # lost
            (254, 111),
        ]  # back where last seen: at once
        got = []
        for where in script:
            tr._detect = lambda rgb, where=where: None if where is None else _fake_person(*where)
            got.append(tr(np.zeros((240, 320, 3), np.uint8)))
        found = [p is not None for p in got]
        assert found == [True, True, True, False, True, False, True]
        # The confirmed new track starts from the new person, not from a blend with the old one.
        assert np.abs(got[4].points[[L_SHOULDER, R_SHOULDER], 0].mean() - 251) < 2.0
        assert tr.new_tracks == 1
    finally:
        tr.close()
    # Side-on (shoulders 4 px apart) the torso length sets the size: a 20 px step is the same person.
    a, b = torso_frame(_fake_person(100, 100, 4, 45)[0]), torso_frame(_fake_person(120, 100, 4, 45)[0])
    assert a[1] == pytest.approx(45.0) and same_person(a, b)
    assert not same_person(a, torso_frame(_fake_person(160, 100, 4, 45)[0]))
