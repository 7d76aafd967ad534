"""Relative-depth priors: the edge-aware one and the ONNX provider (engines/depth/prior.py).

The ONNX tests build tiny models with onnx.helper: they return the red channel of the
(normalised) input, and the test scenes encode inverse depth (or depth) in red, so the
model is an exact relative-depth oracle whose scale and shift the fusion must recover.
"""

from __future__ import annotations

import numpy as np
import pytest

from engines.api import CancelToken, EngineError, make_params, no_progress
from engines.depth.engine import DepthFromFocusEngine
from engines.depth.prior import EdgeAwareSmoother, edge_aware_prior, onnx_prior
from engines.depth.synth import make_focal_stack, plane_scene


def _red_channel_model(path, fixed: tuple[int, int] | None = None, channels_out: int = 1):
    import onnx
    from onnx import TensorProto, helper

    dims = ["N", 3, *(fixed or ("H", "W"))]
    out_dims = ["N", channels_out, *(fixed or ("H", "W"))]
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("depth", TensorProto.FLOAT, out_dims)
    consts = [
        helper.make_tensor(n, TensorProto.INT64, [1], [v])
        for n, v in (("starts", 0), ("ends", channels_out), ("axes", 1))
    ]
    node = helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["depth"])
    graph = helper.make_graph([node], "red", [x], [y], initializer=consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _encoded_scene(encode: str, w=200, h=140):
    """Plane scene whose red channel is an affine function of inverse depth (or depth)."""
    rgb, depth, K = plane_scene(w, h, seed=11)
    inv = 1.0 / depth
    v = inv if encode == "inverse-depth" else depth
    red = 30 + 200 * (v - v.min()) / (v.max() - v.min())
    rgb = rgb.copy()
    rgb[..., 0] = np.round(red).astype(np.uint8)
    return rgb, depth, K, (v.min(), v.max())


@pytest.mark.parametrize("fixed", [None, (98, 140)])
def test_onnx_prior_output_reaches_image_size(tmp_path, fixed):
    model = _red_channel_model(tmp_path / "red.onnx", fixed)
    img = np.zeros((70, 100, 3), np.uint8)
    img[:, 50:, 0] = 255
    p = onnx_prior(img, model, "inverse-depth", input_size=140)
    assert p.values.shape == (70, 100) and p.kind == "inverse-depth" and "red.onnx" in p.name
    lo = (0 - 0.485) / 0.229
    hi = (1 - 0.485) / 0.229
    assert p.values[35, 10] == pytest.approx(lo, abs=1e-3)
    assert p.values[35, 90] == pytest.approx(hi, abs=1e-3)


@pytest.mark.parametrize("encode", ["inverse-depth", "depth"])
def test_onnx_prior_flows_through_the_engine(tmp_path, encode):
    model = _red_channel_model(tmp_path / "oracle.onnx")
    rgb, depth, K, (vmin, vmax) = _encoded_scene(encode)
    st = make_focal_stack(
        rgb,
        depth,
        1 / np.linspace(1 / 1.8, 1 / 5.0, 6),
        200.0,
        2.0,
        200.0 * rgb.shape[1] / K[0, 0],
        noise_sigma=0.005,
        breathing=0.0,
        seed=1,
    )
    params = make_params(
        DepthFromFocusEngine,
        {"prior": "onnx", "onnx_model": str(model), "onnx_output": encode, "local_refinement": False, "align": False},
    )
    res = DepthFromFocusEngine().run([st], params, no_progress, CancelToken())
    assert any("oracle.onnx" in n for n in res.notes) and "oracle.onnx" in res.metrics["prior"]
    # The model returns (red/255 - 0.485)/0.229 with red = 30 + 200 (v - vmin)/(vmax - vmin):
    # the fit must undo exactly that map, so its scale is known in advance.
    expected_scale = 0.229 * 255 / 200 * (vmax - vmin)
    # Within the depth-from-focus error (a few per cent per pixel, more far away where the fit
    # in the depth domain puts its weight).
    assert res.metrics["fit_scale"] == pytest.approx(expected_scale, rel=0.15)
    d = res.main.depth
    absrel = np.mean(np.abs(d - depth) / depth)
    assert absrel < 0.045


def test_missing_or_broken_model_is_a_user_error(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(EngineError, match="not found"):
        onnx_prior(img, tmp_path / "nope.onnx")
    with pytest.raises(EngineError, match="needs a model file"):
        onnx_prior(img, "")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(EngineError, match="not a usable ONNX model"):
        onnx_prior(img, bad)
    three = _red_channel_model(tmp_path / "three.onnx", channels_out=3)
    with pytest.raises(EngineError, match="one H x W map"):
        onnx_prior(img, three)


def test_edge_aware_prior_fills_from_confident_pixels_within_edges():
    h, w = 80, 120
    guide = np.zeros((h, w, 3), np.uint8)
    guide[:, 60:] = 200  # two regions split by a strong edge
    dpt = np.where(np.arange(w)[None, :] < 60, 0.5, 0.25).repeat(h, 0).astype(np.float32)
    conf = np.zeros((h, w), np.float32)
    conf[::10, 5:55:10] = 1.0  # sparse evidence on both sides
    conf[::10, 65:115:10] = 1.0
    noisy = dpt + np.where(conf > 0, 0, 9.0).astype(np.float32)  # garbage where unconfident
    p = edge_aware_prior(EdgeAwareSmoother(guide, 200.0, 8.0), noisy, conf)
    assert p.kind == "inverse-depth" and "weights-free" in p.name
    assert np.abs(p.values - dpt).max() < 0.02


def _same_colour_step(h=80, w=120, band=(58, 62)):
    """Two surfaces of the same colour (slight noise) at different depths, measured
    confidently except in a thin band at the edge (where a focus window straddles both)."""
    rng = np.random.default_rng(5)
    image = np.repeat((120 + 3 * rng.standard_normal((h, w))).clip(0, 255).astype(np.uint8)[..., None], 3, 2)
    truth = np.where(np.arange(w)[None, :] < 60, 0.5, 0.25).repeat(h, 0).astype(np.float32)
    measured = (truth + 0.01 * rng.standard_normal((h, w))).astype(np.float32)
    conf = np.ones((h, w), np.float32)
    conf[:, band[0] : band[1]] = 0.0
    return image, truth, measured, conf


def test_joint_guide_encodes_depth_steps_and_degrades_to_colour():
    from engines.depth.prior import joint_guide

    image, truth, measured, _ = _same_colour_step()
    fd = np.linspace(0.2, 0.55, 8)  # 0.05 dioptres a frame
    g = joint_guide(image, truth, fd, gain=16.0)
    assert g.shape == image.shape and g.dtype == np.uint8
    step = g[:, 30, 2].astype(int) - g[:, 90, 2].astype(int)
    assert np.all(np.abs(step - 16 * 5) <= 2)  # 0.25 dioptres = 5 frame spacings x 16 levels
    assert np.array_equal(joint_guide(image, truth, fd, gain=0.0), image)


def test_joint_guidance_keeps_an_edge_that_colour_does_not_see():
    from engines.depth.prior import joint_smoother

    image, truth, measured, conf = _same_colour_step()
    fd = np.linspace(0.2, 0.55, 8)
    near = slice(45, 75)
    errs = {}
    for gain in (0.0, 16.0):
        sm, _ = joint_smoother(image, measured, conf, conf > 0.5, fd, 200.0, 8.0, gain)
        out = edge_aware_prior(sm, measured, conf).values
        errs[gain] = float(np.abs(out - truth)[:, near].mean())
    # Colour alone smooths the step into a ramp; the joint guide keeps it (0.067 and 0.028 seen).
    assert errs[16.0] < 0.04
    assert errs[0.0] > 1.8 * errs[16.0]
