"""The scale preset: IEEE 118-bus transmission (embedded case118) with 20 feeders and about
3,000 bids builds, clears and is assessed ex post (its benchmark: benchmarks/bench_scale.py)."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.experiments.config import load_config, settings
from flexgame.experiments.scenario import Scenario
from flexgame.markets.case_loading import EMBEDDED_CASES, load_case, resolve_case_path
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.grid_assessment import assess, assess_base_state
from flexgame.markets.schemes import ClearingConfig, Scheme
from flexgame.markets.system import SystemConfig, spread_feeders
from flexgame.markets.transmission import build_transmission, ptdf_matrix


@pytest.fixture(scope="module")
def case118():
    return load_case("case118")


@pytest.fixture(scope="module")
def scale_run():
    return settings(load_config(["system=scale"]))


@pytest.fixture(scope="module")
def scale(scale_run):
    """The scale preset's scenario: case A, seed 0, truthful bids."""
    return Scenario.from_settings(scale_run.system, scale_run.bid_config(), scale_run.seed)


def test_case118_is_embedded_with_its_size(case118):
    assert "case118" in EMBEDDED_CASES
    assert resolve_case_path("case118").parent.name == "cases"
    assert (len(case118.bus), len(case118.branch), len(case118.gen)) == (118, 186, 54)
    assert case118.reference_bus == 69
    assert case118.base_mva == 100.0
    assert case118.total_load_mw == pytest.approx(4242.0)


def _dc_flows(case, injection_mw: np.ndarray) -> np.ndarray:
    """A direct DC power flow, independent of the module: B theta = P / base (slack row and
    column removed), flow = base * (theta_f - theta_t) / (x * tap), tap 0 meaning 1."""
    pos = {b: i for i, b in enumerate(case.bus.BUS_I)}
    f = case.branch.F_BUS.map(pos).to_numpy()
    t = case.branch.T_BUS.map(pos).to_numpy()
    tap = np.where(case.branch.TAP.to_numpy() == 0, 1.0, case.branch.TAP.to_numpy())
    b = 1.0 / (case.branch.BR_X.to_numpy() * tap)
    n = len(pos)
    bmat = np.zeros((n, n))
    np.add.at(bmat, (f, f), b)
    np.add.at(bmat, (t, t), b)
    np.add.at(bmat, (f, t), -b)
    np.add.at(bmat, (t, f), -b)
    keep = np.flatnonzero(case.bus.BUS_I.to_numpy() != case.reference_bus)
    theta = np.zeros(n)
    theta[keep] = np.linalg.solve(bmat[np.ix_(keep, keep)], injection_mw[keep] / case.base_mva)
    return case.base_mva * b * (theta[f] - theta[t])


@pytest.mark.parametrize("seed", [0, 1])
def test_case118_ptdf_equals_a_direct_dc_power_flow(case118, seed):
    inj = np.random.default_rng(seed).normal(0.0, 50.0, len(case118.bus))
    slack = int(np.flatnonzero(case118.bus.BUS_I.to_numpy() == case118.reference_bus)[0])
    inj[slack] -= inj.sum()
    expected = _dc_flows(case118, inj)
    np.testing.assert_allclose(ptdf_matrix(case118) @ inj, expected, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(build_transmission(case118).flows(inj), expected,
                               rtol=1e-8, atol=1e-8)


def test_a_rating_by_name_rates_every_parallel_circuit(case118):
    net = build_transmission(case118, ratings_mw={"42-49": 77.0})
    names = net.line_names()
    parallel = [k for k, n in enumerate(names) if n == "42-49"]
    assert len(parallel) == 2
    assert (net.rating_mw[parallel] == 77.0).all()


def test_the_preset_is_case118_with_spread_feeders(scale_run):
    config = scale_run.system
    assert config.transmission_case == "case118"
    assert len(config.feeders) >= 20
    assert config.feeders == spread_feeders(20)
    assert len({f.bus for f in config.feeders}) == len(config.feeders)
    assert {f.case for f in config.feeders} == {"case69", "case141"}


def test_the_preset_builds_a_large_system_with_a_meaningful_base_state(scale):
    system, bids = scale.system, scale.bids
    assert len(system.feeders) >= 20 and len(bids) >= 1000
    assert len(system.transmission.buses) + sum(f.n_buses for f in system.feeders) > 2000
    assert set(bids.feeder[bids.level == "distribution"]) == {f.name for f in system.feeders}
    assert system.tso_need_mw > 0
    base = assess_base_state(system)
    over = base.elements[(base.elements.kind == "line") & (base.elements.excess_pct > 1e-4)]
    # every feeder has its tightened branch (a DSO need), and transmission is congested
    assert {f.name for f in system.feeders} <= set(over.network)
    assert (over.network == "transmission").any()


@pytest.mark.parametrize("scheme", ["common", "ml03"])
def test_the_preset_clears_and_is_assessed(scale, scheme):
    system, bids = scale.system, scale.bids
    result = Scheme(system, bids, ClearingConfig(scheme=scheme)).clear()
    report = assess(system, bids, result.activation_mw)
    for value in (result.cost_eur, result.unmet_need_mw, report.residual_need_mw,
                  report.max_congestion_pct, report.max_voltage_violation_pct):
        assert np.isfinite(value)
    assert isinstance(report.congestions, int) and isinstance(report.voltage_violations, int)
    assert result.unmet_need_mw == pytest.approx(0.0, abs=1e-6)
    assert result.activation_mw.sum() >= system.tso_need_mw - 1e-6


def test_spread_feeders_sizes_and_limits():
    for n in (5, 40):
        specs = spread_feeders(n)
        assert len(specs) == n and len({f.bus for f in specs}) == n
        assert len({f.name for f in specs}) == n
    assert SystemConfig(transmission_case="case118", feeders=spread_feeders(5)).feeders[0].name \
        == "case69_b1"
    with pytest.raises(FlexgameInputError, match="too few load buses"):
        spread_feeders(100)
