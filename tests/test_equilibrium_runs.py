"""Reasoning ``equilibrium`` through the paths users take: the Mesa model, ``Game`` and
``flexgame run``. Every result names its concept and carries a certificate computed in the full
game, checked here against brute-force payoff tables."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from flexgame.agents.model import FlexMarketModel
from flexgame.experiments.cli import main
from flexgame.experiments.scenario import Scenario
from flexgame.experiments.strategic import Game
from flexgame.games.equilibria import COARSE_CORRELATED, MIXED_NASH, PURE_NASH
from flexgame.games.normal_form import expected_payoffs, payoff_table, pure_equilibria
from flexgame.games.reasoning import ReasoningConfig
from flexgame.games.strategies import StrategySpace
from flexgame.markets.schemes import build_scheme
from tiny_market import bid_table, tiny_system, tx_bid

EDGEWORTH = [tx_bid("A", 2, 6, 10), tx_bid("B", 3, 6, 10)]  # need 10 MW: both pivotal
THREE = [tx_bid("A", 2, 4, 10), tx_bid("B", 3, 4, 12), tx_bid("C", 2, 4, 15)]  # need 10 MW


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("equilibrium_runs")


def _scenario(folder, rows, need):
    system = tiny_system(folder, need)
    return Scenario(system, bid_table(rows))


def test_model_turns_an_edgeworth_cycle_into_a_mixed_equilibrium(folder):
    """Best responses cycle (no pure equilibrium: brute force); the model's last step is a
    mixed Nash equilibrium whose epsilon, recomputed from the full payoff table, is below
    1 % of the truthful cost; its expected profits are those of the table."""
    space = StrategySpace(markups=[1.0, 1.5, 2.0, 2.5, 3.0], price_cap=30.0)
    built = build_scheme(tiny_system(folder, 10.0), bid_table(EDGEWORTH), "common")
    model = FlexMarketModel(built, space, ReasoningConfig("equilibrium", max_rounds=50))
    model.run()
    table = payoff_table(model.evaluator)
    assert pure_equilibria(table) == []
    eq = model.equilibrium
    assert model.status == "cycle" and eq.concept == MIXED_NASH and eq.support_size > 1
    tol = 0.01 * model.evaluator.outcome(model.bid_map.truthful()).payment_eur
    mixed = {p: np.array([eq.mixed[p].get(s, 0.0) for s in table.strategies[p]])
             for p in table.players}
    for p in table.players:
        values = expected_payoffs(table, mixed, p)
        assert values.max() - values @ mixed[p] <= tol  # no deviation gains more than tol
        assert values @ mixed[p] == pytest.approx(eq.outcome.profit[p], abs=1e-6)
    assert eq.epsilon <= tol and np.isnan(eq.epsilon_standard_error)
    # the agents hold the equilibrium's marginals and the last round records its outcome
    assert all(a.mixed @ np.ones(len(a.mixed)) == pytest.approx(1.0) for a in model.fsps)
    frame = model.datacollector.get_model_vars_dataframe()
    assert frame.procurement_cost_eur.iloc[-1] == pytest.approx(eq.outcome.cost_eur)
    assert model.round == len(frame) - 1


def test_a_fixed_point_is_a_pure_equilibrium(folder):
    scenario = _scenario(folder, THREE, 10.0)
    space = StrategySpace(markups=[1.0, 1.2, 1.5, 2.0], price_cap=30.0)
    outcome = Game(scenario, "common", strategy=space).equilibrium()
    m = outcome.metrics
    assert m["status"] == "converged" and m["equilibrium_concept"] == PURE_NASH
    assert m["epsilon"] == 0.0 and m["support_size"] == 1


def test_several_starts_find_both_pure_equilibria(folder):
    """Three capacity-constrained FSPs (all three needed) have two pure equilibria (brute
    force); searches from truthful bids, the top of the grid, the level-1 profile and seeded
    random profiles reach both, and the
    price of anarchy (dearest) is at least the price of stability (cheapest)."""
    scenario = _scenario(folder, THREE, 10.0)
    space = StrategySpace(markups=[1.0, 1.2, 1.5, 2.0], price_cap=30.0)
    game = Game(scenario, "common", strategy=space)
    table = payoff_table(game.play(ReasoningConfig("ibr")).model.evaluator)
    pure = pure_equilibria(table)
    assert len(pure) >= 2
    outcome = game.equilibrium(starts=6)
    m = outcome.metrics
    costs = sorted(e.outcome.payment_eur for e in outcome.equilibria)
    assert m["equilibria_found"] == len(outcome.equilibria) >= 2
    assert m["price_of_anarchy"] >= m["price_of_stability"]
    assert m["price_of_stability"] == pytest.approx(costs[0] / m["truthful_cost"])
    assert m["price_of_anarchy"] == pytest.approx(costs[-1] / m["truthful_cost"])
    brute_costs = {round(float(table.cost_eur[table.index(p)]), 6) for p in pure}
    assert {round(c, 6) for c in costs} <= brute_costs  # each one is a brute-force equilibrium
    assert list(outcome.equilibria_table().concept) == [PURE_NASH] * len(costs)


def test_uniform_pricing_cost_is_what_the_buyer_pays(folder):
    """Under uniform pricing the buyer pays the marginal price for every MW: the procurement
    cost of the strategic outcome is the payments, not the declared cost."""
    scenario = _scenario(folder, EDGEWORTH, 10.0)
    space = StrategySpace(markups=[1.0, 1.5, 2.0, 2.5, 3.0], price_cap=30.0)
    outcome = Game(scenario, "common", "uniform", strategy=space).equilibrium()
    m = outcome.metrics
    assert m["strategic_cost"] >= m["strategic_declared_cost"] - 1e-9
    assert m["strategic_cost"] == pytest.approx(outcome.equilibrium.outcome.payment_eur)
    assert m["epsilon"] <= 0.01 * m["truthful_cost"]


def test_flexgame_run_writes_the_equilibrium(monkeypatch, tmp_path):
    """A small strategic run with reasoning=equilibrium from the command line: its metrics
    name the concept with a certificate within the tolerance, and it writes the equilibria
    found and the outcome's distribution."""
    monkeypatch.setattr(sys, "argv", [
        "flexgame", "run", "reasoning=equilibrium", "aggregation=random_pools",
        "aggregation.pool_size=60", "reasoning.strategy.markup_points=4", "case=B",
        "reasoning.starts=2", f"hydra.run.dir={tmp_path}"])
    main()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["equilibrium_concept"] in (PURE_NASH, MIXED_NASH, COARSE_CORRELATED)
    assert metrics["epsilon"] <= 0.01 * metrics["truthful_cost"] + 1e-9
    assert metrics["price_of_anarchy"] >= metrics["price_of_stability"]
    equilibria = pd.read_csv(tmp_path / "equilibria.csv")
    assert len(equilibria) == metrics["equilibria_found"]
    distribution = pd.read_csv(tmp_path / "distribution.csv")
    assert distribution.groupby("profile").probability.first().sum() == pytest.approx(1.0)
    assert distribution.profile.nunique() == metrics["support_size"]
