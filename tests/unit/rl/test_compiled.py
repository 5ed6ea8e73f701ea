"""CompiledOrEager: a compiler failure switches to eager for good; real errors still raise."""

import logging

import pytest

from rl.compiled import CompiledOrEager


def _broken_compiler(*args):
    raise RuntimeError("no C++ compiler")


def test_a_compiler_failure_falls_back_to_eager_once_with_a_warning(caplog):
    calls = []
    step = CompiledOrEager(lambda x: calls.append(x) or x * 2, "the test step")
    step._compiled = _broken_compiler
    with caplog.at_level(logging.WARNING):
        assert step(3) == 6
        assert step(4) == 8
    assert step.failed and calls == [3, 4]
    warnings = [r for r in caplog.records if "torch.compile of the test step" in r.getMessage()]
    assert len(warnings) == 1


def test_an_error_in_the_function_itself_is_raised():
    def bad(x):
        raise ValueError("bad input")

    step = CompiledOrEager(bad, "the test step")
    step._compiled = _broken_compiler
    with pytest.raises(ValueError, match="bad input"):
        step(1)
