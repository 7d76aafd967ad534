"""The depth-from-focus engine end to end on synthetic stacks from real RGB-D scenes
(Middlebury 2014 Motorcycle and Middlebury 2006 Aloe, real ground truth) and a procedural
plane scene, with sensor noise and focus breathing; and the bad inputs a user can give it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.api import CancelToken, Cancelled, EngineError, make_params, no_progress
from engines.depth.engine import DepthFromFocusEngine
from engines.depth.focus import depth_from_focus
from engines.depth.synth import make_focal_stack, plane_scene, rgbd_from_disparity
from engines.types import DepthMap, FocalStack, Mesh, PointCloud

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
# Motorcycle calibration for the 741 x 500 images (skimage.data.stereo_motorcycle docstring).
FOCAL_PX, BASELINE_M, DOFFS_PX = 994.978, 0.193001, 31.086
# Middlebury 2006 Aloe at half size (tests/data/aloe_*): f 3740 px, baseline 160 mm and
# disparity offset 270 px at full size, halved with the image and its disparities.
ALOE_FOCAL_PX, ALOE_BASELINE_M, ALOE_DOFFS_PX = 1870.0, 0.160, 135.0


def run(stack, **values):
    return DepthFromFocusEngine().run([stack], make_params(DepthFromFocusEngine, values), no_progress, CancelToken())


def errors(pred, gt):
    ok = np.isfinite(gt) & np.isfinite(pred)
    p, g = pred[ok], gt[ok]
    ratio = np.maximum(p / g, g / p)
    return {
        "absrel": float(np.mean(np.abs(p - g) / g)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
    }


@pytest.fixture(scope="module")
def motorcycle():
    from PIL import Image

    rgb = np.asarray(Image.open(DATA / "motorcycle_left.png").convert("RGB"))
    disp = np.load(DATA / "motorcycle_disp.npz")["arr_0"]
    rgb, depth, K = rgbd_from_disparity(rgb, disp, FOCAL_PX, BASELINE_M, DOFFS_PX, width=370)
    # A 100 mm f/2 lens on a sensor sized so that the focal length in pixels is the calibration's.
    stack = make_focal_stack(
        rgb,
        depth,
        1 / np.linspace(1 / 2.0, 1 / 5.2, 8),
        100.0,
        2.0,
        100.0 * 370 / K[0, 0],
        noise_sigma=0.01,
        breathing=0.01,
        seed=3,
    )
    return stack, depth, K


@pytest.fixture(scope="module")
def motorcycle_result(motorcycle):
    return run(motorcycle[0])


def test_motorcycle_metric_depth_within_bounds(motorcycle, motorcycle_result):
    stack, gt, K = motorcycle
    e = errors(motorcycle_result.main.depth, gt)
    assert e["absrel"] < 0.06
    assert e["delta1"] > 0.94
    assert e["rmse"] < 0.4


def test_fused_beats_plain_argmax(motorcycle, motorcycle_result):
    stack, gt, K = motorcycle
    plain = depth_from_focus(stack.frames, stack.focus_distances, "tenengrad", 9, "none")
    e_arg = errors(plain.depth_argmax, gt)
    e_fused = errors(motorcycle_result.main.depth, gt)
    assert e_fused["rmse"] < 0.85 * e_arg["rmse"]
    assert e_fused["absrel"] < e_arg["absrel"]


def test_second_real_scene_aloe():
    """A different real scene (a plant's thin leaves, 1.2-1.9 m): bounded error, and the
    fused result beats plain argmax depth from focus on RMSE."""
    from PIL import Image

    rgb = np.asarray(Image.open(DATA / "aloe_left.jpg").convert("RGB"))
    disp = np.load(DATA / "aloe_disp.npz")["arr_0"]
    rgb, gt, K = rgbd_from_disparity(rgb, disp, ALOE_FOCAL_PX, ALOE_BASELINE_M, ALOE_DOFFS_PX, width=320)
    lo, hi = np.nanpercentile(gt, [0.5, 99.5])
    stack = make_focal_stack(
        rgb,
        gt,
        1 / np.linspace(1 / (0.97 * lo), 1 / (1.03 * hi), 6),
        100.0,
        2.0,
        100.0 * 320 / K[0, 0],
        noise_sigma=0.01,
        breathing=0.01,
        seed=5,
    )
    res = run(stack)
    plain = depth_from_focus(stack.frames, stack.focus_distances, "tenengrad", 9, "none")
    e_fused, e_arg = errors(res.main.depth, gt), errors(plain.depth_argmax, gt)
    assert e_fused["absrel"] < 0.03
    assert e_fused["delta1"] > 0.98
    assert e_fused["rmse"] < 0.85 * e_arg["rmse"]


def test_result_items_and_notes(motorcycle, motorcycle_result):
    stack, gt, K = motorcycle
    res = motorcycle_result
    dm = res.main
    assert isinstance(dm, DepthMap)
    h, w = gt.shape
    assert dm.depth.shape == (h, w) and dm.depth.dtype == np.float32 and np.isfinite(dm.depth).all()
    assert dm.image.shape == (h, w, 3) and dm.image.dtype == np.uint8
    assert dm.confidence.shape == (h, w) and 0 <= dm.confidence.min() and dm.confidence.max() <= 1
    assert np.allclose(dm.intrinsics, K)
    cloud = res.first(PointCloud)
    # Every pixel but the "flying pixels" on depth discontinuities becomes a coloured point.
    assert 0.8 * h * w < len(cloud.points) < h * w and cloud.colors.shape == (len(cloud.points), 3)
    assert np.median(-cloud.points[:, 2]) == pytest.approx(np.median(dm.depth), rel=0.05)
    # Back-projection through K: a point's image position is its pixel.
    p = cloud.points[len(cloud.points) // 2]
    u, v = K[0, 0] * p[0] / -p[2] + K[0, 2], K[1, 1] * -p[1] / -p[2] + K[1, 2]
    assert dm.depth[int(round(v)), int(round(u))] == pytest.approx(-p[2], rel=1e-5)
    mesh = res.first(Mesh)
    assert mesh is not None and len(mesh.faces) > h * w  # most grid cells kept (2 triangles each)
    assert any("weights-free edge-aware prior" in n for n in res.notes)
    assert any("residual misalignment" in n for n in res.notes)
    assert 0 <= res.metrics["align_residual_px"] < 1.0
    assert res.metrics["low_confidence"] is False
    for stage in ("align", "focus", "prior", "global fit", "local refinement", "point cloud"):
        assert stage in res.timings


def test_alignment_undoes_focus_breathing(motorcycle):
    from engines.depth.align import align_stack
    from engines.depth.synth import breathing_scales

    stack = motorcycle[0]
    al = align_stack(stack.frames, 0)
    zoom = [np.sqrt(np.linalg.det(M[:2, :2])) for M in al.warps]
    assert zoom == pytest.approx(list(breathing_scales(stack.focus_distances, 0.01)), abs=1.5e-3)


def test_plane_scene_depth_within_bounds():
    rgb, depth, K = plane_scene(240, 160, seed=5)
    st = make_focal_stack(
        rgb,
        depth,
        1 / np.linspace(1 / 1.8, 1 / 5.0, 8),
        200.0,
        2.0,
        200.0 * 240 / K[0, 0],
        noise_sigma=0.01,
        breathing=0.01,
        seed=4,
    )
    res = run(st)
    e = errors(res.main.depth, depth)
    plain = errors(depth_from_focus(st.frames, st.focus_distances, "tenengrad", 9, "none").depth_argmax, depth)
    assert e["absrel"] < 0.04 and e["delta1"] > 0.97
    assert e["rmse"] < plain["rmse"]


def test_other_operators_and_options_run(motorcycle):
    stack, gt, K = motorcycle
    small = FocalStack(stack.frames[::2], stack.focus_distances[::2], stack.intrinsics)
    for values in (
        {"operator": "modified-laplacian", "interpolation": "parabolic", "robust_fit": "ransac"},
        {"operator": "graylevel-variance", "edge_aware_window": False, "robust_fit": "none"},
        {"operator": "sum-modified-laplacian", "local_refinement": False, "make_mesh": False, "reference_frame": 2},
    ):
        res = run(small, **values)
        assert errors(res.main.depth, gt)["absrel"] < 0.15, values
    assert res.first(Mesh) is None


def test_fov_fallback_when_no_intrinsics(motorcycle):
    stack = motorcycle[0]
    bare = FocalStack(stack.frames[:3], stack.focus_distances[:3])
    res = run(bare, fov_deg=90.0, make_mesh=False)
    w = stack.frames[0].shape[1]
    assert res.main.intrinsics[0, 0] == pytest.approx(0.5 * w, rel=1e-6)
    assert any("90 degree" in n for n in res.notes)


# --------------------------------------------------------------------------- bad input
def _tiny_stack(n=3, h=60, w=80, seed=0):
    rng = np.random.default_rng(seed)
    frames = [(rng.random((h, w, 3)) * 255).astype(np.uint8) for _ in range(n)]
    return FocalStack(frames, np.linspace(1.0, 3.0, n))


def test_fewer_than_two_frames():
    st = _tiny_stack(1)
    with pytest.raises(EngineError, match="at least 2"):
        run(st)


def test_two_frames_work_and_say_how_coarse_they_are(motorcycle):
    stack, gt, K = motorcycle
    two = FocalStack([stack.frames[0], stack.frames[-1]], [stack.focus_distances[0], stack.focus_distances[-1]])
    res = run(two)
    assert res.main.depth.shape == gt.shape and np.isfinite(res.main.depth).all()
    assert any("Only 2 frames" in n for n in res.notes)
    three = FocalStack(stack.frames[:3], stack.focus_distances[:3])
    assert not any("Only 2 frames" in n for n in run(three).notes)


def test_distances_in_millimetres_are_questioned(motorcycle):
    stack, gt, K = motorcycle
    mm = FocalStack(stack.frames[:4], [1000.0 * d for d in stack.focus_distances[:4]])
    res = run(mm)
    assert any("millimetres" in n for n in res.notes)
    assert not any("millimetres" in n for n in run(FocalStack(stack.frames[:4], stack.focus_distances[:4])).notes)


def test_frames_of_different_sizes():
    st = _tiny_stack(3)
    st.frames[2] = st.frames[2][:50]
    with pytest.raises(EngineError, match="same size"):
        run(st)


def test_duplicate_or_missing_distances():
    st = _tiny_stack(3)
    st.focus_distances = np.array([1.0, 2.0, 1.0])
    with pytest.raises(EngineError, match="share the focus distance"):
        run(st)
    st.focus_distances = np.array([1.0, np.nan, 2.0])
    with pytest.raises(EngineError, match="missing or not positive"):
        run(st)
    st.focus_distances = np.array([1.0, 2.0])
    with pytest.raises(EngineError, match="focus distances"):
        run(st)


def test_unsorted_distances_are_sorted(motorcycle):
    stack, gt, K = motorcycle
    order = [2, 0, 3, 1]
    shuffled = FocalStack([stack.frames[i] for i in order], stack.focus_distances[order], stack.intrinsics)
    res = run(shuffled, make_mesh=False)
    ref = run(FocalStack(stack.frames[:4], stack.focus_distances[:4], stack.intrinsics), make_mesh=False)
    assert any("sorted by focus distance" in n for n in res.notes)
    assert np.allclose(res.main.depth, ref.main.depth)


def test_reference_frame_out_of_range():
    with pytest.raises(EngineError, match="reference_frame"):
        run(_tiny_stack(3), reference_frame=5)


def test_textureless_stack_is_flagged_low_confidence():
    rng = np.random.default_rng(1)
    frames = [np.clip(128 + 2.5 * rng.standard_normal((90, 120, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
    res = run(FocalStack(frames, [1.0, 1.5, 2.0, 3.0]))
    assert res.metrics["low_confidence"] is True
    assert any(n.startswith("Low confidence") for n in res.notes)
    assert np.isfinite(res.main.depth).all()
    assert 1.0 / 1.5 <= res.main.depth.min() and res.main.depth.max() <= 3.0 * 1.5


def test_stack_that_cannot_be_aligned():
    # Each frame shows a different random scene: nothing to register.
    st = _tiny_stack(3, 120, 160)
    import cv2

    st.frames = [cv2.GaussianBlur(f, (0, 0), 2.0) for f in st.frames]
    with pytest.raises(EngineError, match="Cannot align"):
        run(st)


def test_cancel_stops_the_run(motorcycle):
    token = CancelToken()
    token.set()
    with pytest.raises(Cancelled):
        DepthFromFocusEngine().run([motorcycle[0]], make_params(DepthFromFocusEngine), no_progress, token)


def test_cli_on_the_bundled_sample(tmp_path):
    out = tmp_path / "depth.npy"
    sample = ROOT / "resources" / "samples" / "focal_stack"
    proc = subprocess.run(
        [
            sys.executable,
            "main.py",
            "run",
            "depth-from-focus",
            "--input",
            str(sample),
            "--out",
            str(out),
            "--set",
            "make_mesh=false",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    d = np.load(out)
    assert d.shape == (250, 370) and d.dtype == np.float32
    # The sample (5 JPEG frames) was rendered from the motorcycle scene: compare with its truth.
    from PIL import Image

    rgb = np.asarray(Image.open(DATA / "motorcycle_left.png").convert("RGB"))
    disp = np.load(DATA / "motorcycle_disp.npz")["arr_0"]
    _, gt, _ = rgbd_from_disparity(rgb, disp, FOCAL_PX, BASELINE_M, DOFFS_PX, width=370)
    e = errors(d, gt)
    assert e["absrel"] < 0.06 and e["delta1"] > 0.94


def test_large_stacks_are_measured_downscaled_and_returned_full_size(motorcycle):
    stack, gt, K = motorcycle
    res = run(stack, max_megapixels=0.04, make_mesh=False)  # 370x250 = 0.0925 MP -> about 243x164
    dm = res.main
    assert dm.depth.shape == gt.shape and dm.image.shape == stack.frames[0].shape
    assert dm.confidence.shape == gt.shape
    assert any("upsampled" in n for n in res.notes) and "upsample" in res.timings
    assert errors(dm.depth, gt)["absrel"] < 0.08
    # The all-in-focus image is composed from full-size frames: as sharp as the full-size run's.
    full = run(stack, make_mesh=False).main.image
    grad = [np.abs(np.diff(im.astype(float), axis=1)).mean() for im in (dm.image, full)]
    assert grad[0] > 0.9 * grad[1]


def test_onnx_prior_without_a_model_fails_before_the_work():
    with pytest.raises(EngineError, match="needs a model file"):
        run(_tiny_stack(3), prior="onnx", onnx_model="")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fused_not_worse_than_depth_from_focus_on_random_plane_scenes(seed):
    """Held-out style scenes (random slanted cards, floors, textures, some weakly textured):
    the fusion must not lose to the focus measurement it is built on. With a hard confidence
    threshold on the measurements, seed 1 came out at AbsRel 0.32 against 0.16 for plain
    depth from focus (a far wall's depth propagated over a weakly textured near region)."""
    from engines.depth.synth import random_plane_scene

    rgb, depth, K = random_plane_scene(200, 140, seed)
    fd = 1 / np.linspace(1 / (0.97 * depth.min()), 1 / (1.03 * depth.max()), 6)
    stack = make_focal_stack(
        rgb, depth, fd, 100.0, 2.0, 100.0 * 200 / K[0, 0], noise_sigma=0.01, breathing=0.01, seed=1
    )
    fused = errors(run(stack).main.depth, depth)
    default = DepthFromFocusEngine.Params()
    dff = errors(
        depth_from_focus(stack.frames, fd, default.operator, default.window, default.interpolation).depth, depth
    )
    argmax = errors(depth_from_focus(stack.frames, fd, "tenengrad", 7, "none").depth_argmax, depth)
    assert fused["absrel"] <= dff["absrel"]
    assert fused["rmse"] < 0.8 * argmax["rmse"]


def test_exposure_changes_between_frames_are_equalised(motorcycle, motorcycle_result):
    """Auto exposure between shots: each frame 8-12 % brighter or darker. Unequalised, the
    brighter frames look sharper and the depth degrades; equalised, it stays close to the
    result without exposure changes, and the notes say so."""
    stack, gt, K = motorcycle
    gains = [1.0, 1.1, 0.9, 1.12, 0.88, 1.08, 0.92, 1.1]
    frames = [np.clip(f.astype(np.float32) * g, 0, 255).astype(np.uint8) for f, g in zip(stack.frames, gains)]
    jittered = FocalStack(frames, stack.focus_distances)
    e_ref = errors(motorcycle_result.main.depth, gt)
    on, off = run(jittered), run(jittered, exposure=False)
    e_on, e_off = errors(on.main.depth, gt), errors(off.main.depth, gt)
    assert e_off["absrel"] > 1.3 * e_ref["absrel"]  # the problem is real
    assert e_on["absrel"] < 1.1 * e_ref["absrel"] + 0.002
    assert e_on["absrel"] < 0.8 * e_off["absrel"]
    assert any("exposure" in n for n in on.notes)
    assert not any("exposure" in n for n in motorcycle_result.notes)
    assert on.metrics["exposure_spread"] == pytest.approx(0.12, abs=0.03)


def test_notes_say_how_much_of_the_depth_is_confident(motorcycle_result):
    r = motorcycle_result
    frac = r.metrics["confident_fraction"]
    note = next(n for n in r.notes if "of the pixels are confident" in n)
    assert note.startswith(f"{frac * 100:.0f} %")


def test_the_mesh_has_no_triangle_seen_edge_on(motorcycle_result):
    from engines.depth.surface import edge_on
    from engines.types import Mesh

    mesh = next(i for i in motorcycle_result.items if isinstance(i, Mesh))
    assert not edge_on(mesh.vertices, mesh.faces, 84.0).any()
