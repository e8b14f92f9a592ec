"""The profile cache of the strategic engine is bounded (least recently used profiles
dropped first), and its bound changes only how often profiles are cleared, never a result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flexgame.agents.model import FlexMarketModel
from flexgame.games.payoff import CACHE_PROFILES, GameEvaluator, Outcome
from flexgame.games.reasoning import ReasoningConfig
from flexgame.games.strategies import BidMap, StrategyConfig
from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.schemes import build_scheme

STRATEGY = StrategyConfig(markup_points=4)


@pytest.fixture(scope="module")
def pooled_bids(system):
    """Case-A bids pooled into FSPs of 14 resources (22 FSPs), seed 0."""
    return generate_bids(system, BidConfig(case="A", aggregation="random_pools", pool_size=14),
                         np.random.default_rng(0))


def random_profiles(bid_map: BidMap, n: int, seed: int) -> list[dict]:
    strategies = bid_map.space.strategies
    rng = np.random.default_rng(seed)
    return [{p: strategies[int(rng.integers(len(strategies)))] for p in bid_map.players}
            for _ in range(n)]


def assert_same_outcome(a: Outcome, b: Outcome) -> None:
    assert (a.cost_eur, a.unmet_need_mw, a.payment_eur) == (b.cost_eur, b.unmet_need_mw,
                                                            b.payment_eur)
    assert a.profit == b.profit
    assert np.array_equal(a.activation_mw, b.activation_mw)
    assert a.layer_cost_eur == b.layer_cost_eur
    assert a.layer_accepted_mw == b.layer_accepted_mw


@pytest.mark.parametrize("settlement", ["pay_as_bid", "uniform"])
def test_cache_is_bounded_and_a_dropped_profile_clears_the_same(system, pooled_bids,
                                                                settlement):
    """The cache never holds more than ``cache_profiles`` outcomes; the least recently used
    one is dropped first (a cache hit counts as a use); a dropped profile is cleared again,
    with the identical outcome; the compact outcome reads as the dense one (profit per FSP,
    accepted MW per bid) and its payoffs are its profits."""
    scheme = build_scheme(system, pooled_bids, "fragmented")
    bid_map = BidMap(pooled_bids, STRATEGY.space())
    ev = GameEvaluator(scheme, bid_map, settlement, cache_profiles=3)
    profiles = random_profiles(bid_map, 6, seed=1)
    first = [ev.outcome(p) for p in profiles[:3]]
    assert ev.cached == 3 and ev.clearings == 3
    assert ev.outcome(profiles[0]) is first[0]  # a hit: now the most recently used
    for p in profiles[3:]:
        ev.outcome(p)
        assert ev.cached <= 3
    assert ev.clearings == 6 and ev.cached == 3
    assert ev.cached_payoff(ev.key(profiles[0]), bid_map.players[0]) is None
    again = ev.outcome(profiles[0])
    assert ev.clearings == 7 and ev.cached == 3 and again is not first[0]
    assert_same_outcome(again, first[0])
    fresh = GameEvaluator(scheme, bid_map, settlement)
    assert fresh.cache_profiles == CACHE_PROFILES
    for p, out in zip(profiles[:3], first):
        assert_same_outcome(fresh.outcome(p), out)
    result = fresh.result(profiles[1])
    assert np.array_equal(first[1].activation_mw, result.activation_mw)
    assert set(first[1].profit) == set(bid_map.fsps)
    for player in bid_map.players:
        assert ev.payoff(profiles[1], player) == first[1].profit[bid_map.owner[player]]


@pytest.mark.parametrize("reasoning, settlement", [
    (ReasoningConfig("ibr", max_rounds=3, strategy=STRATEGY), "pay_as_bid"),
    (ReasoningConfig("logit", max_rounds=2, samples=3, strategy=STRATEGY), "uniform"),
])
def test_a_tiny_cache_gives_the_same_run(system, pooled_bids, reasoning, settlement):
    """A strategic run with a cache of 5 profiles plays exactly the run with the default
    cache (same rounds, profiles, costs, profits and layer outcomes), clearing as often or
    more, and never holds more than 5 outcomes."""
    runs = {}
    for bound in (5, CACHE_PROFILES):
        scheme = build_scheme(system, pooled_bids, "fragmented")
        model = FlexMarketModel(scheme, reasoning=ReasoningConfig(
            **{**vars(reasoning), "cache_profiles": bound}), settlement=settlement, seed=3)
        assert model.evaluator.cache_profiles == bound
        while model.running:
            model.step()
            assert model.evaluator.cached <= bound
        runs[bound] = model
    small, default = runs[5], runs[CACHE_PROFILES]
    assert small.history == default.history and small.status == default.status
    pd.testing.assert_frame_equal(small.rounds_table(), default.rounds_table(),
                                  check_exact=True)
    pd.testing.assert_frame_equal(small.operators_table(), default.operators_table(),
                                  check_exact=True)
    assert small.evaluator.clearings >= default.evaluator.clearings


def test_cache_profiles_is_a_reasoning_option():
    """``reasoning.cache_profiles`` is declared like its neighbours: at least 1."""
    assert ReasoningConfig().cache_profiles == CACHE_PROFILES
    with pytest.raises(Exception, match="cache_profiles"):
        ReasoningConfig("ibr", cache_profiles=0).validate()
