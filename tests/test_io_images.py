"""Image reading/writing: orientation, bit depth, alpha, EXIF, huge and broken files."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from engines.api import EngineError
from engines.io import load_input
from engines.io.images import make_thumbnail, read_image, write_image
from engines.types import Image

DATA = Path(__file__).parent / "data"


def _marked(h=30, w=40):
    a = np.zeros((h, w, 3), np.uint8)
    a[:6, :10] = [255, 0, 0]  # red block top-left makes every rotation/flip distinguishable
    a[-4:, -4:] = [0, 0, 255]
    return a


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(tmp_path, orientation):
    im = PILImage.fromarray(_marked())
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.jpg", exif=exif, quality=95)
    got = read_image(tmp_path / "o.jpg")
    ref = np.asarray(ImageOps.exif_transpose(PILImage.open(tmp_path / "o.jpg")).convert("RGB"))
    assert got.pixels.shape == ref.shape
    assert np.abs(got.pixels.astype(int) - ref).max() <= 2
    assert got.exif["Orientation"] == orientation
    # Orientation 6 = camera rotated 90 deg clockwise: the red corner ends top-right.
    if orientation == 6:
        assert got.pixels.shape[:2] == (40, 30)
        assert got.pixels[2, -3, 0] > 200 and got.pixels[2, 2, 0] < 50


def test_exif_tags_as_numbers(tmp_path):
    im = PILImage.fromarray(_marked())
    exif = im.getexif()
    exif[0x010F] = "Acme"
    exif[0x0110] = "Cam 1"
    sub = exif.get_ifd(0x8769)
    sub[0x920A] = 4.25  # FocalLength mm
    sub[0xA405] = 26  # FocalLengthIn35mmFilm
    sub[0x9206] = 0.85  # SubjectDistance m
    im.save(tmp_path / "e.jpg", exif=exif)
    got = read_image(tmp_path / "e.jpg").exif
    assert got["Make"] == "Acme" and got["Model"] == "Cam 1"
    assert got["FocalLength"] == pytest.approx(4.25)
    assert got["FocalLengthIn35mmFilm"] == 26.0
    assert got["SubjectDistance"] == pytest.approx(0.85)


def test_16bit_grey_and_colour_kept(tmp_path):
    grey = (np.arange(30 * 40).reshape(30, 40) * 53).astype(np.uint16)
    colour = np.random.default_rng(0).integers(0, 65536, (30, 40, 3)).astype(np.uint16)
    for name, a in (("g.png", grey), ("c.png", colour), ("c.tif", colour)):
        write_image(a, tmp_path / name)
        got = read_image(tmp_path / name).pixels
        assert got.dtype == np.uint16 and np.array_equal(got, a), name


def test_alpha_and_grey_kept(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (20, 30, 4)).astype(np.uint8)
    for ext in ("png", "webp", "tif"):
        write_image(rgba, tmp_path / f"a.{ext}")
        got = read_image(tmp_path / f"a.{ext}").pixels
        assert got.shape == (20, 30, 4), ext
        if ext != "webp":
            assert np.array_equal(got, rgba)
    grey = np.tile(np.arange(30, dtype=np.uint8) * 8, (20, 1))
    write_image(grey, tmp_path / "g.bmp")
    got = read_image(tmp_path / "g.bmp").pixels
    assert got.shape == (20, 30) and np.array_equal(got, grey)


def test_jpeg_drops_alpha_onto_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)  # fully transparent black
    write_image(Image(rgba), tmp_path / "x.jpg")
    got = read_image(tmp_path / "x.jpg").pixels
    assert got.shape == (16, 16, 3) and got.min() > 240


def test_real_photo_and_load_input():
    im = load_input(DATA / "grace_hopper.jpg")
    assert isinstance(im, Image) and im.size == (512, 600) and im.pixels.dtype == np.uint8
    assert im.pixels.mean() > 20


def test_huge_image_downscaled_with_note(tmp_path):
    big = PILImage.new("L", (12000, 9000), 40)
    big.paste(250, (0, 0, 6000, 4500))  # bright top-left quarter
    big.save(tmp_path / "huge.jpg", quality=70)
    del big
    im = read_image(tmp_path / "huge.jpg")
    w, h = im.size
    assert w * h <= 50e6 and w > 4000
    assert abs(w / h - 12000 / 9000) < 0.01
    assert im.notes and "12000x9000" in im.notes[0] and "huge.jpg" in im.notes[0]
    assert im.pixels[h // 4, w // 4] > 200 and im.pixels[3 * h // 4, 3 * w // 4] < 80
    thumb = make_thumbnail(tmp_path / "huge.jpg", 160)
    assert thumb.shape == (120, 160, 3) and thumb[30, 40, 0] > 200


def test_max_pixels_on_png(tmp_path):
    write_image(np.full((300, 400, 3), 77, np.uint8), tmp_path / "p.png")
    im = read_image(tmp_path / "p.png", max_pixels=30_000)
    assert im.size[0] * im.size[1] <= 30_000 and im.notes
    assert np.all(np.abs(im.pixels.astype(int) - 77) <= 1)


def test_thumbnail_upright(tmp_path):
    im = PILImage.fromarray(_marked(60, 80))
    exif = im.getexif()
    exif[0x0112] = 8
    im.save(tmp_path / "r.jpg", exif=exif)
    t = make_thumbnail(tmp_path / "r.jpg", 40)
    assert t.shape == (40, 30, 3)
    assert t[-3, 2, 0] > 180  # orientation 8: the red top-left corner goes bottom-left


@pytest.mark.parametrize("case", ["text_as_png", "truncated_jpeg", "empty", "missing", "unknown_ext"])
def test_bad_files_raise_engine_error_naming_file(tmp_path, case):
    if case == "text_as_png":
        p = tmp_path / "notes.png"
        p.write_text("this is not a picture")
    elif case == "truncated_jpeg":
        p = tmp_path / "cut.jpg"
        data = (DATA / "grace_hopper.jpg").read_bytes()
        p.write_bytes(data[: len(data) // 2])
    elif case == "empty":
        p = tmp_path / "empty.jpg"
        p.write_bytes(b"")
    elif case == "missing":
        p = tmp_path / "gone.png"
    else:
        p = tmp_path / "data.xyz"
        p.write_text("1 2 3")
    with pytest.raises(EngineError) as e:
        read_image(p) if case != "unknown_ext" else load_input(p)
    assert p.name in str(e.value)
    if case != "unknown_ext":
        with pytest.raises(EngineError):
            make_thumbnail(p)


def test_write_is_atomic_and_rejects_unknown_ext(tmp_path):
    with pytest.raises(EngineError):
        write_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "x.gif")
    paths = write_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "sub" / "x.png")
    assert paths == [tmp_path / "sub" / "x.png"]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["x.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert paths[0].stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_thumbnail_of_16bit_images(tmp_path):
    grey = np.full((100, 50), 40000, np.uint16)
    colour = np.zeros((100, 50, 3), np.uint16)
    colour[..., 1] = 65535
    write_image(grey, tmp_path / "g.png")
    write_image(colour, tmp_path / "c.png")
    g = make_thumbnail(tmp_path / "g.png", 20)
    c = make_thumbnail(tmp_path / "c.png", 20)
    assert g.shape == (20, 10, 3) and abs(int(g[5, 5, 0]) - 40000 // 256) <= 1
    assert c.shape == (20, 10, 3) and c[5, 5].tolist() == [0, 255, 0]


def test_beyond_pil_bomb_limit(tmp_path, monkeypatch):
    """A JPEG past PIL's decompression-bomb limit is decoded reduced; other formats refuse."""
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100_000)  # stands in for ~180 MP
    a = np.zeros((600, 800, 3), np.uint8)
    a[:300] = 250
    PILImage.fromarray(a).save(tmp_path / "big.jpg")
    PILImage.fromarray(a).save(tmp_path / "big.png")
    im = read_image(tmp_path / "big.jpg", max_pixels=60_000)
    assert im.size[0] * im.size[1] <= 60_000 and im.pixels[5, 5, 0] > 200 and im.pixels[-5, 5, 0] < 30
    assert make_thumbnail(tmp_path / "big.jpg", 80).shape == (60, 80, 3)
    assert PILImage.MAX_IMAGE_PIXELS == 100_000  # restored
    with pytest.raises(EngineError, match="big.png"):
        read_image(tmp_path / "big.png")
