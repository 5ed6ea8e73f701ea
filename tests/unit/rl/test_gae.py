"""The numba GAE scan against RLlib's compute_value_targets on its own episode layout."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from rl.gae import gae

GAMMA, LAMBDA = 0.99, 0.95


def _rllib_targets(rewards, values, next_values, lengths, terminated_last):
    """RLlib's layout: each chunk plus one artificial step holding the bootstrap value."""
    out, start = [], 0
    for length, term in zip(lengths, terminated_last, strict=True):
        stop = start + length
        v = np.append(values[start:stop], next_values[stop - 1])
        r = np.append(rewards[start:stop], 0.0)
        terms = np.zeros(length + 1)
        truncs = np.zeros(length + 1)
        terms[length - 1], truncs[length - 1] = float(term), float(not term)
        out.append(compute_value_targets(v, r, terms, truncs, GAMMA, LAMBDA)[:length])
        start = stop
    return np.concatenate(out)


def _layout(lengths, terminated_last):
    n = int(np.sum(lengths))
    ends = np.cumsum(lengths) - 1
    terminated, chunk_ends = np.zeros(n, bool), np.zeros(n, bool)
    terminated[ends], chunk_ends[ends] = terminated_last, True
    return terminated, chunk_ends


def test_a_hand_worked_two_step_chunk_and_a_terminated_one():
    # chunk 1 (truncated, bootstrap 2.0): r = [1, 1], V = [0.5, 0.5]
    # chunk 2 (terminated after one step): r = [3], V = [1]
    rewards = np.array([1.0, 1.0, 3.0])
    values = np.array([0.5, 0.5, 1.0])
    next_values = np.array([0.5, 2.0, 9.9])  # 9.9 must be ignored: terminal
    terminated, ends = _layout([2, 1], [False, True])
    adv, targets = gae(rewards, values, next_values, terminated, ends, GAMMA, LAMBDA)

    d1 = 1.0 + GAMMA * 2.0 - 0.5
    d0 = 1.0 + GAMMA * 0.5 - 0.5
    np.testing.assert_allclose(adv, [d0 + GAMMA * LAMBDA * d1, d1, 3.0 - 1.0], rtol=1e-6)
    np.testing.assert_allclose(targets, adv + values, rtol=1e-6)


@settings(max_examples=50, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_gae_equals_rllibs_value_targets(lengths, seed, data):
    terminated_last = data.draw(st.lists(st.booleans(), min_size=len(lengths),
                                         max_size=len(lengths)))
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    rewards, values = rng.normal(size=n), rng.normal(size=n)
    next_values = np.append(values[1:], rng.normal())
    ends = np.cumsum(lengths) - 1
    next_values[ends] = rng.normal(size=len(lengths))  # each chunk's own bootstrap
    terminated, chunk_ends = _layout(lengths, terminated_last)

    _, targets = gae(rewards, values, next_values, terminated, chunk_ends, GAMMA, LAMBDA)

    expected = _rllib_targets(rewards, values, next_values, lengths, terminated_last)
    np.testing.assert_allclose(targets, expected, rtol=1e-5, atol=1e-5)


def test_an_empty_batch_gives_empty_results():
    empty = np.zeros(0)
    adv, targets = gae(empty, empty, empty, empty.astype(bool), empty.astype(bool), 0.9, 0.9)
    assert adv.shape == targets.shape == (0,)
