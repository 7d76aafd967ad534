"""Bundled resources: sample inputs (``samples/``), style sheet and icons.

Read through :mod:`importlib.resources` so they work from a checkout and from an
installed build alike.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SAMPLE_SKIP = {".json", ".md", ".txt", ".py"}


def samples_dir() -> Path:
    return Path(str(files(__name__) / "samples"))


def samples() -> list[Path]:
    """The bundled sample inputs that exist (files and folders, e.g. a focal stack),
    sorted by name; sidecars and notes are left out."""
    d = samples_dir()
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.iterdir()):
        if p.name.startswith((".", "_")):
            continue
        if p.is_file() and p.suffix.lower() in SAMPLE_SKIP:
            continue
        out.append(p)
    return out
