"""Span guards (backtest.guard): a backtest on what the model trained or was selected on
is refused, one on later data or another market is out of sample."""

import pytest

from backtest.guard import InSampleError, check, enforce
from envs.market_spec import MarketSpec
from rl.checkpoint import untouched_span

STORE_KEYS = {"data_dir": "/data", "exchange": "binanceusdm", "symbols": ["BTC/USDT:USDT"]}
STORE = MarketSpec.of(STORE_KEYS)
MANIFEST = {
    "config": {"env_config": STORE_KEYS},
    "splits": {
        "train": {"first": "2023-07-19T00:00:00+00:00", "last": "2023-08-05T00:00:00+00:00"},
        "validation": {"first": "2023-08-05T01:00:00+00:00", "last": "2023-08-10T00:00:00+00:00"},
        "test": {"first": "2023-08-10T01:00:00+00:00", "last": "2023-08-17T11:00:00+00:00"},
    },
}


def test_a_span_after_training_and_validation_is_out_of_sample():
    result = check(MANIFEST, STORE, "2023-08-10T01:00", "2023-08-17T11:00")

    assert not result.in_sample
    assert enforce(result, allow_in_sample=False) is result


@pytest.mark.parametrize(
    ("first", "last", "parts"),
    [
        ("2023-08-01", "2023-08-03", {"train"}),
        ("2023-08-07", "2023-08-12", {"validation"}),
        ("2023-08-04", "2023-08-17", {"train", "validation"}),
    ],
)
def test_a_span_overlapping_training_or_validation_is_refused_naming_both_spans(first, last, parts):
    result = check(MANIFEST, STORE, first, last)

    assert result.in_sample and set(result.overlaps) == parts
    with pytest.raises(InSampleError) as err:
        enforce(result, allow_in_sample=False)
    message = str(err.value)
    assert first in message
    for part in parts:
        assert MANIFEST["splits"][part]["first"] in message


def test_allow_in_sample_runs_it_and_the_note_marks_it():
    result = enforce(check(MANIFEST, STORE, "2023-08-01", "2023-08-03"), allow_in_sample=True)

    assert result.note.startswith("IN SAMPLE")


def test_another_market_is_out_of_sample_whatever_the_dates():
    other = STORE.model_copy(update={"exchange": "bybit"})
    synthetic = MarketSpec(synthetic_seed=99)

    assert not check(MANIFEST, other, "2023-08-01", "2023-08-03").in_sample
    assert not check(MANIFEST, synthetic, "2023-08-01", "2023-08-03").in_sample


def test_a_manifest_without_a_split_counts_all_its_data_as_training():
    old = {"config": {"env_config": STORE_KEYS}}

    assert check(old, STORE, "2023-08-10", "2023-08-17").in_sample


def test_the_test_part_is_read_from_the_manifest():
    assert untouched_span(MANIFEST) == (
        "2023-08-10T01:00:00+00:00",
        "2023-08-17T11:00:00+00:00",
    )
    assert untouched_span({"config": {}}) is None
