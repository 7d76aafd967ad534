"""Engine registry: built-in and third-party engines found through entry points.

Engines are registered under the entry-point group ``capture_studio.engines`` (see
pyproject.toml), the built-in ones exactly like a plug-in package would, in the manner of
nerfstudio's ``nerfstudio.method_configs``. A plug-in that fails to import or is not an
engine is skipped with a logged warning; it never takes the application down.
Tests (and scripts) can add engines with :func:`register` without installing anything.

During development an engine can be loaded without packaging it, from the environment
variable ``CAPTURE_STUDIO_ENGINES`` (like nerfstudio's ``NERFSTUDIO_METHOD_CONFIGS``): a
comma-separated list of ``path/to/file.py`` (every engine class defined in it),
``path/to/file.py:ClassName`` or ``package.module:ClassName``. See docs/plugins.md.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points

from engines.api import API_VERSION, Engine, slot_problem

log = logging.getLogger(__name__)
GROUP = "capture_studio.engines"
ENV = "CAPTURE_STUDIO_ENGINES"
"""Engines to load from files or modules during development (see the module docstring)."""

# Built-in engines, used when the package is not installed (running from a checkout):
# the same table as the entry points in pyproject.toml.
BUILTIN = {
    "avatar": "engines.avatar.engine:AvatarEngine",
    "depth-from-focus": "engines.depth.engine:DepthFromFocusEngine",
    "tryon": "engines.tryon.engine:TryOnEngine",
    "multiview": "engines.multiview.engine:MultiViewEngine",
    "puppet": "engines.puppet.engine:PuppetEngine",
    "splat": "engines.splat.engine:SplatEngine",
}

_extra: dict[str, type] = {}
_cache: dict[str, type] | None = None
problems: list[str] = []
"""Why plug-ins were skipped, for the log and the About box."""


FRONT_END_ATTRIBUTES = {
    "name": str,
    "title": str,
    "description": str,
    "accepts": tuple,
    "produces": tuple,
    "min_inputs": int,
    "max_inputs": int,
}
"""What the CLI, the Engine panel and the About box read of every engine class."""


def engine_problem(obj) -> str | None:
    """Why ``obj`` cannot be offered as an engine (None when it can).

    Every front end must be able to drive it: a class with a non-empty ``name``, a
    callable ``run``, a pydantic/dataclass ``Params``, and each attribute the front ends read
    (:data:`FRONT_END_ATTRIBUTES`, which :class:`engines.api.Engine` gives subclasses).
    """
    if not isinstance(obj, type):
        return f"{obj!r} is not a class"
    if not callable(getattr(obj, "run", None)):
        return f"{obj.__name__} has no run() method"
    if not hasattr(obj, "Params"):
        return f"{obj.__name__} has no Params"
    for attr, kind in FRONT_END_ATTRIBUTES.items():
        value = getattr(obj, attr, None)
        if not isinstance(value, kind):
            return (
                f"{obj.__name__}.{attr} is missing or not {kind.__name__} "
                "(subclass engines.api.Engine to get every attribute the front ends read)"
            )
    if not obj.name:
        return f"{obj.__name__}.name is empty"
    bad_slots = slot_problem(obj)
    if bad_slots:
        return bad_slots
    version = getattr(obj, "api_version", API_VERSION)
    if version != API_VERSION:
        return (
            f"{obj.__name__} was written for engine API version {version}; this Capture Studio "
            f"has version {API_VERSION} (update the plug-in)"
        )
    return None


def is_engine(obj) -> bool:
    return engine_problem(obj) is None


def _load_ref(ref: str):
    import importlib

    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _load_file(path: str, attr: str | None):
    """Engine classes from a Python file: ``attr`` of it, or every engine class it defines."""
    import importlib.util
    import sys
    from pathlib import Path

    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    mod_name = f"capture_studio_dev_{p.stem}_{abs(hash(str(p))) % 10**8}"
    spec = importlib.util.spec_from_file_location(mod_name, p)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pydantic look the module up
    spec.loader.exec_module(module)
    if attr:
        return [getattr(module, attr)]
    found = [
        o
        for o in vars(module).values()
        if isinstance(o, type) and o.__module__ == mod_name and o is not Engine and is_engine(o)
    ]
    if not found:
        raise LookupError(f"{p} defines no engine class")
    return found


def _development_engines() -> list[tuple[str, object]]:
    """(what was asked for, class) for each entry of ``$CAPTURE_STUDIO_ENGINES``; failures
    go to :data:`problems`."""
    out = []
    for item in (os.environ.get(ENV) or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            head, sep, tail = item.rpartition(":")
            if sep and head.endswith(".py") and tail.isidentifier():
                objs = _load_file(head, tail)
            elif item.endswith(".py"):
                objs = _load_file(item, None)
            else:
                objs = [_load_ref(item)]
        except Exception as e:  # a broken development engine must not crash the app
            problems.append(f"{ENV} {item}: {type(e).__name__}: {e}")
            log.warning("Skipping %s entry %s: %s", ENV, item, e)
            continue
        out += [(item, o) for o in objs]
    return out


def _discover() -> dict[str, type]:
    found: dict[str, type] = {}
    refs: dict[str, str] = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        refs[ep.name] = ep.value
    for name, ref in refs.items():
        try:
            obj = _load_ref(ref)
        except ModuleNotFoundError as e:
            if ref in BUILTIN.values() and e.name and e.name.startswith("engines."):
                continue  # a built-in engine that this checkout does not have yet
            problems.append(f"{name}: {e}")
            log.warning("Skipping engine %s (%s): %s", name, ref, e)
            continue
        except Exception as e:  # a broken plug-in must not crash the app
            problems.append(f"{name}: {e}")
            log.warning("Skipping engine %s (%s): %s", name, ref, e)
            continue
        why = engine_problem(obj)
        if why is not None:
            problems.append(f"{name}: {ref} is not an engine class ({why})")
            log.warning("Skipping %s: %s is not an engine: %s", name, ref, why)
            continue
        found[obj.name] = obj
    for item, obj in _development_engines():
        why = engine_problem(obj)
        if why is not None:
            problems.append(f"{ENV} {item}: not an engine class ({why})")
            log.warning("Skipping %s entry %s: %s", ENV, item, why)
            continue
        found[obj.name] = obj
    return found


def engines() -> dict[str, type]:
    """All engines by name (discovered once, plus any registered at run time)."""
    global _cache
    if _cache is None:
        _cache = _discover()
    return {**_cache, **_extra}


def contributions(kind: str) -> dict:
    """What the engines declare (``writers``, ``readers``, ``input_readers``),
    merged over all engines in name order: extension / type name -> entries (writers'
    lists are concatenated; for the others the first engine to declare a key wins)."""
    out: dict = {}
    for name in sorted(engines()):
        table = getattr(engines()[name], kind, None) or {}
        for key, value in table.items():
            if kind == "writers":
                out.setdefault(key, [])
                out[key] += [v for v in value if v not in out[key]]
            elif kind == "input_readers":
                merged = out.setdefault(key, {})
                for ext, ref in value.items():
                    merged.setdefault(ext, ref)
            else:
                out.setdefault(key, value)
    return out


def get(name: str) -> type:
    from engines.api import EngineError

    try:
        return engines()[name]
    except KeyError:
        raise EngineError(f"No engine called '{name}'. Available: {', '.join(sorted(engines())) or 'none'}.") from None


def for_input(obj) -> list[type]:
    """Engines that accept this input object."""
    return [e for e in engines().values() if isinstance(obj, e.accepts)]


def register(engine: type) -> type:
    """Add an engine at run time (tests, scripts). Usable as a decorator."""
    why = engine_problem(engine)
    if why is not None:
        raise TypeError(f"{engine!r} is not an engine: {why}")
    _extra[engine.name] = engine
    return engine


def unregister(name: str) -> None:
    _extra.pop(name, None)


def reset() -> None:
    """Forget discovered engines so the next call rediscovers (tests)."""
    global _cache
    _cache = None
    _extra.clear()
    problems.clear()
