"""glTF 2.0 binary (GLB) reading and writing through pygltflib.

trimesh 5.2 cannot write morph targets, so meshes are written here directly: one node
and one mesh per :class:`~engines.types.Mesh` (named ``mesh.name``), POSITION/NORMAL/
TEXCOORD_0/COLOR_0 attributes, the texture embedded as PNG, and ``Mesh.morph_targets``
as glTF morph targets (POSITION deltas) with their names in ``mesh.extras.targetNames``,
the convention Blender's importer and three.js read.

UV convention: ``Mesh.uv`` uses the OBJ/OpenGL convention (v = 0 at the bottom row of
the texture image); glTF puts v = 0 at the top, so V is flipped on the way in and out.
Specification: Khronos glTF 2.0, sections 3.7 (meshes, morph targets) and 3.9 (textures).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.io import atomic_path
from engines.types import Image, Mesh

_FLOAT, _UINT, _USHORT, _UBYTE, _SHORT, _BYTE = 5126, 5125, 5123, 5121, 5122, 5120
_ARRAY, _ELEMENTS = 34962, 34963
_DTYPES = {_FLOAT: np.float32, _UINT: np.uint32, _USHORT: np.uint16, _UBYTE: np.uint8,
           _SHORT: np.int16, _BYTE: np.int8}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def colors_u8(c: np.ndarray | None, n: int) -> np.ndarray | None:
    """Vertex colours (uint8 or 0..1 floats, RGB or RGBA) -> N x 3|4 uint8, or None."""
    if c is None:
        return None
    c = np.asarray(c)
    if c.ndim != 2 or len(c) != n or c.shape[1] not in (3, 4):
        return None
    if c.dtype == np.uint8:
        return np.ascontiguousarray(c)
    if c.dtype == np.uint16:
        return (c >> 8).astype(np.uint8)
    c = c.astype(np.float32)
    if c.size and c.max() <= 1.0:
        c = c * 255.0
    return np.clip(np.rint(c), 0, 255).astype(np.uint8)


def texture_u8(tex: np.ndarray) -> np.ndarray:
    """Texture -> H x W x 3|4 uint8 (what PNG in a GLB/OBJ holds)."""
    t = np.asarray(tex)
    if t.ndim == 3 and t.shape[2] == 4 and t.dtype == np.uint16:
        return (t >> 8).astype(np.uint8)
    if t.ndim == 3 and t.shape[2] == 4 and t.dtype == np.uint8:
        return np.ascontiguousarray(t)
    return Image(t).rgb8()


def png_bytes(a: np.ndarray) -> bytes:
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(texture_u8(a)).save(buf, format="PNG", compress_level=4)
    return buf.getvalue()


class _Blob:
    """Binary buffer builder: each added array becomes a 4-byte aligned bufferView."""

    def __init__(self, gltf):
        self.gltf, self.parts, self.size = gltf, [], 0

    def view(self, data: bytes, target=None) -> int:
        from pygltflib import BufferView

        pad = (-self.size) % 4
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        self.gltf.bufferViews.append(BufferView(buffer=0, byteOffset=self.size, byteLength=len(data), target=target))
        self.parts.append(data)
        self.size += len(data)
        return len(self.gltf.bufferViews) - 1

    def accessor(self, a: np.ndarray, ctype: int, kind: str, target=None, minmax=False, normalized=None) -> int:
        from pygltflib import Accessor

        a = np.ascontiguousarray(a, dtype=_DTYPES[ctype])
        acc = Accessor(bufferView=self.view(a.tobytes(), target), componentType=ctype,
                       count=int(a.shape[0]), type=kind, normalized=normalized)
        if minmax:
            flat = a.reshape(len(a), -1)
            acc.min = [float(x) for x in flat.min(0)]
            acc.max = [float(x) for x in flat.max(0)]
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1


def write_glb(meshes: list[Mesh], path: str | os.PathLike) -> list[Path]:
    """Write meshes as one GLB scene (atomic). Returns ``[path]``."""
    import pygltflib as g

    path = Path(path)
    gltf = g.GLTF2(asset=g.Asset(generator="Capture Studio"), scene=0, scenes=[g.Scene(nodes=[])])
    blob = _Blob(gltf)
    for m in meshes:
        if len(m.vertices) == 0 or len(m.faces) == 0:
            raise EngineError(f"{path.name}: the mesh '{m.name}' is empty, so there is nothing to export.")
        n = len(m.vertices)
        attrs = g.Attributes(POSITION=blob.accessor(m.vertices, _FLOAT, "VEC3", _ARRAY, minmax=True))
        normals = m.normals if m.normals is not None and len(m.normals) == n else Mesh(m.vertices, m.faces).compute_normals()
        attrs.NORMAL = blob.accessor(normals, _FLOAT, "VEC3", _ARRAY)
        has_uv = m.uv is not None and len(m.uv) == n
        if has_uv:
            uv = m.uv.copy()
            uv[:, 1] = 1.0 - uv[:, 1]
            attrs.TEXCOORD_0 = blob.accessor(uv, _FLOAT, "VEC2", _ARRAY)
        cols = colors_u8(m.vertex_colors, n)
        if cols is not None:
            if cols.shape[1] == 3:
                # VEC4 keeps every element 4-byte aligned, as glTF requires of vertex attributes.
                cols = np.hstack([cols, np.full((n, 1), 255, np.uint8)])
            attrs.COLOR_0 = blob.accessor(cols, _UBYTE, "VEC4", _ARRAY, normalized=True)
        pbr = g.PbrMetallicRoughness(baseColorFactor=[1, 1, 1, 1], metallicFactor=0.0, roughnessFactor=0.9)
        material = g.Material(name=f"{m.name}_material", pbrMetallicRoughness=pbr, doubleSided=True)
        if has_uv and m.texture is not None:
            tex = texture_u8(m.texture)
            gltf.images.append(g.Image(bufferView=blob.view(png_bytes(tex)), mimeType="image/png", name=f"{m.name}_texture"))
            if not gltf.samplers:
                gltf.samplers.append(g.Sampler(magFilter=9729, minFilter=9987, wrapS=10497, wrapT=10497))
            gltf.textures.append(g.Texture(sampler=0, source=len(gltf.images) - 1))
            pbr.baseColorTexture = g.TextureInfo(index=len(gltf.textures) - 1)
            if tex.shape[2] == 4 and (tex[:, :, 3] < 255).any():
                material.alphaMode = "BLEND"
        gltf.materials.append(material)
        prim = g.Primitive(attributes=attrs, indices=blob.accessor(m.faces.reshape(-1), _UINT, "SCALAR", _ELEMENTS),
                           material=len(gltf.materials) - 1, mode=4)
        gmesh = g.Mesh(name=m.name, primitives=[prim])
        if m.morph_targets:
            names = list(m.morph_targets)
            prim.targets = [g.Attributes(POSITION=blob.accessor(m.morph_targets[k], _FLOAT, "VEC3", _ARRAY, minmax=True))
                            for k in names]
            gmesh.weights = [0.0] * len(names)
            gmesh.extras = {"targetNames": names}
        gltf.meshes.append(gmesh)
        gltf.nodes.append(g.Node(name=m.name, mesh=len(gltf.meshes) - 1))
        gltf.scenes[0].nodes.append(len(gltf.nodes) - 1)
    data = b"".join(blob.parts)
    gltf.buffers.append(g.Buffer(byteLength=len(data)))
    gltf.set_binary_blob(data)
    with atomic_path(path) as tmp:
        gltf.save_binary(str(tmp))
    return [path]


# ----------------------------------------------------------------------------- reading
def _buffer_bytes(gltf, path: Path, i: int) -> bytes:
    buf = gltf.buffers[i]
    if buf.uri is None:
        return gltf.binary_blob()
    if buf.uri.startswith("data:"):
        import base64

        return base64.b64decode(buf.uri.split(",", 1)[1])
    return (path.parent / buf.uri).read_bytes()


def _view_bytes(gltf, path, cache, i: int) -> tuple[bytes, int | None]:
    bv = gltf.bufferViews[i]
    if bv.buffer not in cache:
        cache[bv.buffer] = _buffer_bytes(gltf, path, bv.buffer)
    off = bv.byteOffset or 0
    return cache[bv.buffer][off:off + bv.byteLength], bv.byteStride


def _accessor(gltf, path, cache, i: int) -> np.ndarray:
    acc = gltf.accessors[i]
    dt = np.dtype(_DTYPES[acc.componentType])
    width = _WIDTH[acc.type]
    if acc.bufferView is None:
        out = np.zeros((acc.count, width), dt)
    else:
        data, stride = _view_bytes(gltf, path, cache, acc.bufferView)
        off = acc.byteOffset or 0
        item = dt.itemsize * width
        if stride and stride != item:
            rows = np.frombuffer(data, np.uint8, count=stride * (acc.count - 1) + item, offset=off)
            rows = np.lib.stride_tricks.as_strided(rows, (acc.count, item), (stride, 1))
            out = np.ascontiguousarray(rows).view(dt).reshape(acc.count, width)
        else:
            out = np.frombuffer(data, dt, count=acc.count * width, offset=off).reshape(acc.count, width).copy()
    if acc.sparse is not None:
        raise EngineError(f"{path.name}: uses sparse accessors, which this reader does not support. Re-export it without sparse data.")
    if acc.normalized and dt.kind in "ui":
        out = out.astype(np.float32) / np.iinfo(dt).max
    return out


def _node_matrix(node) -> np.ndarray:
    if node.matrix:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T
    m = np.eye(4)
    if node.scale:
        m = np.diag([*node.scale, 1.0]) @ m
    if node.rotation:
        x, y, z, w = node.rotation
        r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        rm = np.eye(4)
        rm[:3, :3] = r
        m = rm @ m
    if node.translation:
        t = np.eye(4)
        t[:3, 3] = node.translation
        m = t @ m
    return m


def _texture(gltf, path, cache, material) -> np.ndarray | None:
    pbr = material.pbrMetallicRoughness if material is not None else None
    if pbr is None or pbr.baseColorTexture is None:
        return None
    from PIL import Image as PILImage

    src = gltf.images[gltf.textures[pbr.baseColorTexture.index].source]
    if src.bufferView is not None:
        data, _ = _view_bytes(gltf, path, cache, src.bufferView)
    elif src.uri and src.uri.startswith("data:"):
        import base64

        data = base64.b64decode(src.uri.split(",", 1)[1])
    else:
        data = (path.parent / src.uri).read_bytes()
    im = PILImage.open(io.BytesIO(data))
    alpha = "A" in im.getbands() or "transparency" in im.info
    return np.asarray(im.convert("RGBA" if alpha else "RGB"))


def read_glb(path: str | os.PathLike) -> list[Mesh]:
    """Read every triangle primitive of a GLB/glTF as a :class:`Mesh` in world coordinates."""
    import pygltflib as g

    path = Path(path)
    try:
        gltf = g.GLTF2().load(str(path))
    except Exception as e:
        raise EngineError(f"{path.name}: not a readable glTF/GLB file ({e}). Export it again from the tool that made it.") from None
    if gltf is None:
        raise EngineError(f"{path.name}: not a readable glTF/GLB file. Export it again from the tool that made it.")
    cache: dict = {}
    out: list[Mesh] = []

    def visit(ni: int, parent: np.ndarray):
        node = gltf.nodes[ni]
        world = parent @ _node_matrix(node)
        if node.mesh is not None:
            gm = gltf.meshes[node.mesh]
            names = list((gm.extras or {}).get("targetNames", []))
            for pi, prim in enumerate(gm.primitives):
                if prim.mode not in (None, 4):
                    continue
                out.append(_primitive(gltf, path, cache, prim, world, names,
                                      node.name or gm.name or f"mesh{len(out)}", pi, len(gm.primitives)))
        for c in node.children or []:
            visit(c, world)

    scene = gltf.scenes[gltf.scene or 0] if gltf.scenes else None
    roots = scene.nodes if scene is not None else list(range(len(gltf.nodes)))
    try:
        for r in roots:
            visit(r, np.eye(4))
    except EngineError:
        raise
    except (IndexError, KeyError, ValueError, TypeError) as e:
        raise EngineError(f"{path.name}: the glTF data is inconsistent ({e}). Export it again.") from None
    if not out:
        raise EngineError(f"{path.name}: holds no triangle meshes.")
    return out


def _primitive(gltf, path, cache, prim, world, names, name, pi, nprims) -> Mesh:
    a = prim.attributes
    v = _accessor(gltf, path, cache, a.POSITION).astype(np.float64)
    rot = world[:3, :3]
    v_world = v @ rot.T + world[:3, 3]
    faces = (_accessor(gltf, path, cache, prim.indices).reshape(-1, 3) if prim.indices is not None
             else np.arange(len(v)).reshape(-1, 3))
    normals = None
    if a.NORMAL is not None:
        n = _accessor(gltf, path, cache, a.NORMAL) @ np.linalg.inv(rot).T
        normals = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    uv = None
    if a.TEXCOORD_0 is not None:
        uv = _accessor(gltf, path, cache, a.TEXCOORD_0).astype(np.float32)
        uv[:, 1] = 1.0 - uv[:, 1]
    cols = None
    if a.COLOR_0 is not None:
        cols = colors_u8(_accessor(gltf, path, cache, a.COLOR_0), len(v))
        if cols is not None and cols.shape[1] == 4 and (cols[:, 3] == 255).all():
            cols = np.ascontiguousarray(cols[:, :3])
    material = gltf.materials[prim.material] if prim.material is not None else None
    targets = {}
    for k, t in enumerate(prim.targets or []):
        pos = t.get("POSITION") if isinstance(t, dict) else getattr(t, "POSITION", None)
        if pos is not None:
            targets[names[k] if k < len(names) else f"target{k}"] = _accessor(gltf, path, cache, pos) @ rot.T
    return Mesh(v_world, faces, normals, uv, _texture(gltf, path, cache, material) if uv is not None else None,
                cols, targets, name=name if nprims == 1 else f"{name}_{pi}")
