"""Writing the user's files safely: transactions, clash-free sidecar names, protected
inputs, stale temporaries, and a sentence for every way a write can fail.

* **Transactions** (:class:`WriteSet`, :func:`atomic_path`). An export of several files
  (OBJ + MTL + textures; a project file and its results) writes every file to a hidden
  temporary beside its target first; only when all are complete are they renamed over
  their targets, the main file last, so no reader ever sees an OBJ whose MTL is not there
  yet. Any failure or interrupt (an exception, Ctrl-C) before that removes every
  temporary; a failed rename undoes the renames already made (replaced files come back
  from hard-link backups). This is write-ahead-then-commit as databases do it, on
  POSIX ``rename(2)``, which replaces a file atomically.
* **Temporaries of our own naming**: ``.<stem>.cs-tmp-<host>-<pid>-<random><ext>``.
  One left behind by a process that was killed (SIGKILL, power loss) is removed by the
  next write into the same folder (:func:`sweep_stale`): when its process is gone (same
  host) or when it is more than a day old (any host).
* **Inputs are never replaced** (:func:`protect`, :func:`is_protected`). Every file read
  as an input is recorded for the life of the process (by real path, and by device and
  inode so a hard link is caught too); a write whose target is one is refused, and a
  sidecar that would land on one takes another name.
* **Sidecar names** (:func:`free_sidecar`): files written beside a main file get names
  that say what they are (``portrait_texture.png``); an existing file of that name is
  not replaced unless it belongs to the main file being overwritten, else a number is added
  (``portrait_texture_2.png``).
* **Failures are sentences** (:class:`OutputError`): a read-only folder, a folder with the
  output's name, a parent that is a file, a full disk each name the *target* (never the
  hidden temporary) and say what to do.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from engines.api import EngineError

TMP_TAG = ".cs-tmp-"
STALE_AFTER_S = 86400.0
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]
_TMP_RE = re.compile(r"^\..*\.cs-tmp-([0-9a-f]{6})-(\d+)-[a-z0-9_]+(\..*)?$")

_UMASK = os.umask(0o022)
os.umask(_UMASK)


# ------------------------------------------------------------------------------ errors
class OutputError(EngineError):
    """A file could not be written. ``path`` is the target the user chose (not the
    temporary), ``reason`` says why in words, ``kind`` is one of ``is_dir``,
    ``parent_is_file``, ``not_writable``, ``disk_full``, ``other``."""

    HINTS = {
        "is_dir": "Choose a file name that is not a folder's",
        "parent_is_file": "Choose an output inside a folder",
        "not_writable": "Choose a folder you can write to",
        "disk_full": "Free some space or choose another disk",
        "other": "Choose another location",
    }

    def __init__(self, path: Path, reason: str, kind: str = "other") -> None:
        self.path, self.reason, self.kind = Path(path), reason, kind
        super().__init__(
            f"Cannot write {self.path}: {reason}. {self.HINTS.get(kind, self.HINTS['other'])}; nothing was written."
        )


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def _first_existing(p: Path) -> Path:
    while not os.path.lexists(p) and p.parent != p:
        p = p.parent
    return p


def output_error(e: OSError, target: Path) -> OutputError:
    """The sentence for an OSError met while writing ``target``."""
    target = Path(target)
    parent = target.parent
    if e.errno in _FULL:
        return OutputError(target, "the disk is full (or the quota is used up)", "disk_full")
    if target.is_dir() or e.errno == errno.EISDIR:
        return OutputError(target, "a folder has that name", "is_dir")
    anc = _first_existing(parent)
    if not anc.is_dir() or e.errno == errno.ENOTDIR:
        return OutputError(target, f"{anc} is a file, not a folder", "parent_is_file")
    if e.errno in _DENIED:
        why = "is on a read-only disk" if e.errno == errno.EROFS else "is read-only (no permission to write there)"
        return OutputError(target, f"the folder {parent} {why}", "not_writable")
    return OutputError(target, e.strerror or str(e), "other")


def _is_about(e: OSError, paths: Iterable[Path]) -> bool:
    """Whether an OSError from a writer's body concerns our output (not, say, a source file)."""
    if e.errno in _FULL or e.errno in (errno.EROFS,):
        return True
    names = {os.fspath(x) for x in (e.filename, e.filename2) if x is not None}
    if not names:
        return True
    ours = set()
    for p in paths:
        ours |= {os.fspath(p), os.fspath(Path(p).parent)}
    return bool(names & ours)


# ------------------------------------------------------------------------------ inputs
_lock = threading.Lock()
_protected: dict[str, tuple[int, int] | None] = {}


def _real(p) -> str:
    return os.path.realpath(os.fspath(p))


def protect(paths: Iterable[str | os.PathLike]) -> None:
    """Record files the user gave as inputs: no write in this process replaces them."""
    for p in paths:
        p = Path(p)
        try:
            st = p.stat()
        except OSError:
            continue
        if not p.is_file():
            continue
        with _lock:
            _protected[_real(p)] = (st.st_dev, st.st_ino)


def is_protected(path: str | os.PathLike) -> bool:
    """True when ``path`` is (or is a hard link to) a file recorded by :func:`protect`."""
    real = _real(path)
    with _lock:
        if real in _protected:
            return True
        items = list(_protected.items())
    try:
        st = os.stat(path)
    except OSError:
        return False
    key = (st.st_dev, st.st_ino)
    for other, ident in items:
        if ident == key:
            try:  # the same inode only counts while the protected path still is that file
                o = os.stat(other)
            except OSError:
                continue
            if (o.st_dev, o.st_ino) == key:
                return True
    return False


def refuse_input(path: Path) -> EngineError:
    return EngineError(
        f"{path} is one of the inputs; an export never replaces an input file. Choose another output name."
    )


def check_output(path: str | os.PathLike) -> Path:
    """Check, before any work, that ``path`` can be written: not an input, not a folder,
    inside a folder (or one that can be made) that is writable. Returns the path."""
    path = Path(path)
    if is_protected(path):
        raise refuse_input(path)
    if path.is_dir():
        raise OutputError(path, "a folder has that name", "is_dir")
    anc = _first_existing(path.parent)
    if not anc.is_dir():
        raise OutputError(path, f"{anc} is a file, not a folder", "parent_is_file")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise OutputError(path, f"the folder {anc} is read-only (no permission to write there)", "not_writable")
    return path


# ------------------------------------------------------------------------------ stale temporaries
def pid_alive(pid: int) -> bool:
    """Whether a process of this id runs on this machine (True when that cannot be known)."""
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there: rely on age only
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def is_stale(name: str, mtime: float, now: float | None = None) -> bool:
    """Whether a file named like our temporaries was left by a process that is gone."""
    m = _TMP_RE.match(name)
    if not m:
        return False
    now = time.time() if now is None else now
    if now - mtime > STALE_AFTER_S:
        return True
    host, pid = m.group(1), int(m.group(2))
    return host == _HOST and pid != os.getpid() and not pid_alive(pid)


def sweep_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove temporaries of our naming that a killed process left in ``folder``."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for e in entries:
        if not e.name.startswith(".") or TMP_TAG not in e.name:
            continue
        try:
            if e.is_file(follow_symlinks=False) and is_stale(e.name, e.stat(follow_symlinks=False).st_mtime, now):
                os.unlink(e.path)
                removed.append(Path(e.path))
        except OSError:
            pass
    return removed


# ------------------------------------------------------------------------------ sidecars
def free_sidecar(main: Path, name: str, reusable: Iterable[Path] = (), taken: Iterable[Path] = ()) -> Path:
    """A path beside ``main`` named ``name`` (or ``<stem>_2<ext>``, ``_3``...) that replaces
    nothing it must not: no protected input, no existing file unless it is in ``reusable``
    (the sidecars of the file being overwritten), none already used in this write."""
    main = Path(main)
    reusable = {_real(p) for p in reusable}
    taken = {_real(p) for p in taken}
    base, ext = os.path.splitext(name)
    cand, k = main.with_name(name), 2
    while True:
        real = _real(cand)
        if (
            real not in taken
            and real != _real(main)
            and not is_protected(cand)
            and not cand.is_dir()
            and (not os.path.lexists(cand) or real in reusable)
        ):
            return cand
        cand, k = main.with_name(f"{base}_{k}{ext}"), k + 1


# ------------------------------------------------------------------------------ transactions
class _Entry:
    __slots__ = ("final", "tmp", "main", "backup")

    def __init__(self, final: Path, tmp: Path, main: bool) -> None:
        self.final, self.tmp, self.main, self.backup = final, tmp, main, None


class WriteSet:
    """Several files written as one: :meth:`add` each target (you get a temporary path to
    write), then :meth:`commit`; :meth:`abort` (or any exception inside ``with``) leaves
    the targets as they were and no temporary behind."""

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self._swept: set[str] = set()

    def __enter__(self) -> "WriteSet":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
            return False
        self.abort()
        if isinstance(exc, OSError) and _is_about(exc, [p for e in self.entries for p in (e.final, e.tmp)]):
            target = next(
                (e.final for e in self.entries if e.main), self.entries[0].final if self.entries else Path(".")
            )
            raise output_error(exc, target) from exc
        return False

    @property
    def targets(self) -> list[Path]:
        return [e.final for e in self.entries]

    def add(self, path: str | os.PathLike, main: bool = False, suffix: str | None = None) -> Path:
        """Reserve ``path`` in this write; returns the temporary to write it to."""
        path = Path(path)
        if is_protected(path):
            raise refuse_input(path)
        if any(_real(e.final) == _real(path) for e in self.entries):
            raise ValueError(f"{path} is already part of this write")
        if path.is_dir():
            raise OutputError(path, "a folder has that name", "is_dir")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise output_error(e, path) from e
        folder = _real(path.parent)
        if folder not in self._swept:
            self._swept.add(folder)
            sweep_stale(path.parent)
        stem = path.stem[:80]
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{stem}{TMP_TAG}{_HOST}-{os.getpid()}-",
                suffix=suffix if suffix is not None else path.suffix,
                dir=path.parent,
            )
        except OSError as e:
            raise output_error(e, path) from e
        os.close(fd)
        self.entries.append(_Entry(path, Path(tmp), main))
        return Path(tmp)

    def commit(self) -> None:
        """Rename every temporary over its target (main files last); all or nothing."""
        order = [e for e in self.entries if not e.main] + [e for e in self.entries if e.main]
        done: list[_Entry] = []
        try:
            for e in order:
                os.chmod(e.tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; exports get the usual mode
            for e in order:
                if e.final.is_dir():
                    raise OutputError(e.final, "a folder has that name", "is_dir")
                if os.path.lexists(e.final):
                    bak = e.tmp.with_name(e.tmp.name + ".bak")
                    try:
                        os.link(e.final, bak, follow_symlinks=False)
                        e.backup = bak
                    except OSError:
                        e.backup = None
                os.replace(e.tmp, e.final)
                done.append(e)
        except BaseException as exc:
            for e in reversed(done):
                try:
                    if e.backup is not None:
                        os.replace(e.backup, e.final)
                        e.backup = None
                    else:
                        os.unlink(e.final)
                except OSError:
                    pass
            self._cleanup()
            if isinstance(exc, OSError) and order:
                failing = next((x for x in order if x not in done), order[-1])
                raise output_error(exc, failing.final) from exc
            raise
        self._cleanup()

    def abort(self) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        for e in self.entries:
            for p in (e.tmp, e.backup):
                if p is not None:
                    try:
                        os.unlink(p)
                    except OSError:
                        pass
            e.backup = None


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success
    (a one-file :class:`WriteSet`)."""
    with WriteSet() as ws:
        tmp = ws.add(path, main=True, suffix=suffix)
        yield tmp
