"""Avatar export: GLB morph targets and texture (read back with pygltflib), OBJ of the current
expression, the .zip bundle round trip, path traversal in bundles, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from engines.api import CancelToken, EngineError, no_progress
from engines.types import Image, Strands

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
EMOTIONS = ["happiness", "anger", "sadness", "fear", "contempt", "surprise"]


@pytest.fixture(scope="module")
def avatar():
    from engines.avatar.engine import AvatarEngine

    img = Image(np.asarray(PILImage.open(DATA / "grace_hopper.jpg").convert("RGB")), path=DATA / "grace_hopper.jpg")
    av = AvatarEngine().run([img], AvatarEngine.Params(), no_progress, CancelToken()).main
    av.emotions["happiness"] = 0.6
    return av


@pytest.fixture(scope="module")
def good_bundle(avatar, tmp_path_factory):
    from engines.avatar.export import write_avatar_bundle

    path = tmp_path_factory.mktemp("bundle") / "good.zip"
    write_avatar_bundle(avatar, path)
    return path


def read_glb(path):
    """(gltf, {node name: (positions, target names, target arrays, weights)}) via pygltflib."""
    import pygltflib

    g = pygltflib.GLTF2().load_binary(str(path))
    blob = g.binary_blob()

    def arr(i, comps):
        acc = g.accessors[i]
        out = np.zeros((acc.count, comps), np.float32)
        if acc.bufferView is not None:
            bv = g.bufferViews[acc.bufferView]
            start = (bv.byteOffset or 0) + (acc.byteOffset or 0)
            out = np.frombuffer(blob, np.float32, acc.count * comps, start).reshape(acc.count, comps).copy()
        sp = acc.sparse
        if sp is not None:  # sparse morph targets (glTF 2.0 3.6.2.3): rows replaced in zeros
            it = np.uint16 if sp.indices.componentType == 5123 else np.uint32
            idx = np.frombuffer(
                blob, it, sp.count, g.bufferViews[sp.indices.bufferView].byteOffset + (sp.indices.byteOffset or 0)
            )
            out[idx] = np.frombuffer(
                blob,
                np.float32,
                sp.count * comps,
                g.bufferViews[sp.values.bufferView].byteOffset + (sp.values.byteOffset or 0),
            ).reshape(-1, comps)
        return out

    out = {}
    for node in g.nodes:
        if node.mesh is None:  # a joint
            continue
        gm = g.meshes[node.mesh]
        prim = gm.primitives[0]
        names = (gm.extras or {}).get("targetNames", [])
        targets = [arr(t["POSITION"] if isinstance(t, dict) else t.POSITION, 3) for t in (prim.targets or [])]
        out[node.name] = (arr(prim.attributes.POSITION, 3), names, targets, gm.weights)
    return g, out


def test_glb_has_named_morph_targets_texture_and_metres(avatar, tmp_path):
    from engines.avatar.export import write_avatar_glb

    path = tmp_path / "a.glb"
    assert write_avatar_glb(avatar, path) == [path]
    g, nodes = read_glb(path)
    pos, names, targets, weights = nodes["head"]
    m = avatar.mesh
    # with face groups the "head" node holds the head group's vertices only
    keep = np.unique(m.faces[m.face_groups["head"]]) if m.face_groups else np.arange(len(m.vertices))
    assert len(pos) == len(keep)
    assert set(EMOTIONS) <= set(names) and "jawOpen" in names and len(names) >= 26
    assert len(targets) == len(names)
    assert np.allclose(targets[names.index("happiness")], m.morph_targets["happiness"][keep])
    assert weights[names.index("happiness")] == pytest.approx(0.6)
    size = pos.max(0) - pos.min(0)
    assert 0.12 < size[0] < 0.3 and 0.15 < size[1] < 0.4  # a head in metres
    assert len(g.images) >= 1 and g.materials[0].pbrMetallicRoughness.baseColorTexture is not None


def test_glb_includes_hair_node(avatar, tmp_path):
    from engines.avatar.export import write_avatar_glb

    hairy = type(avatar)(**{**avatar.__dict__})
    pts = avatar.mesh.vertices[avatar.scalp[:50]]
    hairy.hair = Strands(pts[:, None, :] + np.linspace(0, 0.05, 6)[None, :, None] * [0, 1, 0])
    _, nodes = read_glb(tmp_path / "h.glb") if write_avatar_glb(hairy, tmp_path / "h.glb") else (None, {})
    assert "hair" in nodes and "head" in nodes


def test_obj_is_the_current_expression(avatar, tmp_path):
    from engines.avatar.engine import Deformer
    from engines.avatar.export import write_avatar_obj

    files = write_avatar_obj(avatar, tmp_path / "now.obj")
    assert {p.suffix for p in files} == {".obj", ".mtl", ".png"}
    v = np.array(
        [
            [float(x) for x in ln.split()[1:4]]
            for ln in (tmp_path / "now.obj").read_text().splitlines()
            if ln.startswith("v ")
        ]
    )
    expected = Deformer(avatar).vertices(avatar.emotions)
    assert len(v) == len(expected)
    assert np.abs(v - expected).max() < 2e-6
    assert np.abs(v - avatar.mesh.vertices).max() > 0.002  # the smile is in the file
    assert "map_Kd" in (tmp_path / "now.mtl").read_text()


def test_bundle_round_trip(avatar, tmp_path):
    from engines.avatar.export import read_avatar_bundle, write_avatar_bundle
    from engines.io import export, read

    path = tmp_path / "bundle.zip"
    assert export(avatar, path) == [path]
    names = set(zipfile.ZipFile(path).namelist())
    assert {"avatar.glb", "avatar.obj", "avatar.mtl", "avatar_texture.png", "texture.png", "avatar.json"} <= names
    meta = json.loads(zipfile.ZipFile(path).read("avatar.json"))
    assert meta["emotions"]["happiness"] == pytest.approx(0.6) and meta["params"]["ipd_mm"] == 63.0
    back = read(path)
    assert back.emotions == pytest.approx(avatar.emotions)
    assert np.allclose(back.mesh.vertices, avatar.mesh.vertices, atol=1e-6)
    assert set(back.mesh.morph_targets) == set(avatar.mesh.morph_targets)
    assert back.mesh.texture.shape[:2] == avatar.mesh.texture.shape[:2]
    assert np.array_equal(back.scalp, avatar.scalp)
    assert np.allclose(back.camera["K"], avatar.camera["K"])
    assert back.photo.shape == avatar.photo.shape  # the side-by-side works after reopening
    assert read_avatar_bundle is not None and write_avatar_bundle is not None


@pytest.mark.parametrize("evil", ["../evil.txt", "/etc/evil", "a/../../evil", "C:evil", "..\\evil"])
def test_bundle_with_path_traversal_is_refused(good_bundle, tmp_path, evil):
    from engines.avatar.export import read_avatar_bundle

    good = good_bundle
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for n in src.namelist():
            dst.writestr(n, src.read(n))
        dst.writestr(evil, b"x")
    with pytest.raises(EngineError, match="unsafe"):
        read_avatar_bundle(bad)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_not_a_bundle(tmp_path):
    from engines.avatar.export import read_avatar_bundle

    p = tmp_path / "x.zip"
    p.write_bytes(b"not a zip")
    with pytest.raises(EngineError, match="not a readable avatar bundle"):
        read_avatar_bundle(p)
    with zipfile.ZipFile(tmp_path / "y.zip", "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(EngineError, match="not an avatar bundle"):
        read_avatar_bundle(tmp_path / "y.zip")


def test_cli_writes_glb_and_reports_json(tmp_path):
    out = tmp_path / "cli.glb"
    r = subprocess.run(
        [
            sys.executable,
            "main.py",
            "run",
            "avatar",
            "--input",
            str(DATA / "astronaut.png"),
            "--out",
            str(out),
            "--set",
            "happiness=0.8",
            "--set",
            "measure_quality=true",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    text = json.dumps(rep)
    assert "reprojection_error_pct_iod" in text and "psnr_face_db" in text
    _, nodes = read_glb(out)
    pos, names, targets, weights = nodes["head"]
    assert weights[names.index("happiness")] == pytest.approx(0.8)


def test_cli_no_face_exits_2(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "main.py",
            "run",
            "avatar",
            "--input",
            str(DATA / "resized_IMG_2889.jpg"),
            "--out",
            str(tmp_path / "x.glb"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "No face found" in r.stderr
    assert not (tmp_path / "x.glb").exists()


def test_real_avatar_glb_in_the_validator_and_three(avatar, tmp_path):
    """The avatar from a real portrait: zero validator errors, and three.js sees every part
    as a skinned mesh whose morphTargetDictionary has the 52 ARKit names and the emotions,
    driven by the RPM-style bones."""
    from tests.gltf_clients import issues, require_clients, three_summary, validate_glb

    from engines.avatar.arkit import ARKIT_NAMES
    from engines.avatar.export import write_avatar_glb

    require_clients()
    path = tmp_path / "real.glb"
    write_avatar_glb(avatar, path)
    rep = validate_glb(path)
    assert rep["issues"]["numErrors"] == 0, issues(rep, 0)
    s = three_summary(path)
    assert s["errors"] == []
    meshes = {x["name"]: x for x in s["meshes"]}
    assert {"head", "eyes", "teeth", "tongue", "eyelashes"} <= set(meshes)
    for part in ("head", "eyes", "teeth", "tongue"):
        d = meshes[part]["morphTargetDictionary"]
        assert set(ARKIT_NAMES) <= set(d) and set(EMOTIONS) <= set(d) and len(d) == 58
        assert meshes[part]["isSkinnedMesh"] and meshes[part]["bones"] == ["Neck", "Head", "Jaw", "LeftEye", "RightEye"]
    infl = dict(zip(meshes["head"]["morphTargetDictionary"], meshes["head"]["morphTargetInfluences"]))
    assert infl["happiness"] == pytest.approx(0.6)
    assert s["maxRestOffset"] < 1e-5


def test_obj_names_the_parts_as_groups(avatar, tmp_path):
    from engines.avatar.export import write_avatar_obj

    path = tmp_path / "parts.obj"
    write_avatar_obj(avatar, path)
    text = path.read_text()
    groups = [line.split()[1] for line in text.splitlines() if line.startswith("g ")]
    assert set(groups) >= {"head", "eyes", "teeth", "tongue", "eyelashes"}
    assert sum(1 for line in text.splitlines() if line.startswith("f ")) >= len(avatar.mesh.faces)
    import trimesh

    scene = trimesh.load(path, force="scene", group_material=False, split_object=True)
    assert sum(len(g.faces) for g in scene.geometry.values()) >= len(avatar.mesh.faces)
