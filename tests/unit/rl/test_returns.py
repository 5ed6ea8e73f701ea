"""Reward normalisation (rl.returns): discounted returns carried across chunks, running
variance merged exactly, rewards scaled by the return's std."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rl.returns import ReturnNormalizer, discounted_returns, merge, new_stats, std


@dataclass
class Chunk:
    """The parts of a SingleAgentEpisode chunk the normaliser reads."""

    id_: str
    t_started: int
    is_done: bool
    rewards: np.ndarray

    def __len__(self) -> int:
        return len(self.rewards)


def test_discounted_returns_restart_each_chunk_from_its_carry():
    rewards = np.array([1.0, 1.0, 1.0, 2.0, 2.0])

    out = discounted_returns(rewards, np.array([0, 3]), np.array([0.0, 10.0]), 0.5)

    np.testing.assert_allclose(out, [1.0, 1.5, 1.75, 7.0, 5.5])


@given(
    st.lists(
        st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=20),
        min_size=1,
        max_size=6,
    )
)
def test_merged_statistics_equal_the_variance_of_everything_seen(batches):
    stats = new_stats()

    for batch in batches:
        merge(stats, np.array(batch))

    seen = np.concatenate([np.array(b) for b in batches])
    assert stats[0].item() == len(seen)
    assert stats[1].item() == pytest.approx(seen.mean(), abs=1e-6)
    assert stats[2].item() / len(seen) == pytest.approx(seen.var(), rel=1e-6, abs=1e-6)


def test_an_episode_split_over_two_batches_gets_the_same_returns_as_in_one():
    rewards = np.array([0.5, -1.0, 2.0, 0.25, 1.0, -0.5])
    whole_stats, split_stats = new_stats(), new_stats()
    whole = ReturnNormalizer(gamma=0.9, clip=100.0)
    split = ReturnNormalizer(gamma=0.9, clip=100.0)

    whole(whole_stats, [Chunk("a", 0, True, rewards)], rewards)
    split(split_stats, [Chunk("a", 0, False, rewards[:4])], rewards[:4])
    split(split_stats, [Chunk("a", 4, True, rewards[4:])], rewards[4:])

    torch.testing.assert_close(split_stats, whole_stats)


def test_rewards_come_out_divided_by_the_return_std_and_clipped():
    rng = np.random.default_rng(0)
    rewards = rng.normal(0.0, 50.0, 4000)
    rewards[0] = 1e6  # an outlier the clip must bound
    stats = new_stats()
    norm = ReturnNormalizer(gamma=0.0, clip=5.0)  # gamma 0: the return is the reward

    scaled = norm(stats, [Chunk("x", 0, True, rewards)], rewards)

    assert std(stats) == pytest.approx(rewards.std(), rel=1e-9)
    np.testing.assert_allclose(scaled[1:], np.clip(rewards[1:] / rewards.std(), -5, 5))
    assert scaled[0] == 5.0


def test_std_is_one_before_any_data():
    assert std(new_stats()) == 1.0
