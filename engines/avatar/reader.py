"""Avatar files as engine inputs: the .zip bundle and the rigged GLB, read back as an Avatar.

* ``.zip``: :func:`engines.avatar.export.read_avatar_bundle` (everything, including the
  photo camera and presets).
* ``.glb``: the part meshes (:func:`engines.io.gltf.read_glb`) joined back into one head
  Mesh with its face groups, morph targets and skin, and the skeleton from the skin's joint
  nodes (names, parents, rest positions from the inverse bind matrices). A GLB written by
  :func:`engines.avatar.export.write_avatar_glb` from an ICT-model avatar comes back in the
  model's render layout (vertex order included), so the puppet can use the avatar's own
  landmarks; any other GLB with ARKit-named morph targets still works as a retarget target.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.types import Avatar, Mesh, Skeleton

AVATAR_EXTS = {".glb", ".zip"}


def _skeleton(path: Path) -> Skeleton | None:
    import pygltflib as g

    gltf = g.GLTF2().load(str(path))
    if not gltf.skins:
        return None
    skin = gltf.skins[0]
    from engines.io.gltf import _accessor

    joints = list(skin.joints)
    names = [gltf.nodes[j].name or f"joint{k}" for k, j in enumerate(joints)]
    parent_of = {c: i for i, n in enumerate(gltf.nodes) for c in (n.children or [])}
    parents = [joints.index(parent_of[j]) if parent_of.get(j) in joints else -1 for j in joints]
    if skin.inverseBindMatrices is not None:
        ibm = _accessor(gltf, path, {}, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
        pos = np.array([np.linalg.inv(m)[:3, 3] for m in ibm])
    else:
        pos = np.zeros((len(joints), 3))
    order = sorted(range(len(joints)), key=lambda k: (len(_chain(parents, k)), k))
    if order != list(range(len(joints))):  # parents first, as Skeleton asks
        remap = {old: new for new, old in enumerate(order)}
        names = [names[k] for k in order]
        parents = [remap[parents[k]] if parents[k] >= 0 else -1 for k in order]
        pos = pos[order]
    return Skeleton(names, np.array(parents), pos)


def _chain(parents, k):
    out = []
    while k >= 0:
        out.append(k)
        k = parents[k]
    return out


def _join_ict(parts: list[Mesh]) -> Mesh | None:
    """The head Mesh in the ICT render layout from its GLB parts, or None when they are not."""
    from engines.avatar.ict import GROUPS, render_layout

    lay = render_layout()
    names = list(GROUPS)
    by = {m.name: m for m in parts}
    if any(n not in by for n in names):
        return None
    n = len(lay.src)
    V = np.zeros((n, 3), np.float32)
    normals, uv = np.zeros((n, 3), np.float32), np.zeros((n, 2), np.float32)
    joints, weights = np.zeros((n, 4), np.int64), np.zeros((n, 4), np.float32)
    first = by[names[0]]
    targets = {k: np.zeros((n, 3), np.float32) for k in first.morph_targets}
    groups = {}
    for g in names:
        fi = lay.group_faces(g)
        keep = np.unique(lay.faces[fi].ravel())
        p = by[g]
        if len(p.vertices) != len(keep) or len(p.faces) != len(fi) or not np.array_equal(keep[p.faces], lay.faces[fi]):
            return None
        V[keep] = p.vertices
        if p.normals is not None:
            normals[keep] = p.normals
        if p.uv is not None:
            uv[keep] = p.uv
        if p.joints is not None and p.weights is not None:
            joints[keep], weights[keep] = p.joints, p.weights
        for k in targets:
            if k in p.morph_targets:
                targets[k][keep] = p.morph_targets[k]
        groups[g] = fi
    skinned = all(by[g].joints is not None for g in names)
    return Mesh(
        V,
        lay.faces,
        normals,
        uv,
        first.texture,
        None,
        targets,
        name="head",
        face_groups=groups,
        joints=joints if skinned else None,
        weights=weights if skinned else None,
    )


def _join_any(parts: list[Mesh]) -> Mesh:
    """Parts with morph targets concatenated into one Mesh (groups named by part)."""
    V, F, groups, off, nf = [], [], {}, 0, 0
    names = list(parts[0].morph_targets)
    targets = {k: [] for k in names}
    for p in parts:
        V.append(p.vertices)
        F.append(p.faces + off)
        groups[p.name] = np.arange(nf, nf + len(p.faces))
        for k in names:
            targets[k].append(p.morph_targets.get(k, np.zeros_like(p.vertices)))
        off += len(p.vertices)
        nf += len(p.faces)
    tex = next((p.texture for p in parts if p.texture is not None), None)
    same_tex = tex is not None and all(p.texture is tex or p.texture is None for p in parts)
    uv = np.vstack([p.uv if p.uv is not None else np.zeros((len(p.vertices), 2), np.float32) for p in parts])
    joints = weights = None
    if all(p.joints is not None for p in parts):
        joints = np.vstack([p.joints for p in parts])
        weights = np.vstack([p.weights for p in parts])
    return Mesh(
        np.vstack(V),
        np.vstack(F),
        uv=uv if same_tex else None,
        texture=tex if same_tex else None,
        morph_targets={k: np.vstack(v) for k, v in targets.items()},
        name="head",
        face_groups=groups,
        joints=joints,
        weights=weights,
    )


def read_avatar_glb(path: str | os.PathLike) -> Avatar:
    """An Avatar from a rigged GLB with morph targets."""
    from engines.io.gltf import read_glb

    path = Path(path)
    meshes = read_glb(path)
    morphed = [m for m in meshes if m.morph_targets]
    if not morphed:
        raise EngineError(
            f"{path.name} has no morph targets, so nothing could drive its face; use an avatar "
            "exported by Capture Studio (or any GLB with ARKit-named blendshapes)."
        )
    names = list(morphed[0].morph_targets)
    parts = [m for m in morphed if list(m.morph_targets) == names]
    rest = [m for m in meshes if not any(m is p for p in parts)]
    head = _join_ict(parts) or _join_any(parts)
    try:
        skeleton = _skeleton(path) if head.joints is not None else None
    except EngineError:
        raise
    except (IndexError, KeyError, ValueError, TypeError, AttributeError, np.linalg.LinAlgError) as e:
        raise EngineError(f"{path.name}: its skeleton is damaged ({e}). Export the avatar again.") from None
    if skeleton is None:
        head.joints = head.weights = None
    head.compute_normals()
    return Avatar(
        mesh=head,
        skeleton=skeleton,
        extra_meshes=[m for m in rest if m.name != "hair"],
        name=path.stem,
        params={"source": str(path)},
    )


def read_avatar(path: str | os.PathLike) -> Avatar:
    """An Avatar from a ``.zip`` bundle or a ``.glb``."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".zip":
        from engines.avatar.export import read_avatar_bundle

        return read_avatar_bundle(path)
    if ext == ".glb":
        return read_avatar_glb(path)
    raise EngineError(f"{path.name}: an avatar is a .glb or .zip file, not {ext or 'a file without extension'}.")
