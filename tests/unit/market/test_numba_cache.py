"""market.numba_cache: the cache directory is keyed by the kernel sources each package
declares, so an edited callee never leaves a stale compiled caller."""

import os
from pathlib import Path

import numba
import pytest

import market.numba_cache as nc


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A private registry (market/ only) and cache root, restored after the test."""
    monkeypatch.setattr(nc, "_declared", {nc._OWN: None})
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_declaring_a_source_keys_the_directory_by_its_code(fresh):
    kernels = fresh / "kernels.py"
    kernels.write_text("x = 1\n")
    nc.configure_numba_cache()
    alone = numba.config.CACHE_DIR
    assert Path(alone).parent == fresh / "cache" / "quantum" / "numba"

    nc.configure_numba_cache(kernels)
    declared = numba.config.CACHE_DIR
    assert declared != alone and nc.declared_sources() == (nc._OWN, kernels)

    kernels.write_text("x = 2\n")  # an edited callee: a fresh directory
    nc._source_digest.cache_clear()
    nc.configure_numba_cache()
    assert numba.config.CACHE_DIR not in (alone, declared)


def test_a_folder_and_its_files_give_one_key_in_any_order(fresh):
    (fresh / "pkg").mkdir()
    for name in ("a.py", "b.py"):
        (fresh / "pkg" / name).write_text(f"# {name}\n")
    nc.configure_numba_cache(fresh / "pkg" / "b.py", fresh / "pkg")
    first = numba.config.CACHE_DIR
    nc._declared = {nc._OWN: None}
    nc.configure_numba_cache(fresh / "pkg", fresh / "pkg" / "a.py")
    assert first == numba.config.CACHE_DIR


def test_a_missing_source_is_an_error_and_the_override_wins(fresh, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nc.configure_numba_cache(fresh / "nowhere.py")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(fresh / "mine"))
    before = numba.config.CACHE_DIR
    nc.configure_numba_cache()
    assert before == numba.config.CACHE_DIR


def test_the_higher_layers_declare_their_kernels_before_defining_them():
    """envs and the backtest drivers declare themselves (market knows neither), so the
    backtest loop's key covers the env kernels it calls and its own callees."""
    from backtest import engine, fast
    from envs.core import step

    root = nc._OWN.parent
    declared = set(nc.declared_sources())
    assert {root / "envs", root / "backtest" / "fast_kernels.py"} <= declared
    source = Path(nc.__file__).read_text()
    assert not any(f'"{layer}' in source for layer in ("envs", "backtest", "rl"))
    if os.environ.get("NUMBA_CACHE_DIR"):
        pytest.skip("NUMBA_CACHE_DIR puts every kernel in one directory")
    loop = Path(fast._drive._cache._cache_path).parent
    assert Path(engine.record_step._cache._cache_path).parent == loop
    assert Path(step.step_batch._cache._cache_path).parent.parent == loop.parent
