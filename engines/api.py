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
An engine with several inputs names them with ``slots = (Slot("person_video", (VideoClip,)),
...)``; ``run`` then reads ``inputs.person_video`` (:func:`bind_inputs`, docs/plugins.md).
Errors a user can fix are :class:`EngineError` with a sentence the user can act on.
"""

from __future__ import annotations

import abc
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence

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


@dataclass(frozen=True)
class Slot:
    """A named input of an engine: ``Slot("garment_image", (Image,), "the garment photo")``.

    An engine that declares ``slots`` gets its inputs bound to them (:func:`bind_inputs`):
    by name where the user named them (``--input garment_image=shirt.png``), the rest by
    type in slot order; ``run`` then reads ``inputs.garment_image``."""

    name: str
    accepts: tuple[type, ...]
    description: str = ""
    optional: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.accepts, type):  # Slot("photo", Image) as well as (Image,)
            object.__setattr__(self, "accepts", (self.accepts,))
        else:
            object.__setattr__(self, "accepts", tuple(self.accepts))

    def takes(self, obj: Any) -> bool:
        return isinstance(obj, self.accepts)

    @property
    def kinds(self) -> str:
        """``"Avatar or Image"``."""
        return " or ".join(t.__name__ for t in self.accepts)

    def __str__(self) -> str:
        return f"{self.name} ({self.kinds})"


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
    slots: ClassVar[tuple[Slot, ...]] = ()
    """Named inputs (:class:`Slot`), in order. Empty: the inputs are a plain list in the
    user's order (checked against ``accepts``/``min_inputs``/``max_inputs``). Declared: a
    subclass that does not set ``accepts``/``min_inputs``/``max_inputs`` itself gets them from
    the slots, and ``run`` gets :class:`Inputs` with ``inputs.<slot name>``."""
    api_version: ClassVar[int] = API_VERSION

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        slots = cls.__dict__.get("slots")
        if slots:
            own = cls.__dict__
            if "accepts" not in own:
                cls.accepts = tuple(dict.fromkeys(t for s in slots for t in s.accepts))
            if "min_inputs" not in own:
                cls.min_inputs = sum(not s.optional for s in slots)
            if "max_inputs" not in own:
                cls.max_inputs = len(slots)

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
        """Raise EngineError if the inputs do not fit ``accepts``/``min_inputs``/``max_inputs``
        (and, for an engine with ``slots``, if they cannot be bound to them)."""
        bind_inputs(cls, inputs)

    @classmethod
    def bind(cls, inputs: Sequence = (), named: Mapping[str, Any] | None = None) -> Inputs:
        """:func:`bind_inputs` for this engine: ``inputs = self.bind(inputs)`` in ``run``."""
        return bind_inputs(cls, inputs, named)


class Inputs(list):
    """An engine's inputs: the list ``run`` always got (iterate it, ``inputs[0]``), and, for an
    engine with ``slots``, each slot's object by name: ``inputs.person_video``,
    ``inputs["garment_image"]``, ``inputs.get("mask")`` (None for an optional slot left
    empty). The list holds the filled slots in slot order."""

    def __init__(self, items: Sequence = (), slots: Mapping[str, Any] | None = None) -> None:
        super().__init__(items)
        self._slots: dict[str, Any] = dict(slots or {})

    @property
    def by_slot(self) -> dict[str, Any]:
        """Slot name -> object (None where an optional slot is empty), in slot order."""
        return dict(self._slots)

    def get(self, name: str, default: Any = None) -> Any:
        v = self.__dict__.get("_slots", {}).get(name)
        return default if v is None else v

    def _unknown(self, name: str) -> str:
        known = ", ".join(self.__dict__.get("_slots", {})) or "none (this engine has no named inputs)"
        return f"no input slot named {name!r}; the slots are: {known}"

    def __getattr__(self, name: str) -> Any:
        slots = self.__dict__.get("_slots", {})
        if name.startswith("_") or name not in slots:
            raise AttributeError(self._unknown(name) if not name.startswith("_") else name)
        return slots[name]

    def __getitem__(self, key):
        if isinstance(key, str):
            slots = self.__dict__.get("_slots", {})
            if key not in slots:
                raise KeyError(self._unknown(key))
            return slots[key]
        return super().__getitem__(key)

    def __repr__(self) -> str:
        if not self._slots:
            return f"Inputs({list.__repr__(self)})"
        return (
            "Inputs("
            + ", ".join(f"{k}={_describe(v) if v is not None else None}" for k, v in self._slots.items())
            + ")"
        )


_RESERVED_SLOT_NAMES = frozenset(n for n in dir(Inputs) if not n.startswith("_"))


def _describe(obj: Any) -> str:
    """``an Image (shirt.png)``: an input for a message."""
    kind = type(obj).__name__
    label = ""
    path = getattr(obj, "path", None)
    if path:
        try:
            from pathlib import Path

            label = Path(path).name
        except TypeError:
            label = ""
    if not label and isinstance(getattr(obj, "name", None), str):
        label = obj.name
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return f"{article} {kind}" + (f" ({label})" if label else "")


def _title(engine) -> str:
    return getattr(engine, "title", "") or getattr(engine, "name", "") or "The engine"


def slots_text(engine) -> str:
    """``person_video (VideoClip), garment_image (Image)``: an engine's slots for messages and help."""
    return ", ".join(
        f"{s.name} ({s.kinds}{', optional' if s.optional else ''})" for s in getattr(engine, "slots", ()) or ()
    )


def unknown_slot_error(engine, name: str) -> EngineError:
    """The error for an input given a slot name the engine does not have."""
    if not getattr(engine, "slots", ()):
        return EngineError(
            f"{_title(engine)} has no named inputs (it takes {', '.join(t.__name__ for t in engine.accepts)} "
            f"in order): give the input without '{name}='."
        )
    return EngineError(f"{_title(engine)} has no input named '{name}'; its inputs are: {slots_text(engine)}.")


def slot_problem(engine) -> str | None:
    """Why an engine's ``slots`` are unusable (None when they are fine, or there are none)."""
    slots = getattr(engine, "slots", ())
    if not slots:
        return None
    cname = getattr(engine, "__name__", repr(engine))
    if not isinstance(slots, tuple) or not all(isinstance(s, Slot) for s in slots):
        return f"{cname}.slots must be a tuple of engines.api.Slot"
    names = [s.name for s in slots]
    for n in names:
        if not n.isidentifier() or n.startswith("_") or n in _RESERVED_SLOT_NAMES:
            return (
                f"{cname} has an input slot named {n!r}: use an identifier that does not start with '_' "
                f"and is none of {', '.join(sorted(_RESERVED_SLOT_NAMES))}"
            )
    if len(set(names)) != len(names):
        return f"{cname} names two input slots alike ({', '.join(names)})"
    required = sum(not s.optional for s in slots)
    if (engine.min_inputs, engine.max_inputs) != (required, len(slots)):
        return (
            f"{cname} has min_inputs={engine.min_inputs}, max_inputs={engine.max_inputs} but its slots "
            f"say {required} and {len(slots)} (leave those out: they follow from the slots)"
        )
    extra = [t.__name__ for s in slots for t in s.accepts if not issubclass(t, tuple(engine.accepts))]
    if extra:
        return f"{cname}'s slots take {', '.join(extra)}, which is not in its accepts"
    return None


def assign_slots(engine, inputs: Sequence = (), named: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list]:
    """Which input goes in which of the engine's slots, without judging completeness:
    ``(slot name -> object or None, inputs that fit no free slot)``.

    ``named`` (slot name -> object) goes first; each of ``inputs`` then takes a free slot that
    accepts its type, in slot order (moving an earlier input to another slot it fits when that
    frees one: an Image and a VideoClip for slots ``(VideoClip or Image, Image)`` both fit).
    Raises EngineError for a name that is not a slot, or an object of a type its slot refuses.
    """
    slots = tuple(getattr(engine, "slots", ()) or ())
    by_name = {s.name: s for s in slots}
    bound: dict[str, Any] = {s.name: None for s in slots}
    for name, obj in (named or {}).items():
        slot = by_name.get(name)
        if slot is None:
            raise unknown_slot_error(engine, name)
        if not slot.takes(obj):
            raise EngineError(f"The {name} input of {_title(engine)} takes {slot.kinds}, not {_describe(obj)}.")
        bound[name] = obj
    free = [s for s in slots if bound[s.name] is None]
    taken: dict[str, Any] = {}

    def place(obj: Any, seen: set[str]) -> bool:
        fits = [s for s in free if s.takes(obj) and s.name not in seen]
        for s in fits:  # a free slot first, in slot order
            if s.name not in taken:
                taken[s.name] = obj
                return True
        for s in fits:  # else move an earlier input to another slot it fits
            seen.add(s.name)
            if place(taken[s.name], seen):
                taken[s.name] = obj
                return True
        return False

    left = [obj for obj in inputs if not place(obj, set())]
    bound.update(taken)
    return bound, left


def bind_inputs(engine, inputs: Sequence = (), named: Mapping[str, Any] | None = None) -> Inputs:
    """The engine's inputs checked and bound to its slots, as :class:`Inputs`.

    ``inputs`` in the user's order, ``named`` by slot name (see :func:`assign_slots`). Raises
    EngineError naming the slot and what it takes when a required slot stays empty, and the
    input when one fits no slot. For an engine without ``slots`` the inputs stay a list in the
    given order, checked against ``accepts``/``min_inputs``/``max_inputs``. Inputs that are
    already bound for this engine's slots are checked again and returned bound the same way.
    """
    slots = tuple(getattr(engine, "slots", ()) or ())
    title = _title(engine)
    named = dict(named or {})
    if not slots:
        if named:
            raise unknown_slot_error(engine, next(iter(named)))
        inputs = list(inputs)
        names = ", ".join(t.__name__ for t in engine.accepts)
        if not (engine.min_inputs <= len(inputs) <= engine.max_inputs):
            lo, hi = engine.min_inputs, engine.max_inputs
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise EngineError(f"{title} needs {want} input(s) ({names}); got {len(inputs)}.")
        for i in inputs:
            if not isinstance(i, engine.accepts):
                raise EngineError(f"{title} cannot use a {type(i).__name__}; it accepts {names}.")
        return Inputs(inputs)
    if isinstance(inputs, Inputs) and list(inputs.by_slot) == [s.name for s in slots]:
        named = {**{k: v for k, v in inputs.by_slot.items() if v is not None}, **named}
        inputs = []
    bound, left = assign_slots(engine, inputs, named)
    given = len(named) + len(inputs)
    missing = [s for s in slots if not s.optional and bound[s.name] is None]
    if missing:
        s = missing[0]
        lo, hi = engine.min_inputs, engine.max_inputs
        want = f"{lo}" if lo == hi else f"{lo} to {hi}"
        head = f"{title} needs {want} input(s); got {given}: " if given < lo else f"{title}: "
        what = f" ({s.description})" if s.description else ""
        msg = f"{head}the {s.name} input is missing; it takes {s.kinds}{what}."
        if left:
            msg += f" (Given but not used: {_describe(left[0])}; its inputs are: {slots_text(engine)}.)"
        raise EngineError(msg)
    if left:
        obj = left[0]
        fitting = [s.name for s in slots if s.takes(obj)]
        why = (
            f"the input(s) that take it ({', '.join(fitting)}) are already filled"
            if fitting
            else "none of its inputs takes one"
        )
        raise EngineError(f"{title} has no place for {_describe(obj)}: {why}. Its inputs are: {slots_text(engine)}.")
    return Inputs([bound[s.name] for s in slots if bound[s.name] is not None], bound)


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
