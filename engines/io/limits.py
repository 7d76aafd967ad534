"""One limit policy for every file the I/O layer reads: how much memory a file may make us
allocate, checked from what the file *declares* before anything is allocated.

A small file can declare a huge payload: a 9.6 MB ``.npz`` holding a 3 GB array of zeros,
a 1.3 MB PNG of 13000 x 13000 16-bit RGBA pixels, a 6.7 MB avatar bundle whose GLB member
inflates to 3 GB. Decoders allocate what the header says, so the size has to be checked
from the header: array headers (``.npy``: shape and dtype), image dimensions and bit depth,
zip member sizes and their compression ratios, glTF accessor counts, video frame sizes.
This is what zip-bomb guards do (Apache POI's ``ZipSecureFile``: a maximum entry size and a
minimum inflate ratio; Fifield, "A better zip bomb", WOOT 2019, for why declared sizes and
not the archive size are what to check) and what Pillow's ``MAX_IMAGE_PIXELS`` does for
images, applied the same way to every reader.

The policy (:func:`current`; :class:`Limits`):

* ``max_bytes``: what one file may expand to in memory (the arrays of an ``.npz``
  together, an image's pixels as decoded, the members of a bundle together, one video
  frame); 1 GiB. ``CAPTURE_STUDIO_MAX_FILE_MB`` overrides it (in MiB) for genuine files
  that are bigger.
* ``max_ratio`` / ``ratio_floor``: a zip member larger than ``ratio_floor`` (32 MiB) may be
  at most ``max_ratio`` (200) times its compressed size. Real meshes, textures and arrays
  deflate by 2-20x; only filler inflates by 1000x.
* ``max_json_bytes``: a JSON document (project file, avatar.json, focus.json): 64 MiB.
* ``project_bytes``: all results of one project together: 4 x ``max_bytes``.

A JPEG is the one format decoded reduced (libjpeg's DCT scaling, PIL ``draft``, 1/2 to
1/8), so its limit applies to the reduced size. Every refusal is a
:class:`FileTooLarge` (an :class:`~engines.api.EngineError`) naming the file and what to do.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.api import EngineError

ENV = "CAPTURE_STUDIO_MAX_FILE_MB"
MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 1 << 30
    max_ratio: float = 200.0
    ratio_floor: int = 32 * MiB
    max_json_bytes: int = 64 * MiB

    @property
    def project_bytes(self) -> int:
        return 4 * self.max_bytes


LIMITS: Limits | None = None
"""Set to a :class:`Limits` to override the policy in this process (tests do)."""


def current() -> Limits:
    """The policy in force: :data:`LIMITS` when set, else the defaults, with ``max_bytes``
    from ``CAPTURE_STUDIO_MAX_FILE_MB`` when that is a positive number."""
    if LIMITS is not None:
        return LIMITS
    raw = os.environ.get(ENV, "").strip()
    try:
        mb = float(raw) if raw else 0.0
    except ValueError:
        mb = 0.0
    return Limits(max_bytes=int(mb * MiB)) if mb > 0 else Limits()


def size_text(n: float) -> str:
    for unit, k in (("GB", 1 << 30), ("MB", MiB), ("KB", 1 << 10)):
        if n >= k:
            return f"{n / k:.1f} {unit}"
    return f"{int(n)} bytes"


class FileTooLarge(EngineError):
    """A file declares more data than the limit policy allows; nothing was allocated."""


def _name(path) -> str:
    return Path(path).name if path is not None else "the file"


def _refuse(path, what: str, nbytes: float, limit: int) -> FileTooLarge:
    return FileTooLarge(
        f"{_name(path)}: {what} would take {size_text(nbytes)} of memory, more than the "
        f"{size_text(limit)} Capture Studio allows for one file, so it was not read. The file may be "
        f"damaged or made to exhaust memory; if it is genuine, reduce it (downscale the image, "
        f"save a photo as JPEG, decimate the mesh) or set {ENV} higher."
    )


class Budget:
    """Bytes one file (or one project) may still make us allocate."""

    def __init__(self, path, limit: int | None = None, what: str = "its data") -> None:
        self.path = path
        self.limit = current().max_bytes if limit is None else int(limit)
        self.used = 0
        self.what = what

    def take(self, nbytes: float, what: str | None = None) -> None:
        nbytes = float(nbytes)
        if nbytes < 0 or self.used + nbytes > self.limit:
            raise _refuse(self.path, what or self.what, self.used + max(nbytes, 0), self.limit)
        self.used += int(nbytes)


def check_bytes(nbytes: float, path, what: str) -> None:
    """Refuse ``nbytes`` of decoded data from one file above ``max_bytes``."""
    Budget(path).take(nbytes, what)


# ------------------------------------------------------------------------------ images
# Bands of the array a decoded image becomes (palette and grey+alpha images become RGB(A)).
_BANDS = {
    "1": 1,
    "L": 1,
    "I": 1,
    "F": 1,
    "P": 4,
    "PA": 4,
    "LA": 4,
    "La": 4,
    "RGB": 3,
    "YCbCr": 3,
    "LAB": 3,
    "HSV": 3,
    "RGBA": 4,
    "RGBa": 4,
    "RGBX": 4,
    "CMYK": 4,
}


def image_bytes(width: int, height: int, mode: str, bits16: bool = False) -> int:
    """Bytes of the decoded pixels of an image of this size and PIL mode (``bits16``: a 16-bit
    colour image, which PIL reports as 8-bit RGB(A) but OpenCV decodes at 2 bytes a band)."""
    if mode.startswith("I;16"):
        per = 2
    elif mode in ("I", "F"):
        per = 4
    else:
        per = 2 if bits16 else 1
    return int(width) * int(height) * _BANDS.get(mode, 4) * per


def check_image(path, width: int, height: int, mode: str, bits16: bool = False, what: str = "the image") -> None:
    """Refuse an image whose decoded pixels exceed ``max_bytes`` (checked from its header)."""
    if width <= 0 or height <= 0:
        raise EngineError(
            f"{_name(path)}: the image header gives a size of {width}x{height} pixels; the file is damaged."
        )
    n = image_bytes(width, height, mode, bits16)
    bits = "16-bit " if bits16 or mode.startswith("I;16") else ""
    check_bytes(n, path, f"{what} ({width}x{height} px, {bits}{mode}) decoded")


def open_image_bytes(data: bytes, name: str, what: str = "the image"):
    """A PIL image from bytes (a texture in a GLB, the photo in a bundle), size-checked before
    decoding; JPEGs are decoded reduced when that keeps them within the limit."""
    from PIL import Image as PILImage

    try:
        im = PILImage.open(io.BytesIO(data))
    except PILImage.DecompressionBombError:
        raise _refuse(name, what, float("inf"), current().max_bytes) from None
    except (PILImage.UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise EngineError(f"{_name(name)}: {what} is not a readable image ({e}). Export the file again.") from None
    draft_within_limit(im)
    check_image(name, *im.size, im.mode, what=what)
    return im


def draft_within_limit(im, want: tuple[int, int] | None = None) -> None:
    """Set a JPEG's DCT scale (libjpeg decodes at 1/2, 1/4 or 1/8 directly): the largest
    reduction that still gives at least ``want`` pixels, or more if that is what keeps the
    decoded size within the limit, so a big photo never exists in memory at full size.
    Pillow honours one ``draft`` per image, hence one call for both reasons. Other formats
    cannot be decoded reduced: nothing happens."""
    if im.format != "JPEG":
        return
    w, h = im.size
    lim = current().max_bytes
    k_want = 1
    if want is not None:
        k_want = max((k for k in (1, 2, 4, 8) if -(-w // k) >= want[0] and -(-h // k) >= want[1]), default=1)
    k_lim = next((k for k in (1, 2, 4, 8) if image_bytes(-(-w // k), -(-h // k), im.mode) <= lim), 8)
    k = max(k_want, k_lim)
    if k > 1:  # Pillow picks the scale from the floor of size / requested size
        im.draft(im.mode, (max(1, w // k), max(1, h // k)))


# ------------------------------------------------------------------------------ arrays
def read_npy_header(fp, name) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes) declared by an ``.npy`` stream positioned at its start.

    Object arrays (which need pickle) are refused. Nothing beyond the header is read.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _fortran, dtype = fmt.read_array_header_2_0(fp)
        else:
            shape, _fortran, dtype = fmt._read_array_header(fp, version)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise EngineError(
            f"{_name(name)}: not a readable NumPy array ({e}). The file is damaged; export it again."
        ) from None
    if dtype.hasobject:
        raise EngineError(
            f"{_name(name)}: holds Python objects, which Capture Studio never loads (they would need "
            "pickle). Only open files from sources you trust."
        )
    count = 1
    for s in shape:
        count *= int(s)
    return tuple(int(s) for s in shape), dtype, count * dtype.itemsize


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """An ``.npy`` file, its declared size checked against the file and the limit first."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            shape, dtype, nbytes = read_npy_header(f, path)
            data_at = f.tell()
            if data_at + nbytes > size:
                raise EngineError(
                    f"{path.name}: the array header promises {size_text(nbytes)} of data but the file "
                    f"holds {size_text(size - data_at)}; it is truncated or damaged. Export it again."
                )
            check_bytes(nbytes, path, f"the {dtype} array of shape {shape}")
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
    except OSError as e:
        raise EngineError(f"{path.name}: could not be read ({e.strerror or e}).") from None
    except ValueError as e:
        raise EngineError(f"{path.name}: not a readable NPY array ({e}). Export it again.") from None


def check_zip(z: zipfile.ZipFile, name, budget: Budget | None = None) -> list[zipfile.ZipInfo]:
    """The members of an open zip, after checking their declared sizes and ratios.

    Python's zipfile never returns more than a member's declared ``file_size`` (a member
    that inflates further fails its CRC), so the declared sizes bound what reading costs.
    """
    lim = current()
    budget = budget or Budget(name)
    infos = z.infolist()
    for info in infos:
        if info.file_size > lim.ratio_floor and info.file_size > lim.max_ratio * max(info.compress_size, 1):
            raise FileTooLarge(
                f"{_name(name)}: its member {info.filename} inflates {info.file_size / max(info.compress_size, 1):.0f} "
                f"times, from {size_text(info.compress_size)} to {size_text(info.file_size)}, which real data never "
                f"does, so it was not read (a zip bomb, or a damaged file). Only open files from sources you trust."
            )
        budget.take(info.file_size, f"its member {info.filename}")
    return infos


def read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, name) -> bytes:
    """One member's bytes (its size was checked by :func:`check_zip`)."""
    try:
        return z.read(info)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise EngineError(
            f"{_name(name)}: its member {info.filename} is damaged ({e}). Export the file again."
        ) from None


def load_npz(source, name=None, budget: Budget | None = None) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (a path, bytes or a file object), never pickled, each array's
    declared size checked against its member and against ``budget`` before it is read."""
    name = name if name is not None else (source if isinstance(source, (str, os.PathLike)) else "the archive")
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    budget = budget or Budget(name)
    try:
        z = zipfile.ZipFile(source)
    except FileNotFoundError:
        raise EngineError(f"{_name(name)}: no such file.") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise EngineError(
            f"{_name(name)}: not a readable NumPy archive ({e}). The file is damaged; export it again."
        ) from None
    out: dict[str, np.ndarray] = {}
    with z:
        check_zip(z, name, Budget(name, limit=budget.limit - budget.used))
        for info in z.infolist():
            if info.is_dir():
                continue
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            try:
                with z.open(info) as fh:
                    shape, dtype, nbytes = read_npy_header(fh, name)
                    header = fh.tell()
                    if header + nbytes != info.file_size:
                        raise EngineError(
                            f"{_name(name)}: the array {key} declares {size_text(nbytes)} but its member "
                            f"holds {size_text(info.file_size - header)}; the file is damaged. Export it again."
                        )
                    budget.take(nbytes, f"the array {key} ({dtype}, shape {shape})")
                with z.open(info) as fh:
                    out[key] = np.lib.format.read_array(fh, allow_pickle=False)
            except EngineError:
                raise
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
                raise EngineError(f"{_name(name)}: the array {key} is damaged ({e}). Export the file again.") from None
    return out


def read_json_text(path: str | os.PathLike, what: str = "the file") -> str:
    """The text of a JSON document, refused above ``max_json_bytes`` before it is read."""
    path = Path(path)
    size = path.stat().st_size
    lim = current().max_json_bytes
    if size > lim:
        raise FileTooLarge(
            f"{path.name}: {what} is {size_text(size)}, more than the {size_text(lim)} a Capture Studio "
            "JSON document can be; it is not one, or it is damaged."
        )
    return path.read_text(encoding="utf-8")
