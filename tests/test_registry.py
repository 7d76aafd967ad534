"""Engine registry: entry points, run-time registration, broken plug-ins skipped."""
import logging
from importlib.metadata import EntryPoint

import pytest
from pydantic import BaseModel, Field

from engines import registry
from engines.api import CancelToken, Cancelled, Engine, EngineError, Result, make_params
from engines.types import Image, Mesh


class Doubler(Engine):
    name = "test-doubler"
    title = "Doubler"
    accepts = (Image,)
    produces = (Image,)

    class Params(BaseModel):
        factor: float = Field(2.0, ge=0.0, le=10.0, description="Multiply pixels")
        mode: str = "x"

    def run(self, inputs, params, progress, cancel):
        cancel.raise_if_set()
        return Result([Image((inputs[0].pixels * params.factor).astype("uint8"))])


@pytest.fixture(autouse=True)
def fresh_registry():
    registry.reset()
    yield
    registry.reset()


def test_register_and_lookup():
    registry.register(Doubler)
    assert registry.get("test-doubler") is Doubler
    img = Image(__import__("numpy").full((2, 2, 3), 3, "uint8"))
    assert Doubler in registry.for_input(img)
    assert Doubler not in registry.for_input(Mesh([[0, 0, 0]] * 3, [[0, 1, 2]]))
    registry.unregister("test-doubler")
    with pytest.raises(EngineError, match="No engine called 'test-doubler'"):
        registry.get("test-doubler")


def test_register_rejects_non_engine():
    with pytest.raises(TypeError):
        registry.register(int)


def test_broken_plugins_are_skipped(monkeypatch, caplog):
    eps = [
        EntryPoint("broken", "no_such_module_xyz:Engine", registry.GROUP),
        EntryPoint("not-engine", "json:dumps", registry.GROUP),
        EntryPoint("good", "tests.test_registry:Doubler", registry.GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == registry.GROUP else [])
    with caplog.at_level(logging.WARNING):
        found = registry.engines()
    assert "test-doubler" in found
    assert any("broken" in p for p in registry.problems)
    assert any("not-engine" in p for p in registry.problems)
    assert "Skipping" in caplog.text


def test_params_from_strings_and_errors():
    p = make_params(Doubler, {"factor": "3.5"})
    assert p.factor == 3.5
    with pytest.raises(EngineError, match="factor"):
        make_params(Doubler, {"factor": "99"})
    with pytest.raises(EngineError, match="Unknown parameter"):
        make_params(Doubler, {"nope": "1"})


def test_check_inputs_and_cancel():
    with pytest.raises(EngineError, match="needs 1 input"):
        Doubler.check_inputs([])
    with pytest.raises(EngineError, match="cannot use a Mesh"):
        Doubler.check_inputs([Mesh([[0, 0, 0]] * 3, [[0, 1, 2]])])
    tok = CancelToken()
    tok.set()
    with pytest.raises(Cancelled):
        Doubler().run([Image(__import__("numpy").zeros((2, 2, 3), "uint8"))], Doubler.Params(), None, tok)


def test_result_stage_timing():
    r = Result()
    with r.stage("a"):
        sum(range(1000))
    with r.stage("a"):
        pass
    assert r.timings["a"] > 0 and list(r.timings) == ["a"]
