"""What engines contribute to the GUI besides ``run``: viewport renderers and result panels
(``Engine.renderers`` / ``Engine.panels``: result type name -> ``"module:attribute"``, the way
npe2 manifests declare widgets). One lookup for both, matched along a type's bases by name,
each module imported once; a reference that cannot be loaded is logged once and left
out, so a broken plug-in costs only what it declared. Light: no Qt or VTK import here."""

from __future__ import annotations

import logging

log = logging.getLogger("app.contributions")
_failed: set[str] = set()
"""References that could not be loaded (logged once). Loaded ones are not cached: after the
first import, resolving is a module lookup and an attribute."""


def declared_ref(kind: str, cls: type) -> str | None:
    """The reference an engine declares in ``Engine.<kind>`` for this very type (not its
    bases), or None."""
    from engines import registry

    return registry.contributions(kind).get(cls.__name__) or None


def declared(kind: str, cls: type):
    """The object an engine declares in ``Engine.<kind>`` for this very type, imported
    once; None when nothing is declared or it cannot be loaded."""
    ref = declared_ref(kind, cls)
    if ref is None:
        return None
    if ref in _failed:
        return None
    from engines.io import resolve

    try:
        return resolve(ref)
    except Exception as e:  # a broken plug-in must not take the window down
        log.warning("%s for %s (%s) could not be loaded: %s", kind, cls.__name__, ref, e)
        _failed.add(ref)
        return None


def declared_for(kind: str, obj):
    """:func:`declared` for the first of ``obj``'s type and its bases that has a declaration."""
    for cls in type(obj).__mro__:
        if declared_ref(kind, cls) is not None:
            return declared(kind, cls)
    return None


def preload() -> None:
    """Import everything the engines declare now (the GUI calls it while idle, so that the
    first result needing a panel or renderer does not wait for its import)."""
    from engines import registry

    for kind in ("renderers", "panels"):
        for ref in set(registry.contributions(kind).values()):
            if ref in _failed:
                continue
            from engines.io import resolve

            try:
                resolve(ref)
            except Exception:  # reported (once) when it is first asked for
                log.debug("%s %s could not be preloaded", kind, ref, exc_info=True)
