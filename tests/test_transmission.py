"""DC transmission model: PTDF against an independent DC power flow, ratings, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.markets.case_loading import load_case
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.transmission import build_transmission, ptdf_matrix


@pytest.fixture(scope="module")
def case14():
    return load_case("case14")


def _dc_power_flow(case, injection_mw: np.ndarray) -> np.ndarray:
    """Line flows [MW] of a direct DC power flow, written independently of the module:
    B theta = P / base with the slack's row and column removed, theta_slack = 0,
    flow = base * b (theta_f - theta_t), b = 1 / (x * tap), tap 0 meaning 1."""
    bus_ids = list(case.bus.BUS_I)
    n = len(bus_ids)
    pos = {b: i for i, b in enumerate(bus_ids)}
    lines = []
    bmat = np.zeros((n, n))
    for _, br in case.branch.iterrows():
        tap = br.TAP if br.TAP != 0 else 1.0
        b = 1.0 / (br.BR_X * tap)
        f, t = pos[int(br.F_BUS)], pos[int(br.T_BUS)]
        bmat[f, f] += b
        bmat[t, t] += b
        bmat[f, t] -= b
        bmat[t, f] -= b
        lines.append((f, t, b))
    slack = pos[int(case.bus.BUS_I[case.bus.BUS_TYPE == 3].iloc[0])]
    keep = [i for i in range(n) if i != slack]
    theta = np.zeros(n)
    theta[keep] = np.linalg.solve(bmat[np.ix_(keep, keep)], injection_mw[keep] / case.base_mva)
    return np.array([case.base_mva * b * (theta[f] - theta[t]) for f, t, b in lines])


def _balanced_injections(case, rng) -> np.ndarray:
    inj = rng.normal(0.0, 50.0, len(case.bus))
    slack = int(np.flatnonzero(case.bus.BUS_TYPE.to_numpy() == 3)[0])
    inj[slack] -= inj.sum()
    return inj


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_ptdf_flows_equal_dc_power_flow(case14, seed):
    inj = _balanced_injections(case14, np.random.default_rng(seed))
    assert abs(inj.sum()) < 1e-9
    expected = _dc_power_flow(case14, inj)
    net = build_transmission(case14)
    np.testing.assert_allclose(net.flows(inj), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ptdf_matrix(case14) @ inj, expected, rtol=1e-9, atol=1e-9)


def test_dc_flow_conserves_power_at_every_bus(case14):
    """Kirchhoff's current law: injection = outgoing minus incoming flows at each bus."""
    inj = _balanced_injections(case14, np.random.default_rng(7))
    flows = build_transmission(case14).flows(inj)
    pos = {b: i for i, b in enumerate(case14.bus.BUS_I)}
    balance = np.zeros(len(inj))
    for flow, f, t in zip(flows, case14.branch.F_BUS, case14.branch.T_BUS):
        balance[pos[f]] += flow
        balance[pos[t]] -= flow
    np.testing.assert_allclose(balance, inj, atol=1e-8)


def test_taps_enter_the_susceptance(case14):
    """case14 has tap-changing transformers; ignoring them must change the flows (so the
    test above really exercises b = 1 / (x * tap))."""
    assert (case14.branch.TAP.to_numpy() != 0).any()
    inj = _balanced_injections(case14, np.random.default_rng(0))
    no_tap = load_case("case14")
    no_tap.branch["TAP"] = 0.0
    assert not np.allclose(_dc_power_flow(no_tap, inj), _dc_power_flow(case14, inj))


def test_slack_column_of_ptdf_is_zero(case14):
    ptdf = ptdf_matrix(case14)
    slack = int(np.flatnonzero(case14.bus.BUS_I.to_numpy() == case14.reference_bus)[0])
    assert np.all(ptdf[:, slack] == 0.0)
    assert ptdf.shape == (len(case14.branch), len(case14.bus))
    # a non-slack column is not zero: injecting there moves power
    assert np.abs(ptdf[:, slack + 1]).max() > 0.1


@pytest.mark.parametrize("factor, floor", [(1.5, 10.0), (2.0, 30.0), (0.5, 0.0)])
def test_ratings_are_factor_times_base_flow_floored(case14, factor, floor):
    buses = case14.bus.BUS_I.to_numpy()
    inj = -case14.bus.PD.to_numpy().copy()
    for bus, pg in zip(case14.gen.GEN_BUS, case14.gen.PG):
        inj[np.flatnonzero(buses == bus)[0]] += pg
    slack = int(np.flatnonzero(case14.bus.BUS_TYPE.to_numpy() == 3)[0])
    inj[slack] -= inj.sum()
    base_flow = _dc_power_flow(case14, inj)
    net = build_transmission(case14, rating_factor=factor, min_rating_mw=floor)
    expected = np.maximum(factor * np.abs(base_flow), floor)
    np.testing.assert_allclose(net.rating_mw, expected, rtol=1e-9, atol=1e-9)
    if floor == 30.0:  # some lines carry little base flow and are floored
        assert np.any(net.rating_mw == floor) and np.any(net.rating_mw > floor)


def test_explicit_rating_overrides_one_line(case14):
    default = build_transmission(case14)
    net = build_transmission(case14, ratings_mw={"2-3": 123.0})
    names = net.line_names()
    assert net.rating_mw[names.index("2-3")] == 123.0
    others = [i for i, n in enumerate(names) if n != "2-3"]
    np.testing.assert_array_equal(net.rating_mw[others], default.rating_mw[others])


@pytest.mark.parametrize("factor", [-1.5, 0.0])
def test_non_positive_rating_factor_rejected(case14, factor):
    with pytest.raises(FlexgameInputError) as err:
        build_transmission(case14, rating_factor=factor)
    assert "rating_factor" in str(err.value) and str(factor) in str(err.value)


def test_negative_min_rating_rejected(case14):
    with pytest.raises(FlexgameInputError, match=r"min_rating_mw=-5"):
        build_transmission(case14, min_rating_mw=-5.0)


@pytest.mark.parametrize("value", [-20.0, 0.0])
def test_non_positive_explicit_rating_rejected(case14, value):
    with pytest.raises(FlexgameInputError) as err:
        build_transmission(case14, ratings_mw={"1-2": value})
    assert "'1-2'" in str(err.value) and str(value) in str(err.value)


def test_unknown_line_in_ratings_rejected(case14):
    with pytest.raises(FlexgameInputError) as err:
        build_transmission(case14, ratings_mw={"1-14": 50.0})
    message = str(err.value)
    assert "'1-14'" in message
    assert "1-2" in message and "13-14" in message  # lists the existing lines


def test_unknown_bus_index_rejected(case14):
    net = build_transmission(case14)
    with pytest.raises(FlexgameInputError, match=r"\b99\b"):
        net.bus_index(99)
