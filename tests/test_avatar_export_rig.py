"""Avatar export of a rigged, grouped head (synthetic, no photo or model needed): the GLB's
skeleton, parts and default weights, hair following the head joint, and the bundle giving
back the head as one Mesh with its groups, skin and skeleton."""

from __future__ import annotations

import numpy as np
import pygltflib
import pytest

from engines.types import Avatar, Strands
from tests.gltf_clients import JOINT_NAMES, synthetic_rig


def _avatar(emotions=None) -> Avatar:
    m, skel = synthetic_rig(name="head")
    m.morph_targets["happiness"] = 0.5 * m.morph_targets["jawOpen"] + m.morph_targets["browInnerUp"]
    top = m.vertices[m.vertices[:, 1] > 1.68][:20]
    hair = Strands(
        top[:, None, :] + np.linspace(0, 0.04, 5)[None, :, None] * [0, 1, 0.2], np.full((len(top), 3), 70, np.uint8)
    )
    return Avatar(
        mesh=m,
        skeleton=skel,
        emotions=emotions or {"happiness": 0.0},
        hair=hair,
        expression={"jawOpen": 0.2, "eyeBlinkLeft": 0.5, "notATarget": 1.0},
        presets={"As photographed": {"jawOpen": 0.2}},
        scalp=np.arange(10),
        camera={"K": np.eye(3), "R": np.eye(3), "t": np.zeros(3), "image_size": (64, 64)},
    )


def test_current_morph_weights_are_expression_plus_emotions():
    from engines.avatar.export import current_morph_weights

    av = _avatar({"happiness": 0.6, "anger": 0.3})  # anger is not a target of this head
    assert current_morph_weights(av) == pytest.approx({"jawOpen": 0.2, "eyeBlinkLeft": 0.5, "happiness": 0.6})
    av.expression["happiness"] = 0.1
    assert current_morph_weights(av)["happiness"] == pytest.approx(0.7)


def test_avatar_glb_has_parts_skin_weights_and_hair_on_the_head_joint(tmp_path):
    from engines.avatar.export import write_avatar_glb

    av = _avatar({"happiness": 0.6})
    assert write_avatar_glb(av, tmp_path / "a.glb") == [tmp_path / "a.glb"]
    g = pygltflib.GLTF2().load(str(tmp_path / "a.glb"))
    assert [gm.name for gm in g.meshes] == [*av.mesh.face_groups, "hair"]
    assert [g.nodes[j].name for j in g.skins[0].joints] == list(JOINT_NAMES)
    names = list(av.mesh.morph_targets)
    want = {"jawOpen": 0.2, "eyeBlinkLeft": 0.5, "happiness": 0.6}
    for gm in g.meshes[:-1]:
        assert gm.extras["targetNames"] == names and gm.weights == pytest.approx([want.get(k, 0.0) for k in names])
    hair_node = next(n for n in g.nodes if n.name == "hair")
    assert hair_node.skin == 0  # the hair turns with the head
    from engines.io.gltf import read_glb

    hair = next(m for m in read_glb(tmp_path / "a.glb") if m.name == "hair")
    assert (hair.joints[:, 0] == list(JOINT_NAMES).index("Head")).all() and (hair.weights[:, 0] == 1).all()


def test_bundle_gives_back_one_head_with_groups_skin_and_skeleton(tmp_path):
    from engines.avatar.export import read_avatar_bundle, write_avatar_bundle

    av = _avatar()
    write_avatar_bundle(av, tmp_path / "b.zip")
    back = read_avatar_bundle(tmp_path / "b.zip")
    m, b = av.mesh, back.mesh
    assert b.name == "head"
    np.testing.assert_allclose(b.vertices, m.vertices, atol=1e-6)
    np.testing.assert_array_equal(b.faces, m.faces)
    np.testing.assert_allclose(b.uv, m.uv, atol=1e-6)
    assert list(b.face_groups) == list(m.face_groups)
    for k in m.face_groups:
        np.testing.assert_array_equal(b.face_groups[k], m.face_groups[k])
    assert list(b.morph_targets) == list(m.morph_targets)
    for k in m.morph_targets:
        np.testing.assert_array_equal(b.morph_targets[k], m.morph_targets[k])
    np.testing.assert_allclose(b.weights, m.weights / m.weights.sum(1, keepdims=True), atol=1e-6)
    used = m.weights > 0
    np.testing.assert_array_equal(b.joints[used], m.joints[used])
    assert back.skeleton.names == av.skeleton.names
    np.testing.assert_array_equal(back.skeleton.parents, av.skeleton.parents)
    np.testing.assert_allclose(back.skeleton.positions, av.skeleton.positions)
    assert back.expression == pytest.approx(av.expression) and back.presets == av.presets
    assert back.hair is not None and [e.name for e in back.extra_meshes] == []
