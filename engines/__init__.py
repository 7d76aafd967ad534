"""Capture Studio engines: the Qt-free core.

Everything under ``engines`` runs headless: the engine contract (:mod:`engines.api`),
the data types (:mod:`engines.types`), file I/O (:mod:`engines.io`), the registry of
plug-in engines (:mod:`engines.registry`) and the built-in engines. No module here may
depend on PySide6, pyvista or ``app``; ``tests/test_headless.py`` enforces it.
"""
