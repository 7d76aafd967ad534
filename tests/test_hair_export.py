"""Hair in exported files: every strand becomes one ribbon card in GLB and OBJ (node/group
``hair``), and the bundle keeps the complete strands (``hair.npz``) beside them."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from engines.hair import apply_hair
from engines.hair.head import canonical_avatar
from engines.hair.mesh import CARD_WIDTH, strands_to_cards
from engines.types import Strands


@pytest.fixture(scope="module")
def dressed():
    return apply_hair(canonical_avatar(), "bob", "#6a4328")


def test_cards_keep_every_strand_and_point(dressed):
    h = dressed.hair
    S, P = h.points.shape[:2]
    m = strands_to_cards(h)
    assert m.name == "hair" and len(m.vertices) == S * P * 2 and len(m.faces) == S * (P - 1) * 2
    v = m.vertices.reshape(S, P, 2, 3)
    np.testing.assert_allclose(v.mean(2), h.points, atol=1e-6)  # centred on the strand
    width = np.linalg.norm(v[:, :, 1] - v[:, :, 0], axis=2)
    np.testing.assert_allclose(width[:, 0], CARD_WIDTH, rtol=1e-4)
    np.testing.assert_allclose(width[:, -1], 0.3 * CARD_WIDTH, rtol=1e-4)  # tapered tip
    # The card spreads across the strand, and its winding agrees with its normals.
    t = np.diff(h.points, axis=1)
    across = v[:, :-1, 1] - v[:, :-1, 0]
    cos = np.abs((t * across).sum(2)) / np.maximum(np.linalg.norm(t, axis=2) * np.linalg.norm(across, axis=2), 1e-12)
    assert np.median(cos) < 0.05
    a, b, c = (m.vertices[m.faces[:, k]] for k in range(3))
    fn = np.cross(b - a, c - a)
    assert ((fn * m.normals[m.faces[:, 0]]).sum(1) > 0).mean() > 0.99
    assert np.array_equal(m.vertex_colors.reshape(S, P * 2, 3)[:, 0], h.colors)
    sub = strands_to_cards(h, max_strands=100)
    assert len(sub.vertices) == 100 * P * 2


def test_bad_strands_are_refused():
    from engines.api import EngineError

    with pytest.raises(EngineError, match="at least 2 points"):
        strands_to_cards(Strands(np.zeros((3, 1, 3), np.float32)))
    with pytest.raises(EngineError, match="no strands with valid points"):
        strands_to_cards(Strands(np.full((2, 4, 3), np.nan, np.float32)))


def test_bundle_keeps_complete_strands_and_hair_meshes(dressed, tmp_path):
    from pygltflib import GLTF2

    from engines.avatar.export import read_avatar_bundle, write_avatar_bundle

    out = tmp_path / "a.zip"
    write_avatar_bundle(dressed, out)
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert {
            "avatar.glb",
            "avatar.obj",
            "hair.npz",
            "texture.png" if dressed.mesh.texture is not None else "avatar.json",
        } <= names
        info = {i.filename: i for i in z.infolist()}
        assert info["avatar.obj"].compress_type == zipfile.ZIP_DEFLATED
        assert info["hair.npz"].compress_type == zipfile.ZIP_STORED  # already compressed
        z.extract("avatar.glb", tmp_path)
        obj = z.read("avatar.obj").decode()
    g = GLTF2().load(str(tmp_path / "avatar.glb"))
    hair_node = next(n for n in g.nodes if n.name == "hair")
    pos = g.accessors[g.meshes[hair_node.mesh].primitives[0].attributes.POSITION]
    S, P = dressed.hair.points.shape[:2]
    assert pos.count == S * P * 2  # every strand in the GLB
    assert "o hair" in obj
    back = read_avatar_bundle(out)
    np.testing.assert_array_equal(back.hair.points, dressed.hair.points)
    np.testing.assert_array_equal(back.hair.colors, dressed.hair.colors)
