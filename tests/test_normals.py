"""One vertex-normal implementation (issue 16 item 5): the one-shot function, the per-frame
VertexNormals and Mesh.compute_normals agree, and on a sphere they point outwards."""

from __future__ import annotations

import numpy as np

from engines.types import Mesh, VertexNormals, vertex_normals


def _sphere(n_lat=24, n_lon=48, r=2.0):
    lat = np.linspace(0.05, np.pi - 0.05, n_lat)
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    th, ph = np.meshgrid(lat, lon, indexing="ij")
    v = r * np.stack([np.sin(th) * np.cos(ph), np.cos(th), np.sin(th) * np.sin(ph)], -1).reshape(-1, 3)
    idx = np.arange(n_lat * n_lon).reshape(n_lat, n_lon)
    a, b = idx[:-1], np.roll(idx, -1, axis=1)[:-1]
    c, d = idx[1:], np.roll(idx, -1, axis=1)[1:]
    f = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)])
    return v, f


def test_normals_of_a_sphere_point_outwards():
    v, f = _sphere()
    n = vertex_normals(v, f)
    radial = v / np.linalg.norm(v, axis=1, keepdims=True)
    # winding chosen so that the face normals point out; the flip test below checks the sign
    if np.mean(np.einsum("ij,ij->i", n, radial)) < 0:
        f = f[:, ::-1]
        n = vertex_normals(v, f)
    assert n.dtype == np.float32 and np.allclose(np.linalg.norm(n, axis=1), 1, atol=1e-5)
    assert np.einsum("ij,ij->i", n, radial).min() > 0.99
    flipped = vertex_normals(v, f[:, ::-1])
    assert np.allclose(flipped, -n, atol=1e-6)


def test_the_three_entry_points_agree():
    v, f = _sphere()
    rng = np.random.default_rng(0)
    v = v + rng.normal(0, 0.02, v.shape)  # not a sphere any more: area weighting matters
    one = vertex_normals(v, f)
    per_frame = VertexNormals(f, len(v))(v)
    m = Mesh(v, f)  # stores float32 vertices
    assert np.abs(one - per_frame).max() < 1e-4
    assert np.abs(m.compute_normals() - vertex_normals(m.vertices, f)).max() < 1e-6


def test_area_weighting():
    """A vertex shared by a large triangle facing +z and a small one facing +x leans to +z."""
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, -1], [0, 1, 0]], float)
    f = np.array([[0, 1, 2], [0, 3, 4]])
    n = vertex_normals(v, f)[0]
    assert n[2] > 0.99 and 0 < abs(n[0]) < 0.02
