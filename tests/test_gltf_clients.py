"""Our GLB files in real clients: the Khronos glTF-Validator and three.js GLTFLoader (Node).

A skinned, grouped (head/eyes/teeth/tongue/eyelashes), morph-targeted (ARKit names, sparse and
dense), textured GLB from our writer must validate with zero errors and zero warnings, and
three.js must see every part as a SkinnedMesh with the full ARKit dictionary and the joints as
bones. Skipped only when node/npm are missing (tests/gltf_clients.py installs tests/js)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.io.gltf import write_glb
from engines.types import Mesh, Skeleton
from tests.gltf_clients import JOINT_NAMES, clients_missing, issues, synthetic_rig, three_summary, validate_glb

_WHY = clients_missing()
pytestmark = pytest.mark.skipif(_WHY is not None, reason=str(_WHY))

PARTS = ["head", "eyes", "teeth", "tongue", "eyelashes"]


def _hair(skel: Skeleton) -> Mesh:
    """A vertex-coloured, unskinned extra mesh next to the rig (like hair cards)."""
    v = np.array([[0, 1.7, 0], [0.05, 1.72, 0], [0, 1.75, 0.02], [0.05, 1.76, 0.03]], np.float32)
    cols = np.array([[90, 60, 30], [90, 60, 30], [60, 40, 20], [60, 40, 20]], np.uint8)
    return Mesh(v, [[0, 1, 2], [1, 3, 2]], vertex_colors=cols, name="hair")


@pytest.fixture(scope="module")
def rig_glb(tmp_path_factory):
    m, skel = synthetic_rig()
    path = tmp_path_factory.mktemp("clients") / "rig.glb"
    write_glb([m, _hair(skel)], path, skeleton=skel, morph_weights={"jawOpen": 0.4, "eyeBlinkLeft": 1.0})
    return m, skel, path


def test_validator_finds_no_errors_or_warnings(rig_glb):
    m, skel, path = rig_glb
    rep = validate_glb(path)
    assert rep["validatorVersion"] == "2.0.0-dev.3.10"
    errors, warnings = issues(rep, 0), issues(rep, 1)
    assert rep["issues"]["numErrors"] == 0, errors
    assert rep["issues"]["numWarnings"] == 0, warnings
    assert issues(rep, 2) == [] and issues(rep, 3) == []  # no infos or hints either
    info = rep["info"]
    assert info["hasSkins"] and info["hasMorphTargets"] and info["hasTextures"]
    assert info["drawCallCount"] == len(PARTS) + 1 and info["totalTriangleCount"] == len(m.faces) + 2
    assert info["maxInfluences"] == 4
    assert [r for r in info["resources"] if r["pointer"].startswith("/images/")][0]["image"]["width"] == 64


def test_validator_on_plain_meshes():
    import tempfile
    from pathlib import Path

    from tests.test_io_mesh import _coloured, _quad_grid

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "plain.glb"
        write_glb([_quad_grid(), _coloured()], p)
        rep = validate_glb(p)
    assert rep["issues"]["numErrors"] == 0 and rep["issues"]["numWarnings"] == 0, issues(rep)


def test_three_sees_skinned_parts_with_arkit_dictionaries_and_bones(rig_glb):
    m, skel, path = rig_glb
    s = three_summary(path)
    assert s["revision"] == "187" and s["errors"] == [] and s["warnings"] == []
    meshes = {x["name"]: x for x in s["meshes"]}
    assert list(meshes) == [*PARTS, "hair"]
    names = list(m.morph_targets)
    for part in PARTS:
        x = meshes[part]
        assert x["isSkinnedMesh"] and x["bones"] == list(JOINT_NAMES)
        assert x["morphTargetDictionary"] == {k: i for i, k in enumerate(names)}
        assert x["morphTargetInfluences"] == pytest.approx(
            [{"jawOpen": 0.4, "eyeBlinkLeft": 1.0}.get(k, 0.0) for k in names]
        )
        assert x["morphAttributes"] == {"position": len(names)}
        assert {"skinIndex", "skinWeight", "uv", "normal", "position"} <= set(x["attributes"])
        assert x["hasMap"] and x["mapSize"] == [64, 32]
        assert x["vertexCount"] == len(np.unique(m.faces[m.face_groups[part]]))
    assert not meshes["hair"]["isSkinnedMesh"] and meshes["hair"]["morphTargetDictionary"] == {}
    assert "color" in meshes["hair"]["attributes"]
    assert s["bones"] == list(JOINT_NAMES) and s["skins"] == 1
    assert len(s["images"]) == 1  # one texture for all parts, decoded once
    assert s["maxRestOffset"] < 1e-6  # bind pose = rest pose: the skin moves nothing at rest


def test_three_bones_move_their_parts(rig_glb):
    _, _, path = rig_glb
    inf = three_summary(path)["boneInfluence"]
    assert inf["Jaw"]["teeth"] > 0.005 and inf["Jaw"]["tongue"] > 0.005 and inf["Jaw"]["head"] > 0.005
    assert inf["Jaw"]["eyes"] == 0 and inf["Jaw"]["eyelashes"] == 0
    assert inf["LeftEye"]["eyes"] > 0 and inf["LeftEye"]["head"] == 0
    assert all(v > 0 for v in inf["Neck"].values())  # the neck carries everything


def test_three_renames_a_joint_named_like_a_mesh(tmp_path):
    """three.js gives every object a unique name: a joint called like a mesh part (``head``) comes
    back as ``head_1``. Joint names should differ from part names (e.g. ``Head`` as on Ready
    Player Me avatars)."""
    m, skel = synthetic_rig()
    clash = Skeleton(["neck", "head", "jaw", "eyeLeft", "eyeRight"], skel.parents, skel.positions)
    write_glb([m], tmp_path / "clash.glb", skeleton=clash)
    s = three_summary(tmp_path / "clash.glb")
    assert s["meshes"][0]["name"] == "head"
    assert s["bones"] == ["neck", "head_1", "jaw", "eyeLeft", "eyeRight"]


def test_avatar_glb_with_hair_in_both_clients(tmp_path):
    """write_avatar_glb on a synthetic avatar (rigged head parts + hair cards): valid, and in
    three.js the hair is skinned too (to the head joint), so it turns with the head."""
    from engines.avatar.export import write_avatar_glb
    from tests.test_avatar_export_rig import _avatar

    av = _avatar({"happiness": 0.5})
    write_avatar_glb(av, tmp_path / "avatar.glb")
    rep = validate_glb(tmp_path / "avatar.glb")
    assert rep["issues"]["numErrors"] == 0 and rep["issues"]["numWarnings"] == 0, issues(rep)
    s = three_summary(tmp_path / "avatar.glb")
    meshes = {x["name"]: x for x in s["meshes"]}
    assert list(meshes) == [*PARTS, "hair"]
    assert all(x["isSkinnedMesh"] for x in meshes.values())
    assert "happiness" in meshes["head"]["morphTargetDictionary"]
    inf = s["boneInfluence"]
    assert inf["Head"]["hair"] > 0.005 and inf["Jaw"]["hair"] == 0
