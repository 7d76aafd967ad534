"""The head-model fit on known truth: ICT heads with known identity, expression and camera.

The landmarks are the model's own correspondence points projected by a known pinhole,
with pixel noise and a few gross outliers (what a landmark detector does on a turned face).
"""

from __future__ import annotations

import numpy as np
import pytest

from engines.avatar.arkit import ARKIT_NAMES

TRUE_EXPRESSION = {
    "jawOpen": 0.45,
    "mouthSmileLeft": 0.7,
    "mouthSmileRight": 0.65,
    "browInnerUp": 0.5,
    "eyeBlinkLeft": 0.35,
}


def _rot(deg_xyz):
    from engines.avatar.fit import _rodrigues

    rx, ry, rz = np.radians(deg_xyz)
    return _rodrigues(np.array([0, 0, rz])) @ _rodrigues(np.array([rx, 0, 0])) @ _rodrigues(np.array([0, ry, 0]))


def _case(seed: int, yaw: float, expression: dict, noise_px=0.5, outliers=0, focal=1100.0):
    from engines.avatar.arkit import arkit_basis
    from engines.avatar.correspondence import landmark_points
    from engines.avatar.fit import identity_vertices

    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, 100).astype(np.float32)
    e = np.zeros(52, np.float32)
    for n, v in expression.items():
        e[ARKIT_NAMES.index(n)] = v
    V0 = identity_vertices(a)
    V = V0 + np.tensordot(e, arkit_basis(), 1)
    L = landmark_points(V).astype(np.float64)
    R = _rot([6, yaw, 2]) @ np.diag([1.0, -1, -1])  # head frame (y up, z to camera) -> OpenCV camera
    t = np.array([1.5, 2.0, 65.0])
    c = np.array([319.5, 239.5])
    Xc = L @ R.T + t
    xy = Xc[:, :2] / Xc[:, 2:] * focal + c + rng.normal(0, noise_px, (478, 2))
    if outliers:
        bad = rng.choice(478, outliers, replace=False)
        xy[bad] += rng.normal(0, 25, (outliers, 2))
    z = (Xc[:, 2] - Xc[:, 2].mean()) * focal / Xc[:, 2].mean()
    scores = {n: float(np.clip(v + rng.normal(0, 0.1), 0, 1)) for n, v in zip(ARKIT_NAMES, e)}
    return dict(a=a, e=e, V0=V0, xy=xy, z=z, scores=scores, R=R, t=t, focal=focal)


def _ipd_normalised(V, ref):
    """V scaled about its eye midpoint to ref's interpupillary distance and moved onto ref's:
    the engine sets the metric scale from the IPD (a perspective photo barely shows size)."""
    from engines.avatar.correspondence import landmark_points

    L, L0 = landmark_points(V), landmark_points(ref)
    c, c0 = (L[468] + L[473]) / 2, (L0[468] + L0[473]) / 2
    s = np.linalg.norm(L0[468] - L0[473]) / np.linalg.norm(L[468] - L[473])
    return (V - c) * s + c0


def _seen_face():
    """Face vertices within 1 cm of a landmark: the part a photo's landmarks constrain."""
    from scipy.spatial import cKDTree

    from engines.avatar.correspondence import landmark_points
    from engines.avatar.ict import load_model

    m = load_model()
    face = m.part("face")
    return face[cKDTree(landmark_points(m.neutral)).query(m.neutral[face])[0] < 1.0]


def _face_error_mm(fit_or_vertices, case):
    from engines.avatar.fit import identity_vertices

    V = identity_vertices(fit_or_vertices.identity) if hasattr(fit_or_vertices, "identity") else fit_or_vertices
    near = _seen_face()
    return np.linalg.norm(_ipd_normalised(V, case["V0"])[near] - case["V0"][near], axis=1) * 10.0


@pytest.mark.parametrize("yaw", [0.0, 25.0, -40.0])
def test_fit_recovers_shape_and_expression(yaw):
    from engines.avatar.fit import fit_head
    from engines.avatar.ict import load_model

    case = _case(3, yaw, TRUE_EXPRESSION)
    fit = fit_head(case["xy"], (640, 480), z=case["z"], scores=case["scores"])
    err = _face_error_mm(fit, case)
    mean_head = _face_error_mm(load_model().neutral, case)
    # the identity prior is set for real photos (landmark noise of a few pixels), so on
    # clean synthetic landmarks it recovers about a third of an unusual head's shape
    assert err.mean() < 5.5, f"mean face vertex error {err.mean():.2f} mm"
    assert err.mean() < 0.8 * mean_head.mean(), "the fit does not beat the mean head"
    for n, v in TRUE_EXPRESSION.items():
        assert abs(fit.expression[ARKIT_NAMES.index(n)] - v) < 0.15, (n, fit.expression[ARKIT_NAMES.index(n)], v)
    off = [k for k, n in enumerate(ARKIT_NAMES) if n not in TRUE_EXPRESSION and n != "tongueOut"]
    assert np.mean(fit.expression[off]) < 0.06
    assert fit.rms_px < 2.0
    assert abs(fit.K[0, 0] - case["focal"]) / case["focal"] < 0.35
    assert abs(abs(fit.yaw_deg) - abs(yaw)) < 4.0


def test_fit_is_robust_to_outlier_landmarks():
    from engines.avatar.fit import fit_head

    case = _case(5, 20.0, TRUE_EXPRESSION, outliers=25)
    fit = fit_head(case["xy"], (640, 480), z=case["z"], scores=case["scores"])
    err = _face_error_mm(fit, case)
    assert (
        err.mean()
        < 0.8 * _face_error_mm(__import__("engines.avatar.ict", fromlist=["x"]).load_model().neutral, case).mean()
    )
    assert abs(fit.expression[ARKIT_NAMES.index("jawOpen")] - 0.45) < 0.15
    # the outliers end with low robust weights
    assert np.median(fit.weights) > 3 * np.sort(fit.weights)[12]


def test_closed_eyes_are_expression_not_identity():
    """Eyes shut in the photo are explained by eyeBlink, so the rest face has open eyes."""
    from engines.avatar.correspondence import landmark_points
    from engines.avatar.fit import fit_head, identity_vertices

    case = _case(7, 10.0, {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0})
    fit = fit_head(case["xy"], (640, 480), z=case["z"], scores=case["scores"])
    assert fit.expression[ARKIT_NAMES.index("eyeBlinkLeft")] > 0.8
    L = landmark_points(identity_vertices(fit.identity))
    L0 = landmark_points(case["V0"])
    gap = lambda P: np.linalg.norm(P[159] - P[145]) + np.linalg.norm(P[386] - P[374])  # lid to lid, both eyes  # noqa: E731
    assert gap(L) > 0.8 * gap(L0)


def test_fit_with_known_focal_keeps_it():
    from engines.avatar.fit import FitOptions, fit_head

    case = _case(11, -15.0, {"mouthSmileLeft": 0.5})
    fit = fit_head(case["xy"], (640, 480), z=case["z"], scores=case["scores"], options=FitOptions(focal_px=1100.0))
    assert fit.K[0, 0] == pytest.approx(1100.0)
    assert _face_error_mm(fit, case).mean() < 4.0


@pytest.fixture(scope="module")
def textured_avatar():
    from pathlib import Path

    from PIL import Image as PILImage

    from engines.api import CancelToken, no_progress
    from engines.avatar.engine import AvatarEngine
    from engines.types import Image

    path = Path(__file__).parent / "data" / "astronaut.png"
    img = Image(np.asarray(PILImage.open(path).convert("RGB")), path=path)
    # the photo's own light and shade kept in the texture: the unlit renders made from it
    # below then look like photographs (an even-lit texture rendered unlit looks flat)
    params = AvatarEngine.Params(texture_lighting="as_photographed")
    return AvatarEngine().run([img], params, no_progress, CancelToken()).main


@pytest.mark.parametrize("yaw", [0.0, 20.0])
def test_fit_on_renders_of_the_model(textured_avatar, yaw):
    """Render an ICT head with known identity, expression and camera (the astronaut's
    texture on another identity), detect its landmarks with MediaPipe and fit: the shape
    and the expression come back."""
    from engines.avatar.arkit import arkit_basis
    from engines.avatar.fit import fit_head, identity_vertices
    from engines.avatar.ict import load_model, render_layout
    from engines.avatar.raster import render_textured
    from engines.face import detect_landmarks

    m, lay, av = load_model(), render_layout(), textured_avatar
    rng = np.random.default_rng(21)
    a = (rng.normal(0, 1, 100) * 0.8).astype(np.float32)
    truth = {"jawOpen": 0.3, "mouthSmileLeft": 0.6, "mouthSmileRight": 0.6, "browInnerUp": 0.6}
    e = np.zeros(52, np.float32)
    for n, v in truth.items():
        e[ARKIT_NAMES.index(n)] = v
    V0 = identity_vertices(a)
    V = (V0 + np.tensordot(e, arkit_basis(), 1)) * 0.01  # metres
    R = _rot([4, yaw, 0]) @ np.diag([1.0, -1, -1])
    t = np.array([0.0, 0.02, 0.55])
    f, size = 1200.0, (480, 560)
    K = np.array([[f, 0, 239.5], [0, f, 279.5], [0, 0, 1.0]])
    img, mask = render_textured(
        V[lay.src].astype(np.float64), av.mesh.faces, av.mesh.uv, av.mesh.texture, K, R, t, size, (120, 125, 130)
    )
    lm = detect_landmarks(img, "the render")
    fit = fit_head(lm.xy, size, z=lm.z, scores=lm.blendshapes)
    case = {"V0": V0}
    err = _face_error_mm(fit, case)
    base = _face_error_mm(m.neutral, case)
    assert err.mean() < 0.9 * base.mean(), (err.mean(), base.mean())
    assert err.mean() < 4.0
    assert abs(abs(fit.yaw_deg) - yaw) < 4.0
    for n, v in truth.items():
        if n == "browInnerUp" and yaw:
            continue  # known limit: on a turned render the raised inner brows are fitted as identity
        assert abs(fit.expression[ARKIT_NAMES.index(n)] - v) < 0.35, (n, fit.expression[ARKIT_NAMES.index(n)], v)
    assert fit.expression[ARKIT_NAMES.index("eyeBlinkLeft")] < 0.3
