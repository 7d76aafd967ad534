"""The standard 3D Gaussian splatting files: the PLY of the paper's code and its cameras.json.

PLY (binary little-endian, one ``vertex`` element, float32 properties in this order, as
``GaussianModel.save_ply`` of graphdeco-inria/gaussian-splatting writes them, which
SuperSplat, the antimatter15 and gsplat.js viewers and nerfstudio read)::

    x y z  nx ny nz  f_dc_0 f_dc_1 f_dc_2  f_rest_0 .. f_rest_{3(K-1)-1}  opacity
    scale_0 scale_1 scale_2  rot_0 rot_1 rot_2 rot_3

``f_rest`` is channel-major (all of red's higher-order coefficients, then green's, then
blue's), ``opacity`` is the logit, ``scale_*`` natural logs, ``rot`` a quaternion w x y z,
normals zero.

cameras.json (a list, one entry per photo, as ``camera_to_JSON`` writes it): ``id``,
``img_name``, ``width``, ``height``, ``position`` (the camera centre), ``rotation`` (3x3,
camera-to-world: its columns are the camera's x right, y down, z forward axes in the splat's
frame), ``fx``, ``fy``; we add ``cx``, ``cy``, ``held_out`` (true for photos kept out of
training for evaluation) and ``splat`` (the PLY it belongs to).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.types import Camera, Splat

_SH_DEGREE_BY_REST = {0: 0, 9: 1, 24: 2, 45: 3}


def splat_properties(sh_degree: int) -> list[str]:
    n_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(n_rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def splat_to_bytes(splat: Splat) -> bytes:
    n = len(splat)
    props = splat_properties(splat.sh_degree)
    rest = splat.sh[:, 1:, :].transpose(0, 2, 1).reshape(n, -1)  # channel-major
    cols = np.concatenate(
        [
            splat.positions,
            np.zeros((n, 3), np.float32),
            splat.sh[:, 0, :],
            rest,
            splat.opacity_logits[:, None],
            splat.log_scales,
            splat.rotations,
        ],
        1,
    ).astype("<f4")
    assert cols.shape[1] == len(props)
    header = (
        ["ply", "format binary_little_endian 1.0", "comment Capture Studio 3D Gaussian splat", f"element vertex {n}"]
        + [f"property float {p}" for p in props]
        + ["end_header"]
    )
    return ("\n".join(header) + "\n").encode("ascii") + np.ascontiguousarray(cols).tobytes()


def _read_header(f) -> tuple[list[str], int, str, int]:
    first = f.readline()
    if first.strip() != b"ply":
        raise EngineError(f"{getattr(f, 'name', 'file')}: not a PLY file.")
    props, n, fmt, in_vertex, other_before = [], 0, "", False, 0
    while True:
        line = f.readline()
        if not line:
            raise EngineError(f"{getattr(f, 'name', 'file')}: the PLY header has no end_header.")
        parts = line.decode("ascii", "replace").split()
        if not parts:
            continue
        if parts[0] == "format":
            fmt = parts[1]
        elif parts[0] == "element":
            in_vertex = parts[1] == "vertex"
            if in_vertex:
                n = int(parts[2])
            elif n == 0:
                other_before += 1
        elif parts[0] == "property" and in_vertex:
            if parts[1] == "list":
                raise EngineError("This PLY's vertices have list properties; it is not a Gaussian splat.")
            props.append((parts[2], parts[1]))
        elif parts[0] == "end_header":
            break
    return props, n, fmt, other_before


_PLY_TYPES = {
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
    "uchar": "u1",
    "uint8": "u1",
    "char": "i1",
    "int8": "i1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
}


def is_splat_ply(path: str | os.PathLike) -> bool:
    """Whether a PLY's vertices carry the 3DGS properties (opacity, scale_0, rot_0, f_dc_0)."""
    try:
        with open(path, "rb") as f:
            props, _, _, _ = _read_header(f)
    except (OSError, EngineError, ValueError):
        return False
    names = {p for p, _ in props}
    return {"x", "opacity", "scale_0", "rot_0", "f_dc_0"} <= names


def read_splat_ply(path: str | os.PathLike) -> Splat:
    """Read a 3DGS PLY (any property order, float or double; binary little/big endian)."""
    path = Path(path)
    with open(path, "rb") as f:
        props, n, fmt, other = _read_header(f)
        if other:
            raise EngineError(f"{path.name}: other elements come before the vertices; not a splat PLY.")
        if fmt not in ("binary_little_endian", "binary_big_endian"):
            raise EngineError(f"{path.name}: an ASCII splat PLY is not supported; save it as binary.")
        end = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(p, end + _PLY_TYPES.get(t, "f4")) for p, t in props])
        from engines.io import limits

        # what the header declares, checked before reading (1 GiB by default: ~4M Gaussians)
        limits.check_bytes(dtype.itemsize * n, path, "the Gaussian splat")
        data = f.read(dtype.itemsize * n)
    if len(data) < dtype.itemsize * n:
        raise EngineError(f"{path.name}: the file is shorter than its header says ({n} Gaussians); it may be cut off.")
    v = np.frombuffer(data, dtype=dtype, count=n)
    names = set(dtype.names)
    need = [
        "x",
        "y",
        "z",
        "f_dc_0",
        "f_dc_1",
        "f_dc_2",
        "opacity",
        "scale_0",
        "scale_1",
        "scale_2",
        "rot_0",
        "rot_1",
        "rot_2",
        "rot_3",
    ]
    missing = [p for p in need if p not in names]
    if missing:
        raise EngineError(f"{path.name}: not a Gaussian splat PLY (missing {', '.join(missing)}).")
    rest_names = sorted((p for p in names if p.startswith("f_rest_")), key=lambda s: int(s.split("_")[-1]))
    if len(rest_names) not in _SH_DEGREE_BY_REST:
        raise EngineError(f"{path.name}: {len(rest_names)} f_rest properties match no SH degree (0, 9, 24 or 45).")
    col = lambda *ps: np.stack([v[p].astype(np.float32) for p in ps], 1)  # noqa: E731
    k = len(rest_names) // 3
    sh = np.zeros((n, k + 1, 3), np.float32)
    sh[:, 0] = col("f_dc_0", "f_dc_1", "f_dc_2")
    if k:
        sh[:, 1:] = col(*rest_names).reshape(n, 3, k).transpose(0, 2, 1)
    return Splat(
        col("x", "y", "z"),
        col("scale_0", "scale_1", "scale_2"),
        col("rot_0", "rot_1", "rot_2", "rot_3"),
        v["opacity"].astype(np.float32),
        sh,
        name=path.stem,
    )


def read_ply_any(path: str | os.PathLike):
    """The ``.ply`` reader: a Gaussian splat when the file is one (with the cameras of a
    cameras.json beside it written for it), else a mesh or points."""
    if is_splat_ply(path):
        splat = read_splat_ply(path)
        splat.cameras = sidecar_cameras(Path(path))
        return splat
    from engines.io.mesh import read_ply

    return read_ply(path)


# ----------------------------------------------------------------------------- cameras
def cameras_json(splat: Splat, splat_name: str = "") -> list[dict]:
    """The cameras as the 3DGS reference code's cameras.json lists them."""
    out = []
    for i, c in enumerate(splat.cameras):
        c = Camera.from_dict(c)
        K = c.K
        entry = {
            "id": i,
            "img_name": Path(c.name).stem,
            "width": c.width,
            "height": c.height,
            "position": c.centre.tolist(),
            "rotation": c.R.T.tolist(),
            "fy": float(K[1, 1]),
            "fx": float(K[0, 0]),
            "cx": float(K[0, 2]),
            "cy": float(K[1, 2]),
            "held_out": c.held_out,
        }
        if splat_name:
            entry["splat"] = splat_name
        out.append(entry)
    return out


def cameras_from_json(entries: list[dict]) -> list[Camera]:
    """Our cameras from cameras.json entries (cx, cy default to the image centre)."""
    cams = []
    for e in entries:
        Rc = np.asarray(e["rotation"], np.float64)
        pos = np.asarray(e["position"], np.float64)
        R = Rc.T
        w, h = int(e["width"]), int(e["height"])
        K = np.array([[e["fx"], 0, e.get("cx", (w - 1) / 2)], [0, e["fy"], e.get("cy", (h - 1) / 2)], [0, 0, 1.0]])
        cams.append(Camera(K, R, -R @ pos, w, h, name=str(e["img_name"]), held_out=bool(e.get("held_out", False))))
    return cams


def sidecar_cameras(path: Path) -> list[Camera]:
    """The cameras from a ``cameras*.json`` beside ``path`` whose entries name it, else []."""
    for cand in sorted(path.parent.glob("cameras*.json")):
        if _own_cameras(path, cand):
            try:
                return cameras_from_json(json.loads(cand.read_text()))
            except (KeyError, TypeError, ValueError):
                return []  # a damaged sidecar: the splat itself is still good
    return []


def _own_cameras(path: Path, sidecar: Path) -> bool:
    """Whether an existing cameras.json was written with the splat at ``path``."""
    from engines.io import limits

    try:
        entries = json.loads(limits.read_json_text(sidecar, "the cameras"))
        return (
            isinstance(entries, list)
            and bool(entries)
            and all(isinstance(e, dict) and e.get("splat") == path.name for e in entries)
        )
    except (OSError, ValueError, EngineError):
        return False


def write_splat_ply(splat: Splat, path: str | os.PathLike) -> list[Path]:
    """Write the PLY and, when the splat has cameras, ``cameras.json`` beside it (as one
    transaction; an existing cameras.json of another splat is kept and ours numbered)."""
    from engines.io.files import WriteSet, free_sidecar

    path = Path(path)
    data = splat_to_bytes(splat)
    targets = [path]
    with WriteSet() as ws:
        if splat.cameras:
            want = path.with_name("cameras.json")
            own = [want] if want.exists() and _own_cameras(path, want) else []
            cam_path = free_sidecar(path, "cameras.json", reusable=own)
            tmp = ws.add(cam_path)
            tmp.write_text(json.dumps(cameras_json(splat, path.name), indent=1))
            targets.append(cam_path)
        tmp = ws.add(path, main=True)
        tmp.write_bytes(data)
    return targets


def write_cameras_json(splat: Splat, path: str | os.PathLike) -> list[Path]:
    """Only the cameras (``--out cameras.json``)."""
    from engines.io import atomic_path

    if not splat.cameras:
        raise EngineError("This splat has no cameras to write (it was not trained from photos here).")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(cameras_json(splat), indent=1))
    return [path]
