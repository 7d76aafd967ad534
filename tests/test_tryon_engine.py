"""Video try-on engine end to end on a real video (carphone, 30 frames, 176x144)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.api import CancelToken, Cancelled, EngineError, make_params, no_progress
from engines.io.video import VideoWriter, iter_frames, open_video, probe
from engines.tryon.composite import ClassicalGenerator, GarmentGenerator, GarmentLayer
from engines.tryon.engine import TryOnEngine
from engines.tryon.garment import make_sample_garment
from engines.tryon.person import PersonTracker
from engines.types import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
VIDEO = DATA / "tryon_carphone.mp4"


def green_garment() -> Image:
    """A plain green T-shirt: its pixels are easy to find in the output."""
    g = make_sample_garment(120, 130, pattern="stripes", period=1000)
    shirt = np.all(g != 255, axis=2)
    g[shirt] = (40, 190, 60)
    return Image(g, path=Path("green.png"))


def is_green(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (g > r + 35) & (g > b + 35)


def run(clip, garment, generator=None, progress=no_progress, cancel=None, **values):
    params = make_params(TryOnEngine, values)
    return TryOnEngine(generator).run([clip, garment], params, progress, cancel or CancelToken())


@pytest.fixture(scope="module")
def source():
    return list(iter_frames(VIDEO))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    clip = open_video(VIDEO)
    out = {}
    for mode in ("on", "off"):
        r = run(clip, green_garment(), temporal=mode)
        out[mode] = (r, list(iter_frames(r.main.path)))
    return out


@pytest.fixture(scope="module")
def shoulders(source):
    with PersonTracker(30.0) as tracker:
        people = [tracker(f) for f in source]
    assert all(p is not None for p in people)
    return [(p.points[12], p.points[11], p.visibility[[23, 24]]) for p in people]


def ssim_outside(src: np.ndarray, out: np.ndarray, garment: np.ndarray) -> float:
    """Mean SSIM of luma (as video SSIM is reported; H.264 subsamples chroma) off the garment."""
    import cv2
    from skimage.metrics import structural_similarity

    region = cv2.dilate(garment.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (src, out)]
    _, smap = structural_similarity(*grey, data_range=255, full=True)
    return float(smap[~region].mean())


def test_output_video_has_source_size_fps_and_frames(results):
    r, frames = results["on"]
    info = probe(r.main.path)
    assert (info["width"], info["height"], info["frame_count"]) == (176, 144, 30)
    assert abs(info["fps"] - 29.97) < 0.05
    assert r.main.source == VIDEO
    assert r.metrics["frames_with_person"] == 30 and r.metrics["frames_without_person"] == 0
    assert r.metrics["fps"] > 0


def test_pixels_outside_the_garment_are_unchanged(results, source):
    _, frames = results["on"]
    for i in range(0, 30, 3):
        garment = is_green(frames[i]) | (np.abs(frames[i].astype(int) - source[i]).max(axis=2) > 40)
        assert 0.15 < garment.mean() < 0.6
        assert ssim_outside(source[i], frames[i], garment) >= 0.98


def torso_region(sl: np.ndarray, sr: np.ndarray, shape=(144, 176)) -> np.ndarray:
    """The torso between the shoulders (inset 15 %), from 0.25 shoulder widths below the
    shoulder line (under the neckline) to the bottom of the frame."""
    import cv2

    across = sr - sl
    down = np.array([-across[1], across[0]]) / np.linalg.norm(across)
    sw = np.linalg.norm(across)
    a, b = sl + 0.15 * across + 0.25 * sw * down, sr - 0.15 * across + 0.25 * sw * down
    poly = np.array([a, b, b + 3 * sw * down, a + 3 * sw * down], np.int32)
    torso = np.zeros(shape, np.uint8)
    cv2.fillPoly(torso, [poly], 1)
    return torso > 0


def test_garment_covers_the_torso_from_shoulders_to_bottom_of_frame(results, source, shoulders):
    _, frames = results["on"]
    for i in (0, 15, 29):
        sl, sr, hip_vis = shoulders[i]
        assert hip_vis.max() < 0.5  # carphone: the hips are below the frame
        sw = np.linalg.norm(sr - sl)
        torso = torso_region(sl, sr)
        covered = is_green(frames[i])[torso].mean()
        assert covered >= 0.85, (i, covered)
        assert is_green(source[i])[torso].mean() < 0.01
        # And nothing green above the shoulder line near the face.
        assert is_green(frames[i])[: int(min(sl[1], sr[1]) - 0.3 * sw)].mean() < 0.01


def test_temporal_module_lowers_flow_compensated_difference(results, source):
    from engines.tryon.temporal import FlowPair, warping_error

    on, off = results["on"][0].metrics, results["off"][0].metrics
    assert on["temporal_warping_error"] < 0.8 * off["temporal_warping_error"]
    assert on["edge_jitter_px"] < off["edge_jitter_px"]
    # Independently, on the decoded output videos with flow from the source video.
    import cv2

    flow = FlowPair()
    err = {"on": [], "off": []}
    for t in range(1, 30):
        back, valid = flow(cv2.cvtColor(source[t - 1], cv2.COLOR_RGB2GRAY), cv2.cvtColor(source[t], cv2.COLOR_RGB2GRAY))
        for mode in err:
            frames = results[mode][1]
            region = is_green(frames[t]) & is_green(frames[t - 1])
            err[mode].append(warping_error(frames[t - 1], frames[t], back, valid, region))
    assert np.nanmean(err["on"]) < np.nanmean(err["off"])


def test_working_resolution_is_reported_and_output_keeps_source_size(source):
    r = run(open_video(VIDEO), green_garment(), working_size=128, max_frames=6)
    assert any("128x105" in n and "176x144" in n for n in r.notes)
    frames = list(iter_frames(r.main.path))
    assert frames[0].shape == (144, 176, 3) and len(frames) == 6
    garment = is_green(frames[3]) | (np.abs(frames[3].astype(int) - source[3]).max(axis=2) > 40)
    assert garment.mean() > 0.15
    assert ssim_outside(source[3], frames[3], garment) >= 0.98


def _noise_frames(n, size=(176, 144), seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 255, (size[1] * 2, size[0] * 2, 3)).astype(np.uint8), (0, 0), 3)
    return [np.ascontiguousarray(base[i * 4 : i * 4 + size[1], i * 3 : i * 3 + size[0]]) for i in range(n)]


def test_video_without_a_person_is_a_user_error(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = tmp_path / "noise.mp4"
    with VideoWriter(path, 25, (176, 144)) as w:
        for f in _noise_frames(8):
            w.write(f)
    with pytest.raises(EngineError, match="No person found in any of the 8 frames of noise.mp4"):
        run(open_video(path), green_garment())
    assert not list((tmp_path / "capture-studio").rglob("*.mp4"))


def test_person_leaving_the_frame_passes_frames_through(tmp_path, source):
    path = tmp_path / "leaves.mp4"
    noise = _noise_frames(5)
    with VideoWriter(path, 25, (176, 144)) as w:
        for f in source[:8] + noise + source[8:12]:
            w.write(f)
    src = list(iter_frames(path))
    r = run(open_video(path), green_garment())
    out = list(iter_frames(r.main.path))
    assert r.metrics["frames_without_person"] == 5 and r.metrics["frames_with_person"] == 12
    assert any("5 of 17 frames had no person" in n for n in r.notes)
    for i in range(8, 13):
        assert np.abs(out[i].astype(int) - src[i]).mean() < 3
        assert is_green(out[i]).mean() < 0.001
    assert is_green(out[14]).mean() > 0.1  # the garment comes back with the person


def test_zero_length_and_corrupt_videos_are_user_errors(tmp_path):
    from engines.io import load_input
    from engines.types import VideoClip

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 255, 5000).astype(np.uint8).tobytes())
    for p in (empty, corrupt):
        with pytest.raises(EngineError, match=p.name):
            load_input(p, prefer=TryOnEngine.accepts)
    with pytest.raises(EngineError, match="corrupt.mp4"):
        run(VideoClip(corrupt, 10, 25.0, 176, 144), green_garment())
    with pytest.raises(EngineError, match="no frames"):
        run(VideoClip(empty, 0, 25.0, 176, 144), green_garment())


def test_inputs_must_be_one_video_and_one_garment_photo():
    clip = open_video(VIDEO)
    with pytest.raises(EngineError, match="needs 2 input"):
        run_inputs = [clip]
        TryOnEngine().run(run_inputs, make_params(TryOnEngine), no_progress, CancelToken())
    with pytest.raises(EngineError, match="person_video input is missing; it takes VideoClip"):
        TryOnEngine().run([green_garment(), green_garment()], make_params(TryOnEngine), no_progress, CancelToken())


def test_busy_background_garment_is_flagged_and_user_mask_accepted(tmp_path):
    from PIL import Image as PILImage

    busy = Image(make_sample_garment(120, 130, busy_background=True), path=Path("busy.png"))
    r = run(open_video(VIDEO), busy, max_frames=2)
    assert r.metrics["garment_mask_uncertain"] is True
    assert any("uncertain" in n and "busy.png" in n for n in r.notes)
    mask = (make_sample_garment(120, 130, alpha=True)[:, :, 3] > 0).astype(np.uint8) * 255
    PILImage.fromarray(mask).save(tmp_path / "mask.png")
    r = run(open_video(VIDEO), busy, max_frames=2, garment_mask_file=str(tmp_path / "mask.png"))
    assert r.metrics["garment_mask_uncertain"] is False
    with pytest.raises(EngineError, match="nomask.png"):
        run(open_video(VIDEO), busy, max_frames=2, garment_mask_file=str(tmp_path / "nomask.png"))


def test_cancel_midway_leaves_no_mp4(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    token = CancelToken()
    seen = []

    def progress(fraction, message=""):
        seen.append(fraction)
        if fraction >= 0.3:
            token.set()

    with pytest.raises(Cancelled):
        run(open_video(VIDEO), green_garment(), progress=progress, cancel=token)
    assert 0.3 <= max(seen) < 0.5
    assert not list(tmp_path.rglob("*.mp4"))
    assert not [p for p in (tmp_path / "capture-studio" / "tryon").iterdir()]


class FlatMagenta:
    """A stand-in for a learned generator: paints the warped garment region magenta."""

    def render(self, frame, person, warped_rgb, warped_mask):
        rgb = np.zeros_like(warped_rgb)
        rgb[...] = (255, 0, 255)
        return GarmentLayer(rgb, warped_mask * (person.mask > 0.5))


def test_a_generator_plugs_in_through_the_protocol():
    assert isinstance(ClassicalGenerator(), GarmentGenerator)
    assert isinstance(FlatMagenta(), GarmentGenerator)
    r = run(open_video(VIDEO), green_garment(), generator=FlatMagenta(), max_frames=3)
    f = list(iter_frames(r.main.path))[2].astype(int)
    magenta = (f[..., 0] > 200) & (f[..., 2] > 200) & (f[..., 1] < 60)
    assert magenta.mean() > 0.15


def test_cli_reports_fps_and_temporal_figures(tmp_path):
    garment = tmp_path / "garment.png"
    from PIL import Image as PILImage

    PILImage.fromarray(make_sample_garment(120, 130)).save(garment)
    out = tmp_path / "tryon.mp4"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "run",
            "tryon",
            "--input",
            str(VIDEO),
            "--input",
            str(garment),
            "--out",
            str(out),
            "--set",
            "temporal=off",
            "--set",
            "max_frames=5",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["metrics"]["fps"] > 0
    assert report["metrics"]["temporal"] == "off"
    assert report["metrics"]["temporal_warping_error"] > 0
    assert probe(out)["frame_count"] == 5


def _onnx_generator(path: Path, input_names=("frame", "warped_garment", "warped_mask", "person_mask")):
    """A tiny model with the generator contract: rgb = warped garment, mask = garment x person."""
    import onnx
    from onnx import TensorProto, helper

    ins = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, "h", "w"]) for n, c in zip(input_names, (3, 3, 1, 1))
    ]
    outs = [
        helper.make_tensor_value_info("rgb", TensorProto.FLOAT, [1, 3, "h", "w"]),
        helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, "h", "w"]),
    ]
    nodes = [
        helper.make_node("Identity", [input_names[1]], ["rgb"]),
        helper.make_node("Mul", [input_names[2], input_names[3]], ["mask"]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "tryon_generator", ins, outs), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_learned_generator_from_an_onnx_file(tmp_path, source):
    model = _onnx_generator(tmp_path / "gen.onnx")
    r = run(open_video(VIDEO), green_garment(), max_frames=4, generator_model=str(model))
    assert any("gen.onnx" in n for n in r.notes)
    f = list(iter_frames(r.main.path))[3]
    # The toy model pastes the warped garment unshaded: pure garment green on the chest.
    assert is_green(f).mean() > 0.15
    assert ssim_outside(source[3], f, is_green(f) | (np.abs(f.astype(int) - source[3]).max(axis=2) > 40)) >= 0.98
    bad = _onnx_generator(tmp_path / "bad.onnx", ("image", "cloth", "cloth_mask", "body"))
    with pytest.raises(EngineError, match="bad.onnx does not fit the try-on generator contract"):
        run(open_video(VIDEO), green_garment(), max_frames=2, generator_model=str(bad))
    with pytest.raises(EngineError, match="missing.onnx: no such file"):
        run(open_video(VIDEO), green_garment(), max_frames=2, generator_model=str(tmp_path / "missing.onnx"))


def test_a_sleeveless_top_is_put_on_the_torso(source, shoulders):
    """A green tank top (no sleeves) covers the torso like the T-shirt does, and nothing
    of it lands beyond the shoulders (it has no sleeve to hang there)."""
    import cv2

    w, h = 150, 170
    img = np.full((h, w, 3), 250, np.uint8)
    tank = [
        (0.36, 0.02),
        (0.5, 0.2),
        (0.64, 0.02),
        (0.70, 0.02),
        (0.72, 0.2),
        (0.80, 0.32),
        (0.82, 0.95),
        (0.18, 0.95),
        (0.20, 0.32),
        (0.28, 0.2),
        (0.30, 0.02),
    ]
    cv2.fillPoly(img, [(np.array(tank) * [w - 1, h - 1]).round().astype(np.int32)], (40, 190, 60))
    r = run(open_video(VIDEO), Image(img, path=Path("tank.png")), max_frames=10)
    frames = list(iter_frames(r.main.path))
    assert len(frames) == 10
    for i in (0, 9):
        sl, sr, _ = shoulders[i]
        sw = float(np.linalg.norm(sr - sl))
        green = is_green(frames[i])
        assert green[torso_region(sl, sr)].mean() > 0.85, i
        lo, hi = int(min(sl[0], sr[0]) - 0.3 * sw), int(max(sl[0], sr[0]) + 0.3 * sw)
        outside = np.concatenate([green[:, : max(lo, 0)].ravel(), green[:, hi:].ravel()])
        assert outside.mean() < 0.02, i


def test_a_person_lying_on_their_side_is_dressed_head_up(tmp_path, source):
    """The carphone clip turned a quarter (a camera held sideways, or a person lying down):
    the garment goes on the torso, on the far side of the shoulders from the head, and
    leaves the face alone (the shoulders were once ordered by x, which put the garment
    over the face)."""
    frames = [np.ascontiguousarray(np.rot90(f, 1)) for f in source[:10]]
    path = tmp_path / "sideways.mp4"
    with VideoWriter(path, 30.0, (frames[0].shape[1], frames[0].shape[0]), crf=12) as w:
        for f in frames:
            w.write(f)
    clip = open_video(path)
    r = run(clip, green_garment())
    out = list(iter_frames(r.main.path))
    with PersonTracker(30.0) as tracker:
        people = [tracker(f) for f in iter_frames(path)]
    for i in (0, 9):
        p = people[i]
        nose, mid = p.points[0], (p.points[11] + p.points[12]) / 2
        sw = float(np.linalg.norm(p.points[11] - p.points[12]))
        green = is_green(out[i])
        ys, xs = np.nonzero(green)
        assert len(xs) > 0.1 * green.size, i
        # Nothing green on the face: a disc around the nose of 0.3 shoulder widths.
        yy, xx = np.mgrid[0 : green.shape[0], 0 : green.shape[1]]
        face = (xx - nose[0]) ** 2 + (yy - nose[1]) ** 2 < (0.3 * sw) ** 2
        assert green[face].mean() < 0.05, (i, green[face].mean())
        # The garment lies beyond the shoulders, away from the head.
        axis = (mid - nose) / np.linalg.norm(mid - nose)
        beyond = ((np.stack([xs, ys], 1) - mid) @ axis) > 0
        assert beyond.mean() > 0.6, (i, beyond.mean())
