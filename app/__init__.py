"""Capture Studio's Qt application: main window, panels, job runner, project.

Only this package imports PySide6 / pyvistaqt; ``engines`` stays Qt-free. Modules here
keep heavy imports (pyvista, torch, open3d, mediapipe) out of start-up: the 3D view and
the engines are imported after the window is on screen.
"""


def _pin_singletons() -> None:
    """Work around a PySide6 6.12.0 refcount bug on CPython 3.11.

    PySide6 6.12's wheels return ``None`` from every void method (``setValue``,
    ``setText``...) and ``True`` from ``SignalInstance.emit()`` without taking a reference,
    as if these objects were immortal, which they are only from CPython 3.12 (PEP 683).
    On 3.11 each such call lowers the refcount by one, and after some thousands of calls
    the interpreter aborts ("Fatal Python error: none_dealloc" / "bool_dealloc"). We do
    what 3.12 does: give ``None``, ``True``, ``False`` (and ``...``/``NotImplemented``)
    a refcount so large (2**40) that no session can wear it down. ``ob_refcnt`` is the
    first field of every object in a release build, and ``id()`` is its address.
    tests/test_app_pyside.py checks that a long run of calls survives.
    """
    import ctypes
    import sys

    if sys.version_info >= (3, 12) or hasattr(sys, "gettotalrefcount"):
        return
    for obj in (None, True, False, Ellipsis, NotImplemented):
        if sys.getrefcount(obj) < 1 << 39:
            ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40


_pin_singletons()
