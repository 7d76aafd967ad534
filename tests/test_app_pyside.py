"""PySide6 6.12.0 drops a reference to ``None`` per void call and to ``True`` per
``emit`` on CPython 3.11; importing ``app`` must make that harmless
(see app._pin_singletons)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_many_emits_do_not_abort_the_interpreter():
    code = textwrap.dedent(
        """
        import sys
        import app  # applies the work-around
        from PySide6.QtCore import QObject, Signal
        from PySide6.QtWidgets import QApplication, QLabel
        qa = QApplication([])
        label = QLabel()
        class S(QObject):
            ping = Signal(int, float, str)
        s = S()
        got = []
        s.ping.connect(lambda i, f, m: got.append(i))
        before = sys.getrefcount(True)
        for i in range(200000):
            s.ping.emit(i % 20000, 0.5, "x")
            label.setText("x")  # void: returns a borrowed None
        assert len(got) == 200000 and got[-1] == 19999
        assert sys.getrefcount(True) > 1 << 30, sys.getrefcount(True)
        assert sys.getrefcount(None) > 1 << 30, sys.getrefcount(None)
        print("ok", before - sys.getrefcount(True))
        """
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")
