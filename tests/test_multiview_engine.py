"""The multiview engine end to end on a synthetic photo set with known cameras and shape."""

from __future__ import annotations

import numpy as np
import pytest

from engines.api import CancelToken, Cancelled, make_params
from engines.multiview import evaluate as ev
from engines.multiview.engine import MultiViewEngine
from engines.types import ImageSet, Mesh, PointCloud
from tests.test_multiview_scenes import bunny_scene, write_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    s = bunny_scene(n=24)
    s["paths"] = write_scene(s, tmp_path_factory.mktemp("bunny"))
    return s


def run(scene, **kw):
    p = make_params(MultiViewEngine, dict(max_image_size=320, texture_size=256, target_triangles=10000, **kw))
    seen = []
    r = MultiViewEngine().run([ImageSet(scene["paths"])], p, lambda f, m="": seen.append((f, m)), CancelToken())
    return r, seen


def align(scene, result):
    cc = result.metrics["camera_centers"]
    gt = -np.einsum("nji,nj->ni", scene["R"], scene["t"])[[int(n[5:8]) for n in cc]]
    err, sim = ev.camera_error(np.array(list(cc.values())), gt)
    return err, sim


@pytest.mark.slow
def test_textured_mesh_matches_the_true_shape(scene):
    r, seen = run(scene)
    size = scene["scene_size"]
    assert r.metrics["registered"] == 24 and r.metrics["total_images"] == 24
    assert r.metrics["mean_reprojection_error"] < 1.0 and r.metrics["sparse_points"] > 300
    err, sim = align(scene, r)
    assert err.max() < 0.02 * size
    mesh, points, frusta = r.items
    assert isinstance(mesh, Mesh) and isinstance(points, PointCloud) and frusta.name == "cameras"
    assert len(frusta.faces) == 24 * 6
    assert 5000 < len(mesh.faces) <= 10000
    assert mesh.texture is not None and mesh.texture.shape == (256, 256, 3) and mesh.uv is not None
    pred = ev.sample_surface(ev.apply_similarity(mesh.vertices, *sim), mesh.faces, 20000)
    q = ev.chamfer_fscore(pred, ev.sample_surface(scene["vertices"], scene["faces"], 20000), 0.01 * size)
    assert q["chamfer"] < 0.01 * size, q
    assert q["fscore"] > 0.8, q
    assert {"frames", "sfm", "depth", "fusion", "texture"} <= set(r.timings)
    fr = [f for f, _ in seen]
    assert fr == sorted(fr) and fr[-1] == 1.0  # progress only goes forward


def test_voxels_contain_the_true_shape(scene):
    r, _ = run(scene, stages="voxels", hull_resolution=64)
    assert "depth" not in r.timings and r.items[2].name == "cameras"
    _, sim = align(scene, r)
    hull_mesh, voxels, _ = r.items
    assert hull_mesh.name == "visual hull" and len(voxels.points) > 500
    # the hull (in SfM units) contains the true surface, mapped into SfM units
    s, R, t = sim
    truth = ev.sample_surface(scene["vertices"], scene["faces"], 5000)
    truth_sfm = (truth - t) @ R / s
    vox = r.metrics["voxel_size"]
    # points inside the hull mesh, or within 1.5 voxels of its surface
    import open3d as o3d

    sc = o3d.t.geometry.RaycastingScene()
    sc.add_triangles(o3d.core.Tensor(hull_mesh.vertices), o3d.core.Tensor(hull_mesh.faces.astype(np.uint32)))
    occ = sc.compute_occupancy(o3d.core.Tensor(truth_sfm.astype(np.float32))).numpy()
    dist = sc.compute_distance(o3d.core.Tensor(truth_sfm.astype(np.float32))).numpy()
    assert ((occ > 0) | (dist < 1.5 * vox)).mean() > 0.99


def test_cancel_stops_the_run(scene):
    token = CancelToken()

    def progress(f, m=""):
        if f > 0.02:  # during structure from motion
            token.set()

    p = make_params(MultiViewEngine, dict(max_image_size=320))
    with pytest.raises(Cancelled):
        MultiViewEngine().run([ImageSet(scene["paths"][:8])], p, progress, token)
    assert token.is_set()


def test_cancel_during_dense_stage_stops_inside_it(scene, monkeypatch):
    """Cancel pressed while the first depth map is being swept stops that sweep (it
    raises Cancelled part-way through the planes), not only at the next stage."""
    from engines.multiview import dense

    token = CancelToken()
    seen, swept = [], []
    real_sweep = dense.plane_sweep

    def sweep(*a, **kw):
        out = real_sweep(*a, **kw)
        swept.append(1)  # reached only when a sweep runs to the end
        return out

    monkeypatch.setattr(dense, "plane_sweep", sweep)

    def progress(f, m=""):
        seen.append(m)
        if m.startswith("Depth map 1 of"):
            token.set()

    p = make_params(MultiViewEngine, dict(max_image_size=320, stages="points"))
    with pytest.raises(Cancelled):
        MultiViewEngine().run([ImageSet(scene["paths"][:8])], p, progress, token)
    assert any(m.startswith("Depth map 1 of") for m in seen)
    assert swept == []
    assert not any(m.startswith(("Depth map 2", "Checking depth", "Fusing")) for m in seen)


def test_known_intrinsics_are_kept(scene):
    K = scene["K"][0]
    p = make_params(
        MultiViewEngine, dict(stages="cameras", max_image_size=320, focal_px=K[0, 0], cx=K[0, 2], cy=K[1, 2])
    )
    r = MultiViewEngine().run([ImageSet(scene["paths"][:12])], p, lambda f, m="": None, CancelToken())
    assert r.metrics["registered"] == 12
    assert r.metrics["focal_px"] == pytest.approx(K[0, 0], abs=0.01)
    assert any("held fixed" in n for n in r.notes)
    err, _ = align(scene, r)
    assert err.max() < 0.02 * scene["scene_size"]
