"""The strategic-withholding study of FLEXGRID D5.1 §3.6 (experiments/withholding_study.py).

The tiny DLFM (tests/tiny_market.py, congested variant): feeder branch 2-3 carries 2 MW
against a 1.5 MW limit, so the FMO must buy 0.5 MW upward at bus 3 (below 2-3); with the
interface flow held (the R-DLFM) it must also buy 0.5 MW downward elsewhere in the feeder
(bus 2). A transmission bid T covers the TSO's need in the TSO layer, which no feeder bid
reaches.

Hand-checked instance (:func:`_duopoly`): S (up, bus 3, 1 MW at 20 EUR/MW), C (up, bus 3,
1 MW at 40), D (down, bus 2, 2 MW at 10). Truthful: S 0.5 MW (marginal, partly accepted), D
0.5 MW; declared cost 15 EUR; without S: C 0.5 MW + D 0.5 MW = 25 EUR. So S's profit is 0
under pay-as-bid and nodal (its DLMP is its own price), and 25 - 15 = 10 EUR under VCG.
Any markup below C's 40 EUR/MW raises S's pay-as-bid and nodal profit; withholding 60 %
(0.4 MW offered) makes C marginal and pays S C's 40 EUR/MW under nodal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flexgame.experiments.withholding_study import (
    RULES, WithholdingConfig, best_strategy, dlfm_feeders, dlfm_scheme, profit_grid, run,
    strategic_fsp, summarise,
)
from flexgame.games.strategies import StrategyConfig
from flexgame.markets.bids import bid_table, distribution_bid, transmission_bid
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.settlement import settle
from tiny_market import FEEDER, tiny_system

TOL = 1e-6  # EUR
SMALL = StrategyConfig(markup_points=6, withholding=[0.0, 0.3, 0.6, 0.9])


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    return tiny_system(tmp_path_factory.mktemp("tiny_dlfm"), need_mw=5.0, congested=True)


def _duopoly(system):
    return bid_table([
        transmission_bid("T", 2, 10, 50),
        distribution_bid("S", FEEDER, 3, 1.0, 20),
        distribution_bid("C", FEEDER, 3, 1.0, 40),
        distribution_bid("D", FEEDER, 2, 2.0, 10, "down"),
    ], system)


def _random_bids(system, seed: int) -> pd.DataFrame:
    """3-5 FSPs, each with 1-3 feeder bids (up or down, bus 2 or 3, 0.1-1.2 MW, 10-60
    EUR/MW), and the transmission bid T."""
    rng = np.random.default_rng(seed)
    rows = [transmission_bid("T", 2, 10, 50)]
    for f in range(rng.integers(3, 6)):
        for _ in range(rng.integers(1, 4)):
            rows.append(distribution_bid(
                f"F{f}", FEEDER, int(rng.integers(2, 4)), float(rng.uniform(0.1, 1.2)),
                float(rng.uniform(10, 60)), str(rng.choice(["up", "down"]))))
    return bid_table(rows, system)


def _grid(system, bids, fsp=None, rules=RULES, space=SMALL):
    scheme = dlfm_scheme(system, bids)
    fsp = strategic_fsp(scheme, scheme.clear(), fsp)
    return fsp, profit_grid(scheme, fsp, space.space(), rules)


def _truthful(grid, rule):
    return grid[(grid.rule == rule) & (grid.markup_index == 0)
                & (grid.withholding_index == 0)].iloc[0]


def test_duopoly_truthful_profits_are_the_hand_computed_ones(system):
    _, grid = _grid(system, _duopoly(system), "S")
    assert _truthful(grid, "pay_as_bid").profit_eur == pytest.approx(0.0, abs=TOL)
    assert _truthful(grid, "nodal").profit_eur == pytest.approx(0.0, abs=TOL)
    assert _truthful(grid, "vcg").profit_eur == pytest.approx(10.0, abs=TOL)
    assert _truthful(grid, "vcg").accepted_mw == pytest.approx(0.5, abs=TOL)


@pytest.mark.parametrize("bids", ["duopoly", 0, 1, 2, 3, 4, 5])
def test_truthful_profit_is_settlement_payment_minus_true_cost(system, bids):
    """The grid's truthful row against :func:`settle` of a fresh truthful clearing and the
    true cost computed from the bid table."""
    table = _duopoly(system) if bids == "duopoly" else _random_bids(system, bids)
    scheme = dlfm_scheme(system, table)
    result = scheme.clear()
    fsp = strategic_fsp(scheme, result)
    grid = profit_grid(scheme, fsp, SMALL.space())
    own = (table.fsp == fsp).to_numpy()
    true_cost = float((table.cost_eur_per_mw.to_numpy() * result.activation_mw)[own].sum())
    for rule in RULES:
        settlement = settle(scheme, result, rule)
        paid = float(settlement.bid_payment_eur[own].sum())
        row = _truthful(grid, rule)
        assert row.payment_eur == pytest.approx(paid, abs=TOL)
        assert row.true_cost_eur == pytest.approx(true_cost, abs=TOL)
        assert row.profit_eur == pytest.approx(paid - true_cost, abs=TOL)
        assert row.profit_eur == pytest.approx(
            float(settlement.fsp.set_index("fsp").profit_eur[fsp]), abs=TOL)


@pytest.mark.parametrize("seed", range(6))
def test_vcg_truthful_is_optimal_on_random_dlfms(system, seed):
    """D5.1 §3.6: under the Clarke pivot rule neither markup nor withholding raises the
    strategic FSP's profit (brute force over the grid)."""
    _, grid = _grid(system, _random_bids(system, seed), rules=("vcg",))
    truthful = _truthful(grid, "vcg").profit_eur
    assert grid.profit_eur.max() <= truthful + TOL, grid.loc[grid.profit_eur.idxmax()]
    assert _truthful(grid, "vcg").accepted_mw > 0


def test_random_dlfms_reward_withholding_without_vcg(system):
    """The random instances are not trivial: in most of them the strategic FSP gains by a
    markup or withholding under nodal settlement (so the VCG check above can fail)."""
    gains = [summarise(_grid(system, _random_bids(system, seed), rules=("nodal",))[1])
             .gain_eur.iloc[0] for seed in range(6)]
    assert sum(g > 0.1 for g in gains) >= 4, gains


def test_vcg_truthful_is_optimal_on_the_default_system():
    """The default scenario's R-DLFM, the default strategic FSP, and the by-feeder
    monopolist of its DLFM (pivotal: its Clarke payment includes the penalties of the
    violations the DLFM would keep without it)."""
    for aggregation in ("none", "by_feeder"):
        study = run(WithholdingConfig(aggregation=aggregation, strategies=SMALL))
        vcg = study.grid[study.grid.rule == "vcg"]
        assert vcg.profit_eur.max() <= _truthful(vcg, "vcg").profit_eur + TOL
        summary = study.summary.set_index("rule")
        assert summary.loc["vcg", "gain_eur"] == pytest.approx(0.0, abs=TOL)
        assert summary.loc["vcg", "best_markup"] == 0 and summary.loc["vcg", "best_withholding"] == 0


def test_pay_as_bid_markup_pays(system):
    _, grid = _grid(system, _duopoly(system), "S", rules=("pay_as_bid",))
    no_withholding = grid[grid.withholding_index == 0].set_index("markup_index")
    # the first markup step: 20 + 0.2^2 x 480 = 39.2 EUR/MW, still below C's 40
    assert no_withholding.profit_eur[1] > no_withholding.profit_eur[0] + 1.0
    assert no_withholding.profit_eur[1] == pytest.approx(0.5 * 0.04 * 480, abs=TOL)
    assert summarise(grid).gain_eur.iloc[0] > 1.0


def test_nodal_marginal_fsp_gains_by_markup_and_by_withholding(system):
    _, grid = _grid(system, _duopoly(system), "S", rules=("nodal",))
    cell = grid.set_index(["markup_index", "withholding_index"]).profit_eur
    assert cell[1, 0] > cell[0, 0] + 1.0  # economic withholding: S stays marginal
    # physical withholding: 0.4 MW offered, C marginal at 40 EUR/MW sets S's DLMP
    assert cell[0, 2] == pytest.approx(0.4 * (40 - 20), abs=TOL)
    best = best_strategy(grid)
    assert best.profit_eur > cell[0, 0] + 1.0


def test_vcg_duopoly_no_gain_while_others_gain(system):
    _, grid = _grid(system, _duopoly(system), "S")
    summary = summarise(grid).set_index("rule")
    assert summary.loc["vcg", "gain_eur"] == pytest.approx(0.0, abs=TOL)
    assert summary.loc["nodal", "gain_eur"] > 1.0 and summary.loc["pay_as_bid", "gain_eur"] > 1.0
    # the FMO pays for the manipulation under pay-as-bid
    assert summary.loc["pay_as_bid", "buyer_payment_change_eur"] > 1.0


def test_strategic_fsp_choice_and_bad_names(system):
    bids = _duopoly(system)
    scheme = dlfm_scheme(system, bids)
    assert strategic_fsp(scheme, scheme.clear()) == "D"  # 0.5 MW, tied with S: first by name
    assert dlfm_feeders(bids, "S") == [FEEDER]
    with pytest.raises(FlexgameInputError, match="fsp='nobody'"):
        strategic_fsp(scheme, scheme.clear(), "nobody")
    with pytest.raises(FlexgameInputError, match="only transmission bids"):
        strategic_fsp(scheme, scheme.clear(), "T")


def test_the_strategic_fsp_plays_one_pair_on_its_pool(system):
    scheme = dlfm_scheme(system, _duopoly(system))
    space = StrategyConfig(markup_points=3, per_resource=True).space()
    with pytest.raises(FlexgameInputError, match="per_resource"):
        profit_grid(scheme, "S", space)


def test_cli_writes_the_report(tmp_path):
    from flexgame.experiments.cli import main

    out = tmp_path / "withholding"
    main(["withholding", "--out", str(out), "--markup-points", "3", "--withholding", "0,0.5"])
    for name in ("report.md", "profit_grid.csv", "summary.csv", "config.json",
                 *(f"profit_{rule}.png" for rule in RULES)):
        assert (out / name).stat().st_size > 0, name
    grid = pd.read_csv(out / "profit_grid.csv")
    assert len(grid) == 3 * 2 * len(RULES)
    assert "| VCG (Clarke pivot) |" in (out / "report.md").read_text()
    with pytest.raises(SystemExit) as stop:
        main(["withholding", "--out", str(out), "--fsp", "nobody"])
    assert stop.value.code == 2
