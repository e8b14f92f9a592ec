"""Implicit DR (issue 13, items 1-3): the single imbalance market, the flexibility curve and the
BRP's bilevel, solved exactly by enumeration and by an MPEC on HiGHS, which must agree."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.experiments.idr_cases import CASES, TABLE_I, TEST_SLOT_CURVE, slot, table_ii
from flexgame.games.brp import BRPSlot, settle, solve_by_enumeration, solve_mpec
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.flexibility_curve import FlexibilityCurve
from flexgame.markets.imbalance import MeritOrder, ReserveBids, sim_lp

SMALL = ReserveBids(up_price=[60.0, 50.0, 80.0], up_mw=[10, 20, 30],
                    down_price=[-5.0, 10.0, -40.0], down_mw=[15, 10, 20])
"""Up merit order 50 (20 MW), 60 (10), 80 (30); down merit order 10 (10), -5 (15), -40 (20)."""


@pytest.mark.parametrize("residual, price", [
    (-5.0, 50.0), (-20.0, 50.0), (-25.0, 60.0), (-30.0, 60.0), (-31.0, 80.0), (-60.0, 80.0),
    (4.0, 10.0), (10.0, 10.0), (12.0, -5.0), (25.0, -5.0), (26.0, -40.0), (45.0, -40.0),
])
def test_sim_price_is_the_marginal_activated_bid(residual, price):
    """Hand-checked: a deficit (R < 0) activates up bids cheapest first, a surplus down bids
    highest-paying first; the price is the last bid activated (at a bid's end, that bid)."""
    merit = MeritOrder(SMALL)
    out = merit.clear(residual)
    assert out.price == price and out.unmet_mw == 0
    assert out.up_mw.sum() - out.down_mw.sum() == pytest.approx(-residual)


def test_sim_price_at_zero_residual_follows_the_system_imbalance():
    """R = 0: any price between the first down (10) and the first up bid (50) is a dual; the
    rule takes the first bid in the direction of the system imbalance (IDR reference §2)."""
    merit = MeritOrder(SMALL)
    assert merit.price(0.0, lean=+1) == 10.0 and merit.price(0.0, lean=-1) == 50.0
    assert merit.price_interval(0.0) == (10.0, 50.0)
    assert merit.price_interval(-20.0) == (50.0, 60.0)  # at the end of a bid: either
    assert merit.price_interval(25.0) == (-40.0, -5.0)


@pytest.mark.parametrize("residual", [-57.0, -30.0, -12.5, 0.0, 7.0, 25.0, 44.0])
def test_sim_merit_order_equals_its_lp(residual):
    """The merit order solves the SIM LP: same cost, and its price lies in the LP's dual
    interval (HiGHS's dual is one of the optimal duals)."""
    merit = MeritOrder(SMALL)
    out = merit.clear(residual)
    sol = sim_lp(SMALL, residual).solve().require_optimal("SIM")
    assert out.cost_eur_per_h == pytest.approx(sol.objective, abs=1e-9)
    low, high = merit.price_interval(residual)
    dual = -sol.row_dual[0]  # HiGHS: d = c - A^T y; the row is sum s- - sum s+
    assert low - 1e-9 <= dual <= high + 1e-9 and low <= out.price <= high


def test_sim_beyond_capacity_reports_unmet_imbalance():
    out = MeritOrder(SMALL).clear(-75.0)
    assert out.unmet_mw == pytest.approx(15.0) and out.price == 80.0


def test_flexibility_curve_response_and_validation():
    curve = FlexibilityCurve(10.0, 40.0, np.array([50.0, 40.0, 40.0]))
    assert curve.block_mw == 10.0
    assert curve.response(45.0) == (20.0, 20.0)
    assert curve.response(40.0) == (20.0, 40.0)  # two tied blocks: any fill
    assert curve.response(60.0) == (10.0, 10.0)  # only the must-run block
    assert curve.demand([0.0, 45.0, 60.0]).tolist() == [40.0, 20.0, 10.0]
    assert FlexibilityCurve.from_dict(curve.to_dict()).to_dict() == curve.to_dict()
    with pytest.raises(FlexgameInputError, match="non-increasing"):
        FlexibilityCurve(0.0, 10.0, np.array([1.0, 2.0]))
    with pytest.raises(FlexgameInputError, match="p_min <= p_max"):
        FlexibilityCurve(5.0, 1.0, np.array([1.0]))


def _random_slot(rng: np.random.Generator) -> BRPSlot:
    n = int(rng.integers(2, 9))
    w = np.sort(rng.choice(np.arange(5.0, 60.0, 2.5), n))[::-1]
    p_min = float(rng.uniform(5, 30))
    p_max = p_min + float(rng.uniform(5, 40))
    curve = FlexibilityCurve(p_min, p_max, w)
    k = int(rng.integers(1, 4))
    reserve = ReserveBids(up_price=rng.choice(np.arange(30.0, 90.0, 5.0), k + 1),
                          up_mw=rng.choice([5.0, 10.0, 20.0], k + 1),
                          down_price=rng.choice(np.arange(-50.0, 20.0, 5.0), k + 1),
                          down_mw=rng.choice([5.0, 10.0, 20.0], k + 1))
    reserve = ReserveBids(np.r_[reserve.up_price, 500.0], np.r_[reserve.up_mw, 200.0],
                          np.r_[reserve.down_price, -300.0], np.r_[reserve.down_mw, 200.0])
    imbalance = float(rng.choice([-1, 1]) * rng.choice([2.0, 5.0, 10.0, 17.5, 30.0]))
    day_ahead = float(p_min + rng.uniform(0, 1) * (p_max - p_min))
    return BRPSlot(curve, reserve, imbalance, day_ahead, float(rng.uniform(10, 50)),
                   float(rng.choice([w[0], w[0] + 5.0, 40.0])))


def _brute_force(slot_: BRPSlot, points: int = 400) -> float:
    """The best net profit over a fine grid of retail prices (with every block's w) and, at
    each, a fine grid of the demands the curve allows: an independent lower bound."""
    merit = MeritOrder(slot_.reserve)
    low, high = slot_.deviation_bounds()
    best = -np.inf
    prices = np.unique(np.r_[np.linspace(0, slot_.max_retail_price, points),
                             slot_.curve.w[slot_.curve.w <= slot_.max_retail_price]])
    for price in prices:
        d_low, d_high = slot_.curve.response(price)
        for demand in np.unique(np.r_[np.linspace(d_low, d_high, 25), d_low, d_high]):
            dev = demand - slot_.day_ahead_mw
            if not low - 1e-9 <= dev <= high + 1e-9:
                continue
            lo, hi = merit.price_interval(slot_.system_imbalance_mw - dev)
            imbalance_price = lo if dev > 0 else hi
            best = max(best, settle(slot_, price, demand, imbalance_price).net_eur)
    return best


@pytest.mark.parametrize("seed", range(25))
def test_enumeration_equals_mpec_and_beats_a_brute_force_grid(seed):
    slot_ = _random_slot(np.random.default_rng(seed))
    exact = solve_by_enumeration(slot_)
    mpec = solve_mpec(slot_)
    assert exact.net_eur == pytest.approx(mpec.net_eur, abs=1e-6 * max(1, abs(exact.net_eur)))
    assert exact.net_eur >= _brute_force(slot_) - 1e-7
    for d in (exact, mpec):
        _assert_feasible(slot_, d)


def _assert_feasible(slot_: BRPSlot, d) -> None:
    """Bounds and direction indicators; the demand is the curve's answer to the price;
    Net = SIM + DR Net."""
    c = slot_.curve
    assert 0 <= d.retail_price <= slot_.max_retail_price + 1e-9
    assert d.up_mw >= 0 and d.down_mw >= 0 and min(d.up_mw, d.down_mw) == 0
    if slot_.system_imbalance_mw > 0:
        assert d.up_mw == 0 and d.down_mw <= c.p_max - slot_.day_ahead_mw + 1e-7
    else:
        assert d.down_mw == 0 and d.up_mw <= slot_.day_ahead_mw - c.p_min + 1e-7
    low, high = c.response(d.retail_price)
    assert low - 1e-6 <= d.demand_mw <= high + 1e-6
    assert d.net_eur == pytest.approx(d.sim_eur + d.dr_net_eur)


@pytest.mark.parametrize("case", list(CASES))
def test_paper_cases_mpec_equals_enumeration(case):
    s = slot(case)
    exact, mpec = solve_by_enumeration(s), solve_mpec(s)
    assert exact.net_eur == pytest.approx(mpec.net_eur, abs=1e-6)
    _assert_feasible(s, exact)


def test_table_ii_on_the_test_slot():
    """What the model gives on the paper's test slot (IDR reference §3). C1: the system is
    long and r2- (-110.2 EUR/MWh) is marginal whatever the BRP does (it can add at most
    41.4 MW), so it is paid to consume all it can; C4: short by 150 MW, it sheds to Pmin and
    r1+ stays marginal; C5: short by 84 MW, it sheds exactly the imbalance (R = 0) and the
    price stays at r1+ (the favourable end at R = 0)."""
    table = table_ii(cross_check=False).set_index("case")
    assert table.loc["C1", "lambda_SI [EUR/MWh]"] == -110.2
    assert table.loc["C1", "Dp- [MW]"] == pytest.approx(TEST_SLOT_CURVE.p_max - 176.39)
    assert table.loc["C4", "Dp+ [MW]"] == pytest.approx(176.39 - TEST_SLOT_CURVE.p_min)
    assert table.loc["C4", "lambda_SI [EUR/MWh]"] == TABLE_I.up_price[0]
    assert table.loc["C5", "Dp+ [MW]"] == pytest.approx(84.0)
    assert table.loc["C5", "lambda_SI [EUR/MWh]"] == TABLE_I.up_price[0]
    # a dearer r2- leaves the BRP less to gain: C1 > C2 > C3
    assert table.loc["C1", "Net [EUR]"] > table.loc["C2", "Net [EUR]"] > table.loc["C3", "Net [EUR]"]


def test_run_model_implicit_dr_writes_the_table_ii_row(tmp_path):
    """``flexgame run model=implicit_dr idr.case=C4``: the Mesa agents (BRP, DR portfolio,
    TSO) play the quarter-hour; with the DR following the BRP's curve the ex-post profit is
    the planned one and equals Table II's row."""
    import json

    from flexgame.experiments.config import load_config
    from flexgame.experiments.run import run_experiment

    metrics = run_experiment(load_config(["model=implicit_dr", "idr.case=C4"]), tmp_path)
    row = table_ii(cross_check=False).set_index("case").loc["C4"]
    assert metrics["net_profit_eur"] == pytest.approx(row["Net [EUR]"])
    assert metrics["net_profit_eur"] == pytest.approx(metrics["planned_net_profit_eur"])
    assert metrics["up_mw"] == pytest.approx(row["Dp+ [MW]"])
    assert json.loads((tmp_path / "metrics.json").read_text())["idr_case"] == "C4"
    assert (tmp_path / "quarter_hours.csv").is_file() and (tmp_path / "config.yaml").is_file()


def test_an_actual_response_more_elastic_than_believed_over_activates():
    """If the DR sheds more than the BRP believes, its response can tip a short system long:
    the quarter-hour is counted as an over-activation and settled at the actual (downward)
    price, below the planned profit."""
    from flexgame.agents.idr import CurveResponse, ImplicitDRModel
    from flexgame.experiments.implicit_dr import quarter_of

    belief = TEST_SLOT_CURVE
    # the actual DR: the same blocks, but its must-run block is 40 MW smaller
    actual = FlexibilityCurve(belief.p_min - 40.0, belief.p_max - 40.0, belief.w)
    model = ImplicitDRModel([quarter_of("C5")], belief, CurveResponse(actual))
    row = model.run().iloc[0]
    assert row.planned_imbalance_price_eur_per_mwh == TABLE_I.up_price[0]
    assert row.residual_imbalance_mw > 0 and bool(row.over_activation)
    assert row.imbalance_price_eur_per_mwh == TABLE_I.down_price[0]
    assert row.net_eur < row.planned_net_eur


def test_scenario_bilevel_with_one_scenario_is_the_bilevel_and_hedges_with_more():
    """SBVOIO's bilevel: one scenario gives the single-curve optimum; with several, the
    common price's expected profit is at least that of any candidate price every scenario
    can follow (the enumeration covers those prices)."""
    from flexgame.games.brp import _best_at_price, candidate_prices, solve_scenarios

    rng = np.random.default_rng(11)
    for _ in range(10):
        base = _random_slot(rng)
        price, (only,) = solve_scenarios([base])
        assert only.net_eur == pytest.approx(solve_by_enumeration(base).net_eur, abs=1e-9)
        shifted = [BRPSlot(FlexibilityCurve(base.curve.p_min + d, base.curve.p_max + d,
                                            base.curve.w), base.reserve,
                           base.system_imbalance_mw, base.day_ahead_mw, base.day_ahead_price,
                           base.max_retail_price) for d in (-3.0, 0.0, 3.0)]
        price, decisions = solve_scenarios(shifted)
        expected = np.mean([d.net_eur for d in decisions])
        merit = MeritOrder(base.reserve)
        for own in shifted:
            for p in candidate_prices(own):
                each = [_best_at_price(s, merit, p) for s in shifted]
                if all(d is not None for d in each):  # a price every scenario can follow
                    assert expected >= np.mean([d.net_eur for d in each]) - 1e-9


def test_cli_idr_table_prints_the_five_cases(monkeypatch, capsys):
    import sys

    from flexgame.experiments.cli import main

    monkeypatch.setattr(sys, "argv", ["flexgame", "idr", "table"])
    main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert "lambda_SI [EUR/MWh]" in lines[0] and "Net by MPEC [EUR]" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == list(CASES)
    monkeypatch.setattr(sys, "argv", ["flexgame", "idr", "tabel"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
