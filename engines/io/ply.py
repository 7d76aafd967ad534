"""Stanford PLY reading and writing (meshes and point clouds), with numpy only.

Writes binary little-endian PLY: ``x y z [nx ny nz] [red green blue]`` per vertex and
``vertex_indices`` (uchar count, int indices) per face, the layout MeshLab, CloudCompare,
Blender and open3d read. Reads ASCII and binary (either endianness) files with any extra
vertex properties (e.g. the Stanford bunny's ``confidence``/``intensity``).
Format reference: Greg Turk, "The PLY Polygon File Format" (1994).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.io import atomic_path
from engines.io.gltf import colors_u8
from engines.types import Mesh, PointCloud

_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}


def _write(path: Path, points, normals, colors, faces) -> list[Path]:
    n = len(points)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vert = np.empty(n, dtype=fields)
    for i, k in enumerate("xyz"):
        vert[k] = points[:, i]
    if normals is not None:
        for i, k in enumerate(("nx", "ny", "nz")):
            vert[k] = normals[:, i]
    if colors is not None:
        for i, k in enumerate(("red", "green", "blue")):
            vert[k] = colors[:, i]
    header = ["ply", "format binary_little_endian 1.0", "comment Capture Studio", f"element vertex {n}"]
    header += [f"property {'float' if t == '<f4' else 'uchar'} {k}" for k, t in fields]
    if faces is not None:
        header += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    header.append("end_header")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(("\n".join(header) + "\n").encode("ascii"))
            f.write(vert.tobytes())
            if faces is not None:
                fa = np.empty(len(faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
                fa["n"] = 3
                fa["i"] = faces
                f.write(fa.tobytes())
    return [path]


def write_mesh_ply(m: Mesh, path: str | os.PathLike) -> list[Path]:
    n = len(m.vertices)
    normals = m.normals if m.normals is not None and len(m.normals) == n else None
    cols = colors_u8(m.vertex_colors, n)
    return _write(Path(path), m.vertices, normals, None if cols is None else cols[:, :3], m.faces)


def write_points_ply(cloud: PointCloud, path: str | os.PathLike) -> list[Path]:
    """Write a :class:`PointCloud` (colours and normals when present) as binary PLY."""
    path = Path(path)
    if len(cloud.points) == 0:
        raise EngineError(f"{path.name}: the point cloud is empty, so there is nothing to export.")
    n = len(cloud.points)
    normals = cloud.normals if cloud.normals is not None and len(cloud.normals) == n else None
    cols = colors_u8(cloud.colors, n)
    return _write(path, cloud.points, normals, None if cols is None else cols[:, :3], None)


def _header(f, path: Path):
    if f.readline().strip() != b"ply":
        raise EngineError(f"{path.name}: not a PLY file (it does not start with 'ply').")
    fmt, elements = None, []
    while True:
        line = f.readline()
        if not line:
            raise EngineError(f"{path.name}: the PLY header has no end_header; the file is damaged.")
        p = line.decode("ascii", "replace").split()
        if not p or p[0] in ("comment", "obj_info"):
            continue
        if p[0] == "end_header":
            return fmt, elements
        if p[0] == "format":
            fmt = p[1]
        elif p[0] == "element":
            elements.append((p[1], int(p[2]), []))
        elif p[0] == "property" and elements:
            if p[1] == "list":
                elements[-1][2].append((p[4], "list", _TYPES[p[2]], _TYPES[p[3]]))
            else:
                elements[-1][2].append((p[2], _TYPES[p[1]], None, None))


def _read_binary(f, fmt, elements, path: Path) -> dict:
    end = "<" if fmt == "binary_little_endian" else ">"
    data = f.read()
    pos, out = 0, {}
    for name, count, props in elements:
        if all(kind != "list" for _, kind, _, _ in props):
            dt = np.dtype([(p, end + t) for p, t, _, _ in props])
            arr = np.frombuffer(data, dt, count=count, offset=pos)
            pos += dt.itemsize * count
            out[name] = {p: arr[p] for p, *_ in props}
        elif len(props) == 1:
            p, _, ct, it = props[0]
            # Fast path: every list has 3 entries (triangles); checked below.
            dt = np.dtype([("n", end + ct), ("i", end + it, (3,))])
            if count * dt.itemsize <= len(data) - pos:
                arr = np.frombuffer(data, dt, count=count, offset=pos)
                if (arr["n"] == 3).all():
                    out[name] = {p: arr["i"].astype(np.int64)}
                    pos += dt.itemsize * count
                    continue
            rows, cs, isz = [], np.dtype(end + ct), np.dtype(end + it)
            for _ in range(count):
                k = int(np.frombuffer(data, cs, 1, pos)[0])
                pos += cs.itemsize
                rows.append(np.frombuffer(data, isz, k, pos).astype(np.int64))
                pos += isz.itemsize * k
            out[name] = {p: rows}
        else:
            raise EngineError(f"{path.name}: PLY element '{name}' mixes lists and values, which is not supported.")
    return out


def _read_ascii(f, elements) -> dict:
    lines = iter(f.read().decode("ascii", "replace").splitlines())
    out = {}
    for name, count, props in elements:
        cols: dict[str, list] = {p: [] for p, *_ in props}
        for _ in range(count):
            vals = next(lines).split()
            i = 0
            for p, kind, _, _ in props:
                if kind == "list":
                    k = int(vals[i])
                    cols[p].append(np.array(vals[i + 1 : i + 1 + k], np.int64))
                    i += 1 + k
                else:
                    cols[p].append(float(vals[i]))
                    i += 1
        out[name] = {p: (np.array(c) if props[j][1] != "list" else c) for j, (p, c) in enumerate(cols.items())}
    return out


def _triangles(rows) -> np.ndarray:
    if isinstance(rows, np.ndarray):
        return rows.reshape(-1, 3)
    tris = [r[[0, i, i + 1]] for r in rows for i in range(1, len(r) - 1)]
    return np.array(tris, np.int64).reshape(-1, 3)


def read_ply(path: str | os.PathLike) -> Mesh | PointCloud:
    """Read a PLY: a :class:`Mesh` when it has faces, else a :class:`PointCloud`."""
    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path}: no such file. Check the path or choose the file again.")
    try:
        with open(path, "rb") as f:
            fmt, elements = _header(f, path)
            if fmt == "ascii":
                data = _read_ascii(f, elements)
            elif fmt in ("binary_little_endian", "binary_big_endian"):
                data = _read_binary(f, fmt, elements, path)
            else:
                raise EngineError(f"{path.name}: unknown PLY format '{fmt}'.")
    except EngineError:
        raise
    except (ValueError, KeyError, IndexError, StopIteration, TypeError) as e:
        raise EngineError(f"{path.name}: the PLY file is damaged or truncated ({e}). Export it again.") from None
    vert = data.get("vertex")
    if not vert or not all(k in vert for k in "xyz"):
        raise EngineError(f"{path.name}: the PLY file has no vertex positions.")
    pts = np.stack([vert[k] for k in "xyz"], 1).astype(np.float32)
    normals = np.stack([vert[k] for k in ("nx", "ny", "nz")], 1) if all(k in vert for k in ("nx", "ny", "nz")) else None
    cnames = next(
        (
            c
            for c in (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
            if all(k in vert for k in c)
        ),
        None,
    )
    cols = colors_u8(np.stack([vert[k] for k in cnames], 1), len(pts)) if cnames else None
    face = data.get("face", {})
    rows = face.get("vertex_indices", face.get("vertex_index"))
    name = path.stem
    if rows is not None and len(rows):
        faces = _triangles(rows)
        if faces.size and (faces.min() < 0 or faces.max() >= len(pts)):
            raise EngineError(f"{path.name}: a face refers to a vertex that does not exist. Export the file again.")
        return Mesh(pts, faces, normals, vertex_colors=cols, name=name)
    return PointCloud(pts, cols, normals, name=name)
