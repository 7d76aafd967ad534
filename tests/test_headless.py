"""engines/ must run without Qt: import every engines module with PySide6, pyvista and
app made unimportable (napari proves its model headless the same way)."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engines_import_without_qt():
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                root = name.split('.')[0]
                if root in ('PySide6', 'pyvista', 'pyvistaqt', 'app', 'shiboken6'):
                    raise ImportError('blocked for the headless test: ' + name)
        sys.meta_path.insert(0, Block())
        import engines
        names = []
        for m in pkgutil.walk_packages(engines.__path__, 'engines.'):
            importlib.import_module(m.name)
            names.append(m.name)
        from engines import registry
        found = registry.engines()
        assert 'PySide6' not in sys.modules and 'pyvista' not in sys.modules
        print(len(names), sorted(found))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    n = int(out.stdout.split()[0])
    assert n >= 4  # api, types, registry, io at least


def test_engines_source_never_imports_qt():
    bad = []
    for p in (ROOT / "engines").rglob("*.py"):
        for line in p.read_text().splitlines():
            s = line.strip()
            if s.startswith(("import ", "from ")) and any(
                s.split()[1].split(".")[0] == m for m in ("PySide6", "pyvista", "pyvistaqt", "app")
            ):
                bad.append(f"{p.relative_to(ROOT)}: {s}")
    assert not bad, bad
