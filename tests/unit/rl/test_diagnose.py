"""The training summary's diagnosis (rl.diagnose) on results rows of known shape."""

import pytest

from rl.diagnose import diagnose

P = "learners/default_policy/"
T = "env_runners/trading/"


def rows(n=9, entropy=0.7, reward=0.5, turnover=(150.0, 150.0), ret=-0.1, explained=0.5):
    out = []
    for i in range(n):
        frac = i / (n - 1)
        out.append(
            {
                P + "entropy": entropy,
                P + "reward_abs_mean": reward,
                P + "vf_explained_var": explained,
                T + "turnover": turnover[0] + frac * (turnover[1] - turnover[0]),
                T + "return": ret,
            }
        )
    return out


def names(findings):
    return {f.name for f in findings}


def test_a_run_that_learns_its_costs_has_no_findings():
    assert diagnose(rows(turnover=(150.0, 3.0)), entropy_coeff=0.01) == []


def test_an_entropy_bonus_larger_than_the_reward_is_reported_with_its_ratio():
    findings = diagnose(rows(entropy=13.7, reward=0.009, turnover=(150, 2)), entropy_coeff=0.01)

    (finding,) = findings
    assert finding.name == "entropy_dominates"
    assert finding.value == pytest.approx(0.01 * 13.7 / 0.009)
    assert "entropy_coeff" in finding.message


def test_the_scheduled_coefficient_in_the_rows_wins_over_the_configured_one():
    data = rows(entropy=1.0, reward=0.1, turnover=(150, 2))
    for row in data:
        row[P + "curr_entropy_coeff"] = 0.5

    assert names(diagnose(data, entropy_coeff=0.0)) == {"entropy_dominates"}


def test_turnover_that_stays_high_while_losing_is_reported():
    findings = diagnose(rows(turnover=(150.0, 146.0)), entropy_coeff=0.01)

    assert names(findings) == {"turnover_not_falling"}


def test_steady_turnover_is_not_a_problem_when_episodes_make_money_or_barely_trade():
    assert diagnose(rows(turnover=(20.0, 20.0), ret=0.02), entropy_coeff=0.01) == []
    assert diagnose(rows(turnover=(0.5, 0.5)), entropy_coeff=0.01) == []


def test_a_value_function_that_explains_little_is_reported():
    findings = diagnose(rows(turnover=(150, 2), explained=0.02), entropy_coeff=0.01)

    assert names(findings) == {"value_explains_little"}


def test_a_policy_that_stopped_trading_is_not_flagged_for_its_entropy_bonus():
    data = rows(entropy=0.2, reward=1e-9, turnover=(0.05, 0.05), ret=0.0)

    assert diagnose(data, entropy_coeff=0.01) == []
