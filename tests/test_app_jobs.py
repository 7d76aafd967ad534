"""JobRunner: progress, results, cancellation, errors, throttling, waiting on quit."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.jobs import JobRunner
from engines.api import EngineError, make_params
from engines.types import Image, Mesh

from tests.conftest import FakeEngine

pytestmark = pytest.mark.gui


@pytest.fixture
def runner(qapp):
    r = JobRunner()
    yield r
    r.shutdown(5000)


def _img():
    return Image(np.zeros((8, 8, 3), np.uint8))


def test_engine_job_reports_progress_and_result(qtbot, runner):
    seen = []
    runner.progress.connect(lambda j, f, m: seen.append((f, m)))
    params = make_params(FakeEngine, {"steps": 4, "size": 2.5})
    with qtbot.waitSignal(runner.finished, timeout=60000) as blocker:
        job = runner.run_engine(FakeEngine, [_img()], params)
    jid, result = blocker.args
    assert jid == job.id and job.state == "done"
    mesh = result.main
    assert isinstance(mesh, Mesh)
    # The box has edge 2.5: bounds span exactly that.
    assert np.allclose(mesh.bounds[1] - mesh.bounds[0], 2.5)
    assert result.metrics["size"] == 2.5
    # Reports may be thinned out, but they arrive in order and the last one always does.
    steps = [int(m.split()[1]) for _f, m in seen]
    assert steps == sorted(steps) and steps[0] >= 1 and steps[-1] == 4
    assert seen[-1][0] == pytest.approx(1.0)


def test_progress_is_throttled_but_final_report_arrives(qtbot, runner):
    seen = []
    runner.progress.connect(lambda j, f, m: seen.append(f))

    def work(progress, cancel):
        for i in range(20001):
            progress(min(i / 20000, 0.9999), f"report {i}")
        return 7

    with qtbot.waitSignal(runner.finished, timeout=60000) as blocker:
        runner.submit(work, "many reports")
    assert blocker.args[1] == 7
    qapp_events = len(seen)
    assert 1 <= qapp_events < 2000  # not 20001 slot calls on the UI thread
    assert seen[-1] == pytest.approx(0.9999)  # the last report is delivered at the end


def test_cancel_stops_engine_and_leaves_no_result(qtbot, runner):
    finished = []
    runner.finished.connect(lambda j, v: finished.append(v))
    params = make_params(FakeEngine, {"steps": 100000, "delay": 0.001})
    started = []
    runner.progress.connect(lambda j, f, m: started.append(f))
    job = runner.run_engine(FakeEngine, [_img()], params, on_done=finished.append)
    qtbot.waitUntil(lambda: len(started) > 0, timeout=60000)
    with qtbot.waitSignal(runner.cancelled, timeout=60000) as blocker:
        runner.cancel(job.id)
    assert blocker.args == [job.id]
    assert job.state == "cancelled"
    assert finished == []
    assert runner.wait(30000)
    assert finished == []  # nothing arrives after the cancel either
    assert started[-1] < 0.5  # it stopped long before the end


def test_cancel_while_finishing_drops_the_value(qtbot, runner):
    gate = threading.Event()
    release = threading.Event()

    def work(progress, cancel):
        gate.set()
        release.wait(30)
        return "value"  # finishes without checking the token

    with qtbot.waitSignal(runner.cancelled, timeout=60000):
        job = runner.submit(work, "late cancel")
        assert gate.wait(30)
        runner.cancel(job.id)
        release.set()
    assert job.state == "cancelled"


def test_engine_error_reaches_failed_with_its_message(qtbot, runner):
    params = make_params(FakeEngine, {"mode": "fail"})
    with qtbot.waitSignal(runner.failed, timeout=60000) as blocker:
        runner.run_engine(FakeEngine, [_img()], params)
    _jid, message, details = blocker.args
    assert message.startswith("The fake engine refused")
    assert details == ""


def test_bug_in_engine_logs_traceback(qtbot, runner, studio_home):
    from app import settings

    log = settings.setup_logging()
    params = make_params(FakeEngine, {"mode": "crash"})
    with qtbot.waitSignal(runner.failed, timeout=60000) as blocker:
        runner.run_engine(FakeEngine, [_img()], params)
    _jid, message, details = blocker.args
    assert "ZeroDivisionError" in message and "fake engine bug" in message
    assert "Traceback" in details
    for h in __import__("logging").getLogger().handlers:
        h.flush()
    text = log.read_text()
    assert "fake engine bug" in text and "Traceback" in text
    assert str(log).startswith(str(studio_home))


def test_wrong_input_type_is_a_user_error(qtbot, runner):
    params = make_params(FakeEngine, {})
    with qtbot.waitSignal(runner.failed, timeout=60000) as blocker:
        runner.run_engine(FakeEngine, ["not an input"], params)
    assert "cannot use a str" in blocker.args[1]


def test_bad_parameter_is_refused_before_running():
    with pytest.raises(EngineError, match="steps"):
        make_params(FakeEngine, {"steps": 0})


def test_shutdown_cancels_and_waits(qtbot, runner):
    params = make_params(FakeEngine, {"steps": 100000, "delay": 0.001})
    jobs = [runner.run_engine(FakeEngine, [_img()], params) for _ in range(3)]
    # generous: on a loaded 2-core machine the engine worker process answers the cancel late
    assert runner.shutdown(120000)
    qtbot.waitUntil(lambda: all(j.state == "cancelled" for j in jobs), timeout=60000)
    assert runner.active() == []
