"""Augmentations change what they promise and nothing else, and never leak the future."""

import numpy as np
import pytest

from envs.augment import AugmentConfig, add_feature_noise, augment_aligned
from envs.core.layout import M_CLOSE, M_COV, M_FUNDING, M_VOLUME, N_MKT
from envs.data import MarketArrays
from envs.registry import make_env
from market.features import compute_features
from market.synthetic import SyntheticConfig, generate_market


@pytest.fixture(scope="module")
def aligned():
    return generate_market(SyntheticConfig(days=4, seed=5)).aligned()


@pytest.fixture(scope="module")
def original(aligned):
    return MarketArrays.from_aligned(aligned)


def test_asset_permutation_reorders_assets_and_keeps_each_series(aligned, original):
    orders = {
        seed: MarketArrays.from_aligned(
            augment_aligned(aligned, AugmentConfig(asset_permutation=True, seed=seed))
        )
        for seed in range(4)
    }

    assert len({d.assets for d in orders.values()}) > 1  # seeds give different orders
    for data in orders.values():
        assert sorted(data.assets) == sorted(original.assets)
        order = [original.assets.index(asset) for asset in data.assets]
        for j, i in enumerate(order):
            np.testing.assert_array_equal(data.mkt[:, j, :N_MKT], original.mkt[:, i, :N_MKT])
            np.testing.assert_array_equal(data.feats[:, j], original.feats[:, i])
            # the covariance row follows the new order of the other assets too
            np.testing.assert_array_equal(data.mkt[:, j, M_COV:],
                                          original.mkt[:, i, M_COV:][:, order])


def test_price_scaling_keeps_returns_notional_and_scale_free_features(aligned, original):
    data = MarketArrays.from_aligned(
        augment_aligned(aligned, AugmentConfig(price_scale=(0.5, 2.0), seed=2))
    )

    ratio = data.mkt[:, :, M_CLOSE] / original.mkt[:, :, M_CLOSE]
    assert not np.allclose(ratio, 1.0)
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[0], ratio.shape), rtol=1e-12)
    np.testing.assert_allclose(
        np.diff(np.log(data.mkt[:, :, M_CLOSE]), axis=0),
        np.diff(np.log(original.mkt[:, :, M_CLOSE]), axis=0),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        data.mkt[:, :, M_CLOSE] * data.mkt[:, :, M_VOLUME],
        original.mkt[:, :, M_CLOSE] * original.mkt[:, :, M_VOLUME],
        rtol=1e-9,
    )
    np.testing.assert_array_equal(data.mkt[:, :, M_FUNDING], original.mkt[:, :, M_FUNDING])
    valid = slice(original.first_valid, None)
    # volume_z has a small floor inside its log, hence the relative tolerance
    np.testing.assert_allclose(data.feats[valid], original.feats[valid], rtol=5e-3, atol=2e-3)


def test_segment_shuffle_moves_whole_segments_without_price_gaps(aligned):
    length = 1440
    config = AugmentConfig(segment_shuffle=True, segment_bars=length, seed=3)
    shuffled = augment_aligned(aligned, config)

    def segments(frame):
        closes = np.log(frame[("BTC", "close")].to_numpy())
        return [np.diff(closes[s : s + length]) for s in range(0, len(frame), length)]

    original_segments = segments(aligned)
    new_segments = segments(shuffled)
    assert not all(np.allclose(a, b) for a, b in zip(original_segments, new_segments, strict=True))
    for segment in new_segments:  # each is an original segment, returns intact
        assert any(np.allclose(segment, o, atol=1e-12) for o in original_segments)
    opens, closes = shuffled[("BTC", "open")].to_numpy(), shuffled[("BTC", "close")].to_numpy()
    for start in range(length, len(shuffled), length):
        assert opens[start] == pytest.approx(closes[start - 1], rel=1e-12)


def test_features_of_an_augmented_market_use_its_own_past_only(aligned):
    shuffled = augment_aligned(aligned, AugmentConfig(segment_shuffle=True, seed=4))
    t = 3000
    perturbed = shuffled.copy()
    for field in ("open", "high", "low", "close", "mark"):
        perturbed.iloc[t + 1 :, perturbed.columns.get_loc(("ETH", field))] *= 1.3

    before = compute_features(shuffled).iloc[: t + 1]
    after = compute_features(perturbed).iloc[: t + 1]

    np.testing.assert_allclose(before.to_numpy(), after.to_numpy(), equal_nan=True)


def test_feature_noise_touches_observations_only_and_is_seeded(original):
    noisy = add_feature_noise(original, 0.1, seed=7)
    again = add_feature_noise(original, 0.1, seed=7)

    np.testing.assert_array_equal(noisy.mkt, original.mkt)
    np.testing.assert_array_equal(noisy.feats, again.feats)
    assert np.std(noisy.feats - original.feats) == pytest.approx(0.1, rel=0.02)
    assert add_feature_noise(original, 0.0, seed=7) is original


def test_envs_train_on_augmented_markets_from_the_env_config():
    env = make_env(
        {"synthetic_days": 4, "num_envs": 2,
         "augment": {"asset_permutation": True, "feature_noise": 0.05, "seed": 1}}
    )
    obs, _ = env.reset(seed=0)
    assert np.isfinite(obs["market"]).all()
    with pytest.raises(ValueError, match="price_scale"):
        make_env({"synthetic_days": 4, "augment": {"price_scale": [2.0, 1.0]}})
