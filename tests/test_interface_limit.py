"""A restrictive TSO-DSO interface (SystemConfig.interface_limit_share / interface_limit_mw),
hand-checked on the tiny system of :mod:`tiny_market` (ALEXANDER D4.1 KER 2: congestion at
the TSO-DSO interface creates local market power).

The tiny feeder draws 3 MW from transmission bus 3 in its base state (loads 1 MW at bus 2 and
2 MW at bus 3, no DG); its branch ratings are 100 x base flows, so only the interface binds.
The transmission grid never binds either.

Upward TSO need of 2 MW, interface limit 2.5 MW: the base state draws 0.5 MW too much (a
congestion 20 % over the limit), and only upward flexibility inside the feeder (less draw)
relieves it: the DSO needs 0.5 MW up. Bids (one FSP each):

====  ============  =====  =========  ====  ======
id    level         bus    direction  MW    EUR/MW
====  ============  =====  =========  ====  ======
0  T  transmission  tx 2   up         10    10
1  D3 distribution  3      up         2     20
2  D2 distribution  2      up         2     30
====  ============  =====  =========  ====  ======

A scheme that respects the limit buys D3 0.5 MW (10 EUR) for the DSO and T 1.5 MW (15 EUR)
for the rest of the TSO need: 25 EUR, grid-safe. A scheme blind to it buys the cheapest 2 MW,
T (20 EUR), and leaves the interface congested.
"""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.markets.bids import bid_table, distribution_bid, transmission_bid
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.grid_assessment import assess, assess_base_state
from flexgame.markets.grid_state import GridState
from flexgame.markets.prequalification import Prequalification
from flexgame.markets.schemes import SCHEMES, build_scheme
from flexgame.markets.system import FeederSpec, SystemConfig, build_system
from tiny_market import COUPLING_BUS, FEEDER, write_cases

BASE_DRAW_MW = 3.0
TOL = 1e-6
T, D3, D2 = 0, 1, 2
RELIEVED = [1.5, 0.5, 0.0]  # T, D3, D2 [MW]: the DSO's 0.5 MW of D3, the rest of the need from T
BLIND = [2.0, 0.0, 0.0]  # the cheapest 2 MW, blind to the interface


def tiny_config(folder, limit_mw: float | None, need_mw: float) -> SystemConfig:
    """The tiny system of :mod:`tiny_market` (uncongested feeder lines) with an interface
    limit of ``limit_mw`` [MW] (None: no limit)."""
    tx_path, feeder_path = write_cases(folder)
    return SystemConfig(
        transmission_case=str(tx_path),
        feeders=[FeederSpec(str(feeder_path), COUPLING_BUS, name=FEEDER)],
        dg_share=0.0, congested_branches_per_feeder=0, imbalance_mw=need_mw,
        tx_rating_factor=100.0, feeder_rating_factor=100.0,
        interface_limit_mw={} if limit_mw is None else {FEEDER: limit_mw},
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(system, bids) of the module docstring: limit 2.5 MW, upward need 2 MW."""
    system = build_system(tiny_config(tmp_path_factory.mktemp("iface"), 2.5, 2.0))
    bids = bid_table([transmission_bid("T", 2, 10, 10),
                      distribution_bid("D3", FEEDER, 3, 2, 20),
                      distribution_bid("D2", FEEDER, 2, 2, 30)], system)
    return system, bids


def _interface(report):
    el = report.elements
    (row,) = el[(el.network == FEEDER) & (el.element == "interface")].itertuples()
    return row


def _clear(tiny, scheme, **options):
    system, bids = tiny
    result = build_scheme(system, bids, scheme, **options).clear()
    return result, assess(system, bids, result.activation_mw)


def test_base_state_congests_the_interface(tiny):
    """3 MW drawn against 2.5 MW: one congestion (kind line), 20 % over the limit."""
    system, bids = tiny
    (feeder,) = system.feeders
    assert system.base_interface_mw()[FEEDER] == pytest.approx(BASE_DRAW_MW)
    assert feeder.interface_limit_mw == 2.5 and feeder.has_interface_limit
    report = assess_base_state(system)
    row = _interface(report)
    assert (row.kind, row.value, row.limit) == ("line", pytest.approx(3.0), 2.5)
    assert row.excess_pct == pytest.approx(20.0)
    assert report.congestions == 1 and report.max_congestion_pct == pytest.approx(20.0)
    assert "interface 3.00 MW (limit 2.50 MW)" in system.summary()


def test_without_a_limit_nothing_is_checked(tmp_path):
    """No limit (the default): no interface element, no interface rows in the layers."""
    system = build_system(tiny_config(tmp_path, None, 2.0))
    assert not system.feeders[0].has_interface_limit
    assert "interface" not in set(assess_base_state(system).elements.element)
    assert "(limit" not in system.summary()


@pytest.mark.parametrize("scheme", ["common", "fragmented", "ml01", "ml02", "ml03", "ml04",
                                    "bid_aggregation"])
def test_schemes_that_respect_the_limit_relieve_it(tiny, scheme):
    """Free interface (default): the DSO market (or the common market, or bid aggregation's
    residual supply, whose steps below 0.5 MW net up are priced out) buys D3 0.5 MW at 20;
    the TSO takes the remaining 1.5 MW from T at 10: 25 EUR, grid-safe."""
    result, report = _clear(tiny, scheme)
    np.testing.assert_allclose(result.activation_mw, RELIEVED, atol=TOL)
    assert result.cost_eur == pytest.approx(25.0, abs=TOL)
    assert report.grid_safe and report.residual_need_mw == pytest.approx(0.0, abs=TOL)
    assert _interface(report).value == pytest.approx(2.5)


@pytest.mark.parametrize("scheme", ["ml05", "ml06"])
def test_tso_first_schemes_leave_the_interface_congested(tiny, scheme):
    """ml05 / ml06: the TSO market (prequalification only caps bids, it does not create a
    need) buys the cheapest 2 MW, T; the DSO market then holds its interface flow, so no
    activation of it can change the 3 MW drawn: its line slack is the 0.5 MW excess, and the
    ex-post assessment reports the interface congestion (20 %)."""
    result, report = _clear(tiny, scheme)
    np.testing.assert_allclose(result.activation_mw, BLIND, atol=TOL)
    assert result.cost_eur == pytest.approx(20.0, abs=TOL)
    (dso,) = [l.outcome for l in result.layers if l.name == f"dso:{FEEDER}"]
    assert dso.line_slack == pytest.approx(0.5, abs=TOL)
    assert report.congestions == 1 and report.max_congestion_pct == pytest.approx(20.0)
    assert report.residual_need_mw == pytest.approx(0.0, abs=TOL)


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if "interface" in SCHEMES[s].options])
def test_fixed_interface(tiny, scheme):
    """interface=fixed: the DSO market must keep its interface flow, so relieving the
    interface costs a held-interface slack (1e4 EUR/MW) instead of a line slack (1e4 EUR/MW)
    plus D3's price: it leaves the congestion. Only ml04's TSO market, which sees the
    feeder's limits, relieves it (25 EUR, safe); fragmented, ml01, ml02 and ml03 buy T 2 MW
    and report the congestion."""
    result, report = _clear(tiny, scheme, interface="fixed")
    if scheme == "ml04":
        np.testing.assert_allclose(result.activation_mw, RELIEVED, atol=TOL)
        assert report.grid_safe
    else:
        np.testing.assert_allclose(result.activation_mw, BLIND, atol=TOL)
        assert report.congestions == 1 and report.max_congestion_pct == pytest.approx(20.0)


def test_layers_include_the_limit_where_they_include_the_feeder(tiny):
    system, bids = tiny
    scheme = build_scheme(system, bids, "ml04")
    assert "interface limit of feeder" in repr(scheme.layer("tso"))
    assert "interface limit of feeder" in repr(scheme.layer(f"dso:{FEEDER}"))
    assert "interface limit" not in repr(build_scheme(system, bids, "ml01").layer("tso"))


# --- a downward need: the limit caps how much more the feeder may draw -----------------------

@pytest.fixture(scope="module")
def tiny_down(tmp_path_factory):
    """Limit 3.5 MW (0.5 MW above the base draw), downward TSO need of 2 MW; bids: T down
    10 MW at 10 EUR/MW at transmission bus 2, Dd down 2 MW at 5 EUR/MW at feeder bus 3 (more
    draw)."""
    system = build_system(tiny_config(tmp_path_factory.mktemp("iface_down"), 3.5, 2.0),
                          direction="down")
    bids = bid_table([transmission_bid("T", 2, 10, 10, "down"),
                      distribution_bid("Dd", FEEDER, 3, 2, 5, "down")], system)
    return system, bids


def test_prequalification_caps_at_the_interface_headroom(tiny_down):
    """Base draw 3 MW, limit 3.5 MW: a downward MW raises the draw by 1 MW, so the envelope
    caps Dd at the 0.5 MW of headroom; the iterative method drops it (its full 2 MW would
    overload the interface)."""
    system, bids = tiny_down
    state, available = GridState.base(system), bids.quantity_mw.to_numpy(float)
    price = bids.price_eur_per_mw.to_numpy(float)
    for method, cap in (("envelope", 0.5), ("iterative", 0.0)):
        pq = Prequalification(system, bids, method, "price", 12)
        np.testing.assert_allclose(pq.caps(state, price, available, "down"), [10.0, cap],
                                   atol=TOL, err_msg=method)


@pytest.mark.parametrize("scheme, expected, safe", [
    ("common", [1.5, 0.5], True), ("ml03", [1.5, 0.5], True), ("ml04", [1.5, 0.5], True),
    ("ml06", [1.5, 0.5], True), ("bid_aggregation", [1.5, 0.5], True),
    ("fragmented", [2.0, 0.0], True), ("ml01", [0.0, 2.0], False), ("ml02", [0.0, 2.0], False),
    ("ml05", [0.0, 2.0], False),
])
def test_downward_need(tiny_down, scheme, expected, safe):
    """Schemes that respect the limit buy Dd 0.5 MW (2.5 EUR) and T 1.5 MW (15 EUR); the
    fragmented TSO market has only T (20 EUR); the TSO markets of ml01, ml02 and ml05, blind
    to the feeder, buy all of Dd (10 EUR): the feeder then draws 5 MW, 42.9 % over its limit,
    and a DSO market with its interface held (ml02's corrective one, ml05's) cannot lower it."""
    system, bids = tiny_down
    result = build_scheme(system, bids, scheme).clear()
    report = assess(system, bids, result.activation_mw)
    np.testing.assert_allclose(result.activation_mw, expected, atol=TOL)
    assert report.residual_need_mw == pytest.approx(0.0, abs=TOL)
    assert report.grid_safe is safe
    if not safe:
        assert _interface(report).value == pytest.approx(5.0)
        assert report.max_congestion_pct == pytest.approx(100 * 1.5 / 3.5)


# --- the default system and the options ---------------------------------------------------

def test_share_congests_both_default_interfaces():
    """interface_limit_share=0.9 on the default system: both feeders draw more than 90 % of
    their base flow, so the base state adds 2 interface congestions, each 1/0.9 - 1 = 11.1 %
    over its limit, to the tightened branches' congestions."""
    default = assess_base_state(build_system())
    system = build_system(SystemConfig(interface_limit_share=0.9))
    report = assess_base_state(system)
    el = report.elements
    over = el[(el.element == "interface") & (el.excess_pct > 1e-4)]
    assert list(over.network) == ["case69", "case141"]
    np.testing.assert_allclose(over.excess_pct, 100 * (1 / 0.9 - 1), rtol=1e-9)
    assert report.congestions == default.congestions + 2
    for f in system.feeders:
        assert f.interface_limit_mw == pytest.approx(0.9 * system.base_interface_mw()[f.name])


def test_explicit_limit_overrides_the_share():
    system = build_system(SystemConfig(interface_limit_share=0.9,
                                       interface_limit_mw={"case69": 100.0}))
    limits = {f.name: f.interface_limit_mw for f in system.feeders}
    assert limits["case69"] == 100.0
    assert limits["case141"] == pytest.approx(0.9 * system.base_interface_mw()["case141"])


@pytest.mark.parametrize("options, message", [
    (dict(interface_limit_share=0.0), "interface_limit_share=0.0 is out of range"),
    (dict(interface_limit_share=-1.0), "interface_limit_share=-1.0 is out of range"),
    (dict(interface_limit_mw={"case69": 0.0}), "needs limits > 0 MW \\(feeder 'case69'\\)"),
    (dict(interface_limit_mw={"nowhere": 1.0}), "interface_limit_mw names unknown feeders"),
])
def test_bad_limits_are_named(options, message):
    with pytest.raises(FlexgameInputError, match=message):
        build_system(SystemConfig(**options))


def test_default_changes_nothing(system):
    """No limit by default: no feeder has one, and the base state has no interface element."""
    assert SystemConfig().interface_limit_share is None and SystemConfig().interface_limit_mw == {}
    assert not any(f.has_interface_limit for f in system.feeders)
    assert "interface" not in set(assess_base_state(system).elements.element)


@pytest.mark.parametrize("d3_price, d2_mw, expected, cost", [
    (29.0, 2.0, RELIEVED, 1.5 * 10 + 0.5 * 29),  # D3 still below its competitor D2 (30)
    (31.0, 2.0, [1.5, 0.0, 0.5], 1.5 * 10 + 0.5 * 30),  # above it: D2 relieves instead
    (5000.0, 0.0, RELIEVED, 1.5 * 10 + 0.5 * 5000),  # alone in the feeder: pivotal
])
def test_interface_congestion_gives_local_market_power(tiny, d3_price, d2_mw, expected, cost):
    """The 0.5 MW the interface needs can only come from inside the feeder (ALEXANDER D4.1
    KER 2: congestion at the TSO-DSO interface creates local market power). With D2 in the
    feeder, D3 can raise its price up to D2's 30 EUR/MW and keep the activation; alone, it
    is pivotal: the common market buys it at any price below the line penalty (1e4 EUR/MW)."""
    system, bids = tiny
    price = bids.price_eur_per_mw.to_numpy(float).copy()
    quantity = bids.quantity_mw.to_numpy(float).copy()
    price[D3], quantity[D2] = d3_price, d2_mw
    result = build_scheme(system, bids, "common").clear(price=price, quantity=quantity)
    np.testing.assert_allclose(result.activation_mw, expected, atol=TOL)
    assert result.cost_eur == pytest.approx(cost, abs=TOL)
    assert assess(system, bids, result.activation_mw).grid_safe
