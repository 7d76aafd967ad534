"""Real clients of our GLB files, callable from any test.

* :func:`validate_glb` runs the Khronos glTF-Validator (npm ``gltf-validator``) and returns its
  report (``report["issues"]["numErrors"]``, ``["messages"]`` with ``code``/``severity``/
  ``pointer``/``message``; severity 0 error, 1 warning, 2 info, 3 hint).
* :func:`three_summary` parses the file with three.js GLTFLoader in Node and returns, per mesh,
  its ``name``, ``morphTargetDictionary``, ``isSkinnedMesh`` and ``bones``, plus every bone name,
  the embedded images' sizes and ``maxRestOffset`` (how far the skin moves vertices at rest).
* :func:`three_animation` plays the first animation clip with three.js AnimationMixer and returns
  the clips and the morph influences / bone rotations at given times.
* :func:`clients_missing` says why they cannot run (no node/npm), else ``None``;
  :func:`require_clients` skips the calling test with that reason.
* :func:`synthetic_rig` makes a small skinned, grouped, morph-targeted, textured Mesh +
  Skeleton, shaped like an avatar head (head, eyes, teeth, tongue, eyelashes).

The Node packages are pinned in ``tests/js/package.json`` / ``package-lock.json`` and installed
with ``npm ci`` into ``tests/js/node_modules`` (``./studio.sh test`` does it; so does the first
call here when it is missing or older than the lock file).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

JS = Path(__file__).parent / "js"
_STAMP = JS / "node_modules" / ".capture-studio-lock"
JOINT_NAMES = ("Neck", "Head", "Jaw", "LeftEye", "RightEye")
"""The synthetic rig's joints. Not ``head``: three.js gives every object a unique name, so a joint
named like a mesh part would come back as ``head_1`` (see test_gltf_clients)."""
_ARKIT_SUBSET = ["jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookInLeft", "tongueOut", "browInnerUp", "cheekPuff"]


def _lock_hash() -> str:
    return hashlib.sha1((JS / "package-lock.json").read_bytes()).hexdigest()


def clients_missing() -> str | None:
    """Why the Node clients cannot run here, or None when they can (installing them if needed)."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs), so the glTF-Validator and three.js cannot run"
    want = _lock_hash()
    if _STAMP.is_file() and _STAMP.read_text().strip() == want:
        return None
    if shutil.which("npm") is None:
        return "npm is not installed, so tests/js/node_modules (gltf-validator, three) cannot be installed"
    r = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        return f"npm ci in tests/js failed: {r.stderr.strip()[-500:]}"
    _STAMP.write_text(want + "\n")
    return None


def require_clients() -> None:
    import pytest

    why = clients_missing()
    if why:
        pytest.skip(why)


def _node(script: str, path: str | os.PathLike, timeout: float = 120, args: tuple = ()) -> dict:
    why = clients_missing()
    if why:
        raise RuntimeError(why)
    r = subprocess.run(
        ["node", str(JS / script), str(Path(path).resolve()), *map(str, args)],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if r.returncode != 0:
        raise RuntimeError(f"node {script} failed on {Path(path).name}:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def validate_glb(path: str | os.PathLike) -> dict:
    """The Khronos glTF-Validator's report on a GLB (dict, as the validator's JSON)."""
    return _node("validate.mjs", path)


def issues(report: dict, severity: int | None = None) -> list[dict]:
    """Validator messages, optionally of one severity (0 error, 1 warning, 2 info, 3 hint)."""
    msgs = report["issues"]["messages"]
    return [m for m in msgs if severity is None or m["severity"] == severity]


def three_summary(path: str | os.PathLike) -> dict:
    """What three.js GLTFLoader makes of a GLB: meshes (name, morphTargetDictionary,
    isSkinnedMesh, bones, vertexCount, attributes, hasMap), bones, images, maxRestOffset."""
    return _node("three_load.mjs", path)


def three_animation(path: str | os.PathLike, times=(0.0,)) -> dict:
    """three.js AnimationMixer on a GLB's first clip: ``clips`` (name, duration, tracks) and, per
    time in ``times`` (seconds), ``samples[i]["morphs"][mesh][target]`` and ``["bones"][name]``
    (quaternion x, y, z, w) as the mixer sets them."""
    return _node("three_anim.mjs", path, args=(",".join(f"{float(t):.6f}" for t in times),))


def _sphere(center, radius, n_lat=8, n_lon=12, scale=(1.0, 1.0, 1.0)):
    """UV sphere: (vertices, faces, uv) with outward, counter-clockwise faces."""
    th = np.linspace(0, np.pi, n_lat + 1)
    ph = np.linspace(0, 2 * np.pi, n_lon + 1)
    t, p = np.meshgrid(th, ph, indexing="ij")
    v = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    v = v * radius * np.asarray(scale) + center
    uv = np.stack([p / (2 * np.pi), 1 - t / np.pi], -1).reshape(-1, 2)
    idx = np.arange((n_lat + 1) * (n_lon + 1)).reshape(n_lat + 1, n_lon + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    f = np.concatenate([np.stack([a, c, d], 1), np.stack([a, d, b], 1)])
    # drop the degenerate triangles at the poles
    area = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    return v, f[area > 1e-12], uv


def synthetic_rig(name: str = "avatar"):
    """(Mesh, Skeleton): a small head-like Mesh with face groups head/eyes/teeth/tongue/eyelashes,
    ARKit-named morph targets (some touching one part only, ``cheekPuff`` zero everywhere),
    a 5-joint skeleton (Neck > Head > Jaw, LeftEye, RightEye), skin weights and a texture."""
    from engines.types import Mesh, Skeleton

    parts = {
        "head": _sphere([0, 1.6, 0], 0.1, 10, 16, (0.8, 1.0, 0.9)),
        "eyes": None,
        "teeth": _sphere([0, 1.56, 0.06], 0.02, 4, 8, (1.0, 0.4, 0.5)),
        "tongue": _sphere([0, 1.55, 0.05], 0.015, 4, 6, (0.8, 0.3, 1.0)),
        "eyelashes": _sphere([0, 1.64, 0.085], 0.012, 3, 6, (3.0, 0.2, 0.3)),
    }
    el, er = _sphere([0.035, 1.63, 0.07], 0.012, 6, 8), _sphere([-0.035, 1.63, 0.07], 0.012, 6, 8)
    parts["eyes"] = (np.vstack([el[0], er[0]]), np.vstack([el[1], er[1] + len(el[0])]), np.vstack([el[2], er[2]]))
    verts, faces, uvs, groups, owner, off = [], [], [], {}, [], 0
    for k, (v, f, uv) in parts.items():
        groups[k] = np.arange(sum(len(x) for x in faces), sum(len(x) for x in faces) + len(f))
        verts.append(v)
        faces.append(f + off)
        uvs.append(uv)
        owner += [k] * len(v)
        off += len(v)
    v, f, uv, owner = np.vstack(verts), np.vstack(faces), np.vstack(uvs), np.array(owner)
    n = len(v)
    skel = Skeleton(
        list(JOINT_NAMES),
        [-1, 0, 1, 1, 1],
        [[0, 1.45, 0], [0, 1.55, 0], [0, 1.57, 0.02], [0.035, 1.63, 0.07], [-0.035, 1.63, 0.07]],
    )
    joints = np.zeros((n, 4), np.int64)
    weights = np.zeros((n, 4), np.float32)
    head = owner == "head"
    low = np.clip((1.58 - v[:, 1]) / 0.06, 0, 1)  # below the mouth: partly on the jaw
    joints[head, :2] = [1, 2]
    weights[head, 0], weights[head, 1] = 1 - low[head], low[head]
    joints[owner == "teeth", 0] = 2
    joints[owner == "tongue", 0] = 2
    joints[owner == "eyelashes", 0] = 1
    eye = owner == "eyes"
    joints[eye, 0] = np.where(v[eye, 0] > 0, 3, 4)
    weights[~head, 0] = 1.0
    mouth = (v[:, 1] < 1.58) & (head | (owner == "teeth") | (owner == "tongue"))
    upper_lid = head & (v[:, 1] > 1.62) & (v[:, 1] < 1.66) & (v[:, 2] > 0.05)
    targets = {k: np.zeros((n, 3), np.float32) for k in _ARKIT_SUBSET}
    targets["jawOpen"][mouth, 1] = -0.02 * low[mouth]
    targets["eyeBlinkLeft"][upper_lid & (v[:, 0] > 0), 1] = -0.01
    targets["eyeBlinkRight"][upper_lid & (v[:, 0] < 0), 1] = -0.01
    targets["eyeLookInLeft"][eye & (v[:, 0] > 0), 0] = -0.003
    targets["tongueOut"][owner == "tongue", 2] = 0.03
    targets["browInnerUp"][head & (v[:, 1] > 1.57), 1] = 0.003  # most of the head: dense there, zero elsewhere
    tex = np.zeros((32, 64, 3), np.uint8)
    tex[..., 0] = np.linspace(80, 240, 64, dtype=np.uint8)[None]
    tex[..., 1] = np.linspace(60, 180, 32, dtype=np.uint8)[:, None]
    tex[..., 2] = 120
    m = Mesh(
        v, f, uv=uv, texture=tex, morph_targets=targets, name=name, face_groups=groups, joints=joints, weights=weights
    )
    m.compute_normals()
    return m, skel
