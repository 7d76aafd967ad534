"""GLB writer for rigged avatars: face groups as separate meshes, sparse morph targets, skin.

Read back with our reader and inspected with pygltflib; the real clients (Khronos validator,
three.js, Blender) are in test_gltf_clients.py and benchmarks/avatar_blender.py."""

from __future__ import annotations

import numpy as np
import pygltflib
import pytest

from engines.api import EngineError
from engines.io.gltf import read_glb, write_glb
from engines.types import Mesh, Skeleton
from tests.gltf_clients import JOINT_NAMES, synthetic_rig


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    m, skel = synthetic_rig()
    path = tmp_path_factory.mktemp("rig") / "rig.glb"
    write_glb([m], path, skeleton=skel, morph_weights={"jawOpen": 0.25, "notATarget": 1.0})
    return m, skel, path, pygltflib.GLTF2().load(str(path))


def _target_accessor(g, mesh, k):
    t = g.meshes[mesh].primitives[0].targets[k]
    return g.accessors[t["POSITION"] if isinstance(t, dict) else t.POSITION]


def test_groups_become_named_meshes_sharing_one_material(rig):
    m, _, _, g = rig
    assert [gm.name for gm in g.meshes] == list(m.face_groups)
    mesh_nodes = [n for n in g.nodes if n.mesh is not None]
    assert [n.name for n in mesh_nodes] == list(m.face_groups)
    assert len(g.materials) == 1 and len(g.images) == 1 and len(g.textures) == 1
    assert {p.material for gm in g.meshes for p in gm.primitives} == {0}
    names = list(m.morph_targets)
    for gm in g.meshes:  # every part answers to the same, complete, ordered list of names
        assert gm.extras["targetNames"] == names
        assert len(gm.primitives[0].targets) == len(names)
        assert gm.weights == [0.25 if k == "jawOpen" else 0.0 for k in names]


def test_group_round_trip_vertices_faces_and_morphs(rig):
    m, _, path, _ = rig
    back = {b.name: b for b in read_glb(path)}
    assert list(back) == list(m.face_groups)
    for name, fi in m.face_groups.items():
        b = back[name]
        keep = np.unique(m.faces[fi])
        np.testing.assert_allclose(b.vertices, m.vertices[keep], atol=1e-6)
        np.testing.assert_array_equal(keep[b.faces], m.faces[fi])  # remapped faces, same triangles
        np.testing.assert_allclose(b.uv, m.uv[keep], atol=1e-6)
        assert list(b.morph_targets) == list(m.morph_targets)
        for k, d in m.morph_targets.items():  # sparse and dense targets read back exactly
            np.testing.assert_array_equal(b.morph_targets[k], d[keep])
        assert b.texture.shape == m.texture.shape
        np.testing.assert_allclose(b.weights.sum(1), 1.0, atol=1e-6)


def test_mostly_zero_targets_are_sparse_with_sorted_indices(rig):
    m, _, _, g = rig
    names = list(m.morph_targets)
    eyes = [gm.name for gm in g.meshes].index("eyes")
    teeth = [gm.name for gm in g.meshes].index("teeth")
    zero = _target_accessor(g, eyes, names.index("cheekPuff"))  # zero everywhere
    assert zero.sparse is not None and zero.sparse.count == 1 and zero.bufferView is None
    assert zero.min == [0.0, 0.0, 0.0] and zero.max == [0.0, 0.0, 0.0]
    look = _target_accessor(g, eyes, names.index("eyeLookInLeft"))  # the left eye only: about half
    assert look.sparse is not None and 1 < look.sparse.count < look.count
    blob = g.binary_blob()
    bv = g.bufferViews[look.sparse.indices.bufferView]
    idx = np.frombuffer(
        blob, np.uint16 if look.sparse.indices.componentType == 5123 else np.uint32, look.sparse.count, bv.byteOffset
    )
    assert (np.diff(idx.astype(np.int64)) > 0).all()
    jaw = _target_accessor(g, teeth, names.index("jawOpen"))  # the lower teeth all move: dense
    assert jaw.sparse is None and jaw.bufferView is not None
    d = m.morph_targets["jawOpen"][np.unique(m.faces[m.face_groups["teeth"]])]
    assert jaw.min == pytest.approx(d.min(0).tolist()) and jaw.max == pytest.approx(d.max(0).tolist())


def test_skin_joints_and_inverse_bind_matrices(rig):
    m, skel, path, g = rig
    assert len(g.skins) == 1
    skin = g.skins[0]
    joint_nodes = [g.nodes[j] for j in skin.joints]
    assert [n.name for n in joint_nodes] == list(JOINT_NAMES)
    assert g.nodes[skin.skeleton].name == "Neck"
    scene_roots = g.scenes[0].nodes
    assert skin.skeleton in scene_roots
    for n in g.nodes:
        if n.mesh is not None:
            assert n.skin == 0 and g.nodes.index(n) in scene_roots
            assert not n.translation and not n.rotation and not n.scale and not n.matrix
            attrs = g.meshes[n.mesh].primitives[0].attributes
            assert g.accessors[attrs.JOINTS_0].componentType == 5121 and g.accessors[attrs.WEIGHTS_0].type == "VEC4"
    # joint world positions (chained parent-relative translations) are the skeleton's
    world = {}
    for i, jn in enumerate(skin.joints):
        p = skel.parents[i]
        world[i] = np.asarray(g.nodes[jn].translation) + (world[p] if p >= 0 else 0.0)
        assert g.nodes[jn].children == [skin.joints[c] for c in np.flatnonzero(skel.parents == i)]
    np.testing.assert_allclose(np.stack([world[i] for i in range(len(world))]), skel.positions, atol=1e-9)
    acc = g.accessors[skin.inverseBindMatrices]
    assert acc.type == "MAT4" and acc.componentType == 5126 and acc.count == len(JOINT_NAMES)
    bv = g.bufferViews[acc.bufferView]
    ibm = np.frombuffer(g.binary_blob(), np.float32, 16 * acc.count, bv.byteOffset).reshape(-1, 4, 4).transpose(0, 2, 1)
    for i in range(acc.count):  # column-major in the file; each is the inverse of the joint's rest transform
        np.testing.assert_allclose(ibm[i][:3, 3], -skel.positions[i], atol=1e-6)
        np.testing.assert_allclose(ibm[i][:3, :3], np.eye(3))


def test_skin_weights_normalised_and_joints_kept(rig):
    m, _, path, _ = rig
    back = {b.name: b for b in read_glb(path)}
    for name, fi in m.face_groups.items():
        keep = np.unique(m.faces[fi])
        w0 = m.weights[keep] / m.weights[keep].sum(1, keepdims=True)
        np.testing.assert_allclose(back[name].weights, w0, atol=1e-6)
        used = w0 > 0
        assert np.array_equal(back[name].joints[used], m.joints[keep][used])
        assert (back[name].joints[~used] == 0).all()  # unused slots point at joint 0 with weight 0


def test_unnormalised_and_empty_weights_are_fixed(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    skel = Skeleton(["root", "tip"], [-1, 0], [[0, 0, 0], [0, 1, 0]])
    m = Mesh(
        v,
        [[0, 1, 2]],
        joints=[[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]],
        weights=[[2, 0, 0, 0], [0.3, 0.3, 0, 0], [0, 0, 0, 0]],
        name="tri",
    )
    write_glb([m], tmp_path / "t.glb", skeleton=skel)
    b = read_glb(tmp_path / "t.glb")[0]
    np.testing.assert_allclose(b.weights, [[1, 0, 0, 0], [0.5, 0.5, 0, 0], [1, 0, 0, 0]], atol=1e-7)
    assert b.joints[2, 0] == 0  # an unweighted vertex follows the root
    assert b.name == "tri" and np.array_equal(b.faces, [[0, 1, 2]])


def test_without_skeleton_the_skin_is_left_out_and_plain_meshes_unchanged(tmp_path):
    m, _ = synthetic_rig()
    write_glb([m], tmp_path / "n.glb")
    g = pygltflib.GLTF2().load(str(tmp_path / "n.glb"))
    assert not g.skins and all(n.mesh is not None for n in g.nodes)
    assert g.meshes[0].primitives[0].attributes.JOINTS_0 is None


def test_faces_outside_groups_are_kept(tmp_path):
    m, skel = synthetic_rig()
    groups = dict(m.face_groups)
    del groups["tongue"]
    m.face_groups = groups
    write_glb([m], tmp_path / "r.glb", skeleton=skel)
    back = read_glb(tmp_path / "r.glb")
    assert [b.name for b in back] == ["head", "eyes", "teeth", "eyelashes", "avatar"]
    assert sum(len(b.faces) for b in back) == len(m.faces)


def test_bad_groups_and_skins_are_refused(tmp_path):
    m, skel = synthetic_rig()
    bad = Mesh(m.vertices, m.faces, face_groups={"x": [len(m.faces)]}, name="bad")
    with pytest.raises(EngineError, match="face group 'x'"):
        write_glb([bad], tmp_path / "b.glb")
    with pytest.raises(EngineError, match="joints the skeleton does not have"):
        write_glb([m], tmp_path / "b.glb", skeleton=Skeleton(["a"], [-1], [[0, 0, 0]]))
    with pytest.raises(EngineError, match="parents must come before"):
        write_glb([m], tmp_path / "b.glb", skeleton=Skeleton(["a", "b"], [1, -1], np.zeros((2, 3))))
    assert not (tmp_path / "b.glb").exists()
