"""Kill-switch rules and the drift statistic, by hand."""

import numpy as np
import pytest

from live.monitors import (
    DriftReference,
    KillSwitch,
    account_breach,
    drift_breach,
)


def test_drawdown_and_daily_loss_trip_at_their_limits():
    limits = KillSwitch(max_drawdown=0.2, daily_loss=0.1)
    assert account_breach(limits, 81.0, 100.0, 81.0) is None
    assert account_breach(limits, 80.0, 100.0, 80.0).rule == "max_drawdown"
    breach = account_breach(limits, 90.0, 95.0, 100.0)
    assert breach.rule == "daily_loss" and breach.value == pytest.approx(0.1)
    assert account_breach(KillSwitch(max_drawdown=None, daily_loss=None), 1.0, 100.0, 100.0) is None


def test_psi_is_near_zero_on_the_training_distribution_and_large_after_a_shift():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20_000, 2, 3)).astype(np.float32)
    ref = DriftReference.of(train, ("a", "b", "c"))
    same = ref.psi(rng.normal(size=(2_000, 2, 3)))
    assert max(same.values()) < 0.02
    shifted = rng.normal(size=(2_000, 2, 3))
    shifted[..., 1] += 1.0
    psi = ref.psi(shifted)
    assert psi["b"] > 0.5 and psi["a"] < 0.02
    breach = drift_breach(KillSwitch(max_psi=0.25), psi)
    assert breach.rule == "feature_drift:b"
    assert drift_breach(KillSwitch(max_psi=None), psi) is None


def test_psi_of_one_bin_by_hand():
    ref = DriftReference.of(np.arange(1000, dtype=np.float32).reshape(-1, 1, 1), ("x",))
    assert ref.expected[0] == pytest.approx(np.full(10, 0.1), abs=1e-3)
    # every recent value in the top decile: (1 - 0.1) ln(1 / 0.1) + 9 (1e-4 - 0.1) ln(1e-4 / 0.1)
    psi = ref.psi(np.full((50, 1, 1), 999.0))["x"]
    expected = 0.9 * np.log(10) + 9 * (1e-4 - 0.1) * np.log(1e-3)
    assert psi == pytest.approx(expected, rel=1e-2)
