"""Avatar files: GLB with morph targets, OBJ of the current expression, and the .zip bundle.

* GLB (:func:`write_avatar_glb`): the neutral head in metres with its texture, one morph
  target per blendshape and per emotion (named ``happiness``, ``jawOpen``...; names in
  ``mesh.extras.targetNames`` as Blender and three.js read them), the default morph
  weights set to the current emotion sliders; hair as a node named ``hair``.
* OBJ (:func:`write_avatar_obj`): OBJ + MTL + PNG of the head as the sliders show it now.
* Bundle (:func:`write_avatar_bundle`): a zip with ``avatar.glb``, ``avatar.obj/.mtl/.png``,
  ``texture.png``, ``avatar.json`` (parameters, emotion values, camera, scalp), the
  portrait as ``photo.jpg`` and, when there is hair, ``hair.npz`` (the strands, complete:
  ``points`` S x P x 3 float32 metres in head coordinates, root first, and ``colors`` S x 3
  uint8): the download-as-zip use case of the thesis. In GLB and OBJ the hair is one
  ribbon card per strand (:func:`engines.hair.mesh.strands_to_cards`), every strand kept.
  :func:`read_avatar_bundle` reads it back and refuses members whose names would escape
  the bundle (absolute paths, ``..``, drive letters), as zip-slip advisories recommend.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from engines.api import EngineError
from engines.io import atomic_path
from engines.types import Avatar, Mesh, Strands

BUNDLE_MEMBERS = ("avatar.glb", "avatar.obj", "avatar.mtl", "avatar.png", "texture.png", "avatar.json", "hair.npz",
                  "photo.jpg")


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


def write_avatar_glb(avatar: Avatar, path) -> list[Path]:
    import pygltflib

    from engines.io.mesh import write_glb

    path = Path(path)
    head = avatar.mesh
    written = write_glb([head, *avatar.extra_meshes, *_hair_mesh(avatar)], path)
    weights = {k: float(v) for k, v in avatar.emotions.items() if k in head.morph_targets and v}
    if weights:
        g = pygltflib.GLTF2().load_binary(str(path))
        for gm in g.meshes:
            names = (gm.extras or {}).get("targetNames", [])
            if gm.name == head.name and names:
                gm.weights = [weights.get(n, 0.0) for n in names]
        with atomic_path(path) as tmp:
            g.save_binary(str(tmp))
    return written


def write_avatar_obj(avatar: Avatar, path) -> list[Path]:
    from engines.io.mesh import write_obj

    head = avatar.mesh
    now = Mesh(current_vertices(avatar), head.faces, uv=head.uv, texture=head.texture, name=head.name)
    now.compute_normals()
    return write_obj([now, *avatar.extra_meshes, *_hair_mesh(avatar)], path)


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def avatar_json(avatar: Avatar) -> dict:
    return {
        "format": "capture-studio-avatar", "version": 1, "name": avatar.name,
        "emotions": _jsonable(avatar.emotions), "params": _jsonable(avatar.params),
        "camera": _jsonable(avatar.camera),
        "scalp": _jsonable(avatar.scalp) if avatar.scalp is not None else None,
        "morph_targets": list(avatar.mesh.morph_targets),
    }


def write_avatar_bundle(avatar: Avatar, path) -> list[Path]:
    from engines.io.images import write_image

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmpdir:
        d = Path(tmpdir)
        files = write_avatar_glb(avatar, d / "avatar.glb") + write_avatar_obj(avatar, d / "avatar.obj")
        if (d / "avatar.png").is_file() and avatar.mesh.texture is not None:
            shutil.copyfile(d / "avatar.png", d / "texture.png")  # the same atlas: encode the PNG once
            files.append(d / "texture.png")
        elif avatar.mesh.texture is not None:
            files += write_image(avatar.mesh.texture, d / "texture.png")
        (d / "avatar.json").write_text(json.dumps(avatar_json(avatar), indent=1))
        files.append(d / "avatar.json")
        if avatar.photo is not None:
            files += write_image(avatar.photo, d / "photo.jpg")
        if avatar.hair is not None:
            np.savez_compressed(d / "hair.npz", points=avatar.hair.points,
                                colors=avatar.hair.colors if avatar.hair.colors is not None else np.zeros((0, 3), np.uint8))
            files.append(d / "hair.npz")
        with atomic_path(path) as tmp:
            with zipfile.ZipFile(tmp, "w") as z:
                for f in files:
                    # PNG, JPEG and npz are compressed already: store them. Deflate the rest at
                    # level 1: about as small as level 6 on mesh text, several times faster.
                    packed = Path(f).suffix.lower() in (".png", ".jpg", ".npz")
                    z.write(f, arcname=Path(f).name, compress_type=zipfile.ZIP_STORED if packed else zipfile.ZIP_DEFLATED,
                            compresslevel=None if packed else 1)
    return [path]


def _safe_member(name: str) -> bool:
    if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name:
        return False
    parts = PurePosixPath(name).parts
    return ".." not in parts and not PurePosixPath(name).is_absolute()


def read_avatar_bundle(path) -> Avatar:
    """An Avatar from a bundle written by :func:`write_avatar_bundle`."""
    from engines.io.mesh import read_mesh

    path = Path(path)
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise EngineError(f"{path.name} is not a readable avatar bundle ({e}); export the avatar again as .zip.") from None
    with z:
        names = z.namelist()
        bad = [n for n in names if not _safe_member(n)]
        if bad:
            raise EngineError(f"{path.name} contains unsafe file names ({', '.join(bad[:3])}) that point outside "
                              "the bundle; it was not opened. Only open bundles from sources you trust.")
        if "avatar.glb" not in names or "avatar.json" not in names:
            raise EngineError(f"{path.name} is not an avatar bundle (avatar.glb or avatar.json is missing).")
        meta = json.loads(z.read("avatar.json").decode("utf-8"))
        with tempfile.TemporaryDirectory() as tmpdir:
            glb = os.path.join(tmpdir, "avatar.glb")
            with open(glb, "wb") as fh:
                fh.write(z.read("avatar.glb"))
            meshes = read_mesh(glb)
        photo = None
        if "photo.jpg" in names:
            from PIL import Image as PILImage

            photo = np.asarray(PILImage.open(io.BytesIO(z.read("photo.jpg"))).convert("RGB"))
        hair = None
        if "hair.npz" in names:
            h = np.load(io.BytesIO(z.read("hair.npz")))
            hair = Strands(h["points"], h["colors"] if len(h["colors"]) else None)
    meshes = meshes if isinstance(meshes, list) else [meshes]
    head = next((m for m in meshes if m.morph_targets), meshes[0])
    extras = [m for m in meshes if m is not head and m.name != "hair"]
    cam = {k: (np.asarray(v) if k in ("K", "R", "t") else tuple(v) if k == "image_size" else v)
           for k, v in (meta.get("camera") or {}).items()}
    scalp = np.asarray(meta["scalp"], np.int64) if meta.get("scalp") is not None else None
    return Avatar(mesh=head, emotions={k: float(v) for k, v in meta.get("emotions", {}).items()}, camera=cam,
                  hair=hair, extra_meshes=extras, scalp=scalp, photo=photo, params=meta.get("params", {}),
                  name=meta.get("name", path.stem))
