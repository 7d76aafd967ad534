"""Benchmark: peak memory and time of reading the hostile files of issue 14 (item 2).

Makes, streamed so they never exist in memory here, the small files that declare huge
payloads:

* a project whose result ``.npz`` (2.9 MB) holds a 3 GB float32 array of zeros;
* a 13000 x 13000 16-bit RGBA PNG of zeros (1.3 MB);
* an avatar bundle (2.9 MB) whose ``avatar.glb`` member inflates to 3 GB.

Each is read in its own subprocess (Project.load, read_image, make_thumbnail, io.read),
under a 10 GB address-space cap so a regression cannot take the machine down, and the
table gives the resident peak above the subprocess's import baseline
(``resource.getrusage``), the time, and how the read ended. With the limit policy of
:mod:`engines.io.limits` every one is refused from its header in well under a second.

Run: ``.venv/bin/python benchmarks/hostile_files.py [--keep DIR]`` (about 30 s to make the files).
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 1 << 24


def _zeros_into(fh, n: int) -> None:
    z = b"\0" * CHUNK
    while n > 0:
        k = min(n, CHUNK)
        fh.write(z[:k])
        n -= k


def make(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n = 3 * 10**9 // 4
    rdir = folder / "big.results"
    rdir.mkdir(exist_ok=True)
    with zipfile.ZipFile(rdir / "result_001.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("d.npy", "w", force_zip64=True) as fh:
            head = io.BytesIO()
            np.lib.format.write_array_header_2_0(head, {"descr": "<f4", "fortran_order": False, "shape": (n,)})
            fh.write(head.getvalue())
            _zeros_into(fh, n * 4)
    tree = {
        "__type__": "Result",
        "fields": {
            "items": {"__list__": [{"__type__": "DepthMap", "fields": {"depth": {"__array__": "d"}}}], "tuple": False}
        },
    }
    (folder / "big.capstudio").write_text(
        json.dumps(
            {
                "format": "capture-studio-project",
                "version": 1,
                "inputs": [],
                "results": [{"file": "big.results/result_001.npz", "tree": tree}],
            }
        )
    )

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    w = h = 13000
    with open(folder / "huge16.png", "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 6, 0, 0, 0)))
        c, row = zlib.compressobj(9), b"\0" * (1 + w * 8)
        for _ in range(h):
            d = c.compress(row)
            if d:
                f.write(chunk(b"IDAT", d))
        f.write(chunk(b"IDAT", c.flush()) + chunk(b"IEND", b""))

    with zipfile.ZipFile(folder / "bomb.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("avatar.json", json.dumps({"format": "capture-studio-avatar", "version": 1}))
        with z.open("avatar.glb", "w", force_zip64=True) as fh:
            _zeros_into(fh, 3 * 10**9)


CASES = {  # F is the folder of the files
    "project .npz, 3 GB array (Project.load)": "r = app.project.Project.load(F / 'big.capstudio').problems",
    "16-bit RGBA PNG 13000 px (read_image)": "r = engines.io.images.read_image(F / 'huge16.png')",
    "16-bit RGBA PNG 13000 px (make_thumbnail)": "r = engines.io.images.make_thumbnail(F / 'huge16.png')",
    "avatar bundle, 3 GB GLB member (io.read)": "r = engines.io.read(F / 'bomb.zip')",
}

PROGRAM = """
import resource, sys, time
from pathlib import Path
F = Path(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (10 << 30, 10 << 30))
import numpy, PIL.Image, cv2, pygltflib
import app.project, engines.io, engines.io.images
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    {code}
    end = 'read: ' + str(r)[:90]
except BaseException as e:
    end = type(e).__name__ + ': ' + str(e)[:90]
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024, time.perf_counter() - t, end, sep='\\t')
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", type=Path, help="make the files in this folder and keep them")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory() if args.keep is None else None
    folder = args.keep or Path(tmp.name)
    if not (folder / "bomb.zip").exists():
        make(folder)
    sizes = {p.name: p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    print("files: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(sizes.items())))
    print(f"{'case':46s} {'peak RSS':>10s} {'time':>7s}  outcome")
    for name, code in CASES.items():
        r = subprocess.run(
            [sys.executable, "-c", PROGRAM.format(code=code), str(folder)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else f"nan\tnan\tcrashed: {r.stderr[-90:]}"
        mb, sec, end = line.split("\t", 2)
        print(f"{name:46s} {float(mb):7.0f} MB {float(sec):6.1f}s  {end}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
