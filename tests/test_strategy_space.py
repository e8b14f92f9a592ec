"""Strategy spaces: the default grid reaches the market's price cap (an economic bound, not an
arbitrary largest markup), has no duplicate strategies, and best responses break ties by a
configurable rule."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.experiments.config import load_config, settings
from flexgame.games.best_response import TIE_RULES, best_response
from flexgame.games.payoff import GameEvaluator
from flexgame.games.strategies import BidMap, StrategyConfig, StrategySpace
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.schemes import build_scheme
from tiny_market import bid_table, tiny_system, tx_bid

COSTS = np.array([10.0, 42.5, 165.0, 499.0])


def test_default_grid_ends_at_the_price_cap_for_every_bid():
    space = StrategyConfig().space()
    assert space.kind == "to_cap" and space.markups[0] == 0.0 and space.markups[-1] == 1.0
    top = len(space.markups) - 1
    assert space.price(COSTS, top) == pytest.approx(np.full(4, space.price_cap))
    assert space.price(COSTS, 0) == pytest.approx(COSTS)
    prices = np.array([space.price(COSTS, k) for k in range(len(space.markups))])
    assert np.all(np.diff(prices, axis=0) > 0)  # every step raises every bid: no duplicates
    assert np.all(prices >= COSTS)
    # the grid is denser near the true cost (grid_power 2): the first step is small
    assert prices[1, 2] - prices[0, 2] < (space.price_cap - 165.0) / 100


def test_a_markup_grid_can_stop_below_the_cap_or_pile_up_at_it():
    """Why to_cap is the default: a multiplicative grid leaves cheap bids' top price below the
    cap (the grid decides where they end) and maps several markups of dear bids onto the cap
    (duplicate strategies)."""
    space = StrategyConfig(kind="multiplicative", markup_max=4.0).space()
    top = space.price(COSTS, len(space.markups) - 1)
    assert top[0] < space.price_cap  # 10 x 4 = 40 EUR/MW: the grid, not the cap, binds
    at_cap = [space.price(COSTS[2:3], k)[0] for k in range(len(space.markups))]
    assert at_cap.count(space.price_cap) > 1  # 165 x {3.8, 4.0} both hit the cap


def test_price_cap_must_stay_below_the_unmet_need_penalty():
    with pytest.raises(FlexgameInputError, match="reasoning.strategy.price_cap=.*unmet need"):
        settings(load_config(["reasoning=ibr", "reasoning.strategy.price_cap=20000"]))
    with pytest.raises(FlexgameInputError, match="markups=.*to_cap must lie in"):
        StrategySpace(markups=[0.0, 0.5, 1.5], kind="to_cap")


@pytest.fixture(scope="module")
def bertrand(tmp_path_factory):
    """Two identical FSPs, each able to serve the whole need: with the rival truthful, every
    strategy of A earns 0 (a tie among all of them)."""
    system = tiny_system(tmp_path_factory.mktemp("ties"), 5.0)
    built = build_scheme(system, bid_table([tx_bid("A", 2, 10, 10), tx_bid("B", 3, 10, 10)]),
                         "common")
    space = StrategySpace(markups=[1.0, 1.2, 1.5, 2.0], price_cap=500.0)
    return GameEvaluator(built, BidMap(built.bids, space), "pay_as_bid")


@pytest.mark.parametrize("rule, expected", [("keep_then_lowest", (2, 0)), ("lowest", (0, 0)),
                                            ("highest", (3, 0))])
def test_best_response_tie_rules(bertrand, rule, expected):
    assert set(TIE_RULES) == {"keep_then_lowest", "lowest", "highest"}
    br = best_response(bertrand, {"A": (2, 0), "B": (0, 0)}, "A", tie_rule=rule)
    assert set(br.payoffs.values()) == {0.0}
    assert br.strategy == expected and br.regret == 0.0
