"""Reading and writing photos: PNG, JPEG, TIFF, WebP, BMP.

What the reader guarantees (engines rely on it):

* EXIF orientation is applied (the pixels are upright as the camera meant them).
* 16-bit images stay ``uint16`` (PIL for greyscale; OpenCV for 16-bit colour, which
  PIL decodes to 8 bits), alpha stays (RGBA), greyscale stays (H x W).
* Selected EXIF tags land in ``Image.exif`` as floats/strings (focal length, 35 mm
  equivalent, focal-plane resolution, subject distance, make, model...).
* An image larger than ``max_pixels`` is downscaled with a note in ``Image.notes``, so a
  100-megapixel photo never stalls the app. A JPEG is decoded reduced (libjpeg's DCT
  scaling by 1/2, 1/4 or 1/8 through PIL's ``draft``), so it never exists in memory at
  full size; other formats cannot be decoded reduced and are decoded, then area-filtered.
* Memory is bounded: the decoded size (width x height x bands x bytes, from the header)
  is checked against the I/O layer's one limit policy (:mod:`engines.io.limits`) before
  any pixel is decoded, so a 1.3 MB PNG declaring 13000 x 13000 16-bit RGBA pixels is
  refused with a sentence instead of taking gigabytes.
* Unreadable, truncated or unknown files raise :class:`EngineError` naming the file.

``make_thumbnail`` decodes only what a thumbnail needs (JPEG DCT scaling by up to 1/8)
and shrinks before converting, which is what keeps the "24-megapixel JPEG to thumbnail"
path well under a second.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.io import IMAGE_EXTS, atomic_path
from engines.io import limits
from engines.types import Image

# EXIF tag id -> name, for the tags engines use (camera intrinsics, focus distance).
_EXIF_TAGS = {
    0x010F: "Make",
    0x0110: "Model",
    0x0112: "Orientation",
    0x829A: "ExposureTime",
    0x829D: "FNumber",
    0x8827: "ISOSpeedRatings",
    0x9206: "SubjectDistance",
    0x920A: "FocalLength",
    0xA002: "PixelXDimension",
    0xA003: "PixelYDimension",
    0xA20E: "FocalPlaneXResolution",
    0xA20F: "FocalPlaneYResolution",
    0xA210: "FocalPlaneResolutionUnit",
    0xA405: "FocalLengthIn35mmFilm",
    0xA432: "LensSpecification",
    0xA434: "LensModel",
}
_EXIF_IFD = 0x8769

_FIX = "Check that the file is a complete image (open it in an image viewer) or export it again as PNG or JPEG."


def _pil():
    from PIL import Image as PILImage

    return PILImage


def _value(v):
    """EXIF value -> float, tuple of floats or stripped string."""
    if isinstance(v, bytes):
        v = v.decode("latin-1", "replace")
    if isinstance(v, str):
        return v.strip("\x00 ").strip()
    if isinstance(v, (tuple, list)):
        return tuple(_value(x) for x in v)
    try:
        return float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _png_exif_after_pixels(path: Path) -> bool | None:
    """For a PNG: whether EXIF may follow the pixel data (an eXIf chunk, or a text chunk that
    could hold ImageMagick's "Raw profile type exif"), which PIL reaches only by decoding every
    pixel; None when there is none. Only chunk headers are read."""
    import struct

    seen_idat = False
    try:
        with open(path, "rb") as f:
            f.seek(8)
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return None
                n, kind = struct.unpack(">I4s", head)
                if kind == b"eXIf" or (seen_idat and kind in (b"tEXt", b"zTXt", b"iTXt")):
                    return seen_idat  # text chunks may hold "Raw profile type exif"
                if kind == b"IEND":
                    return None
                seen_idat |= kind == b"IDAT"
                f.seek(n + 4, 1)
    except OSError:
        return None


def _exif_of(path: Path, im) -> dict:
    """EXIF of an opened image without decoding its pixels first where that can be avoided:
    a PNG whose eXIf chunk comes after the pixels (or is absent) is not loaded for it."""
    if im.format == "PNG" and "exif" not in im.info and not _png_exif_after_pixels(path):
        return {}
    return read_exif(im)


def read_exif(im) -> dict:
    """Selected EXIF tags of an open PIL image, by name."""
    try:
        exif = im.getexif()
    except Exception:  # a broken EXIF block must not make the photo unreadable
        return {}
    tags = dict(exif.items())
    try:
        tags.update(exif.get_ifd(_EXIF_IFD))
    except Exception:
        pass
    out = {}
    for tid, name in _EXIF_TAGS.items():
        if tid in tags:
            v = _value(tags[tid])
            if v is not None and v != "" and not (isinstance(v, float) and not np.isfinite(v)):
                out[name] = v
    return out


def apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an H x W (x C) array as EXIF orientation 1..8 says (any dtype)."""
    o = int(orientation or 1)
    if o == 2:
        a = a[:, ::-1]
    elif o == 3:
        a = a[::-1, ::-1]
    elif o == 4:
        a = a[::-1]
    elif o == 5:
        a = np.swapaxes(a, 0, 1)
    elif o == 6:
        a = np.rot90(a, -1)
    elif o == 7:
        a = np.swapaxes(a[::-1, ::-1], 0, 1)
    elif o == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)


def _is_16bit_colour(path: Path, im) -> bool:
    """True for 16-bit RGB(A) PNG/TIFF, which PIL would silently reduce to 8 bits."""
    if im.format == "PNG":
        with open(path, "rb") as f:
            head = f.read(26)
        return len(head) == 26 and head[24] == 16 and head[25] in (2, 6)
    if im.format == "TIFF":
        bits = im.tag_v2.get(258) if hasattr(im, "tag_v2") else None
        bits = bits if isinstance(bits, tuple) else (bits,)
        return len(bits) >= 3 and all(b == 16 for b in bits)
    return False


def _read_cv2_16(path: Path) -> np.ndarray:
    from engines.io.video import cv2_module

    cv2 = cv2_module()
    data = np.fromfile(str(path), dtype=np.uint8)
    a = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    del data
    if a is None:
        raise EngineError(f"{path.name}: could not decode this 16-bit image. {_FIX}")
    if a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(a, cv2.COLOR_BGR2RGB)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = cv2.cvtColor(a, cv2.COLOR_BGRA2RGBA)
    return a


def _to_array(im) -> np.ndarray:
    """PIL image -> numpy in our conventions (RGB/RGBA/grey, uint8 or uint16)."""
    mode = im.mode
    if mode == "1":
        im = im.convert("L")
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        im = im.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    if im.mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    a = np.asarray(im)
    if im.mode == "I":
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo >= 0 and hi <= 65535:
            return a.astype(np.uint16)
        return ((a - lo) / max(hi - lo, 1) * 65535).astype(np.uint16)
    if im.mode == "F":
        return a.astype(np.float32)
    return np.ascontiguousarray(a)


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    from engines.io.video import cv2_module

    cv2 = cv2_module()
    if a.dtype not in (np.uint8, np.uint16, np.float32):
        a = a.astype(np.float32)
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)


def _open(path: Path):
    """The image opened (header only, nothing decoded). A JPEG over Pillow's bomb limit is
    opened all the same, through its plugin and without touching the process-wide limit,
    because it is decoded reduced; the limit policy is checked by the callers."""
    PIL = _pil()
    if not path.exists():
        raise EngineError(f"{path}: no such file. Check the path or choose the file again.")
    if path.is_dir():
        raise EngineError(f"{path}: is a folder, not an image. Choose an image file.")
    try:
        with warnings.catch_warnings():
            # Large photos are expected; the callers check the limit policy themselves.
            warnings.simplefilter("ignore", PIL.DecompressionBombWarning)
            try:
                return PIL.open(path)
            except PIL.DecompressionBombError:
                with open(path, "rb") as f:
                    if f.read(3) != b"\xff\xd8\xff":
                        raise
                from PIL import JpegImagePlugin

                return JpegImagePlugin.JpegImageFile(str(path))
    except PIL.DecompressionBombError:
        raise limits.FileTooLarge(
            f"{path.name}: the image is too large to decode safely. Save it as JPEG, or downscale it "
            f"below {2 * PIL.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, and import it again."
        ) from None
    except (PIL.UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise EngineError(
            f"{path.name}: not a readable image (unknown format or damaged file). "
            f"Import a PNG, JPEG, TIFF, WebP or BMP file. {_FIX}"
        ) from None


def _check_decode(path: Path, im, bits16: bool) -> None:
    """Refuse, before decoding, an image whose pixels would break the limit policy."""
    w, h = im.size
    limits.check_image(path, w, h, im.mode, bits16=bits16)


def read_image(path: str | os.PathLike, max_pixels: float = 50e6) -> Image:
    """Read a photo as an :class:`Image` (see the module docstring for the guarantees)."""
    path = Path(path)
    im = _open(path)
    notes: list[str] = []
    try:
        with im:
            w0, h0 = im.size
            scale = 1.0
            if w0 * h0 > max_pixels:
                scale = (max_pixels / (w0 * h0)) ** 0.5
            # A JPEG is decoded at 1/2, 1/4 or 1/8 when that still gives the wanted size (or
            # is needed to stay within the limit): a 100 MP photo never exists at full size.
            limits.draft_within_limit(im, (max(1, int(w0 * scale)), max(1, int(h0 * scale))) if scale < 1 else None)
            bits16 = _is_16bit_colour(path, im)
            _check_decode(path, im, bits16)  # before anything decodes a pixel (EXIF reading can)
            exif = _exif_of(path, im)
            if bits16:
                a = _read_cv2_16(path)
            else:
                im.load()
                a = _to_array(im)
    except EngineError:
        raise
    except MemoryError:
        raise EngineError(
            f"{path.name}: there is not enough memory to decode this image. Downscale it and import it again."
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise EngineError(f"{path.name}: could not read the image ({e}). {_FIX}") from None
    if a.size == 0:
        raise EngineError(f"{path.name}: the image has no pixels. {_FIX}")
    if scale < 1.0:
        tw, th = max(1, int(w0 * scale)), max(1, int(h0 * scale))
        if a.shape[1] > tw or a.shape[0] > th:
            a = _resize(a, tw, th)
        notes.append(
            f"{path.name} is {w0}x{h0} ({w0 * h0 / 1e6:.0f} MP); it was downscaled to "
            f"{a.shape[1]}x{a.shape[0]} to stay under {max_pixels / 1e6:.0f} MP."
        )
    orient = int(exif.get("Orientation", 1) or 1)
    if orient != 1:
        a = apply_orientation(a, orient)
    return Image(pixels=a, path=path, exif=exif, notes=notes)


def _shrink(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape[:2]
    if max(h, w) <= size:
        return a
    k = size / max(h, w)
    return _resize(a, max(1, round(w * k)), max(1, round(h * k)))


def make_thumbnail(path: str | os.PathLike, size: int = 160) -> np.ndarray:
    """An upright RGB uint8 thumbnail whose longer side is at most ``size`` pixels.

    JPEGs are decoded at 1/2..1/8 scale by libjpeg (PIL ``draft``), so a 24 MP photo
    costs a fraction of a full decode; everything is shrunk before it is converted to
    8-bit RGB, and the limit policy is checked before decoding, as in :func:`read_image`.
    """
    path = Path(path)
    im = _open(path)
    try:
        with im:
            if im.format == "JPEG":
                im.draft("RGB", (size, size))
            bits16 = _is_16bit_colour(path, im)
            _check_decode(path, im, bits16)
            exif = _exif_of(path, im)
            if bits16:
                a = Image(_shrink(_read_cv2_16(path), size)).rgb8()
            elif im.mode.startswith("I") or im.mode == "F":
                a = Image(_shrink(_to_array(im), size)).rgb8()
            else:
                im.load()
                im.thumbnail((size, size), reducing_gap=2.0)
                a = Image(_to_array(im)).rgb8()
    except EngineError:
        raise
    except MemoryError:
        raise EngineError(
            f"{path.name}: there is not enough memory to decode this image. Downscale it and import it again."
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise EngineError(f"{path.name}: could not read the image ({e}). {_FIX}") from None
    return apply_orientation(_shrink(a, size), int(exif.get("Orientation", 1) or 1))


def write_image(obj, path: str | os.PathLike) -> list[Path]:
    """Write an :class:`Image` or an array atomically; the format follows the extension.

    PNG and TIFF keep 16 bits and alpha; JPEG, WebP and BMP get 8-bit RGB (alpha is
    composited on white for JPEG).
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTS:
        raise EngineError(f"Cannot save an image as '{ext or path.name}': use .png, .jpg, .tif, .webp or .bmp.")
    a = obj.pixels if isinstance(obj, Image) else np.asarray(obj)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype not in (np.uint8, np.uint16):
        a = Image(a).rgb8() if a.ndim == 3 else np.clip(a * (255.0 if a.max() <= 1 else 1.0), 0, 255).astype(np.uint8)
    keeps_16 = ext in (".png", ".tif", ".tiff")
    keeps_alpha = ext in (".png", ".tif", ".tiff", ".webp")
    if a.dtype == np.uint16 and not keeps_16:
        a = (a >> 8).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 4 and not keeps_alpha:
        a = Image(a).rgb8()
    with atomic_path(path) as tmp:
        if a.dtype == np.uint16 and a.ndim == 3:
            from engines.io.video import cv2_module

            cv2 = cv2_module()
            bgr = a[:, :, ::-1] if a.shape[2] == 3 else a[:, :, [2, 1, 0, 3]]
            ok, buf = cv2.imencode(ext, np.ascontiguousarray(bgr))
            if not ok:
                raise EngineError(f"{path.name}: could not encode a 16-bit colour image.")
            tmp.write_bytes(buf.tobytes())
        else:
            PIL = _pil()
            im = PIL.fromarray(np.ascontiguousarray(a))
            fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(ext, ext[1:].upper())
            kwargs = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
            im.save(tmp, format=fmt, **kwargs)
    return [path]
