"""Avatar files: GLB with morph targets, OBJ of the current expression, and the .zip bundle.

* GLB (:func:`write_avatar_glb`): the neutral head in metres with its texture, one morph
  target per blendshape and per emotion (named ``happiness``, ``jawOpen``...; names in
  ``mesh.extras.targetNames`` as Blender and three.js read them), one mesh per face group
  (``head``, ``eyes``, ``teeth``...) each with the full target list, the default morph
  weights set to the current expression and emotion sliders, the skeleton and skin (hair,
  a node named ``hair``, follows the ``head`` joint).
* OBJ (:func:`write_avatar_obj`): OBJ + MTL + PNG of the head as the sliders show it now.
* Bundle (:func:`write_avatar_bundle`): a zip with ``avatar.glb``, ``avatar.obj/.mtl``, ``avatar_texture.png``,
  ``texture.png``, ``avatar.json`` (parameters, emotion values, camera, scalp), the
  portrait as ``photo.jpg`` and, when there is hair, ``hair.npz`` (the strands, complete:
  ``points`` S x P x 3 float32 metres in head coordinates, root first, and ``colors`` S x 3
  uint8): the download-as-zip use case of the thesis. In GLB and OBJ the hair is one
  ribbon card per strand (:func:`engines.hair.mesh.strands_to_cards`), every strand kept.
  :func:`read_avatar_bundle` reads it back and refuses members whose names would escape
  the bundle (absolute paths, ``..``, drive letters), as zip-slip advisories recommend, and
  members whose declared sizes or compression ratios break the I/O layer's limit policy
  (:mod:`engines.io.limits`) before inflating anything; any damage inside is an
  :class:`~engines.api.EngineError` naming the bundle.
"""

from __future__ import annotations

from collections.abc import Mapping

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from engines.api import EngineError
from engines.io import atomic_path
from engines.types import Avatar, Mesh, Skeleton, Strands

BUNDLE_MEMBERS = (
    "avatar.glb",
    "avatar.obj",
    "avatar.mtl",
    "avatar_texture.png",
    "texture.png",
    "avatar.json",
    "hair.npz",
    "photo.jpg",
    "rig.npz",
)


def _hair_mesh(avatar: Avatar) -> list[Mesh]:
    if avatar.hair is None or len(avatar.hair.points) == 0:
        return []
    try:
        from engines.hair.mesh import strands_to_cards
    except ImportError:  # a build without the hair package: tubes from the shared writer
        from engines.io.mesh import strands_to_mesh as strands_to_cards

    m = strands_to_cards(avatar.hair)
    m.name = "hair"
    return [m]


def current_vertices(avatar: Avatar) -> np.ndarray:
    from engines.avatar.engine import Deformer

    return Deformer(avatar).vertices(avatar.emotions)


def current_morph_weights(avatar: Avatar) -> dict[str, float]:
    """The GLB's default morph weights: ``avatar.expression`` (ARKit names) plus the emotion
    sliders, each for the names that are morph targets of the head."""
    targets = avatar.mesh.morph_targets
    weights = {k: float(v) for k, v in avatar.expression.items() if k in targets and v}
    for k, v in avatar.emotions.items():
        if k in targets and v:
            weights[k] = weights.get(k, 0.0) + float(v)
    return weights


def _bound_to_head(m: Mesh, skeleton) -> Mesh:
    """A mesh without skin weights (hair, extra parts) moving rigidly with the ``head`` joint."""
    if skeleton is None or (m.joints is not None and m.weights is not None):
        return m
    names = [str(n).lower() for n in skeleton.names]
    j = names.index("head") if "head" in names else int(np.flatnonzero(skeleton.parents < 0)[0])
    n = len(m.vertices)
    joints = np.zeros((n, 4), np.uint16)
    joints[:, 0] = j
    weights = np.zeros((n, 4), np.float32)
    weights[:, 0] = 1.0
    return dataclasses.replace(m, joints=joints, weights=weights)


def write_avatar_glb(avatar: Avatar, path) -> list[Path]:
    """The avatar as one GLB: head parts (its face groups) with every morph target, default
    weights as the sliders show it now, the skeleton and skin; hair and extra meshes follow
    the ``head`` joint."""
    from engines.io.gltf import write_glb

    path = Path(path)
    skel = avatar.skeleton
    meshes = [_bound_to_head(m, skel) for m in (avatar.mesh, *avatar.extra_meshes, *_hair_mesh(avatar))]
    return write_glb(meshes, path, skeleton=skel, morph_weights=current_morph_weights(avatar))


def write_avatar_obj(avatar: Avatar, path) -> list[Path]:
    from engines.io.mesh import write_obj

    head = avatar.mesh
    now = Mesh(
        current_vertices(avatar),
        head.faces,
        uv=head.uv,
        texture=head.texture,
        name=head.name,
        face_groups=head.face_groups,
    )
    now.compute_normals()
    return write_obj([now, *avatar.extra_meshes, *_hair_mesh(avatar)], path)


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Mapping):  # dicts and the Camera
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def avatar_json(avatar: Avatar) -> dict:
    return {
        "format": "capture-studio-avatar",
        "version": 1,
        "name": avatar.name,
        "emotions": _jsonable(avatar.emotions),
        "params": _jsonable(avatar.params),
        "camera": _jsonable(avatar.camera),
        "scalp": _jsonable(avatar.scalp) if avatar.scalp is not None else None,
        "morph_targets": list(avatar.mesh.morph_targets),
        "expression": _jsonable(avatar.expression),
        "presets": _jsonable(avatar.presets),
    }


def _rig_arrays(avatar: Avatar) -> dict[str, np.ndarray]:
    """What the GLB cannot say about the head: which faces and vertices of the one head Mesh
    each part (face group) holds, and the Skeleton (the GLB's joints come back as nodes)."""
    from engines.io.gltf import _parts

    m = avatar.mesh
    parts = _parts(m)
    out = {
        "part_names": np.array([p for p, _ in parts]),
        "n_vertices": np.array(len(m.vertices)),
        "mesh_name": np.array(m.name),
        "group_names": np.array([k for k, v in m.face_groups.items() if len(v)], dtype=str),
    }
    for i, (_, fi) in enumerate(parts):
        out[f"faces_{i}"] = fi.astype(np.int32)
        out[f"vertices_{i}"] = np.unique(m.faces[fi]).astype(np.int32)
    # vertices no face uses are not in the GLB: keep them here
    loose = np.setdiff1d(np.arange(len(m.vertices)), m.faces.ravel()).astype(np.int32)
    if len(loose):
        out.update(
            loose_ids=loose,
            loose_vertices=m.vertices[loose],
            loose_targets=np.stack([m.morph_targets[k][loose] for k in m.morph_targets])
            if m.morph_targets
            else np.zeros((0, len(loose), 3), np.float32),
        )
        for k in ("normals", "uv", "joints", "weights"):
            if getattr(m, k) is not None:
                out[f"loose_{k}"] = getattr(m, k)[loose]
    if avatar.skeleton is not None:
        sk = avatar.skeleton
        out.update(joint_names=np.array(list(sk.names)), joint_parents=sk.parents, joint_positions=sk.positions)
    return out


def _head_from_parts(meshes: list[Mesh], rig) -> tuple[Mesh | None, list[Mesh], Skeleton | None]:
    """The head as one Mesh again from its GLB parts (``rig.npz``), with the rest of the meshes."""
    skel = None
    if "joint_names" in rig:
        skel = Skeleton([str(x) for x in rig["joint_names"]], rig["joint_parents"], rig["joint_positions"])
    names = [str(x) for x in rig["part_names"]]
    name, grouped = str(rig["mesh_name"]), {str(x) for x in rig["group_names"]}
    if len(meshes) < len(names) or [m.name for m in meshes[: len(names)]] != names:
        return None, meshes, skel
    parts, rest = meshes[: len(names)], meshes[len(names) :]
    n = int(rig["n_vertices"])
    nf = sum(len(rig[f"faces_{i}"]) for i in range(len(names)))
    first = parts[0]

    def gather(attr, width, dtype=np.float32):
        if any(getattr(p, attr) is None for p in parts):
            return None
        out = np.zeros((n, width), dtype)
        for i, p in enumerate(parts):
            out[rig[f"vertices_{i}"]] = getattr(p, attr)
        return out

    V, faces = np.zeros((n, 3), np.float32), np.zeros((nf, 3), np.int64)
    targets = {k: np.zeros((n, 3), np.float32) for k in first.morph_targets}
    groups = {}
    for i, p in enumerate(parts):
        keep = rig[f"vertices_{i}"].astype(np.int64)
        fi = rig[f"faces_{i}"].astype(np.int64)
        V[keep] = p.vertices
        faces[fi] = keep[p.faces]
        for k in targets:
            if k in p.morph_targets:
                targets[k][keep] = p.morph_targets[k]
        if names[i] in grouped:
            groups[names[i]] = fi
    head = Mesh(
        V,
        faces,
        gather("normals", 3),
        gather("uv", 2),
        first.texture,
        None,
        targets,
        name=name,
        face_groups=groups,
        joints=gather("joints", 4, np.int64),
        weights=gather("weights", 4),
    )
    if "loose_ids" in rig:
        ids = rig["loose_ids"].astype(np.int64)
        head.vertices[ids] = rig["loose_vertices"]
        for t, k in enumerate(head.morph_targets):
            head.morph_targets[k][ids] = rig["loose_targets"][t]
        for k in ("normals", "uv", "joints", "weights"):
            if getattr(head, k) is not None and f"loose_{k}" in rig:
                getattr(head, k)[ids] = rig[f"loose_{k}"]
    return head, rest, skel


def write_avatar_bundle(avatar: Avatar, path) -> list[Path]:
    from engines.io.images import write_image

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmpdir:
        d = Path(tmpdir)
        files = write_avatar_glb(avatar, d / "avatar.glb") + write_avatar_obj(avatar, d / "avatar.obj")
        if (d / "avatar_texture.png").is_file() and avatar.mesh.texture is not None:
            shutil.copyfile(d / "avatar_texture.png", d / "texture.png")  # the same atlas: encode the PNG once
            files.append(d / "texture.png")
        elif avatar.mesh.texture is not None:
            files += write_image(avatar.mesh.texture, d / "texture.png")
        (d / "avatar.json").write_text(json.dumps(avatar_json(avatar), indent=1))
        files.append(d / "avatar.json")
        if avatar.photo is not None:
            files += write_image(avatar.photo, d / "photo.jpg")
        if avatar.mesh.face_groups or avatar.skeleton is not None:
            np.savez_compressed(d / "rig.npz", **_rig_arrays(avatar))
            files.append(d / "rig.npz")
        if avatar.hair is not None:
            np.savez_compressed(
                d / "hair.npz",
                points=avatar.hair.points,
                colors=avatar.hair.colors if avatar.hair.colors is not None else np.zeros((0, 3), np.uint8),
            )
            files.append(d / "hair.npz")
        with atomic_path(path) as tmp:
            with zipfile.ZipFile(tmp, "w") as z:
                for f in files:
                    # PNG, JPEG and npz are compressed already: store them. Deflate the rest at
                    # level 1: about as small as level 6 on mesh text, several times faster.
                    packed = Path(f).suffix.lower() in (".png", ".jpg", ".npz")
                    z.write(
                        f,
                        arcname=Path(f).name,
                        compress_type=zipfile.ZIP_STORED if packed else zipfile.ZIP_DEFLATED,
                        compresslevel=None if packed else 1,
                    )
    return [path]


def _safe_member(name: str) -> bool:
    if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name:
        return False
    parts = PurePosixPath(name).parts
    return ".." not in parts and not PurePosixPath(name).is_absolute()


def read_avatar_bundle(path) -> Avatar:
    """An Avatar from a bundle written by :func:`write_avatar_bundle`.

    Every problem with the file is an EngineError naming it: not a zip, unsafe member
    names, members too large or inflating too much (checked from the zip directory before
    anything is inflated), damaged members, missing or mistyped fields.
    """
    path = Path(path)
    try:
        z = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise EngineError(f"{path}: no such file. Check the path or choose the file again.") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise EngineError(
            f"{path.name} is not a readable avatar bundle ({e}); export the avatar again as .zip."
        ) from None
    with z:
        names = z.namelist()
        bad = [n for n in names if not _safe_member(n)]
        if bad:
            raise EngineError(
                f"{path.name} contains unsafe file names ({', '.join(bad[:3])}) that point outside "
                "the bundle; it was not opened. Only open bundles from sources you trust."
            )
        if "avatar.glb" not in names or "avatar.json" not in names:
            raise EngineError(f"{path.name} is not an avatar bundle (avatar.glb or avatar.json is missing).")
        try:
            return _read_bundle(z, path)
        except EngineError:
            raise
        except MemoryError:
            raise EngineError(f"{path.name}: there is not enough memory to open this avatar bundle.") from None
        except Exception as e:  # hostile or damaged content: say so, keep the details in the log
            logging.getLogger(__name__).info("damaged avatar bundle %s", path, exc_info=True)
            raise EngineError(
                f"{path.name}: the avatar bundle is damaged ({type(e).__name__}: {e}); export the avatar again as .zip."
            ) from None


def _read_bundle(z: zipfile.ZipFile, path: Path) -> Avatar:
    from engines.io import limits
    from engines.io.mesh import read_mesh

    infos = {i.filename: i for i in limits.check_zip(z, path)}
    if infos["avatar.json"].file_size > limits.current().max_json_bytes:
        raise limits.FileTooLarge(
            f"{path.name}: its avatar.json is {limits.size_text(infos['avatar.json'].file_size)}, "
            "far more than an avatar description; the bundle is damaged."
        )
    meta = json.loads(limits.read_member(z, infos["avatar.json"], path).decode("utf-8"))
    if not isinstance(meta, dict):
        raise EngineError(
            f"{path.name}: its avatar.json is not an avatar description; export the avatar again as .zip."
        )
    with tempfile.TemporaryDirectory() as tmpdir:
        glb = os.path.join(tmpdir, "avatar.glb")
        with open(glb, "wb") as fh:
            fh.write(limits.read_member(z, infos["avatar.glb"], path))
        meshes = read_mesh(glb)
    photo = None
    if "photo.jpg" in infos:
        im = limits.open_image_bytes(
            limits.read_member(z, infos["photo.jpg"], path), f"{path.name}: photo.jpg", "the photo"
        )
        photo = np.asarray(im.convert("RGB"))
    rig = None
    if "rig.npz" in infos:
        rig = limits.load_npz(limits.read_member(z, infos["rig.npz"], path), f"{path.name}: rig.npz")
    hair = None
    if "hair.npz" in infos:
        h = limits.load_npz(limits.read_member(z, infos["hair.npz"], path), f"{path.name}: hair.npz")
        hair = Strands(h["points"], h["colors"] if len(h["colors"]) else None)
    meshes = meshes if isinstance(meshes, list) else [meshes]
    head, skeleton = None, None
    if rig is not None:
        head, meshes, skeleton = _head_from_parts(meshes, rig)
    if head is None:
        head = next((m for m in meshes if m.morph_targets), meshes[0])
    extras = [m for m in meshes if m is not head and m.name != "hair"]
    cam = {
        k: (np.asarray(v) if k in ("K", "R", "t") else tuple(v) if k == "image_size" else v)
        for k, v in (meta.get("camera") or {}).items()
    }
    scalp = np.asarray(meta["scalp"], np.int64) if meta.get("scalp") is not None else None
    return Avatar(
        mesh=head,
        emotions={k: float(v) for k, v in (meta.get("emotions") or {}).items()},
        camera=cam,
        hair=hair,
        extra_meshes=extras,
        scalp=scalp,
        photo=photo,
        params=dict(meta.get("params") or {}),
        name=str(meta.get("name") or path.stem),
        skeleton=skeleton,
        expression={k: float(v) for k, v in (meta.get("expression") or {}).items()},
        presets={k: {n: float(x) for n, x in v.items()} for k, v in (meta.get("presets") or {}).items()},
    )
