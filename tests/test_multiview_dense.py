"""Plane-sweep depth, consistency filtering, TSDF/Poisson fusion and texture baking with
known cameras (engines/multiview/dense.py, fusion.py, texture.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.api import EngineError
from engines.multiview import dense, fusion, texture
from engines.multiview import evaluate as ev
from engines.multiview.sfm import Cameras
from engines.types import DepthMap, Mesh
from tests.test_multiview_scenes import bunny_scene, solid_texture


@pytest.fixture(scope="module")
def scene():
    return bunny_scene(n=24)


def _cams(scene, idx):
    names = [f"v{i:03d}" for i in idx]
    return Cameras(names, scene["K"][idx], scene["R"][idx], scene["t"][idx], [scene["size"]] * len(idx))


def gt_depth(scene, K, R, t, size):
    """Ground-truth depth (z) by ray casting the true mesh."""
    import open3d as o3d

    w, h = size
    sc = o3d.t.geometry.RaycastingScene()
    sc.add_triangles(
        o3d.core.Tensor(scene["vertices"].astype(np.float32)), o3d.core.Tensor(scene["faces"].astype(np.uint32))
    )
    ys, xs = np.mgrid[0:h, 0:w]
    d = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones((h, w))], -1) @ R
    C = -R.T @ t
    rays = np.concatenate([np.broadcast_to(C, d.shape), d], -1).astype(np.float32)
    return sc.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()  # z = t since d has z = 1


@pytest.fixture(scope="module")
def depth_maps(scene):
    idx = list(range(12))
    cams = _cams(scene, idx)
    images = {n: scene["images"][i] for n, i in zip(cams.names, idx)}
    return cams, dense.compute_depth_maps(images, cams, scene["vertices"], max_size=320, n_planes=48)


def test_plane_sweep_depth_matches_truth(scene, depth_maps):
    import cv2

    cams, maps = depth_maps
    size = scene["scene_size"]
    errs, cover = [], []
    for m in maps:
        g = gt_depth(scene, m.K, m.R, m.t, scene["size"])
        ok = np.isfinite(m.depth) & np.isfinite(g)
        errs.append(np.abs(m.depth[ok] - g[ok]))
        cover.append(ok.sum() / np.isfinite(g).sum())
        # depth is only reported on the object (give or take 3 px), not on the background
        near = cv2.dilate(np.isfinite(g).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        assert (np.isfinite(m.depth) & ~near).sum() < 0.01 * np.isfinite(g).sum()
    e = np.concatenate(errs)
    assert np.median(e) < 0.005 * size
    assert np.percentile(e, 95) < 0.02 * size
    assert np.median(cover) > 0.4


def test_consistency_filter_rejects_disagreeing_depth(depth_maps):
    cams, maps = depth_maps
    nb = dense.select_neighbors(cams, 5, 4)
    good = dense.consistency_mask(5, maps, nb)
    valid = np.isfinite(maps[5].depth)
    assert good[valid].mean() > 0.9  # already filtered once: nearly all pass again
    wrong = [
        dense.ViewDepth(m.name, m.depth * (1.05 if i == 5 else 1.0), m.score, m.K, m.R, m.t, m.rgb)
        for i, m in enumerate(maps)
    ]
    bad = dense.consistency_mask(5, wrong, nb)
    assert bad[valid].mean() < 0.1


def _depth_results(scene, idx):
    dms, poses = [], []
    for i in idx:
        K, R, t = scene["K"][i], scene["R"][i], scene["t"][i]
        g = gt_depth(scene, K, R, t, scene["size"]).astype(np.float32)
        g[~np.isfinite(g)] = np.nan
        dms.append(DepthMap(g, intrinsics=K, image=scene["images"][i], name=f"d{i}"))
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R.T, -R.T @ t  # camera-to-world
        poses.append(T)
    return dms, poses


def test_fuse_depth_map_results(scene):
    dms, poses = _depth_results(scene, range(0, 24, 2))
    mesh, points = fusion.fuse_depth_maps(dms, poses, voxel=0.006)
    gt = ev.sample_surface(scene["vertices"], scene["faces"], 20000)
    q = ev.chamfer_fscore(ev.sample_surface(mesh.vertices, mesh.faces, 20000), gt, 0.01 * scene["scene_size"])
    assert q["chamfer"] < 0.01 * scene["scene_size"]
    assert q["precision"] > 0.95
    assert mesh.vertex_colors is not None and mesh.vertex_colors.std() > 20  # colours came through
    assert len(points.points) > 1000


def test_poisson_and_decimation(scene):
    dms, poses = _depth_results(scene, range(0, 24, 3))
    mesh, _ = fusion.fuse_depth_maps(dms, poses, voxel=0.008, surface="poisson", target_triangles=3000)
    assert 1000 < len(mesh.faces) <= 3000
    q = ev.chamfer_fscore(
        ev.sample_surface(mesh.vertices, mesh.faces, 20000),
        ev.sample_surface(scene["vertices"], scene["faces"], 20000),
        0.01 * scene["scene_size"],
    )
    assert q["chamfer"] < 0.015 * scene["scene_size"]


def test_fuse_bad_input(scene):
    dms, poses = _depth_results(scene, [0, 1])
    with pytest.raises(EngineError, match="one pose per depth map"):
        fusion.fuse_depth_maps(dms, poses[:1])
    empty = [DepthMap(np.full((10, 10), np.nan, np.float32))]
    with pytest.raises(EngineError, match="no valid depth"):
        fusion.fuse_depth_maps(empty, [np.eye(4)])


def test_texture_takes_colours_from_the_photos(scene):
    from engines.types import Mesh

    mesh = Mesh(scene["vertices"], scene["faces"])
    photos = [(scene["images"][i], scene["K"][i], scene["R"][i], scene["t"][i]) for i in range(24)]
    out = texture.bake_texture(mesh, photos, size=512)
    assert out.texture.shape == (512, 512, 3) and out.uv.shape == (len(out.vertices), 2)
    assert out.uv.min() >= 0 and out.uv.max() <= 1
    # colour at each face centre (through its uv) against the true procedural colour
    c3 = out.vertices[out.faces].mean(1)
    uvc = out.uv[out.faces].mean(1)
    px = texture.bilinear(out.texture, uvc[:, 0] * 511, (1 - uvc[:, 1]) * 511)
    truth = solid_texture(c3, float(np.linalg.norm(np.ptp(scene["vertices"], axis=0))))
    seen = c3[:, 1] > np.percentile(scene["vertices"][:, 1], 10)  # skip the unseen underside
    err = np.abs(px[seen] - truth[seen].astype(np.float32)).mean()
    assert err < 25, err
    # a texture with shuffled colours would be far off
    assert np.abs(px[seen] - np.roll(truth[seen], 50, axis=0)).mean() > 2 * err


def test_photo_gains_level_a_darker_photo(scene):
    """One photo 30 % darker: its fitted gain brings it back to the others."""
    photos = [(scene["images"][i], scene["K"][i], scene["R"][i], scene["t"][i]) for i in range(12)]
    dark = (photos[3][0].astype(np.float32) * 0.7).astype(np.uint8)
    photos[3] = (dark,) + photos[3][1:]
    V, F = scene["vertices"], scene["faces"]
    W = texture.view_weights(V, F, photos)
    assert (W > 0).sum(1).max() >= 3 and (W[:, 3] > 0).sum() > 500
    g = texture.photo_gains(V[F].mean(1), W, photos)
    rel = g[3] / np.median(np.delete(g, 3, 0), axis=0)
    assert np.allclose(rel, 1 / 0.7, rtol=0.06), rel
    others = np.delete(g, 3, 0)
    assert np.abs(others / np.median(others, 0) - 1).max() < 0.05


def test_drop_rims_cuts_silhouettes_not_small_holes():
    keep = np.zeros((100, 100), bool)
    keep[20:80, 20:80] = True  # an object against an empty background
    keep[50, 50] = False  # a one-pixel hole inside it
    out = dense._drop_rims(keep, rim=3)
    assert not out[20:23, 40].any() and out[24, 40]  # 3 px eaten at the silhouette
    assert not out[49, 50] and out[48, 50]  # 1 px around the small hole
    assert out[30:70, 30:70].sum() == 40 * 40 - 9  # interior otherwise untouched


def test_fusion_and_texture_stop_on_cancel(scene):
    """TSDF integration and texture baking check the cancel token inside their loops."""
    from engines.api import CancelToken, Cancelled

    token = CancelToken()
    token.set()
    K, R, t = scene["K"][0], scene["R"][0], scene["t"][0]
    T = np.vstack([np.hstack([R, t[:, None]]), [0, 0, 0, 1]])
    depth = np.ones(scene["images"][0].shape[:2], np.float32)
    with pytest.raises(Cancelled):
        fusion.tsdf_fuse([(depth, scene["images"][0], K, T)], 0.05, cancel=token)
    mesh = Mesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float64), np.array([[0, 1, 2]]))
    with pytest.raises(Cancelled):
        texture.bake_texture(mesh, [(scene["images"][0], K, R, t)], 256, cancel=token)
