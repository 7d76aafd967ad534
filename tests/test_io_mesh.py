"""Mesh/point files: GLB (texture, morph targets), OBJ (+MTL+PNG), PLY, hair tubes."""

from pathlib import Path

import numpy as np
import pytest

from engines.api import EngineError
from engines.io import export, read
from engines.io.mesh import read_mesh, read_ply, strands_to_mesh, write_glb, write_obj, write_ply
from engines.types import Mesh, PointCloud, Strands

DATA = Path(__file__).parent / "data"


def _quad_grid(n=4, name="head"):
    ys, xs = np.mgrid[0:n, 0:n]
    v = np.stack([xs.ravel() / (n - 1), ys.ravel() / (n - 1), np.zeros(n * n)], 1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    f = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    uv = v[:, :2].copy()
    tex = np.zeros((8, 16, 3), np.uint8)
    tex[:4] = [255, 0, 0]  # top half red: v near 1
    tex[4:] = [0, 0, 255]  # bottom half blue: v near 0
    tex[0, 0] = [0, 255, 0]
    m = Mesh(v, f, uv=uv, texture=tex, name=name)
    m.compute_normals()
    rng = np.random.default_rng(0)
    m.morph_targets = {
        "smile": rng.normal(0, 0.01, (n * n, 3)).astype(np.float32),
        "blink": rng.normal(0, 0.01, (n * n, 3)).astype(np.float32),
    }
    return m


def _coloured(name="eyes"):
    v = np.array([[0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 2]], np.float32)
    cols = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], np.uint8)
    return Mesh(v, [[0, 1, 2], [1, 3, 2]], vertex_colors=cols, name=name)


def _texel(tex, u, v):
    h, w = tex.shape[:2]
    return tex[min(int((1 - v) * h), h - 1), min(int(u * w), w - 1)]


def test_glb_round_trip_texture_uv_morphs(tmp_path):
    head, eyes = _quad_grid(), _coloured()
    assert write_glb([head, eyes], tmp_path / "a.glb") == [tmp_path / "a.glb"]
    back = read_mesh(tmp_path / "a.glb")
    assert [m.name for m in back] == ["head", "eyes"]
    h, e = back
    np.testing.assert_allclose(h.vertices, head.vertices, atol=1e-6)
    assert np.array_equal(h.faces, head.faces)
    np.testing.assert_allclose(h.uv, head.uv, atol=1e-6)
    np.testing.assert_allclose(h.normals, head.normals, atol=1e-5)
    assert np.array_equal(h.texture, head.texture)
    # UV (0, 1) must address the top-left texel in both conventions
    assert np.array_equal(_texel(h.texture, 0.01, 0.99), [0, 255, 0])
    assert list(h.morph_targets) == ["smile", "blink"]
    for k in head.morph_targets:
        np.testing.assert_allclose(h.morph_targets[k], head.morph_targets[k], atol=1e-7)
    assert np.array_equal(e.vertex_colors[:, :3], eyes.vertex_colors)


def test_glb_json_layout_matches_gltf_conventions(tmp_path):
    import pygltflib

    write_glb(_quad_grid(), tmp_path / "a.glb")
    g = pygltflib.GLTF2().load(str(tmp_path / "a.glb"))
    mesh = g.meshes[0]
    assert mesh.extras == {"targetNames": ["smile", "blink"]}
    assert len(mesh.primitives[0].targets) == 2 and mesh.weights == [0.0, 0.0]
    assert g.nodes[0].name == "head"
    img = g.images[0]
    assert img.mimeType == "image/png" and img.bufferView is not None  # embedded
    # glTF stores V flipped: vertex 0 has OBJ-style v=0, so its glTF v is 1
    acc = g.accessors[mesh.primitives[0].attributes.TEXCOORD_0]
    bv = g.bufferViews[acc.bufferView]
    uv = np.frombuffer(g.binary_blob()[bv.byteOffset : bv.byteOffset + bv.byteLength], np.float32).reshape(-1, 2)
    assert uv[0, 1] == pytest.approx(1.0)
    # trimesh (a different reader) agrees on the geometry
    import trimesh

    scene = trimesh.load(tmp_path / "a.glb")
    (tm,) = scene.geometry.values()
    assert len(tm.vertices) == 16
    np.testing.assert_allclose(tm.visual.uv, _quad_grid().uv, atol=1e-6)  # trimesh flips V back too


def test_obj_round_trip_with_mtl_png_named_after_stem(tmp_path):
    head, eyes = _quad_grid(), _coloured()
    paths = write_obj([head, eyes], tmp_path / "avatar.obj")
    assert {p.name for p in paths} == {"avatar.obj", "avatar.mtl", "avatar_texture.png"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avatar.mtl", "avatar.obj", "avatar_texture.png"]
    assert "map_Kd avatar_texture.png" in (tmp_path / "avatar.mtl").read_text()
    h, e = read_mesh(tmp_path / "avatar.obj")
    assert (h.name, e.name) == ("head", "eyes")
    np.testing.assert_allclose(h.vertices, head.vertices, atol=1e-6)
    assert np.array_equal(h.faces, head.faces)
    np.testing.assert_allclose(h.uv, head.uv, atol=1e-6)
    assert np.array_equal(h.texture, head.texture)
    np.testing.assert_allclose(e.vertices, eyes.vertices, atol=1e-6)
    assert np.array_equal(e.faces, eyes.faces)
    assert np.array_equal(e.vertex_colors, eyes.vertex_colors)


def test_obj_two_textures_and_foreign_obj(tmp_path):
    a, b = _quad_grid(name="a"), _quad_grid(name="b")
    b.texture = b.texture[::-1].copy()
    paths = write_obj([a, b], tmp_path / "x.obj")
    assert {p.name for p in paths} == {"x.obj", "x.mtl", "x_texture_a.png", "x_texture_b.png"}
    ra, rb = read_mesh(tmp_path / "x.obj")
    assert np.array_equal(rb.texture, b.texture) and np.array_equal(ra.texture, a.texture)
    # A hand-written OBJ with a quad, negative indices and separate uv indices
    (tmp_path / "q.obj").write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 1\nf -4/1 -3/1 -2/2 -1/2\n")
    q = read_mesh(tmp_path / "q.obj")
    assert len(q.faces) == 2 and len(q.vertices) == 4
    area = (
        0.5
        * np.linalg.norm(
            np.cross(
                q.vertices[q.faces[:, 1]] - q.vertices[q.faces[:, 0]],
                q.vertices[q.faces[:, 2]] - q.vertices[q.faces[:, 0]],
            ),
            axis=1,
        ).sum()
    )
    assert area == pytest.approx(1.0)


def test_ply_mesh_and_points_round_trip(tmp_path):
    eyes = _coloured()
    eyes.compute_normals()
    write_ply(eyes, tmp_path / "m.ply")
    m = read_ply(tmp_path / "m.ply")
    assert isinstance(m, Mesh)
    np.testing.assert_allclose(m.vertices, eyes.vertices)
    assert np.array_equal(m.faces, eyes.faces) and np.array_equal(m.vertex_colors, eyes.vertex_colors)
    np.testing.assert_allclose(m.normals, eyes.normals, atol=1e-6)
    rng = np.random.default_rng(3)
    pc = PointCloud(rng.normal(size=(500, 3)), rng.integers(0, 256, (500, 3)), rng.normal(size=(500, 3)))
    assert export(pc, tmp_path / "p.ply") == [tmp_path / "p.ply"]
    back = read(tmp_path / "p.ply")
    assert isinstance(back, PointCloud)
    np.testing.assert_allclose(back.points, pc.points)
    assert np.array_equal(back.colors, pc.colors)
    np.testing.assert_allclose(back.normals, pc.normals)
    # open3d, an independent reader, sees the same points and colours
    import open3d as o3d

    o = o3d.io.read_point_cloud(str(tmp_path / "p.ply"))
    np.testing.assert_allclose(np.asarray(o.points), pc.points, atol=1e-6)
    np.testing.assert_allclose(np.asarray(o.colors) * 255, pc.colors, atol=0.5)


def test_real_ascii_ply_scan():
    m = read_ply(DATA / "airplane.ply")
    assert isinstance(m, Mesh) and m.vertices.shape == (1335, 3) and m.faces.shape == (2452, 3)
    assert m.faces.max() < 1335
    assert m.vertices[0] == pytest.approx([896.994, 48.7601, 82.2656])


def test_strands_to_mesh_tubes():
    t = np.linspace(0, 1, 8)
    s1 = np.stack([np.zeros(8), -0.1 * t, np.zeros(8)], 1)  # straight down
    s2 = np.stack([0.05 * np.cos(3 * t), 0.05 * np.sin(3 * t), 0.1 * t], 1)  # curl
    strands = Strands(np.stack([s1, s2]), np.array([[200, 150, 50], [20, 20, 20]], np.uint8))
    m = strands_to_mesh(strands, radius=0.001, sides=4, taper=1.0)
    assert m.vertices.shape == (2 * 8 * 4, 3) and m.faces.shape == (2 * 7 * 4 * 2, 3)
    # every tube vertex lies at the radius from its strand point
    ring = m.vertices.reshape(2, 8, 4, 3)
    dist = np.linalg.norm(ring - strands.points[:, :, None], axis=3)
    np.testing.assert_allclose(dist, 0.001, rtol=1e-4)
    assert np.array_equal(m.vertex_colors[0], [200, 150, 50]) and np.array_equal(m.vertex_colors[-1], [20, 20, 20])
    # faces point outwards: face normal . (centroid - axis point) > 0 for the straight strand
    v, f = m.vertices, m.faces[: 7 * 4]
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    cen = v[f].mean(1)
    radial = cen.copy()  # the straight strand runs along y through x = z = 0
    radial[:, 1] = 0
    assert (np.einsum("ij,ij->i", fn, radial) > 0).all()


def test_bad_mesh_files(tmp_path):
    (tmp_path / "bad.glb").write_bytes(b"glTF\x02\x00\x00\x00garbage")
    (tmp_path / "bad.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n"
        "property float y\nproperty float z\nend_header\n0 0 0\n1 1\n"
    )
    (tmp_path / "empty.obj").write_text("# nothing\n")
    (tmp_path / "bad.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 9\n")
    for name in ("bad.glb", "bad.ply", "empty.obj", "bad.obj", "missing.obj"):
        with pytest.raises(EngineError) as e:
            read(tmp_path / name) if name.endswith(".ply") else read_mesh(tmp_path / name)
        assert name in str(e.value)
    with pytest.raises(EngineError):
        write_glb(Mesh(np.zeros((0, 3)), np.zeros((0, 3))), tmp_path / "e.glb")
    assert not (tmp_path / "e.glb").exists()


def test_reads_glb_from_another_writer_with_node_transforms(tmp_path):
    import trimesh

    scene = trimesh.Scene()
    box = trimesh.creation.box(extents=(1, 2, 3))
    tf = trimesh.transformations.rotation_matrix(0.7, [0, 1, 0])
    tf[:3, 3] = [5, 0, -2]
    scene.add_geometry(box, node_name="box", transform=tf)
    scene.export(tmp_path / "t.glb")
    m = read_mesh(tmp_path / "t.glb")
    expected = trimesh.transform_points(box.vertices, tf)
    assert m.name == "box" and len(m.faces) == 12
    # same set of corner positions (the exporter may reorder vertices)
    d = np.linalg.norm(m.vertices[:, None] - expected[None], axis=2).min(1)
    assert d.max() < 1e-5
    assert m.bounds[0] == pytest.approx(expected.min(0), abs=1e-5)
