"""Ex-post grid assessment: base state, flows after activation computed by hand, residual need,
voltage violations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flexgame.markets.system import SystemConfig, build_system

from flexgame.markets.bids import BID_COLUMNS
from flexgame.markets.grid_assessment import assess, assess_base_state


def _descendants(feeder, bus: int) -> list[int]:
    """Bus ``bus`` and every bus below it, from the parent array (not the subtree matrix)."""
    out, frontier = [bus], [bus]
    while frontier:
        frontier = [j for j in range(feeder.n_buses) if feeder.parent[j] in frontier]
        out += frontier
    return out


def _element(report, network, element, kind="line"):
    el = report.elements
    row = el[(el.network == network) & (el.element == element) & (el.kind == kind)]
    assert len(row) == 1
    return row.iloc[0]


def _synthetic_bids(feeder, bus_indices, direction, quantity_mw) -> pd.DataFrame:
    rows = [dict(resource=i, fsp=f"fsp{i}", level="distribution", feeder=feeder.name,
                 bus=int(feeder.buses[j]), tx_bus=feeder.coupling_bus, direction=direction,
                 quantity_mw=quantity_mw, cost_eur_per_mw=20.0, price_eur_per_mw=20.0,
                 tan_phi=0.0, critical=False)
            for i, j in enumerate(bus_indices)]
    return pd.DataFrame(rows)[BID_COLUMNS]


def test_zero_activation_equals_base_state(system, bids_a):
    base = assess_base_state(system)
    zero = assess(system, bids_a, np.zeros(len(bids_a)))
    pd.testing.assert_frame_equal(zero.elements, base.elements)
    assert (zero.congestions, zero.voltage_violations) == (base.congestions,
                                                          base.voltage_violations)
    assert zero.max_congestion_pct == base.max_congestion_pct
    assert zero.residual_need_mw == pytest.approx(system.tso_need_mw, abs=1e-9)
    assert not base.grid_safe


@pytest.mark.parametrize("feeder_name", ["case69", "case141"])
def test_up_activation_below_tightened_branch_relieves_it(system, bids_a, feeder_name):
    f = system.feeder(feeder_name)
    k = system.congested[feeder_name][0]
    below = _descendants(f, int(f.child[k]))
    assert sorted(below) == sorted(f.subtree_buses(k).tolist())
    below_ext = set(f.buses[below].tolist())
    chosen = ((bids_a.feeder == feeder_name) & (bids_a.direction == "up")
              & bids_a.bus.isin(below_ext)).to_numpy()
    assert chosen.sum() > 0
    activation = np.where(chosen, bids_a.quantity_mw, 0.0)

    # by hand: the branch carries the net demand below it, less what is activated up there
    net_p, _ = system.feeder_net_demand(f)
    p_base = net_p[below].sum()
    p_after = p_base - activation.sum()

    name = f.branch_names()[k]
    before = _element(assess_base_state(system), feeder_name, name)
    after_report = assess(system, bids_a, activation)
    after = _element(after_report, feeder_name, name)
    assert system.feeder_line_limit == "active"  # the default: limits on |P|
    assert before.value == pytest.approx(abs(p_base), rel=1e-9)
    assert after.value == pytest.approx(abs(p_after), rel=1e-9)
    assert after.value < before.value
    assert before.excess_pct > 0
    # enough flexibility there: the tightened branch is no longer congested
    assert after.value <= f.rating_mva[k]
    assert after_report.congestions < assess_base_state(system).congestions
    # up activation in the feeder covers part of the TSO need
    assert after_report.residual_need_mw == pytest.approx(
        system.tso_need_mw - activation.sum(), abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_residual_need_and_transmission_flows(system, bids_a, seed):
    rng = np.random.default_rng(seed)
    activation = rng.uniform(0, 1, len(bids_a)) * bids_a.quantity_mw.to_numpy()
    activation[rng.uniform(size=len(bids_a)) < 0.5] = 0.0
    up = (bids_a.direction == "up").to_numpy()
    report = assess(system, bids_a, activation)
    net_up = activation[up].sum() - activation[~up].sum()
    assert report.residual_need_mw == pytest.approx(system.tso_need_mw - net_up, abs=1e-9)

    # transmission flows by hand: every activation moves injection at its transmission bus
    tx = system.transmission
    inj = system.base_tx_injection()
    sign = np.where(up, 1.0, -1.0)
    for bus, value in zip(bids_a.tx_bus, sign * activation):
        inj[tx.bus_index(bus)] += value
    expected = np.abs(tx.ptdf @ inj)
    tx_rows = report.elements[report.elements.network == "transmission"]
    np.testing.assert_allclose(tx_rows.value.to_numpy(), expected, rtol=1e-9, atol=1e-9)
    assert list(tx_rows.element) == tx.line_names()


def test_down_activation_at_far_end_violates_voltage(system):
    f = system.feeder("case69")
    depth = f.subtree.T @ f.r_pu  # resistance from the root
    far = np.argsort(-depth)[:3]
    bids = _synthetic_bids(f, far, "down", 2.0)
    report = assess(system, bids, bids.quantity_mw.to_numpy())
    assert report.voltage_violations > 0
    assert report.max_voltage_violation_pct > 0
    # by hand: 6 MW more demand at the far end, LinDistFlow
    p, q = system.feeder_net_demand(f)
    p = p.copy()
    p[far] += 2.0
    v = f.solve(p, q).v_pu
    assert v.min() < f.v_min[v.argmin()]
    expected = 100.0 * np.max((f.v_min - v) / f.v_min)
    assert report.max_voltage_violation_pct == pytest.approx(expected, rel=1e-9)
    assert report.voltage_violations == int(np.sum(v < f.v_min * (1 - 1e-6)))
    # more demand never helps the TSO: the need grows by the activated 6 MW
    assert report.residual_need_mw == pytest.approx(system.tso_need_mw + 6.0, abs=1e-9)
    assert not report.grid_safe


def test_up_activation_at_far_end_raises_voltage_over_limit(system):
    f = system.feeder("case141")
    depth = f.subtree.T @ f.r_pu
    far = np.argsort(-depth)[:2]
    bids = _synthetic_bids(f, far, "up", 10.0)
    report = assess(system, bids, bids.quantity_mw.to_numpy())
    volts = report.elements[(report.elements.network == "case141")
                            & (report.elements.kind == "voltage")]
    over = volts[volts.value > volts.limit]
    assert len(over) > 0 and (over.excess_pct > 0).all()
    assert report.max_voltage_violation_pct == pytest.approx(over.excess_pct.max())
    assert report.voltage_violations == len(over)
    # partial activation scales linearly in squared voltage
    half = assess(system, bids, 0.5 * bids.quantity_mw.to_numpy())
    base = assess_base_state(system)

    def vsq(rep):
        el = rep.elements
        return el[(el.network == "case141") & (el.kind == "voltage")].value.to_numpy() ** 2

    np.testing.assert_allclose(vsq(half) - vsq(base), 0.5 * (vsq(report) - vsq(base)),
                               atol=1e-12)


def test_apparent_line_limits_are_judged_on_exact_apparent_power():
    """With feeder_line_limit="apparent" a feeder line's loading is |S| = hypot(P, Q) of the
    LinDistFlow flows, and its rating is set from the base |S|."""
    system = build_system(SystemConfig(feeder_line_limit="apparent"))
    report = assess_base_state(system)
    for f in system.feeders:
        p, q = system.feeder_net_demand(f)
        flow = f.solve(p, q)
        rows = report.elements[(report.elements.network == f.name)
                               & (report.elements.kind == "line")]
        np.testing.assert_allclose(rows.value.to_numpy(), np.hypot(flow.p_mw, flow.q_mvar))
        k = system.congested[f.name][0]
        assert f.rating_mva[k] == pytest.approx(SystemConfig().congestion_factor * flow.s_mva[k])
