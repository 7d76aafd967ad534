"""Bounded memory on hostile files (issue 14, item 2): sizes declared in headers (npy/npz
arrays, image dimensions, zip members and ratios, glTF accessors) are checked against the
one limit policy of :mod:`engines.io.limits` before anything is allocated.

The hostile files are tiny on disk: headers that declare gigabytes, or real data that
inflates a thousand times under a lowered limit (``CAPTURE_STUDIO_MAX_FILE_MB``). Memory is
asserted with tracemalloc (NumPy reports its allocations to it) and, for the decoders that
do not (PIL, OpenCV, zlib), with the peak RSS of a subprocess (``resource.getrusage``).
"""

from __future__ import annotations

import io as _io
import json
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from engines.api import EngineError

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20


def _npy_bytes(shape, descr="<f4", payload=b"\0" * 64) -> bytes:
    """An .npy file: a real header (magic included) declaring ``shape``, then ``payload``."""
    b = _io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {"descr": descr, "fortran_order": False, "shape": shape})
    return b.getvalue() + payload


def _project(folder: Path, npz_bytes: bytes | None = None, arrays: dict | None = None) -> Path:
    """A project with one DepthMap result whose depth array is the hostile one."""
    rdir = folder / "big.results"
    rdir.mkdir(parents=True)
    if arrays is not None:
        np.savez_compressed(rdir / "result_001.npz", **arrays)
    else:
        (rdir / "result_001.npz").write_bytes(npz_bytes)
    tree = {
        "__type__": "Result",
        "fields": {
            "items": {"__list__": [{"__type__": "DepthMap", "fields": {"depth": {"__array__": "d"}}}], "tuple": False}
        },
    }
    p = folder / "big.capstudio"
    p.write_text(
        json.dumps(
            {
                "format": "capture-studio-project",
                "version": 1,
                "inputs": [],
                "results": [{"file": "big.results/result_001.npz", "tree": tree, "label": "Depth"}],
            }
        )
    )
    return p


def _peak_during(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        try:
            out = fn()
        except Exception as e:  # the refusal is what we want; the peak is measured either way
            out = e
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- npz / npy ------------------------------------------------------------------------------
def test_project_npz_declaring_3_gb_is_refused_before_allocating(tmp_path):
    from app.project import Project

    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # header says 750M float32 (3 GB); the member is honest about it
        info = zipfile.ZipInfo("d.npy")
        z.writestr(info, _npy_bytes((750_000_000,)))
    path = _project(tmp_path, buf.getvalue())
    project, peak = _peak_during(lambda: Project.load(path))
    assert peak < 16 * MB, f"{peak / MB:.0f} MB allocated"
    assert not isinstance(project, Exception), project
    assert project.results == [] and len(project.problems) == 1
    assert "d" in project.problems[0] and "damaged" in project.problems[0]


def test_real_zero_array_over_the_limit_is_refused_by_its_header(tmp_path, monkeypatch):
    from app.project import Project

    monkeypatch.setenv("CAPTURE_STUDIO_MAX_FILE_MB", "4")
    path = _project(tmp_path, arrays={"d": np.zeros((2048, 2048), np.float32)})  # 16 MB, deflates 1000x
    project, peak = _peak_during(lambda: Project.load(path))
    assert peak < 4 * MB, f"{peak / MB:.0f} MB allocated"
    assert not isinstance(project, Exception), project
    assert project.results == [] and len(project.problems) == 1
    msg = project.problems[0]
    assert "result_001.npz" in msg and "16.0 MB" in msg and "more than the 4.0 MB" in msg


def test_npz_inside_the_limit_still_loads(tmp_path, monkeypatch):
    from app.project import Project

    monkeypatch.setenv("CAPTURE_STUDIO_MAX_FILE_MB", "4")
    d = np.random.default_rng(0).random((64, 48)).astype(np.float32)
    project = Project.load(_project(tmp_path, arrays={"d": d}))
    assert project.problems == [] and np.array_equal(project.results[0].result.main.depth, d)


def test_depth_npy_declaring_gigabytes_is_refused(tmp_path):
    from engines.io.depth import read_depth_npy

    f = tmp_path / "depth.npy"
    f.write_bytes(_npy_bytes((20000, 20000)))  # 1.6 GB declared, 64 bytes given
    err, peak = _peak_during(lambda: read_depth_npy(f))
    assert isinstance(err, EngineError) and "depth.npy" in str(err) and "truncated" in str(err)
    assert peak < 16 * MB, f"{peak / MB:.0f} MB allocated"


def test_object_arrays_are_never_unpickled(tmp_path):
    from engines.io.limits import load_npz

    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("o.npy", _npy_bytes((1,), descr="|O", payload=b"\x80\x04N."))
    with pytest.raises(EngineError, match="pickle"):
        load_npz(buf.getvalue(), "x.npz")


# -- images --------------------------------------------------------------------------------
def _png_header_only(w: int, h: int, bits: int, colour: int) -> bytes:
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    rows = zlib.compress(b"\0" * (1 + w * 8) * 2)  # two rows of pixels; the rest never comes
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, colour, 0, 0, 0))
        + chunk(b"IDAT", rows)
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("reader", ["read_image", "make_thumbnail"])
def test_png_declaring_13000_px_16_bit_rgba_is_refused_before_decoding(tmp_path, reader):
    from engines.io import images
    from engines.io.limits import FileTooLarge

    f = tmp_path / "huge.png"
    f.write_bytes(_png_header_only(13000, 13000, 16, 6))
    assert f.stat().st_size < 2000
    with pytest.raises(FileTooLarge) as e:
        getattr(images, reader)(f)
    msg = str(e.value)
    assert "huge.png" in msg and "13000x13000" in msg and "16-bit" in msg and "more than the 1.0 GB" in msg


def test_big_jpeg_is_decoded_reduced_and_other_formats_refused(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from engines.io.images import read_image

    pixels = np.full((1200, 1600, 3), 90, np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "big.jpg", quality=80)
    PILImage.fromarray(pixels).save(tmp_path / "big.png")
    monkeypatch.setenv("CAPTURE_STUDIO_MAX_FILE_MB", "1")  # 5.8 MB at full size: only a 1/4 decode fits
    img = read_image(tmp_path / "big.jpg", max_pixels=1e9)
    assert img.pixels.shape == (300, 400, 3)  # libjpeg's 1/4 scale, never decoded at full size
    with pytest.raises(EngineError, match="more than the 1.0 MB"):
        read_image(tmp_path / "big.png")  # a PNG cannot be decoded reduced


# -- zip members, glTF ---------------------------------------------------------------------
def test_avatar_bundle_with_an_inflating_member_is_refused_unread(tmp_path):
    from engines import io
    from engines.io.limits import FileTooLarge

    f = tmp_path / "bomb.zip"
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("avatar.json", json.dumps({"format": "capture-studio-avatar"}))
        with z.open("avatar.glb", "w") as fh:
            chunk = b"\0" * MB
            for _ in range(40):  # 40 MB of zeros: about 40 KB in the zip
                fh.write(chunk)
    assert f.stat().st_size < 400_000
    err, peak = _peak_during(lambda: io.read(f))
    assert isinstance(err, FileTooLarge), err
    assert "bomb.zip" in str(err) and "avatar.glb" in str(err) and "inflates" in str(err)
    assert peak < 4 * MB, f"{peak / MB:.0f} MB allocated"


def _glb(json_doc: dict, blob: bytes = b"") -> bytes:
    js = json.dumps(json_doc).encode()
    js += b" " * (-len(js) % 4)
    blob += b"\0" * (-len(blob) % 4)
    body = struct.pack("<I4s", len(js), b"JSON") + js
    if blob:
        body += struct.pack("<I4s", len(blob), b"BIN\0") + blob
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def test_glb_accessor_declaring_millions_of_vertices_is_refused(tmp_path, monkeypatch):
    from engines.io.gltf import read_glb

    monkeypatch.setenv("CAPTURE_STUDIO_MAX_FILE_MB", "8")
    doc = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        # no bufferView: "all zeros", as a sparse base; 3 million VEC3 = 36 MB, from a 300-byte file
        "accessors": [{"componentType": 5126, "count": 3_000_000, "type": "VEC3"}],
    }
    f = tmp_path / "huge.glb"
    f.write_bytes(_glb(doc))
    err, peak = _peak_during(lambda: read_glb(f))
    assert isinstance(err, EngineError) and "huge.glb" in str(err) and "more than the 8.0 MB" in str(err), err
    assert peak < 8 * MB, f"{peak / MB:.0f} MB allocated"


def test_gltf_buffer_outside_its_folder_is_refused(tmp_path):
    from engines.io.gltf import read_glb

    (tmp_path / "secret.bin").write_bytes(np.zeros(9, np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    doc = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "buffers": [{"uri": "../secret.bin", "byteLength": 36}],
        "bufferViews": [{"buffer": 0, "byteLength": 36}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}],
    }
    (folder / "m.gltf").write_text(json.dumps(doc))
    with pytest.raises(EngineError, match="outside its own folder"):
        read_glb(folder / "m.gltf")


# -- the bound, measured: peak RSS of a subprocess reading each hostile file ----------------------
def test_peak_memory_on_hostile_files_stays_bounded(tmp_path):
    """Under a 16 MB limit, reading files that would decode to 24-32 MB each (a 16-bit RGBA PNG,
    a zero-filled npz, a bundle whose GLB inflates) raises the resident peak by less than
    the limit. Without the checks each one reaches several times its decoded size."""
    import cv2

    png = tmp_path / "rgba16.png"
    ok, buf = cv2.imencode(".png", np.zeros((2048, 2048, 4), np.uint16))  # 32 MB decoded
    assert ok
    png.write_bytes(buf.tobytes())
    project = _project(tmp_path / "p", arrays={"d": np.zeros((3072, 2048), np.float32)})  # 24 MB
    bundle = tmp_path / "b.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("avatar.json", "{}")
        z.writestr("avatar.glb", b"\0" * (24 * MB))  # stays under the ratio floor: the size limit decides
    script = r"""
import json, resource, sys
import numpy, PIL.Image, cv2, pygltflib, zipfile
from app.project import Project
from engines import io
from engines.io import images, limits, mesh
import engines.avatar.export
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base, out = peak(), {}
for name, fn in (("png", lambda: images.read_image(sys.argv[1])),
                 ("thumbnail", lambda: images.make_thumbnail(sys.argv[1])),
                 ("project", lambda: Project.load(sys.argv[2]).problems),
                 ("bundle", lambda: io.read(sys.argv[3]))):
    try:
        r = fn(); msg = str(r)
    except Exception as e:
        msg = type(e).__name__ + ": " + str(e)
    out[name] = [peak() - base, msg]
print(json.dumps(out))
"""
    import os

    env = dict(os.environ, CAPTURE_STUDIO_MAX_FILE_MB="16")
    r = subprocess.run(
        [sys.executable, "-c", script, str(png), str(project), str(bundle)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for name, (grown_mb, msg) in out.items():
        assert "more than the 16.0 MB" in msg, (name, msg)
        assert grown_mb < 12, (name, f"peak grew by {grown_mb:.0f} MB", msg)
