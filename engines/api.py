"""The engine contract.

An engine is a class with ``name`` (CLI id), ``title`` (menu text), ``accepts`` (input
types), ``produces`` (result types), a pydantic ``Params`` model and a pure ``run``::

    class MyEngine(Engine):
        name = "my-engine"
        title = "My engine"
        accepts = (Image,)
        produces = (Mesh,)

        class Params(BaseModel):
            detail: int = Field(3, ge=1, le=8, description="Subdivision level")

        def run(self, inputs, params, progress, cancel) -> Result:
            progress(0.1, "Thinking")
            cancel.raise_if_set()
            ...

The GUI builds its parameter form from ``Params`` and the CLI builds ``--set`` options
from it: one description, two front ends (nerfstudio's dataclass configs do the same).
Errors a user can fix are :class:`EngineError` with a sentence the user can act on.
"""

from __future__ import annotations

import abc
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol, Sequence

from pydantic import BaseModel


API_VERSION = 1
"""The engine contract's version. An engine declares the version it was written for as
``api_version`` (subclasses of :class:`Engine` get the current one); the registry skips, with
the reason, engines written for another version. Raised when the contract changes in a way
that breaks existing engines (docs/plugins.md lists what the contract is)."""


class EngineError(Exception):
    """A problem the user can fix (bad input, no face found...). ``str()`` is the message."""


class Cancelled(Exception):
    """Raised inside an engine at a checkpoint after the user pressed Cancel."""


class CancelToken:
    """Cooperative cancellation: the UI sets it, the engine checks between stages."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def raise_if_set(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class Progress(Protocol):
    def __call__(self, fraction: float, message: str = "") -> None: ...


def no_progress(fraction: float, message: str = "") -> None:
    """A Progress that ignores reports (for library use and tests)."""


@dataclass
class Result:
    """What an engine returns.

    ``items`` are the result objects (types from :mod:`engines.types`), the first one
    being the main result; ``metrics`` are figures for ``--json`` and the benchmark;
    ``timings`` are seconds per stage; ``notes`` are sentences for the user.
    """

    items: list[Any] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    by_extension: dict[str, Any] = field(default_factory=dict)
    """Which item an export to an extension should write when it is not the first
    suitable one, e.g. ``{".ply": fused_points}`` so that ``--out x.ply`` gives the cloud."""

    @property
    def main(self) -> Any:
        return self.items[0] if self.items else None

    def first(self, kind: type) -> Any:
        """The first item of a type, or None."""
        return next((i for i in self.items if isinstance(i, kind)), None)

    @contextmanager
    def stage(self, name: str):
        """Time a stage: ``with result.stage("landmarks"): ...`` adds to ``timings``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0


class Engine(abc.ABC):
    """Base class for engines (subclassing is optional; the registry checks the shape)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    accepts: ClassVar[tuple[type, ...]] = ()
    produces: ClassVar[tuple[type, ...]] = ()
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int] = 1
    api_version: ClassVar[int] = API_VERSION

    # -- what the engine's package contributes besides run (like npe2 manifests' readers and
    # writers); all "module:attribute" strings, imported only when used
    writers: ClassVar[dict[str, list[tuple[str, str]]]] = {}
    """Extension -> [(result type name, "module:function")]; ``fn(obj, path) -> list[Path]``
    writes atomically (engines.io.atomic_path / WriteSet). File > Export and ``--out``."""
    readers: ClassVar[dict[str, str]] = {}
    """Extension -> "module:function" ``fn(path) -> result object``, for File > Open."""
    input_readers: ClassVar[dict[str, dict[str, str]]] = {}
    """Type name -> extension -> "module:function": how a file becomes an input of that type
    (an avatar ``.glb`` for the puppet engine)."""
    renderers: ClassVar[dict[str, str]] = {}
    """Result type name -> "module:function" ``fn(viewport, obj, key) -> list[str]`` that draws
    that type in the 3D viewport (app.viewport.Viewport; the drawn parts' keys), for types the
    viewport does not draw itself (Mesh, PointCloud, DepthMap, Strands, Image)."""
    panels: ClassVar[dict[str, str]] = {}
    """Result type name -> "module:Class" of a Qt widget shown in a dock beside the Engine
    panel while a result holding that type is shown: ``Class(main_window)`` with a class
    attribute ``dock_title`` (the dock's name), ``show_item(obj, key)`` (``key``: the viewport key the object is drawn
    under), optionally ``wants(obj) -> bool`` (a static method: False leaves the panel out for
    that object) and ``release()`` (called when the result is no longer shown)."""

    class Params(BaseModel):
        pass

    @abc.abstractmethod
    def run(self, inputs: list, params: BaseModel, progress: Progress, cancel: CancelToken) -> Result:
        """Pure computation: report with ``progress``, check ``cancel`` between stages."""

    # -- helpers shared by the front ends ---------------------------------------------
    @classmethod
    def check_inputs(cls, inputs: list) -> None:
        """Raise EngineError if the inputs do not fit ``accepts``/``min_inputs``/``max_inputs``."""
        names = ", ".join(t.__name__ for t in cls.accepts)
        if not (cls.min_inputs <= len(inputs) <= cls.max_inputs):
            want = f"{cls.min_inputs}" if cls.min_inputs == cls.max_inputs else f"{cls.min_inputs} to {cls.max_inputs}"
            raise EngineError(f"{cls.title} needs {want} input(s) ({names}); got {len(inputs)}.")
        for i in inputs:
            if not isinstance(i, cls.accepts):
                raise EngineError(f"{cls.title} cannot use a {type(i).__name__}; it accepts {names}.")


def _choice_key(v: str) -> str:
    return str(v).strip().lower().replace(" ", "_").replace("-", "_")


@dataclass(frozen=True)
class Choices:
    """Parameter metadata for a text field whose values come from a list known only at run
    time (a library that plug-ins or users may extend)::

        hairstyle: Annotated[str, Choices(list_styles, icon=thumbnail_path)] = Field("none")

    Values are checked when Params are made (CLI and GUI alike, before any work), matched
    without regard to case, spaces or dashes, and stored as the listed spelling. The GUI
    shows a drop-down (with ``icon(value)`` images where given)."""

    values: Callable[[], Sequence[str]]
    icon: Callable[[str], str | None] | None = None

    def allowed(self) -> list[str]:
        return [str(v) for v in self.values()]

    def check(self, v: Any) -> str:
        allowed = self.allowed()
        key = _choice_key(v)
        for a in allowed:
            if _choice_key(a) == key:
                return a
        raise ValueError(f"'{v}' is not one of: {', '.join(allowed)}")

    def __get_pydantic_core_schema__(self, source, handler):
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(self.check, handler(source))


@dataclass(frozen=True)
class Colour:
    """Parameter metadata for a colour given as ``#rrggbb``, a preset name or one of
    ``special`` words (e.g. ``auto``); checked when Params are made, stored lower-case.
    The GUI shows a colour picker with the presets."""

    presets: Callable[[], dict[str, str]] | None = None
    special: tuple[str, ...] = ("auto",)

    def preset_map(self) -> dict[str, str]:
        return dict(self.presets()) if self.presets else {}

    def check(self, v: Any) -> str:
        s = str(v).strip().lower()
        if s in self.special or s in self.preset_map():
            return s
        h = s[1:] if s.startswith("#") else s
        if len(h) == 6 and all(c in "0123456789abcdef" for c in h):
            return "#" + h
        words = [*self.special, *self.preset_map()]
        raise ValueError(f"'{v}' is not a colour: use #rrggbb (e.g. #3b2619) or one of {', '.join(words)}")

    def __get_pydantic_core_schema__(self, source, handler):
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(self.check, handler(source))


def field_marker(field, kind: type):
    """The first ``kind`` (Choices, Colour) in a Params field's metadata, or None."""
    return next((m for m in getattr(field, "metadata", ()) if isinstance(m, kind)), None)


def _literal_choice(annotation, text: str):
    """The number a command-line string names for a ``Literal`` of numbers
    (``"1024"`` for ``Literal[1024, 2048]``): pydantic's lax mode does not convert those."""
    import typing

    if typing.get_origin(annotation) is typing.Literal:
        for choice in typing.get_args(annotation):
            if isinstance(choice, (int, float)) and not isinstance(choice, bool) and str(choice) == text.strip():
                return choice
    return text


def make_params(engine: type[Engine], values: dict[str, Any] | None = None) -> BaseModel:
    """Validate user values (strings from the CLI are coerced) into the engine's Params.

    Raises EngineError naming the bad parameter and what it accepts.
    """
    from pydantic import ValidationError

    values = dict(values or {})
    known = set(engine.Params.model_fields)
    unknown = sorted(set(values) - known)
    if unknown:
        raise EngineError(
            f"Unknown parameter(s) for {engine.name}: {', '.join(unknown)}. "
            f"Known: {', '.join(sorted(known)) or 'none'}."
        )
    for k, v in values.items():
        if isinstance(v, str):
            values[k] = _literal_choice(engine.Params.model_fields[k].annotation, v)
    try:
        return engine.Params(**values)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"])
            msgs.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
        raise EngineError("Bad parameter value: " + "; ".join(msgs)) from None
