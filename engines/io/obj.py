"""Wavefront OBJ (+ MTL + PNG) reading and writing.

Each :class:`~engines.types.Mesh` becomes an ``o <name>`` object with its own material.
Files beside the OBJ take the OBJ's stem and say what they are (``head.obj`` ->
``head.mtl``, ``head_texture.png``; several textures ``head_texture_<material>.png``),
never trimesh's shared ``material.mtl``, and never a name that is taken: an existing file
is replaced only when it is a sidecar of the OBJ being overwritten, otherwise a number is
added (``head_texture_2.png``), so an export cannot replace the photo it was made from
(``portrait.png`` beside ``portrait.obj``). The OBJ, MTL and textures are written as one
transaction (:class:`engines.io.files.WriteSet`): all or nothing. Vertex colours are written as the widely read ``v x y z r g b`` extension.
UVs use the OBJ convention (v = 0 at the bottom of the image), the same as ``Mesh.uv``.
Morph targets have no place in OBJ; use GLB to keep them.
"""  # noqa: E501

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.io.files import WriteSet, free_sidecar
from engines.io.gltf import colors_u8, png_bytes
from engines.types import Mesh


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "mesh"


def _rows(fmt: str, a: np.ndarray) -> str:
    if len(a) == 0:
        return ""
    return (fmt * len(a)) % tuple(a.ravel().tolist())


def _own_sidecars(path: Path) -> set[Path]:
    """The MTL and textures an existing OBJ at ``path`` refers to in its own folder: an
    export over that OBJ may replace them (and nothing else beside it)."""
    out: set[Path] = set()
    try:
        if not path.is_file() or path.stat().st_size > (64 << 20):
            return out
        with open(path, "r", errors="replace") as f:
            libs = [line.split(None, 1)[1].strip() for line in f if line.startswith("mtllib ")]
    except (OSError, IndexError):
        return out
    for lib in libs:
        mtl = path.parent / lib
        if mtl.parent != path.parent or not mtl.is_file():
            continue
        out.add(mtl)
        try:
            text = mtl.read_text(errors="replace") if mtl.stat().st_size < (16 << 20) else ""
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.strip().split()
            if parts and parts[0] == "map_Kd" and len(parts) > 1:
                tex = path.parent / parts[-1]
                if tex.parent == path.parent:
                    out.add(tex)
    return out


def write_obj(meshes: list[Mesh], path: str | os.PathLike) -> list[Path]:
    """Write meshes as one OBJ with an MTL and one PNG per textured mesh, as one transaction.

    Returns ``[obj, mtl, *textures]`` with the names actually used (see the module docstring).
    """
    path = Path(path)
    stem = path.stem
    own = _own_sidecars(path)
    mtl_path = free_sidecar(path, f"{stem}.mtl", reusable=own)
    textured = [m for m in meshes if m.texture is not None and m.uv is not None and len(m.uv) == len(m.vertices)]
    lines = [f"# Capture Studio OBJ\nmtllib {mtl_path.name}\n"]
    mtl = ["# Capture Studio MTL\n"]
    textures: list[tuple[Path, np.ndarray]] = []
    used_names: set[str] = set()
    offset = 0
    for m in meshes:
        if len(m.vertices) == 0 or len(m.faces) == 0:
            raise EngineError(f"{path.name}: the mesh '{m.name}' is empty, so there is nothing to export.")
        n = len(m.vertices)
        mat = _safe(m.name)
        while mat in used_names:
            mat += "_"
        used_names.add(mat)
        lines.append(f"o {_safe(m.name)}\n")
        cols = colors_u8(m.vertex_colors, n)
        if cols is not None:
            vc = np.hstack([m.vertices.astype(np.float64), cols[:, :3] / 255.0])
            lines.append(_rows("v %.6f %.6f %.6f %.4f %.4f %.4f\n", vc))
        else:
            lines.append(_rows("v %.6f %.6f %.6f\n", m.vertices.astype(np.float64)))
        has_uv = m.uv is not None and len(m.uv) == n
        has_n = m.normals is not None and len(m.normals) == n
        if has_uv:
            lines.append(_rows("vt %.6f %.6f\n", m.uv.astype(np.float64)))
        if has_n:
            lines.append(_rows("vn %.5f %.5f %.5f\n", m.normals.astype(np.float64)))
        lines.append(f"usemtl {mat}\n")
        f = m.faces + 1 + offset
        fmt, rep = (
            ("f %d/%d/%d %d/%d/%d %d/%d/%d\n", 3)
            if has_uv and has_n
            else ("f %d/%d %d/%d %d/%d\n", 2)
            if has_uv
            else ("f %d//%d %d//%d %d//%d\n", 2)
            if has_n
            else ("f %d %d %d\n", 1)
        )
        # named parts (Mesh.face_groups: head, eyes, teeth...) become OBJ groups
        parts = list(m.face_groups.items()) if m.face_groups else [(None, np.arange(len(f)))]
        if m.face_groups:
            rest = np.setdiff1d(np.arange(len(f)), np.concatenate([v for _, v in parts]))
            if len(rest):
                parts.append((m.name, rest))
        for gname, idx in parts:
            if gname is not None:
                lines.append(f"g {_safe(gname)}\n")
            lines.append(_rows(fmt, np.repeat(f[idx], rep, axis=1)))
        offset += n
        mtl.append(f"newmtl {mat}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n")
        if any(m is t for t in textured):
            want = f"{stem}_texture.png" if len(textured) == 1 else f"{stem}_texture_{mat}.png"
            png = free_sidecar(path, want, reusable=own, taken=[mtl_path, *(t for t, _ in textures)])
            textures.append((png, m.texture))
            mtl.append(f"map_Kd {png.name}\n")
        mtl.append("\n")
    with WriteSet() as ws:
        for png, tex in textures:
            ws.add(png).write_bytes(png_bytes(tex))
        ws.add(mtl_path).write_text("".join(mtl))
        ws.add(path, main=True).write_text("".join(lines))
    return [path, mtl_path, *(png for png, _ in textures)]


# ----------------------------------------------------------------------------- reading
def _read_mtl(path: Path) -> dict[str, Path]:
    """material name -> texture path (map_Kd) for the textures that exist."""
    out: dict[str, Path] = {}
    if not path.exists():
        return out
    current = None
    for line in path.read_text(errors="replace").splitlines():
        parts = line.strip().split()
        if not parts:
            continue
        if parts[0] == "newmtl" and len(parts) > 1:
            current = " ".join(parts[1:])
        elif parts[0] == "map_Kd" and current is not None and len(parts) > 1:
            tex = path.parent / parts[-1].replace("\\", "/")
            if tex.exists():
                out[current] = tex
    return out


def _vertices(lines: list[str]) -> np.ndarray:
    """'x y z [r g b]' strings -> N x 6 (NaN colour where none is given)."""
    n = len(lines)
    if n == 0:
        return np.zeros((0, 6))
    tok = " ".join(lines).split()
    if len(tok) in (3 * n, 6 * n):
        a = np.array(tok, np.float64).reshape(n, -1)
    else:  # mixed widths (e.g. "x y z w" or colours on some lines only)
        a = np.array([(r[:6] if len(r) >= 6 else r[:3] + ["nan"] * 3) for r in (x.split() for x in lines)], np.float64)
    return a if a.shape[1] == 6 else np.hstack([a, np.full((n, 3), np.nan)])


def _faces(lines: list[str]) -> np.ndarray:
    """Face strings ('1/1/1 2/2/2 3/3/3', polygons fan-triangulated) -> T x 3 corners x (v, vt, vn), 1-based, 0 = none."""  # noqa: E501
    first = lines[0].split()[0]
    k = 3 if "//" in first else first.count("/") + 1
    text = " ".join(lines).replace("//", "/0/").replace("/", " ")
    tok = text.split()
    if len(tok) == 3 * k * len(lines):  # fast path: all triangles in one layout
        c = np.array(tok, np.int64).reshape(-1, 3, k)
    else:
        rows = []
        for line in lines:
            corners = [([int(x) if x else 0 for x in cc.split("/")] + [0, 0])[:3] for cc in line.split()]
            rows += [[corners[0], corners[i], corners[i + 1]] for i in range(1, len(corners) - 1)]
        c = np.array(rows, np.int64).reshape(-1, 3, 3)
    if c.shape[2] < 3:
        c = np.concatenate([c, np.zeros(c.shape[:2] + (3 - c.shape[2],), np.int64)], axis=2)
    return c


def _absolute(face: str, counts: tuple[int, int, int]) -> str:
    """Rewrite relative (negative) OBJ indices in one face as absolute ones."""
    out = []
    for corner in face.split():
        ids = corner.split("/")
        out.append("/".join(str(counts[j] + int(x) + 1) if x.startswith("-") else x for j, x in enumerate(ids)))
    return " ".join(out)


def read_obj(path: str | os.PathLike) -> list[Mesh]:
    """Read an OBJ into one Mesh per object (and material), with UVs, normals, textures."""
    from engines.io.images import read_image

    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path}: no such file. Check the path or choose the file again.")
    v, vt, vn = [], [], []
    parts: dict[tuple[str, str], list[str]] = {}
    obj, mat, mtllibs = "mesh", "", []
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise EngineError(f"{path.name}: could not be read ({e}).") from None
    text = text.replace("\t", " ")
    has_o = "\no " in text or text.startswith("o ")
    faces = parts.setdefault((obj, mat), [])
    for line in text.splitlines():
        key = line[:2]
        if key == "v ":
            v.append(line[2:])
        elif key == "f ":
            f = line[2:]
            faces.append(_absolute(f, (len(v), len(vt), len(vn))) if "-" in f else f)
        elif key == "vt":
            vt.append(" ".join(line[3:].split()[:2]))
        elif key == "vn":
            vn.append(line[3:])
        elif key in ("o ", "g ", "us", "mt"):
            p = line.split()
            if p[0] == "o" or (p[0] == "g" and not has_o):
                obj = " ".join(p[1:]) or "mesh"
            elif p[0] == "usemtl":
                mat = " ".join(p[1:])
            elif p[0] == "mtllib":
                mtllibs.append(" ".join(p[1:]))
            faces = parts.setdefault((obj, mat), [])
    parts = {k: x for k, x in parts.items() if x}
    try:
        V = _vertices(v)
        VT = np.array(" ".join(vt).split(), np.float64).reshape(-1, 2)
        VN = np.array(" ".join(vn).split(), np.float64).reshape(-1, 3)
        corners = {k: _faces(x) for k, x in parts.items()}
    except (ValueError, IndexError):
        raise EngineError(f"{path.name}: holds lines that are not valid OBJ. Export the file again.") from None
    if not len(V) or not parts:
        raise EngineError(f"{path.name}: holds no triangles (not an OBJ mesh, or an empty one).")
    textures: dict[str, Path] = {}
    for lib in mtllibs:
        textures.update(_read_mtl(path.parent / lib))
    meshes = []
    for (o, m), c in corners.items():
        c -= 1  # 1-based -> 0-based; missing ids become -1
        if (c[:, :, 0] < 0).any() or c[:, :, 0].max() >= len(V):
            raise EngineError(f"{path.name}: a face refers to a vertex that does not exist. Export the file again.")
        flat = c.reshape(-1, 3)
        if all((flat[:, j] == flat[:, 0]).all() or (flat[:, j] == -1).all() for j in (1, 2)):
            # One index per vertex (as this module writes): a 1D unique is enough.
            used, inv = np.unique(flat[:, 0], return_inverse=True)
            uniq = np.stack([used] + [used if (flat[:, j] >= 0).all() else np.full_like(used, -1) for j in (1, 2)], 1)
        else:
            uniq, inv = np.unique(flat, axis=0, return_inverse=True)
        vi, ti, ni = uniq[:, 0], uniq[:, 1], uniq[:, 2]
        uv = VT[ti] if len(VT) and (ti >= 0).all() and ti.max() < len(VT) else None
        normals = VN[ni] if len(VN) and (ni >= 0).all() and ni.max() < len(VN) else None
        rgb = V[vi, 3:6]
        cols = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8) if np.isfinite(rgb).all() else None
        tex = read_image(textures[m]).pixels if m in textures and uv is not None else None
        name = o if sum(1 for x, _ in parts if x == o) == 1 else f"{o}_{m}"
        meshes.append(Mesh(V[vi, :3], inv.reshape(-1, 3), normals, uv, tex, cols, name=name))
    return meshes
