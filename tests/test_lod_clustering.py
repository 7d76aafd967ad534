"""The viewport's motion stand-ins (app.lod): normal-aware vertex clustering keeps the two
sides of a thin part apart (an avatar's lips and the mouth socket behind them collapsed into
one sheet showing the dark socket in front of the face while the view moved)."""

from __future__ import annotations

import numpy as np

from app import lod
from engines.types import vertex_normals


def _grid_sheet(n: int, z: float, flip: bool):
    """An n x n grid of vertices at height z, triangulated; facing +z (or -z flipped)."""
    u, v = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    verts = np.column_stack([u.ravel(), v.ravel(), np.full(n * n, z)])
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])])
    if flip:
        faces = faces[:, ::-1]
    return verts, faces


def _slab(n: int = 80, gap: float = 0.002):
    """Two sheets 2 mm apart facing away from each other: a thin two-sided part."""
    v1, f1 = _grid_sheet(n, 0.0, flip=True)  # faces -z
    v2, f2 = _grid_sheet(n, gap, flip=False)  # faces +z
    return np.concatenate([v1, v2]), np.concatenate([f1, f2 + len(v1)])


def test_normal_classes_are_the_nearest_axis_direction():
    n = np.array([[0, 0, 1], [0, 0, -1], [0.9, 0.1, 0.1], [-0.2, -0.9, 0.3]], float)
    assert lod.normal_class(n).tolist() == [4, 5, 0, 3]


def test_clustering_with_normals_keeps_the_two_sides_of_a_thin_part_apart():
    verts, faces = _slab()
    normals = vertex_normals(verts, faces)
    top = verts[:, 2] > 0.001
    plain = lod.cluster_mesh(verts, faces, target_faces=2000)
    aware = lod.cluster_mesh(verts, faces, target_faces=2000, normals=normals)
    assert plain is not None and aware is not None
    for _cluster, n, f in (plain, aware):
        assert 0.4 * 2000 < len(f) < 2.5 * 2000  # near the budget
        assert f.max() < n
    # without normals a cell holds vertices of both sheets (they are closer than a cell)
    c_plain = plain[0]
    mixed_plain = np.intersect1d(c_plain[top], c_plain[~top]).size
    assert mixed_plain > 0.5 * len(np.unique(c_plain))
    # with them no stand-in vertex mixes the sheets, and each side keeps its own triangles
    c_aware, _, f_aware = aware
    assert np.intersect1d(c_aware[top], c_aware[~top]).size == 0
    top_clusters = set(np.unique(c_aware[top]).tolist())
    tri_top = np.array([all(int(i) in top_clusters for i in t) for t in f_aware])
    assert 0.3 < tri_top.mean() < 0.7
    # a stand-in vertex stays on its own sheet: the cluster means are at z = 0 or z = gap
    z = lod.cluster_mean(verts, c_aware, aware[1])[:, 2]
    assert np.all((np.abs(z) < 1e-9) | (np.abs(z - 0.002) < 1e-9))
