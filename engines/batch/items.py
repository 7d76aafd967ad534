"""Batch items: which input files go together, and under which name.

An item is one engine run: an id (the name its outputs and record take) and one path per
engine input. Items come either from ``--inputs`` patterns, one pattern per engine input,
the second and later ones paired with the first by file name (``anna.mp4`` with
``anna.glb``; a pattern that names one file serves every item, e.g. one garment for many
videos), or from a CSV manifest with one row per item. An item that cannot be formed (no
partner of that name, a file that is gone) keeps a ``problem`` sentence: the batch records
it as failed and runs the others.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from engines.api import EngineError

GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class Item:
    id: str
    inputs: tuple[Path, ...]
    problem: str | None = None
    """Why this item cannot run (it is then recorded as failed without running)."""
    slots: tuple[str, ...] | None = None
    """The engine input slot of each input (a manifest with slot-named columns), or None."""


def name_key(path: Path) -> str:
    """What pairs inputs: the file name without its extension (a folder's whole name)."""
    return path.name if path.is_dir() else path.stem


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def expand(pattern: str, exclude: Path | None = None) -> list[Path]:
    """The paths a pattern names, sorted: a glob (``**`` reaches into sub-folders), a
    folder (its entries) or one file. Hidden entries and anything inside ``exclude`` (the
    output folder, so results are never taken for inputs) are left out."""
    raw = os.path.expanduser(pattern)
    if any(c in raw for c in GLOB_CHARS):
        found = [Path(p) for p in glob.glob(raw, recursive=True)]
    elif Path(raw).is_dir():
        found = [p for p in Path(raw).iterdir() if not p.name.startswith(".")]
    elif Path(raw).exists():
        found = [Path(raw)]
    else:
        raise EngineError(f"{pattern}: no such file or folder.")
    found = [p.absolute() for p in found if not _inside(p, exclude)]
    return sorted(found)


def safe_id(key: str) -> str:
    """A file-name-safe id: letters, digits, '.', '-' and '_' kept, the rest '_'."""
    s = re.sub(r"[^\w.\-]+", "_", key).strip("._") or "item"
    return s[:120]


def _unique_ids(pairs: list[tuple]) -> list[Item]:
    """Items with distinct ids: ids that clash (photos of the same name in two folders) get
    a short hash of their first input's path, so a rerun gives each the same id again.
    ``pairs``: (id, paths, problem) or (id, paths, problem, slots)."""
    count: dict[str, int] = {}
    for key, *_ in pairs:
        count[key.lower()] = count.get(key.lower(), 0) + 1
    out = []
    for key, paths, problem, *rest in pairs:
        iid = key
        if count[key.lower()] > 1:
            iid = f"{key}-{hashlib.sha1(str(paths[0]).encode()).hexdigest()[:6]}"
        out.append(Item(iid, paths, problem, rest[0] if rest else None))
    return out


def from_patterns(patterns: list[str], exclude: Path | None = None) -> list[Item]:
    """Items from one pattern per engine input (see the module docstring)."""
    if not patterns:
        raise EngineError("Give the inputs with --inputs PATTERN (or a --manifest CSV).")
    slots = []
    for pat in patterns:
        paths = expand(pat, exclude)
        if not paths:
            raise EngineError(f"No inputs match '{pat}'.")
        slots.append(paths)
    partners: list[dict[str, Path] | Path] = []
    for pat, paths in zip(patterns[1:], slots[1:]):
        if len(paths) == 1:
            partners.append(paths[0])  # one file for every item
            continue
        by_key: dict[str, Path] = {}
        for p in paths:
            k = name_key(p)
            if k in by_key:
                raise EngineError(
                    f"Two inputs named '{k}' match '{pat}' ({by_key[k]} and {p}): "
                    "inputs are paired by name, so names must be unique; use a --manifest."
                )
            by_key[k] = p
        partners.append(by_key)
    pairs = []
    for first in slots[0]:
        key = name_key(first)
        paths, missing = [first], []
        for n, partner in enumerate(partners, start=2):
            if isinstance(partner, Path):
                paths.append(partner)
            elif key in partner:
                paths.append(partner[key])
            else:
                missing.append(f"no input named '{key}' matches '{patterns[n - 1]}' (input {n})")
        problem = None
        if missing:
            problem = f"{first.name}: " + "; ".join(missing) + ". Inputs are paired by file name."
        pairs.append((safe_id(key), tuple(paths), problem))
    return _unique_ids(pairs)


def from_manifest(path: str | os.PathLike, slot_names=()) -> list[Item]:
    """Items from a CSV file: columns ``input`` (or ``input1``), ``input2``... in that order,
    or columns named as the engine's input slots (``slot_names``: ``person_video``,
    ``garment_image``; any order, an optional slot's column may be left out or a cell empty),
    and optionally ``id``; relative paths are relative to the CSV file's folder."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
            header = list(rows[0].keys()) if rows else []
    except OSError as e:
        raise EngineError(f"Cannot read the manifest {path}: {e.strerror or e}.") from None
    cols = [c for c in header if c and re.fullmatch(r"input\d*", c.strip().lower())]
    named = {c.strip(): c for c in header if c and c.strip() in set(slot_names)}
    if cols and named:
        raise EngineError(
            f"The manifest {path.name} has both 'input' columns and columns named as the engine's inputs "
            f"({', '.join(named)}): use one or the other."
        )
    slot_cols = [(n, named[n]) for n in slot_names if n in named]  # in slot order
    if not cols and not slot_cols:
        raise EngineError(
            f"The manifest {path.name} needs a header row with an 'input' column "
            "(and 'input2'... for engines with more inputs, or columns named as the engine's inputs"
            + (f": {', '.join(slot_names)}" if slot_names else "")
            + "; optionally 'id')."
        )
    id_col = next((c for c in header if c and c.strip().lower() == "id"), None)
    base = path.parent
    pairs, seen = [], set()
    for n, row in enumerate(rows, start=2):
        if slot_cols:
            given_cells = [(name, (row.get(c) or "").strip()) for name, c in slot_cols]
            slots = tuple(name for name, cell in given_cells if cell)
            cells = [cell for _, cell in given_cells]
        else:
            slots, cells = None, [(row.get(c) or "").strip() for c in cols]
        if not any(cells):
            continue
        paths = tuple((base / os.path.expanduser(c)).absolute() for c in cells if c)
        given = (row.get(id_col) or "").strip() if id_col else ""
        key = safe_id(given) if given else safe_id(name_key(paths[0]))
        if given:
            if key in seen:
                raise EngineError(f"{path.name} line {n}: the id '{given}' is used twice.")
            seen.add(key)
        pairs.append((key, paths, None, slots))
    if not pairs:
        raise EngineError(f"The manifest {path.name} lists no inputs.")
    return _unique_ids(pairs)


def hash_input(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, in order)."""
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode())
            h.update(b"\0")
            with open(f, "rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
        return h.hexdigest()
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def describe_input(path: Path, known: dict | None = None) -> dict:
    """``path``, ``sha256``, ``bytes`` and ``mtime_ns`` of an input file, for its record. The
    hash of ``known`` (the last record's entry) is reused when the path, size and
    modification time are unchanged, as rsync and make judge files: a rerun over large
    videos then reads none of them again. Folders are always hashed."""
    path = Path(path)
    if path.is_dir():
        return {"path": str(path), "sha256": hash_input(path)}
    st = path.stat()
    if (
        known
        and known.get("path") == str(path)
        and known.get("bytes") == st.st_size
        and known.get("mtime_ns") == st.st_mtime_ns
        and known.get("sha256")
    ):
        digest = known["sha256"]
    else:
        digest = hash_input(path)
    return {"path": str(path), "sha256": digest, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
