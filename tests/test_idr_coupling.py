"""Implicit DR decided before the TSO-DSO flexibility market (issue 13, item 8): the BRP's
response changes the load at its bus and the TSO's need by the same MW, in the helpful
direction only, and the run reports the market's cost with and without it."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.experiments.config import load_config
from flexgame.experiments.idr_coupling import (ImplicitDRCoupling, dr_curve, reserve_of,
                                               respond, with_demand_change)
from flexgame.experiments.run import run_experiment
from flexgame.experiments.scenario import Scenario
from flexgame.markets.metrics import metric


@pytest.mark.parametrize("case", ["B", "D"])
def test_response_moves_load_and_need_together_in_the_helpful_direction(case):
    scenario = Scenario.from_case(case, 0)
    system = scenario.system
    coupling = ImplicitDRCoupling(enabled=True, flexible_mw=4.0)
    decision, bus, after = respond(system, scenario.bids, coupling, 1e4)
    curve, day_ahead = dr_curve(4.0)
    deviation = decision.demand_mw - day_ahead
    assert abs(deviation) <= curve.p_max - curve.p_min + 1e-9
    # a short system (need up) gets less consumption, a long one more
    assert np.sign(deviation) in (0.0, -np.sign(system.tso_need_mw))
    i = system.transmission.bus_index(bus)
    assert after.tx_load_mw[i] == pytest.approx(system.tx_load_mw[i] + deviation)
    assert after.tso_need_mw == pytest.approx(system.tso_need_mw + deviation)
    # the base injection still balances against the need
    assert after.base_tx_injection().sum() == pytest.approx(-after.tso_need_mw, abs=1e-6)
    assert with_demand_change(system, bus, 0.0).tso_need_mw == system.tso_need_mw


def test_merit_order_reads_down_asks_as_what_the_tso_pays():
    scenario = Scenario.from_case("B", 0)
    reserve = reserve_of(scenario.bids, 1e4)
    tx = scenario.bids[scenario.bids.level == "transmission"]
    assert sorted(reserve.up_price[:-1]) == sorted(
        tx[tx.direction == "up"].price_eur_per_mw.tolist())
    assert (reserve.down_price[:-1] <= 0).all() and reserve.down_price[-1] == -1e4


@pytest.mark.parametrize("settlement", ["pay_as_bid", "nodal"])
def test_run_reports_the_cost_with_and_without_implicit_dr(tmp_path, settlement):
    """The cost without implicit DR is the plain run's cost under the run's own settlement
    rule (nodal pays more than pay-as-bid in case B, so a rule left out shows)."""
    rule = f"settlement={settlement}"
    plain = run_experiment(load_config(["case=B", rule]), tmp_path / "plain")
    coupled = run_experiment(load_config(["case=B", rule, "implicit_dr.enabled=true"]),
                             tmp_path / "coupled")
    assert coupled["total_cost_without_implicit_dr"] == pytest.approx(plain["total_cost"])
    assert coupled["tso_need_without_implicit_dr_mw"] == pytest.approx(plain["tso_need_mw"])
    assert coupled["tso_need_mw"] == pytest.approx(
        plain["tso_need_mw"] + coupled["implicit_dr_deviation_mw"])
    assert coupled["implicit_dr_deviation_mw"] < 0  # case B: upward need, less consumption
    for key in coupled:
        metric(key)  # every key is registered
