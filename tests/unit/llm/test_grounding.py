"""Grounding: placeholders are filled, anything stated outside them is checked, and a wrong
answer is replaced by the templated one built from the facts."""

import pandas as pd
import pytest

from llm.facts import Fact, Facts, MarketView, backtest_facts, risk_facts, signal_facts
from llm.grounding import UnknownPlaceholderError, check, fallback_template, ground, render, states
from llm.prompt import BY_NAME, INTENTS, Detected, context, detect, instantiate

T = pd.Timestamp("2024-03-01 12:00", tz="UTC")


def fact(key, value, unit="number", source="market"):
    return Fact(key, value, unit, T, source)


FACTS = Facts((
    fact("BTC.close", 43210.47, "price"), fact("BTC.change_24h", -1.234, "signed_pct"),
    fact("BTC.change_1h", 0.5, "signed_pct"), fact("BTC.direction_24h", "down", "text"),
    fact("BTC.rsi", 61.23, "number", "indicator"), fact("BTC.trend", "uptrend", "text", "regime"),
    fact("ETH.close", 2300.0, "price"), fact("ETH.change_24h", 2.5, "signed_pct"),
    fact("signal.BTC.decision", "long", "text", "signal"),
    fact("signal.BTC.p_long", 70.0, "pct", "signal"),
    fact("signal.BTC.p_flat", 20.0, "pct", "signal"),
    fact("signal.BTC.p_short", 10.0, "pct", "signal"),
))
PRICE = Detected(BY_NAME["price"], ("BTC",))
CHANGE = Detected(BY_NAME["change"], ("BTC",))
SIGNAL = Detected(BY_NAME["signal"], ("BTC",))


def test_placeholders_are_filled_with_formatted_values():
    result = ground("BTC last traded at {BTC.close}, {BTC.change_24h} on the day.", FACTS, PRICE)
    assert result.grounded and not result.used_fallback
    assert result.text == "BTC last traded at 43,210.47 USDC, -1.23% on the day."
    assert {f.key for f in result.facts_used} == {"BTC.close", "BTC.change_24h"}


def test_unknown_placeholder_rejects_the_answer():
    with pytest.raises(UnknownPlaceholderError):
        render("BTC is at {BTC.price}.", FACTS)
    result = ground("BTC is at {BTC.price}.", FACTS, PRICE)
    assert result.used_fallback and not result.grounded
    assert any("unknown placeholder" in p for p in result.problems)
    assert result.text == "BTC last traded at 43,210.47 USDC."


@pytest.mark.parametrize("answer", ["BTC is at 43,210.47 USDC.", "BTC is at 43,210.", "BTC is near "
                                    "$43,200.", "BTC trades at 43.21k."])
def test_correct_plain_numbers_are_accepted(answer):
    result = ground(answer, FACTS, PRICE)
    assert result.grounded, result.problems
    assert result.text == answer


@pytest.mark.parametrize("answer", ["BTC is at 44,100 USDC.", "BTC is at 43,210 and RSI is 99."])
def test_a_wrong_number_triggers_the_fallback(answer):
    result = ground(answer, FACTS, PRICE)
    assert result.used_fallback and not result.grounded
    assert result.text == "BTC last traded at 43,210.47 USDC."
    assert any("matches no fact" in p for p in result.problems)


def test_a_number_must_match_the_metric_it_is_labelled_with():
    # 61.23 is BTC's RSI; calling it the price is wrong even though the number exists
    assert ground("BTC's RSI is 61.2.", FACTS, Detected(BY_NAME["rsi"], ("BTC",))).grounded
    _, problems = check("The price is 43,210.47 and the RSI is 43,210.47.", FACTS)
    assert any("labelled rsi" in p for p in problems)
    assert check("BTC's RSI is {BTC.close}.", FACTS)[1] == ("{BTC.close} is labelled rsi",)
    assert not check("BTC's RSI at {BTC.rsi}, leverage on {BTC.close} of equity.", FACTS)[1]


def test_signs_and_directions_are_checked_against_the_facts():
    assert ground("BTC fell {BTC.change_24h} over 24 hours.", FACTS, CHANGE).grounded
    assert ground("BTC is down 1.23% over 24 hours.", FACTS, CHANGE).grounded
    wrong_word = ground("BTC rose {BTC.change_24h} over 24 hours.", FACTS, CHANGE)
    wrong_sign = ground("BTC moved +1.23% over 24 hours.", FACTS, CHANGE)
    for result in (wrong_word, wrong_sign):
        assert result.used_fallback
        assert result.text.startswith("BTC moved -1.23% over the last 24 hours")


def test_a_direction_about_a_named_asset_uses_that_assets_facts():
    eth = Detected(BY_NAME["change"], ("ETH",))
    assert ground("ETH is up {ETH.change_24h}.", FACTS, eth).grounded
    assert check("ETH fell today.", FACTS)[1]
    assert not check("ETH rose today.", FACTS)[1]
    assert not check("BTC fell today.", FACTS)[1]


def test_a_sentence_about_one_asset_may_not_state_anothers_fact():
    _, problems = check("BTC is up {ETH.change_24h}.", FACTS)
    assert problems == ("a sentence about BTC states ETH.change_24h",)
    assert not check("BTC is at {BTC.close} and ETH at {ETH.close}.", FACTS)[1]


def test_a_wrong_position_word_triggers_the_fallback():
    assert ground("The policy is long BTC.", FACTS, SIGNAL).grounded
    result = ground("The policy is short BTC.", FACTS, SIGNAL)
    assert result.used_fallback
    assert result.text == "The policy's signal for BTC is long."  # the template the facts allow


def test_enumerations_labels_and_negations():
    assert not check("It can go long, flat or short; now {signal.BTC.decision}.", FACTS, SIGNAL)[1]
    assert not check("P(long) {signal.BTC.p_long}, P(short) {signal.BTC.p_short}.", FACTS)[1]
    assert check("BTC is not bullish.", FACTS)[1]


def test_an_answer_that_does_not_state_the_asked_fact_falls_back():
    result = ground("The market looks interesting.", FACTS, PRICE)
    assert result.used_fallback
    assert any("does not state BTC.close" in p for p in result.problems)


def test_dates_must_be_dates_of_facts():
    assert not check("As of 2024-03-01 BTC is at {BTC.close}.", FACTS)[1]
    assert check("On 2023-05-05 BTC was at {BTC.close}.", FACTS)[1]


def test_fallback_says_what_is_missing_without_inventing_numbers():
    empty = Facts((fact("BTC.close", 1.0, "price"),))
    template = fallback_template(Detected(BY_NAME["var"], ("BTC",)), empty)
    assert template == "No risk report is loaded; load one with update_risk."
    result = ground("The VaR is 5%.", empty, Detected(BY_NAME["var"], ("BTC",)))
    assert result.used_fallback and result.text == template and result.facts_used == ()


def test_context_carries_only_the_facts_the_intent_needs():
    detected = detect("what is the price of ethereum?", FACTS.assets)
    assert detected.intent.name == "price" and detected.assets == ("ETH",)
    assert context(detected, FACTS).keys() == ("ETH.close", "ETH.change_24h")


def test_states_reads_values_as_shown_or_rounded():
    assert states("BTC is at 43,210.47 USDC", FACTS["BTC.close"])
    assert states("about 43,210", FACTS["BTC.close"])
    assert not states("about 43,900", FACTS["BTC.close"])
    assert states("the policy is long", FACTS["signal.BTC.decision"])
    assert not states("the policy is longing", FACTS["signal.BTC.decision"])


@pytest.fixture(scope="module")
def complete_facts():
    """Every source loaded: a synthetic market, a signal, a risk report, a backtest."""
    from market.synthetic import SyntheticConfig, generate_market

    bars = generate_market(SyntheticConfig(days=3, seed=3)).aligned()
    end = bars.index[-1]
    signal = {"data_timestamp": str(end), "signals": [
        {"asset": a, "decision": d, "size": 0.5, "target_exposure": 1.0, "stop_loss_atr": 2.0,
         "take_profit_atr": 4.0, "execution_style": "twap", "execution_horizon_bars": 3,
         "probabilities": {"trade": {"short": 0.2, "flat": 0.3, "long": 0.5}}}
        for a, d in (("BTC", "long"), ("ETH", "short"), ("SOL", "flat"))]}
    risk = {"timestamp": str(end), "equity": 1e6, "gross_exposure": 2e6, "net_exposure": -1e6,
            "leverage": 2.0, "margin_ratio": 0.02, "alerts": [],
            "var": [{"method": "historical", "confidence": c, "horizon": 1, "var": 0.01 * c,
                     "es": 0.012 * c} for c in (0.95, 0.99)],
            "stress": [{"scenario": "covid_crash_2020", "pnl": -3e5}]}
    from llm.news_facts import news_facts
    from news.synthetic import synthetic_news

    headlines, _ = synthetic_news(bars.xs("close", axis=1, level="field"))
    news = news_facts(headlines, ("BTC", "ETH", "SOL"), end + pd.Timedelta("1min"))
    assert "news.ETH.headline_2" in news
    market = MarketView.build(bars).facts().merge(signal_facts(signal), risk_facts(risk), news)
    return [
        market.merge(backtest_facts({"total_return": r, "sharpe": 1.0, "sortino": 1.2,
                                     "max_drawdown": 0.1, "n_trades": 4, "win_rate": 0.5,
                                     "benchmark_total_return": -r}, end, bars.index[0]))
        for r in (0.2, -0.2)
    ]


def test_every_answer_template_passes_its_own_grounding(complete_facts):
    for facts in complete_facts:
        for intent in INTENTS:
            detected = Detected(intent, ("ETH",))
            ctx = context(detected, facts)
            for template in intent.answers:
                answer = instantiate(template, "ETH")
                answer += "".join(instantiate(intent.each, a) for a in facts.assets)
                assert check(answer, ctx, detected)[1] == (), answer
