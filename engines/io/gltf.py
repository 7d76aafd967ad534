"""glTF 2.0 binary (GLB) reading and writing through pygltflib.

trimesh 5.2 cannot write morph targets, so meshes are written here directly: one node
and one mesh per :class:`~engines.types.Mesh` (named ``mesh.name``), or one per face group
(named by the group, e.g. ``head``, ``eyes``, ``teeth``), POSITION/NORMAL/TEXCOORD_0/COLOR_0
attributes, the texture embedded once as PNG, and ``Mesh.morph_targets`` as glTF morph
targets (POSITION deltas; sparse accessors where most deltas are zero) with their names in
``mesh.extras.targetNames``, the convention Blender's importer and three.js read. Every
group carries the same full, ordered target list, so a face-tracking rig drives each part by
name, as on Ready Player Me avatars. With a :class:`~engines.types.Skeleton`, joints become
nodes and skinned meshes get a skin (JOINTS_0/WEIGHTS_0, inverse bind matrices).

UV convention: ``Mesh.uv`` uses the OBJ/OpenGL convention (v = 0 at the bottom row of
the texture image); glTF puts v = 0 at the top, so V is flipped on the way in and out.
Animations (:class:`GltfAnimation`): keyframes with LINEAR interpolation for morph weights
(path ``weights`` on every part node of a mesh, one output row of all its targets per
keyframe) and for node rotations / translations (joints: path ``rotation``, unit quaternions
x, y, z, w; ``translation``). Specification: Khronos glTF 2.0, sections 3.6.2.3 (sparse
accessors), 3.7 (meshes, morph targets), 3.7.3 (skins), 3.9 (textures) and 3.11 (animations). Checked by the Khronos glTF-Validator, three.js
GLTFLoader and Blender's importer (tests/test_gltf_clients.py, benchmarks/avatar_blender.py).

Reading is bounded (:mod:`engines.io.limits`): accessor counts, embedded and external
buffers and textures are checked against the I/O layer's limit policy before anything is
allocated, and external ``uri`` files must be plain files beside the glTF.
"""  # noqa: E501

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.io import atomic_path
from engines.types import Image, Mesh, Skeleton

_FLOAT, _UINT, _USHORT, _UBYTE, _SHORT, _BYTE = 5126, 5125, 5123, 5121, 5122, 5120
_ARRAY, _ELEMENTS = 34962, 34963
_DTYPES = {_FLOAT: np.float32, _UINT: np.uint32, _USHORT: np.uint16, _UBYTE: np.uint8, _SHORT: np.int16, _BYTE: np.int8}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


@dataclass
class GltfAnimation:
    """One glTF animation (a clip): keyframe ``times`` in seconds (T, strictly increasing) and
    tracks. ``morph_weights``: target name -> T weights (targets a mesh has but the clip does
    not name keep the mesh's default weight); ``rotations``: node name -> T x 4 quaternions
    (x, y, z, w); ``translations``: node name -> T x 3 local translations."""

    name: str
    times: np.ndarray
    morph_weights: dict[str, np.ndarray] = field(default_factory=dict)
    rotations: dict[str, np.ndarray] = field(default_factory=dict)
    translations: dict[str, np.ndarray] = field(default_factory=dict)


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
        acc = Accessor(
            bufferView=self.view(a.tobytes(), target),
            componentType=ctype,
            count=int(a.shape[0]),
            type=kind,
            normalized=normalized,
        )
        if minmax:
            flat = a.reshape(len(a), -1)
            acc.min = [float(x) for x in flat.min(0)]
            acc.max = [float(x) for x in flat.max(0)]
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1


def _sparse_or_dense(blob, d: np.ndarray) -> int:
    """A POSITION morph target (N x 3 deltas) as an accessor: sparse when most rows are zero.

    glTF 2.0 §3.6.2.3: a sparse accessor without a bufferView starts as zeros and has ``count``
    rows replaced (indices strictly ascending). ``sparse.count`` must be at least 1, so a target
    that is zero everywhere on this part stores one explicit zero row. min/max describe the
    values after substitution, so they are taken from the dense array (zeros included).
    """
    from pygltflib import Accessor, AccessorSparseIndices, AccessorSparseValues, Sparse

    d = np.ascontiguousarray(d, dtype=np.float32)
    n = len(d)
    nz = np.flatnonzero(np.any(d != 0, axis=1))
    # Dense costs 12 bytes a row; sparse 12 + 2 (or 4) per non-zero row.
    if len(nz) > n // 2:
        return blob.accessor(d, _FLOAT, "VEC3", _ARRAY, minmax=True)
    if len(nz) == 0:
        nz = np.zeros(1, np.int64)
    ictype = _USHORT if n <= 65536 else _UINT
    iv = blob.view(np.ascontiguousarray(nz, dtype=_DTYPES[ictype]).tobytes())
    vv = blob.view(np.ascontiguousarray(d[nz]).tobytes())
    acc = Accessor(
        componentType=_FLOAT,
        count=n,
        type="VEC3",
        byteOffset=None,
        sparse=Sparse(
            count=int(len(nz)),
            indices=AccessorSparseIndices(bufferView=iv, componentType=ictype),
            values=AccessorSparseValues(bufferView=vv),
        ),
        min=[float(x) for x in d.min(0)],
        max=[float(x) for x in d.max(0)],
    )
    blob.gltf.accessors.append(acc)
    return len(blob.gltf.accessors) - 1


def _parts(m: Mesh) -> list[tuple[str, np.ndarray]]:
    """(name, face indices) of each glTF mesh a Mesh becomes: its face groups, or itself whole.

    Faces in no group are kept as one more part named after the mesh, so nothing is lost.
    """
    nf = len(m.faces)
    if not m.face_groups:
        return [(m.name, np.arange(nf))]
    parts, used = [], np.zeros(nf, bool)
    for name, fi in m.face_groups.items():
        fi = np.asarray(fi, np.int64)
        if len(fi) and (fi.min() < 0 or fi.max() >= nf):
            raise EngineError(f"The mesh '{m.name}': face group '{name}' refers to faces that do not exist.")
        if len(fi):
            parts.append((name, fi))
            used[fi] = True
    if not used.all():
        rest = m.name if m.name not in m.face_groups else f"{m.name}_rest"
        parts.append((rest, np.flatnonzero(~used)))
    return parts


def _skin_arrays(m: Mesh, n_joints: int, root: int) -> tuple[np.ndarray, np.ndarray]:
    """JOINTS_0 / WEIGHTS_0 for a mesh: weights normalised to sum 1 per vertex, unused slots
    pointing at joint 0 with weight 0, unweighted vertices bound to the root joint."""
    j = np.asarray(m.joints, np.int64).copy()
    w = np.clip(np.asarray(m.weights, np.float64), 0.0, None)
    if j.shape != (len(m.vertices), 4) or w.shape != (len(m.vertices), 4):
        raise EngineError(f"The mesh '{m.name}': joints and weights need 4 values per vertex.")
    if j.size and (j.min() < 0 or j.max() >= n_joints):
        raise EngineError(f"The mesh '{m.name}' refers to joints the skeleton does not have ({n_joints} joints).")
    s = w.sum(1)
    none = s <= 1e-12
    w[none] = [1.0, 0.0, 0.0, 0.0]
    j[none] = [root, 0, 0, 0]
    w /= w.sum(1, keepdims=True)
    w = w.astype(np.float32)
    # float32 rounding: put the remainder on the largest weight so rows sum to 1 within 1 ulp.
    big = w.argmax(1)
    w[np.arange(len(w)), big] += (1.0 - w.astype(np.float64).sum(1)).astype(np.float32)
    j[w == 0] = 0
    return j, w


def _add_skeleton(gltf, blob, skeleton: Skeleton) -> tuple[int, list[int]]:
    """Joint nodes (translations relative to the parent, rest rotations identity) and one skin.

    Returns (skin index, scene root node indices of the joint tree).
    """
    import pygltflib as g

    names, parents, pos = list(skeleton.names), skeleton.parents, skeleton.positions
    nj = len(names)
    if nj == 0 or len(parents) != nj or len(pos) != nj:
        raise EngineError("The skeleton needs one name, parent and position per joint.")
    if any(not (-1 <= int(p) < i) for i, p in enumerate(parents)):
        raise EngineError("The skeleton's parents must come before their children (-1 for a root).")
    first = len(gltf.nodes)
    for i in range(nj):
        p = int(parents[i])
        t = pos[i] - (pos[p] if p >= 0 else 0.0)
        gltf.nodes.append(g.Node(name=str(names[i]), translation=[float(x) for x in t]))
    for i in range(nj):
        if parents[i] >= 0:
            gltf.nodes[first + int(parents[i])].children.append(first + i)
    ibm = np.tile(np.eye(4, dtype=np.float32), (nj, 1, 1))
    ibm[:, :3, 3] = -pos
    # glTF matrices are column-major: the transpose of each row-major 4x4, flattened.
    ibm_acc = blob.accessor(ibm.transpose(0, 2, 1).reshape(nj, 16), _FLOAT, "MAT4")
    roots = [first + i for i in range(nj) if parents[i] < 0]
    gltf.skins.append(
        g.Skin(
            name="skeleton",
            joints=list(range(first, first + nj)),
            inverseBindMatrices=ibm_acc,
            skeleton=roots[0] if len(roots) == 1 else None,
        )
    )
    return len(gltf.skins) - 1, roots


def _add_animation(gltf, blob, anim: GltfAnimation, mesh_nodes: list[tuple[int, list[str], list[float]]]) -> None:
    """Append ``anim``: one sampler per channel (LINEAR), the time accessor shared."""
    import pygltflib as g

    times = np.asarray(anim.times, np.float64).ravel()
    T = len(times)
    if T < 1 or (T > 1 and np.any(np.diff(times) <= 0)):
        raise EngineError(f"The animation '{anim.name}' needs strictly increasing keyframe times.")
    t_acc = blob.accessor(times.astype(np.float32), _FLOAT, "SCALAR", minmax=True)
    samplers, channels = [], []

    def add(node: int, path: str, out_acc: int) -> None:
        samplers.append(g.AnimationSampler(input=t_acc, output=out_acc, interpolation="LINEAR"))
        channels.append(
            g.AnimationChannel(sampler=len(samplers) - 1, target=g.AnimationChannelTarget(node=node, path=path))
        )

    if anim.morph_weights:
        shared: dict[tuple, int] = {}
        for node, names, defaults in mesh_nodes:
            if not any(k in anim.morph_weights for k in names):
                continue
            key = (tuple(names), tuple(defaults))
            if key not in shared:
                rows = np.empty((T, len(names)), np.float32)
                for k, (n, d) in enumerate(zip(names, defaults)):
                    v = anim.morph_weights.get(n)
                    rows[:, k] = d if v is None else np.asarray(v, np.float32).ravel()[:T]
                shared[key] = blob.accessor(rows.reshape(-1), _FLOAT, "SCALAR")
            add(node, "weights", shared[key])
    by_name = {n.name: i for i, n in enumerate(gltf.nodes) if n.name}
    for kind, tracks, width in (("rotation", anim.rotations, 4), ("translation", anim.translations, 3)):
        for name, v in tracks.items():
            if name not in by_name:
                raise EngineError(f"The animation '{anim.name}' drives a node '{name}' the file does not have.")
            v = np.asarray(v, np.float64).reshape(T, width)
            if kind == "rotation":
                v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            add(by_name[name], kind, blob.accessor(v.astype(np.float32), _FLOAT, "VEC4" if width == 4 else "VEC3"))
    if channels:
        gltf.animations.append(g.Animation(name=anim.name, samplers=samplers, channels=channels))


def write_glb(
    meshes: list[Mesh],
    path: str | os.PathLike,
    skeleton: Skeleton | None = None,
    morph_weights: dict[str, float] | None = None,
    animations: list[GltfAnimation] | None = None,
) -> list[Path]:
    """Write meshes as one GLB scene (atomic). Returns ``[path]``.

    * A Mesh becomes one glTF mesh + node named ``mesh.name``; with ``face_groups`` it becomes
      one per group (named by the group, holding only that group's vertices), all sharing the
      Mesh's material and texture, each carrying the Mesh's full ordered list of morph targets
      (names in ``mesh.extras.targetNames``), so every part answers to the same names.
    * ``skeleton``: joint nodes and a skin; every Mesh with ``joints``/``weights`` is skinned to it
      (JOINTS_0/WEIGHTS_0 on each primitive). Skinned mesh nodes are scene roots with identity
      transforms, as glTF 2.0 §3.7.3 asks.
    * ``morph_weights``: default weights by target name, set on every mesh that has the target.
    * ``animations``: clips (:class:`GltfAnimation`) of morph weights and joint rotations.
    """
    import pygltflib as g

    path = Path(path)
    gltf = g.GLTF2(asset=g.Asset(generator="Capture Studio"), scene=0, scenes=[g.Scene(nodes=[])])
    blob = _Blob(gltf)
    morph_weights = morph_weights or {}
    skin = None
    images: dict[bytes, int] = {}
    mesh_nodes: list[tuple[int, list[str], list[float]]] = []
    for m in meshes:
        if len(m.vertices) == 0 or len(m.faces) == 0:
            raise EngineError(f"{path.name}: the mesh '{m.name}' is empty, so there is nothing to export.")
        n = len(m.vertices)
        normals = (
            m.normals if m.normals is not None and len(m.normals) == n else Mesh(m.vertices, m.faces).compute_normals()
        )
        has_uv = m.uv is not None and len(m.uv) == n
        uv = None
        if has_uv:
            uv = m.uv.copy()
            uv[:, 1] = 1.0 - uv[:, 1]
        cols = colors_u8(m.vertex_colors, n)
        if cols is not None and cols.shape[1] == 3:
            # VEC4 keeps every element 4-byte aligned, as glTF requires of vertex attributes.
            cols = np.hstack([cols, np.full((n, 1), 255, np.uint8)])
        joints = weights = None
        if skeleton is not None and m.joints is not None and m.weights is not None:
            if skin is None:
                skin, joint_roots = _add_skeleton(gltf, blob, skeleton)
            joints, weights = _skin_arrays(m, len(skeleton.names), int(np.flatnonzero(skeleton.parents < 0)[0]))
        jtype = _UBYTE if skeleton is None or len(skeleton.names) <= 256 else _USHORT
        pbr = g.PbrMetallicRoughness(baseColorFactor=[1, 1, 1, 1], metallicFactor=0.0, roughnessFactor=0.9)
        material = g.Material(name=f"{m.name}_material", pbrMetallicRoughness=pbr, doubleSided=True)
        if has_uv and m.texture is not None:
            tex = texture_u8(m.texture)
            key = hashlib.sha1(tex.tobytes() + str(tex.shape).encode()).digest()
            if key not in images:  # one image/texture per distinct picture, however many meshes use it
                gltf.images.append(
                    g.Image(bufferView=blob.view(png_bytes(tex)), mimeType="image/png", name=f"{m.name}_texture")
                )
                if not gltf.samplers:
                    gltf.samplers.append(g.Sampler(magFilter=9729, minFilter=9987, wrapS=10497, wrapT=10497))
                gltf.textures.append(g.Texture(sampler=0, source=len(gltf.images) - 1))
                images[key] = len(gltf.textures) - 1
            pbr.baseColorTexture = g.TextureInfo(index=images[key])
            if tex.shape[2] == 4 and (tex[:, :, 3] < 255).any():
                material.alphaMode = "BLEND"
        gltf.materials.append(material)
        mat = len(gltf.materials) - 1
        names = list(m.morph_targets)
        for part, fi in _parts(m):
            faces = m.faces[fi]
            if not m.face_groups:  # a plain mesh keeps every vertex, in order
                keep, local = None, faces
            else:
                keep = np.unique(faces.ravel())
                remap = np.full(n, -1, np.int64)
                remap[keep] = np.arange(len(keep))
                local = remap[faces]

            def sub(a):
                return a if keep is None else a[keep]  # noqa: B023

            nv = n if keep is None else len(keep)
            attrs = g.Attributes(POSITION=blob.accessor(sub(m.vertices), _FLOAT, "VEC3", _ARRAY, minmax=True))
            attrs.NORMAL = blob.accessor(sub(normals), _FLOAT, "VEC3", _ARRAY)
            if uv is not None:
                attrs.TEXCOORD_0 = blob.accessor(sub(uv), _FLOAT, "VEC2", _ARRAY)
            if cols is not None:
                attrs.COLOR_0 = blob.accessor(sub(cols), _UBYTE, "VEC4", _ARRAY, normalized=True)
            if joints is not None:
                attrs.JOINTS_0 = blob.accessor(sub(joints), jtype, "VEC4", _ARRAY)
                attrs.WEIGHTS_0 = blob.accessor(sub(weights), _FLOAT, "VEC4", _ARRAY)
            itype = _USHORT if nv < 65535 else _UINT  # 65535 is the primitive-restart value
            prim = g.Primitive(
                attributes=attrs,
                indices=blob.accessor(local.reshape(-1), itype, "SCALAR", _ELEMENTS),
                material=mat,
                mode=4,
            )
            gmesh = g.Mesh(name=part, primitives=[prim])
            if names:
                prim.targets = [g.Attributes(POSITION=_sparse_or_dense(blob, sub(m.morph_targets[k]))) for k in names]
                gmesh.weights = [float(morph_weights.get(k, 0.0)) for k in names]
                gmesh.extras = {"targetNames": names}
            gltf.meshes.append(gmesh)
            gltf.nodes.append(g.Node(name=part, mesh=len(gltf.meshes) - 1, skin=skin if joints is not None else None))
            gltf.scenes[0].nodes.append(len(gltf.nodes) - 1)
            if names:
                mesh_nodes.append((len(gltf.nodes) - 1, names, list(gmesh.weights)))
    if skin is not None:
        gltf.scenes[0].nodes.extend(joint_roots)
    for anim in animations or []:
        _add_animation(gltf, blob, anim, mesh_nodes)
    data = b"".join(blob.parts)
    gltf.buffers.append(g.Buffer(byteLength=len(data)))
    gltf.set_binary_blob(data)
    with atomic_path(path) as tmp:
        gltf.save_binary(str(tmp))
    return [path]


# ----------------------------------------------------------------------------- reading
def _external(path: Path, uri: str, cache) -> bytes:
    """An external buffer/image file named by ``uri``: a plain file in the glTF's folder
    (not /dev/zero, not a folder elsewhere), within the file's budget."""
    from urllib.parse import unquote

    f = (path.parent / unquote(uri)).resolve()
    if f.parent != path.parent.resolve() and path.parent.resolve() not in f.parents:
        raise EngineError(
            f"{path.name}: refers to {uri}, outside its own folder; it was not opened. "
            "Only open files from sources you trust."
        )
    if not f.is_file():
        raise EngineError(
            f"{path.name}: refers to {uri}, which is missing or not a file. Keep the files it needs beside it."
        )
    _budget(cache, path).take(f.stat().st_size, f"the external file {uri}")
    return f.read_bytes()


def _budget(cache, path: Path):
    """The bytes this one file may still make the reader allocate (kept in ``cache``)."""
    from engines.io.limits import Budget

    if "__budget__" not in cache:
        cache["__budget__"] = Budget(path)
    return cache["__budget__"]


def _buffer_bytes(gltf, path: Path, i: int, cache=None) -> bytes:
    cache = {} if cache is None else cache
    buf = gltf.buffers[i]
    if buf.uri is None:
        return gltf.binary_blob()
    if buf.uri.startswith("data:"):
        import base64

        return base64.b64decode(buf.uri.split(",", 1)[1])
    return _external(path, buf.uri, cache)


def _view_bytes(gltf, path, cache, i: int) -> tuple[bytes, int | None]:
    bv = gltf.bufferViews[i]
    if bv.buffer not in cache:
        cache[bv.buffer] = _buffer_bytes(gltf, path, bv.buffer, cache)
    off = bv.byteOffset or 0
    return cache[bv.buffer][off : off + bv.byteLength], bv.byteStride


def _accessor(gltf, path, cache, i: int) -> np.ndarray:
    acc = gltf.accessors[i]
    dt = np.dtype(_DTYPES[acc.componentType])
    width = _WIDTH[acc.type]
    if not isinstance(acc.count, int) or acc.count < 0:
        raise EngineError(f"{path.name}: accessor {i} has no valid element count. Export the file again.")
    _budget(cache, path).take(acc.count * width * dt.itemsize, f"accessor {i} ({acc.count} x {acc.type})")
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
    sp = acc.sparse
    if sp is not None:  # glTF 2.0 §3.6.2.3: replace `count` rows of the base (zeros without a bufferView)
        sp = sp if not isinstance(sp, dict) else _SparseView(sp)
        idt = np.dtype(_DTYPES[sp.indices.componentType])
        data, _ = _view_bytes(gltf, path, cache, sp.indices.bufferView)
        idx = np.frombuffer(data, idt, count=sp.count, offset=sp.indices.byteOffset or 0).astype(np.int64)
        data, _ = _view_bytes(gltf, path, cache, sp.values.bufferView)
        vals = np.frombuffer(data, dt, count=sp.count * width, offset=sp.values.byteOffset or 0).reshape(
            sp.count, width
        )
        if len(idx) and (idx.min() < 0 or idx.max() >= acc.count):
            raise EngineError(f"{path.name}: a sparse accessor points past its {acc.count} elements. Export it again.")
        out = out if out.flags.writeable else out.copy()
        out[idx] = vals
    if acc.normalized and dt.kind in "ui":
        out = out.astype(np.float32) / np.iinfo(dt).max
    return out


class _SparseView:
    """Attribute access to a sparse accessor that pygltflib left as a dict."""

    def __init__(self, d: dict):
        self.count = d["count"]
        self.indices = type(
            "I",
            (),
            {
                "bufferView": d["indices"]["bufferView"],
                "byteOffset": d["indices"].get("byteOffset", 0),
                "componentType": d["indices"]["componentType"],
            },
        )
        self.values = type(
            "V", (), {"bufferView": d["values"]["bufferView"], "byteOffset": d["values"].get("byteOffset", 0)}
        )


def _node_matrix(node) -> np.ndarray:
    if node.matrix:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T
    m = np.eye(4)
    if node.scale:
        m = np.diag([*node.scale, 1.0]) @ m
    if node.rotation:
        x, y, z, w = node.rotation
        r = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
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
    src = gltf.images[gltf.textures[pbr.baseColorTexture.index].source]
    if src.bufferView is not None:
        data, _ = _view_bytes(gltf, path, cache, src.bufferView)
    elif src.uri and src.uri.startswith("data:"):
        import base64

        data = base64.b64decode(src.uri.split(",", 1)[1])
    else:
        data = _external(path, src.uri, cache)
    from engines.io.limits import open_image_bytes

    im = open_image_bytes(data, path, f"its texture {src.name or ''}".strip())
    _budget(cache, path).take(im.size[0] * im.size[1] * 4, "its textures")
    alpha = "A" in im.getbands() or "transparency" in im.info
    return np.asarray(im.convert("RGBA" if alpha else "RGB"))


def read_glb(path: str | os.PathLike) -> list[Mesh]:
    """Read every triangle primitive of a GLB/glTF as a :class:`Mesh` in world coordinates."""
    import pygltflib as g

    path = Path(path)
    try:
        gltf = g.GLTF2().load(str(path))
    except Exception as e:
        raise EngineError(
            f"{path.name}: not a readable glTF/GLB file ({e}). Export it again from the tool that made it."
        ) from None
    if gltf is None:
        raise EngineError(f"{path.name}: not a readable glTF/GLB file. Export it again from the tool that made it.")
    cache: dict = {}
    out: list[Mesh] = []

    def visit(ni: int, parent: np.ndarray):
        node = gltf.nodes[ni]
        world = parent @ _node_matrix(node)
        if node.mesh is not None:
            # glTF 2.0 §3.7.3: a skinned mesh ignores its node's transform; at rest (inverse bind
            # matrices = inverse joint transforms) its vertices are already where they are drawn.
            place = np.eye(4) if node.skin is not None else world
            gm = gltf.meshes[node.mesh]
            names = list((gm.extras or {}).get("targetNames", []))
            for pi, prim in enumerate(gm.primitives):
                if prim.mode not in (None, 4):
                    continue
                out.append(
                    _primitive(
                        gltf,
                        path,
                        cache,
                        prim,
                        place,
                        names,
                        node.name or gm.name or f"mesh{len(out)}",
                        pi,
                        len(gm.primitives),
                    )
                )
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
    faces = (
        _accessor(gltf, path, cache, prim.indices).reshape(-1, 3)
        if prim.indices is not None
        else np.arange(len(v)).reshape(-1, 3)
    )
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
    joints = weights = None
    if a.JOINTS_0 is not None and a.WEIGHTS_0 is not None:
        joints = _accessor(gltf, path, cache, a.JOINTS_0).astype(np.int64)
        weights = _accessor(gltf, path, cache, a.WEIGHTS_0).astype(np.float32)
    return Mesh(
        v_world,
        faces,
        normals,
        uv,
        _texture(gltf, path, cache, material) if uv is not None else None,
        cols,
        targets,
        name=name if nprims == 1 else f"{name}_{pi}",
        joints=joints,
        weights=weights,
    )
