"""DSO blocking after clearing (FLEXGRID D5.1 §4.4; issue 16, item 2): the TSO market clears
blind to the feeders, the DSOs block the worst offenders one at a time, the TSO market clears
again, until the feeders are safe or nothing is left to block."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.experiments.evaluation import clear
from flexgame.experiments.scenario import Scenario
from flexgame.markets.dso_blocking import DSOBlockingStage
from flexgame.markets.grid_assessment import assess_base_state
from flexgame.markets.schemes import ClearingConfig, Scheme

TOL = 1e-6


@pytest.mark.parametrize("case", ["B", "C"])
def test_blocking_removes_the_violations_the_tso_market_causes(case):
    """Cases B and C: ml01's TSO market, blind to the feeders, overloads them (26 and 19
    lines); blocking its offenders leaves every feeder within its limits, with the need met.
    Such an outcome is feasible for the common market, so it cannot be cheaper (common is
    the least-cost outcome within every limit)."""
    scenario = Scenario.from_case(case, 0)
    blind = clear(scenario, "ml01")
    blocking = clear(scenario, "dso_blocking")
    assert blind.kpis["congestions"] > 0
    assert blocking.kpis["congestions"] == 0 and blocking.kpis["voltage_violations"] == 0
    assert abs(blocking.kpis["residual_need_mw"]) < TOL
    assert blocking.kpis["total_cost"] >= blocking.kpis["common_cost"] - TOL


def test_blocked_bids_end_unactivated_and_the_stop_rule_holds():
    scenario = Scenario.from_case("B", 0)
    scheme = Scheme(scenario.system, scenario.bids, ClearingConfig(scheme="dso_blocking"))
    result = scheme.clear()
    (stage,) = scheme.stages
    assert isinstance(stage, DSOBlockingStage) and len(stage.blocked)
    assert (scenario.bids.level.to_numpy()[stage.blocked] == "distribution").all()
    assert np.all(result.activation_mw[stage.blocked] == 0)
    state = scheme.base_state.after(scheme.effects, result.activation_mw)
    assert stage.culprit(state, result.activation_mw) is None  # nothing left to block


def test_violations_no_activation_causes_are_left_as_they_are():
    """Case A: the only violations are the feeders' own congested lines of the base state;
    blocking removes activations, so it cannot relieve them: they stay, as reported."""
    scenario = Scenario.from_case("A", 0)
    blocking = clear(scenario, "dso_blocking")
    base = assess_base_state(scenario.system)
    assert base.congestions == blocking.kpis["congestions"] == 2
