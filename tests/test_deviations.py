"""Deviation payoffs read off LP price ranges (games.deviations) equal the plain enumeration
that clears every strategy: same payoffs, same best responses, on random tiny games and on the
default system for every scheme where ranging is exact (to the last bits the LP's warm
start decides); and the ranges themselves agree with HiGHS's own cost ranging."""

from __future__ import annotations

import highspy
import numpy as np
import pytest

from flexgame.games.best_response import best_response
from flexgame.games.payoff import GameEvaluator
from flexgame.games.strategies import BidMap, StrategyConfig, StrategySpace
from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.lp import CompiledLP
from flexgame.markets.schemes import build_scheme
from flexgame.markets.system import SystemConfig, build_system
from tiny_market import bid_table, feeder_bid, tiny_system, tx_bid

ULP_EUR = 1e-9
"""Payoffs agree to rounding: an LP's optimal solution is unique here, but its last bits
depend on the factorisation the solver reached it with (its warm-start history), so a payoff
read off an earlier clearing and one cleared again may differ by an ulp or so."""
RANGED_SCHEMES = ("common", "fragmented", "ml01", "ml02", "ml04", "ml05")
PLAIN_SCHEMES = ("ml03", "ml06", "bid_aggregation")


def pair(built, space: StrategySpace, settlement: str = "pay_as_bid"):
    """Two evaluators of one game, each on its own built scheme: ranging and plain."""
    twin = build_scheme(built.system, built.bids, built.name)
    return (GameEvaluator(built, BidMap(built.bids, space), settlement),
            GameEvaluator(twin, BidMap(built.bids, space), settlement, ranging=False))


def assert_same_deviations(fast, plain, profiles, players):
    for profile in profiles:
        for p in players:
            np.testing.assert_allclose(fast.deviation_payoffs(profile, p),
                                       plain.deviation_payoffs(profile, p), rtol=1e-12,
                                       atol=ULP_EUR)
            a, b = best_response(fast, profile, p), best_response(plain, profile, p)
            assert a.strategy == b.strategy
            assert a.payoff == pytest.approx(b.payoff, rel=1e-12, abs=ULP_EUR)


def random_profiles(space: StrategySpace, players, rng, n: int):
    strategies = space.strategies
    return [{p: strategies[rng.integers(len(strategies))] for p in players} for _ in range(n)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_deviations")


@pytest.mark.parametrize("seed", range(6))
def test_random_tiny_games_match_the_plain_enumeration(folder, seed):
    """Random bids (transmission and feeder, pooled FSPs) on the tiny system, congested or
    not, random need: ranging changes the number of clearings, never a payoff."""
    rng = np.random.default_rng(seed)
    rows = [tx_bid(f"T{i % 3}", int(rng.integers(1, 4)), float(rng.uniform(1, 8)),
                   float(rng.uniform(10, 60))) for i in range(5)]
    rows += [feeder_bid(f"D{i % 2}", int(rng.integers(2, 4)), float(rng.uniform(0.2, 1.5)),
                        float(rng.uniform(10, 60))) for i in range(4)]
    system = tiny_system(folder, float(rng.uniform(3, 20)), congested=bool(seed % 2))
    space = StrategyConfig(markup_points=6, withholding=[0.0, 0.5]).space()
    for scheme in ("common", "fragmented", "ml01", "ml05"):
        fast, plain = pair(build_scheme(system, bid_table(rows), scheme), space)
        assert fast.deviation_payoffs.exact_ranging
        players = fast.bid_map.players
        assert_same_deviations(fast, plain, random_profiles(space, players, rng, 3), players)


@pytest.fixture(scope="module")
def default_system():
    return build_system(SystemConfig())


@pytest.mark.parametrize("aggregation", ["none", "random_pools"])
@pytest.mark.parametrize("scheme", RANGED_SCHEMES)
def test_default_system_matches_the_plain_enumeration(default_system, scheme, aggregation):
    rng = np.random.default_rng(3)
    bids = generate_bids(default_system, BidConfig(case="B", aggregation=aggregation),
                         np.random.default_rng(0))
    space = StrategyConfig().space()
    fast, plain = pair(build_scheme(default_system, bids, scheme), space)
    assert fast.deviation_payoffs.exact_ranging
    players = list(rng.choice(fast.bid_map.players, size=6, replace=False))
    assert_same_deviations(fast, plain, random_profiles(space, fast.bid_map.players, rng, 2),
                           players)
    # truthful bids: the clearings saved are most of them
    truthful = fast.bid_map.truthful()
    assert_same_deviations(fast, plain, [truthful], players)
    assert fast.deviation_payoffs.read > 0
    assert fast.clearings < plain.clearings


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_schemes_whose_stages_read_prices_are_enumerated(default_system, scheme):
    """Prequalification and residual supply functions read the declared prices outside any
    LP: ranging would not be exact there, so every deviation is cleared."""
    bids = generate_bids(default_system, BidConfig(case="B", aggregation="by_feeder"),
                         np.random.default_rng(0))
    built = build_scheme(default_system, bids, scheme)
    ev = GameEvaluator(built, BidMap(bids, StrategyConfig(markup_points=3).space()))
    assert not ev.deviation_payoffs.exact_ranging
    player = ev.bid_map.players[0]
    ev.deviation_payoffs(ev.bid_map.truthful(), player)
    assert ev.deviation_payoffs.read == 0
    assert ev.clearings == 3


@pytest.mark.parametrize("settlement", ["uniform", "nodal", "vcg"])
def test_other_settlement_rules_are_enumerated(folder, settlement):
    built = build_scheme(tiny_system(folder, 10.0), bid_table(
        [tx_bid("A", 2, 6, 10), tx_bid("B", 3, 6, 11)]), "common")
    ev = GameEvaluator(built, BidMap(built.bids, StrategyConfig().space()), settlement)
    assert not ev.deviation_payoffs.exact_ranging


def test_pro_rata_ties_are_enumerated(folder):
    built = build_scheme(tiny_system(folder, 10.0), bid_table(
        [tx_bid("A", 2, 6, 10), tx_bid("B", 3, 6, 10)]), "common", ties="pro_rata")
    ev = GameEvaluator(built, BidMap(built.bids, StrategyConfig().space()))
    assert not ev.deviation_payoffs.exact_ranging


@pytest.mark.parametrize("seed", range(5))
def test_cost_ranges_of_nonbasic_columns_are_highs_ranging(seed):
    """On a random feasible LP, the ranges of the columns at a bound are HiGHS's cost
    ranging of them; basic columns get the empty range."""
    rng = np.random.default_rng(seed)
    n, m = 12, 4
    a = rng.uniform(-1, 1, size=(m, n))
    x0 = rng.uniform(0, 1, size=n)
    rhs = a @ x0
    lp = CompiledLP.from_arrays(rng.uniform(1, 10, size=n), a, rhs, rhs, np.zeros(n),
                                np.ones(n))
    sol = lp.solve()
    assert sol.optimal
    lower, upper = lp.cost_ranges(np.arange(n), sol.reduced_cost)
    status, ranging = lp.highs.getRanging()
    assert status == highspy.HighsStatus.kOk
    basis = np.array([int(s) for s in lp.highs.getBasis().col_status])
    basic = basis == int(highspy.HighsBasisStatus.kBasic)
    assert basic.any() and (~basic).any()
    np.testing.assert_allclose(lower[~basic],
                               np.asarray(ranging.col_cost_dn.value_)[:n][~basic], atol=1e-9)
    np.testing.assert_allclose(upper[~basic],
                               np.asarray(ranging.col_cost_up.value_)[:n][~basic], atol=1e-9)
    np.testing.assert_array_equal(lower[basic], lp.cost[basic])
    np.testing.assert_array_equal(upper[basic], lp.cost[basic])
