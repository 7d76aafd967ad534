"""Our 3DGS PLY in the SuperSplat tool chain (issue 13): PlayCanvas's ``splat-transform``
(the SuperSplat team's converter, npm ``@playcanvas/splat-transform``, in tests/js) reads
the file we write with every property where the reference 3DGS code puts it, and converts it
to SuperSplat's compressed PLY, which reads back to the same Gaussians within its
quantisation."""

from __future__ import annotations

import csv
import subprocess

import numpy as np
import pytest

from engines.splat.ply import write_splat_ply
from engines.types import Splat
from tests.gltf_clients import JS, require_clients

TOOL = JS / "node_modules" / ".bin" / "splat-transform"


def _splat(n=300, seed=0) -> Splat:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1  # w >= 0: the sign some tools normalise to
    return Splat(
        positions=rng.uniform(-2, 2, (n, 3)).astype(np.float32),
        log_scales=rng.uniform(-5, -1, (n, 3)).astype(np.float32),
        rotations=q.astype(np.float32),
        opacity_logits=rng.normal(0, 2, n).astype(np.float32),
        sh=rng.normal(0, 0.3, (n, 16, 3)).astype(np.float32),
    )


def _transform(src, dst) -> None:
    require_clients()
    if not TOOL.exists():
        pytest.skip("splat-transform is not in tests/js/node_modules (run ./studio.sh test)")
    r = subprocess.run([str(TOOL), "-w", str(src), str(dst)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and dst.exists(), r.stdout[-2000:] + r.stderr[-2000:]


def _table(path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], np.array(rows[1:], np.float64)
    return {name: body[:, i] for i, name in enumerate(head)}


def test_splat_transform_reads_every_property(tmp_path):
    s = _splat()
    write_splat_ply(s, tmp_path / "scene.ply")
    _transform(tmp_path / "scene.ply", tmp_path / "scene.csv")
    t = _table(tmp_path / "scene.csv")
    assert len(t["x"]) == len(s)
    close = dict(rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.stack([t["x"], t["y"], t["z"]], 1), s.positions, **close)
    np.testing.assert_allclose(np.stack([t[f"scale_{i}"] for i in range(3)], 1), s.log_scales, **close)
    np.testing.assert_allclose(np.stack([t[f"rot_{i}"] for i in range(4)], 1), s.rotations, **close)  # w x y z
    np.testing.assert_allclose(t["opacity"], s.opacity_logits, **close)
    np.testing.assert_allclose(np.stack([t[f"f_dc_{c}"] for c in range(3)], 1), s.sh[:, 0], **close)
    # f_rest is channel-major, as the reference code writes it: all of red's 15, then green's...
    rest = np.stack([t[f"f_rest_{i}"] for i in range(45)], 1).reshape(-1, 3, 15).transpose(0, 2, 1)
    np.testing.assert_allclose(rest, s.sh[:, 1:], **close)


def test_supersplat_compressed_ply_round_trip(tmp_path):
    s = _splat(n=600, seed=1)
    write_splat_ply(s, tmp_path / "scene.ply")
    _transform(tmp_path / "scene.ply", tmp_path / "scene.compressed.ply")
    assert (tmp_path / "scene.compressed.ply").stat().st_size < (tmp_path / "scene.ply").stat().st_size / 3
    _transform(tmp_path / "scene.compressed.ply", tmp_path / "back.csv")
    t = _table(tmp_path / "back.csv")
    assert len(t["x"]) == len(s)
    # The compressed format reorders the Gaussians (in chunks of 256): match them by position.
    back = np.stack([t["x"], t["y"], t["z"]], 1)
    d = np.linalg.norm(back[:, None, :] - s.positions[None, :, :].astype(np.float64), axis=2)
    match = d.argmin(1)
    assert len(np.unique(match)) == len(s)  # one to one
    assert d[np.arange(len(s)), match].max() < 0.01  # 11-bit positions within 256-Gaussian chunks
    dc = np.stack([t[f"f_dc_{c}"] for c in range(3)], 1)
    # colours are stored as 8-bit base colours: compare in colour space (0.5 + C0 * f_dc)
    c0 = 0.28209479177387814
    err = np.abs((0.5 + c0 * dc) - (0.5 + c0 * s.sh[match, 0]))
    assert np.percentile(err, 99) < 0.01
