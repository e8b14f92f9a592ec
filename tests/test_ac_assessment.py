"""AC ex-post assessment (issue 14, item 1): pandapower Newton-Raphson against references,
LinDistFlow against AC within a derived bound, agreement with the linear check, flagging.

How far LinDistFlow may be from AC (the bound the tests assert)
----------------------------------------------------------------
tests/test_distribution.py derives it from Baran & Wu's DistFlow equations: with the same net
demand per bus and the same root voltage, LinDistFlow drops the loss terms r_k l_k, x_k l_k
and |z_k|^2 l_k, and for every bus j

    0 <= V_lin_j - V_ac_j <= 2 (R_j P_loss + X_j Q_loss) / (V_lin_j + V_ac_j)

(R_j, X_j the path resistance and reactance from the root to j, P_loss, Q_loss the feeder's
series losses in p.u. on its base). The derivation holds whatever the direction of the flows
(each dropped bracket 2 (r_k dP_k + x_k dQ_k) - |z_k|^2 l_k lies between |z_k|^2 l_k >= 0 and
2 (r_k P_loss + x_k Q_loss), since the flow error dP_k is the losses at and below branch k),
so it also holds with DG feeding back and with activations. The tests assert it per bus on
the default system's base state (DG 30 %) and on the D3.3 case-B common clearing, plus the
absolute ceilings of test_distribution.py (0.005 p.u. case69, 0.003 p.u. case141, set there
for the heavier no-DG base loads: DG only lowers the feeder flows and so the losses).
"""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pytest
from flexgame.experiments.evaluation import clear
from flexgame.experiments.scenario import Scenario
from flexgame.markets.ac_assessment import (
    ACModel,
    ACReport,
    ac_kpis,
    ac_model,
    assess_base_state_ac,
    assess_with,
    net_from_case,
)
from flexgame.markets.case_loading import load_case
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.grid_assessment import GridReport, assess, assess_base_state
from flexgame.markets.grid_state import BidEffects, GridState
from flexgame.markets.system import SystemConfig, build_system

CEILING_PU = {"case69": 0.005, "case141": 0.003}


@pytest.fixture(scope="module")
def system():
    return build_system()


@pytest.fixture(scope="module")
def scenario_b():
    return Scenario.from_case("B", 0)


def _voltages(report: ACReport, name: str, column: str = "value") -> np.ndarray:
    e = report.elements
    return e[(e.network == name) & (e.kind == "voltage")][column].to_numpy(float)


def test_feeder_networks_reproduce_pandapower_converted_cases():
    """Base loads, no DG: the feeder networks flexgame builds from its LinDistFlow data give
    the voltages of pandapower's own MATPOWER converter (from_ppc of the loaded case, lines
    built by pandapower from BR_R / BR_X / BASE_KV) within 1e-4 p.u.; case69 has Baran & Wu's
    published minimum 0.9092 p.u. at bus 65."""
    system = build_system(SystemConfig(dg_share=0.0))
    report = assess_base_state_ac(system)
    assert report.converged
    for f in system.feeders:
        reference = net_from_case(f.case)
        pp.runpp(reference, numba=False)
        expected = reference.res_bus.vm_pu.loc[f.buses].to_numpy()
        got = _voltages(report, f.name)
        assert np.abs(got - expected).max() < 1e-4, f.name
        if f.name == "case69":
            assert got.min() == pytest.approx(0.9092, abs=2e-4)
            assert f.buses[got.argmin()] == 65


def test_transmission_network_reproduces_matpower_case14():
    """The converted case14 with its own dispatch gives MATPOWER's published solution
    (runpf('case14'): |V| at buses 1-14, 3 decimals)."""
    net = net_from_case(load_case("case14"))
    pp.runpp(net, numba=False)
    published = [1.060, 1.045, 1.010, 1.018, 1.020, 1.070, 1.062, 1.090, 1.056, 1.051, 1.057,
                 1.055, 1.050, 1.036]
    assert np.abs(net.res_bus.vm_pu.loc[range(1, 15)].to_numpy() - published).max() < 6e-4


def _assert_within_bound(system, report: ACReport):
    err = report.linear_error.set_index("network")
    for f in system.feeders:
        v_ac = _voltages(report, f.name)
        v_lin = _voltages(report, f.name, "value_linear")
        error = v_lin - v_ac
        p_loss = err.loc[f.name, "losses_mw"] / f.base_mva
        q_loss = err.loc[f.name, "losses_mvar"] / f.base_mva
        path_r = f.subtree.T @ f.r_pu
        path_x = f.subtree.T @ f.x_pu
        bound = 2.0 * (path_r * p_loss + path_x * q_loss) / (v_lin + v_ac)
        assert error.min() >= -1e-9, f.name  # LinDistFlow is optimistic
        assert np.all(error <= bound + 1e-9), f.name
        assert np.abs(error).max() <= CEILING_PU[f.name]
        assert err.loc[f.name, "max_v_error_pu"] == pytest.approx(np.abs(error).max())
        # the interface flow error is exactly the feeder's active losses
        assert err.loc[f.name, "interface_error_mw"] == pytest.approx(
            err.loc[f.name, "losses_mw"], abs=1e-7)


def test_lindistflow_within_bound_on_base_state(system):
    _assert_within_bound(system, assess_base_state_ac(system))


def test_lindistflow_within_bound_on_case_b_common_clearing(scenario_b):
    common = clear(scenario_b, "common")
    report = ac_model(scenario_b.system).assess(scenario_b.bids, common.result.activation_mw)
    assert report.converged
    _assert_within_bound(scenario_b.system, report)
    assert report.linear.congestions == common.grid.congestions


def test_base_state_counts_match_linear(system):
    """Without activations the AC and linear checks agree element by element on the
    default system (2 tightened feeder lines, no voltage violation): same counts."""
    ac = assess_base_state_ac(system)
    lin = assess_base_state(system)
    assert isinstance(ac, GridReport) and ac.converged
    assert (ac.congestions, ac.voltage_violations) == (lin.congestions, lin.voltage_violations)
    assert (ac.congestions, ac.voltage_violations) == (2, 0)
    over = ac.elements[ac.elements.excess_pct > 1e-4]
    lin_over = lin.elements[lin.elements.excess_pct > 1e-4]
    assert set(zip(over.network, over.element)) == set(zip(lin_over.network, lin_over.element))
    # AC loads the overloaded lines more than the lossless model: larger excess
    assert ac.max_congestion_pct > lin.max_congestion_pct
    assert not ac.flagged and len(ac.flagged_elements) == 0
    assert ac.residual_need_mw == pytest.approx(lin.residual_need_mw)
    assert len(ac.elements) == len(lin.elements)


def test_recycled_power_flow_equals_a_fresh_model(scenario_b):
    """Later assessments reuse pandapower's internal matrices: a fresh model gives the same
    values for a state far from the previous one."""
    sc = scenario_b
    a = np.random.default_rng(3).uniform(0, 1, len(sc.bids)) * sc.bids.quantity_mw.to_numpy()
    model = ac_model(sc.system)
    model.assess(sc.bids, np.zeros(len(sc.bids)))
    again = model.assess(sc.bids, a)
    fresh = ACModel(sc.system).assess(sc.bids, a)
    assert np.abs(again.elements.value - fresh.elements.value).max() < 1e-7


def _flag_system(**overrides):
    cfg = {"congested_branches_per_feeder": 0}
    cfg.update(overrides)
    return build_system(SystemConfig(**cfg))


def test_flagged_voltage_violation():
    """A voltage limit just below LinDistFlow's lowest voltage (which overestimates it by
    about 0.004 p.u. in case69) is met linearly and violated in AC: flagged. With 0.01 p.u.
    of margin, AC is within the limit too."""
    loose = _flag_system()
    lin = assess_base_state(loose)
    assert lin.grid_safe
    volts = lin.elements[(lin.elements.kind == "voltage")]
    v_min = volts.value.min()
    tight = _flag_system(v_limits=(v_min - 1e-3, 1.1))
    report = assess_base_state_ac(tight)
    assert report.linear.grid_safe and not report.grid_safe and report.flagged
    assert set(report.flagged_elements.kind) == {"voltage"}
    assert report.voltage_violations == len(report.flagged_elements) > 0
    safe = assess_base_state_ac(_flag_system(v_limits=(v_min - 1e-2, 1.1)))
    assert safe.grid_safe and not safe.flagged
    kpis = ac_kpis(report)
    assert kpis["flagged_ac"] and kpis["voltage_violations_ac"] == report.voltage_violations


def test_flagged_line_congestion():
    """A rating 0.1 % above the lossless flow of a case69 line: the AC flow (losses below
    the line, about 0.3 % more) exceeds it, the linear check does not."""
    report = assess_base_state_ac(_flag_system(congested_branches={"case69": ["4-47"]},
                                               congestion_factor=1.001))
    assert report.linear.grid_safe and report.flagged
    assert list(zip(report.flagged_elements.network, report.flagged_elements.element)) == [
        ("case69", "4-47")]
    assert report.congestions == 1 and 0 < report.max_congestion_pct < 1


def test_flagged_only_when_linear_is_safe(system):
    """The default base state is unsafe in both checks: not flagged."""
    report = assess_base_state_ac(system)
    assert not report.linear.grid_safe and not report.flagged


def test_assess_with_option(scenario_b):
    sc = scenario_b
    zero = np.zeros(len(sc.bids))
    lin = assess_with("linear", sc.system, sc.bids, zero)
    ac = assess_with("ac", sc.system, sc.bids, zero)
    assert type(lin) is GridReport and isinstance(ac, ACReport)
    assert lin.congestions == assess(sc.system, sc.bids, zero).congestions
    with pytest.raises(FlexgameInputError):
        assess_with("dc", sc.system, sc.bids, zero)


def test_state_with_activations_matches_bid_effects(scenario_b):
    """assess() on activations equals assess_state() on the GridState they give."""
    sc = scenario_b
    a = np.random.default_rng(5).uniform(0, 0.5, len(sc.bids)) * sc.bids.quantity_mw.to_numpy()
    state = GridState.base(sc.system).after(BidEffects.of(sc.system, sc.bids), a)
    model = ac_model(sc.system)
    one = model.assess(sc.bids, a)
    two = model.assess_state(state)
    assert np.abs(one.elements.value - two.elements.value).max() < 1e-7


def test_d33_table_ac_columns():
    """compute(assessment="ac") adds the AC columns beside the linear ones; flagged_ac is
    "linear safe and AC unsafe" row by row. Case A's common market relieves the two
    tightened feeder lines exactly to their ratings in the lossless model: AC, with the
    losses below them, finds both a fraction of a percent over (flagged)."""
    from flexgame.experiments.table import AC_COLUMNS, compute, format_table

    table = compute(cases=("A",), schemes=("common", "ml01"), progress=False, assessment="ac")
    assert set(AC_COLUMNS) <= set(table.columns)
    linear_safe = (table.congestions == 0) & (table.voltage_violations == 0)
    ac_unsafe = (table.congestions_ac > 0) | (table.voltage_violations_ac > 0)
    assert (table.flagged_ac == (linear_safe & ac_unsafe)).all()
    common = table.set_index("scheme").loc["common"]
    assert common.congestions == 0 and common.congestions_ac == 2 and common.flagged_ac
    assert 0 < common.max_congestion_ac_pct < 1
    assert "cong. AC [-]" in format_table(table)
    with pytest.raises(FlexgameInputError):
        compute(cases=("A",), schemes=("common",), progress=False, assessment="dc")


def test_clear_with_ac_grid_assessment(scenario_b):
    """clear(..., grid_assessment="ac"): the run's grid KPIs are AC's, the AC columns beside
    them; the default stays linear."""
    ac = clear(scenario_b, "ml01", grid_assessment="ac")
    linear = clear(scenario_b, "ml01")
    assert isinstance(ac.grid, ACReport) and type(linear.grid) is GridReport
    kpis = ac.kpis
    assert kpis["congestions"] == kpis["congestions_ac"] == ac.grid.congestions
    assert ac.grid.linear.congestions == linear.kpis["congestions"]
    assert "congestions_ac" not in linear.kpis


def test_run_option_grid_assessment_ac_writes_registered_ac_metrics(tmp_path):
    """``flexgame run grid_assessment=ac``: the run's grid KPIs are AC's, the AC columns and
    the linear model's error beside them, every key in the metric registry."""
    from flexgame.experiments.config import load_config
    from flexgame.experiments.run import run_experiment
    from flexgame.markets.metrics import metric

    metrics = run_experiment(load_config(["grid_assessment=ac", "case=A"]), tmp_path)
    assert metrics["congestions_ac"] == metrics["congestions"] == 2
    assert metrics["flagged_ac"] is True and metrics["converged_ac"] is True
    assert 0 < metrics["linear_v_error_pu"] < 0.005
    for key in metrics:
        metric(key)
