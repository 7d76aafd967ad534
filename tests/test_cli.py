"""The command line: engines list, run with --set/--json, exit codes, --help from Params."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, Field

from app import cli as main
from engines import registry
from engines.api import Engine, EngineError, Result
from engines.types import DepthMap, Image

ROOT = Path(__file__).resolve().parents[1]


class PlaneDepth(Engine):
    """Fake engine: a fronto-parallel plane at a chosen distance, the image's size."""

    name = "test-plane"
    title = "Plane depth (test)"
    accepts = (Image,)
    produces = (DepthMap,)

    class Params(BaseModel):
        distance: float = Field(1.5, gt=0, le=100, description="Plane distance in metres")
        fail: bool = Field(False, description="Raise a user error")

    def run(self, inputs, params, progress, cancel):
        r = Result(metrics={"pixels": int(inputs[0].pixels.shape[0] * inputs[0].pixels.shape[1])})
        with r.stage("plane"):
            if params.fail:
                raise EngineError("The plane refused: pick another distance.")
            h, w = inputs[0].pixels.shape[:2]
            progress(0.5, "half way")
            r.items.append(DepthMap(np.full((h, w), params.distance, np.float32), image=inputs[0].rgb8()))
        return r


@pytest.fixture
def plane_engine():
    registry.register(PlaneDepth)
    yield PlaneDepth
    registry.unregister(PlaneDepth.name)


@pytest.fixture
def photo(tmp_path):
    from PIL import Image as PILImage

    p = tmp_path / "photo.png"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8)).save(p)
    return p


def test_run_json_writes_output(plane_engine, photo, tmp_path, capsys):
    out = tmp_path / "d.npy"
    rc = main.main(["run", "test-plane", "--input", str(photo), "--out", str(out), "--set", "distance=2.25", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["outputs"] == [str(out)]
    assert summary["metrics"]["pixels"] == 24 * 32
    assert "plane" in summary["timings"] and summary["params"]["distance"] == 2.25
    d = np.load(out)
    assert d.shape == (24, 32) and d.dtype == np.float32 and np.allclose(d, 2.25)


def test_run_exit_codes(plane_engine, photo, tmp_path, capsys):
    out = tmp_path / "d.npy"
    assert main.main(["run", "test-plane", "-i", str(photo), "-o", str(out), "--set", "fail=true"]) == 2
    assert "The plane refused" in capsys.readouterr().err
    assert main.main(["run", "test-plane", "-i", str(tmp_path / "missing.png"), "-o", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main.main(["run", "test-plane", "-i", str(photo), "-o", str(out), "--set", "distance=-1"]) == 2
    assert "distance" in capsys.readouterr().err
    assert main.main(["run", "test-plane", "-i", str(photo), "-o", str(tmp_path / "x.xyz")]) == 2
    assert main.main(["run", "no-such-engine", "-i", str(photo), "-o", str(out)]) == 2
    assert not out.exists()


def test_engine_help_lists_params(plane_engine, capsys):
    assert main.main(["run", "test-plane", "--help"]) == 0
    text = capsys.readouterr().out
    assert "distance=1.5" in text and "Plane distance in metres" in text and ">0" in text


def test_engines_command_subprocess():
    out = subprocess.run(
        [sys.executable, "main.py", "engines", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    listed = {e["name"]: e for e in json.loads(out.stdout)}
    # the built-in engines that exist in this checkout are all listed with their types
    for name, ref in registry.BUILTIN.items():
        module = ref.split(":")[0]
        if (ROOT / (module.replace(".", "/") + ".py")).exists():
            assert name in listed, (name, out.stderr)
            assert listed[name]["accepts"] and listed[name]["produces"]


def test_export_prefers_by_extension(tmp_path):
    from engines import io
    from engines.types import Mesh, PointCloud

    mesh = Mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])
    cloud = PointCloud(np.random.default_rng(1).random((50, 3)))
    r = Result(items=[mesh, cloud])
    io.export(r, tmp_path / "a.ply")
    assert len(io.read(tmp_path / "a.ply").vertices) == 3  # first suitable item: the mesh
    r.by_extension[".ply"] = cloud
    io.export(r, tmp_path / "b.ply")
    back = io.read(tmp_path / "b.ply")
    assert isinstance(back, PointCloud) and np.allclose(back.points, cloud.points, atol=1e-6)
