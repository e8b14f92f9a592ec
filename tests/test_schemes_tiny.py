"""Every coordination scheme on a tiny, hand-checkable system.

The system (written as MATPOWER files into a temporary directory):

* transmission: a 3-bus triangle, bus 1 the slack with the only generator, loads of 40 MW at
  bus 2 and 60 MW at bus 3, equal reactances; ratings are 10 x base flows, so transmission
  never binds here;
* one radial feeder ``feeder`` (buses 1 - 2 - 3, root 1) coupled at transmission bus 3, loads
  1 MW at bus 2 and 2 MW at bus 3, no reactive load, no DG, r = x = 0.001 p.u. on 10 MVA
  (voltages stay within 0.998..1.002 p.u., far from the 0.9 / 1.1 limits);
* base flows: 3 MW on branch 1-2, 2 MW on branch 2-3;
* ratings: 1-2 is 3 x 3 = 9 MW (never binds); 2-3 is tightened so that the market LPs allow
  exactly |P| <= 1.5 MW on it (Q = 0 throughout). Both feeder line-limit kinds are tested:
  "active" (|P| <= rating, rating 1.5 MW) and "apparent" (|S| <= rating, which the LPs replace
  by the inscribed 12-sided polygon: rating 1.5 / cos(pi/12) = 1.553 MVA). The MW outcomes are
  the same for both; only the ex-post excess in % of the rating differs. The base flow of 2 MW
  is congested: the DSO needs 0.5 MW upward below branch 2-3 (at bus 3);
* TSO need: 6 MW upward.

The bids (tan_phi = 0, one FSP each):

====  ============  =====  =========  ====  ===========
id    level         bus    direction  MW    EUR/MW
====  ============  =====  =========  ====  ===========
0  T  transmission  tx 2   up         10    50
1  D3 distribution  3      up         5     20 (cheap, below the congestion)
2  D2 distribution  2      up         3     30 (above the congestion)
3  Dd distribution  3      down       1     15
====  ============  =====  =========  ====  ===========

Upward activation at bus 3 relieves the forward congestion of 2-3 but, beyond 3.5 MW in total,
reverses the flow past the limit (2 - a3 >= -1.5). So D3 is cheap for everybody, yet the TSO,
blind to the feeder, would take all 5 MW of it: the schemes differ in how they stop that.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from flexgame.markets.bids import bid_table, distribution_bid, transmission_bid
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.grid_assessment import assess
from flexgame.markets.grid_state import BidEffects, GridState
from flexgame.markets.layouts import Grid, Interface, Offers, SchemeLayout, Stage
from flexgame.markets.schemes import SCHEME_OPTIONS, SCHEMES, build_scheme
from flexgame.markets.settlement import settle
from flexgame.markets.system import FeederSpec, SystemConfig, build_system

TX_CASE = """function mpc = tiny_tx
mpc.version = '2';
mpc.baseMVA = 100;
%% bus_i type Pd Qd Gs Bs area Vm Va baseKV zone Vmax Vmin
mpc.bus = [
\t1\t3\t0\t0\t0\t0\t1\t1\t0\t0\t1\t1.1\t0.9;
\t2\t1\t40\t0\t0\t0\t1\t1\t0\t0\t1\t1.1\t0.9;
\t3\t1\t60\t0\t0\t0\t1\t1\t0\t0\t1\t1.1\t0.9;
];
%% bus Pg Qg Qmax Qmin Vg mBase status Pmax Pmin
mpc.gen = [
\t1\t100\t0\t100\t-100\t1\t100\t1\t200\t0;
];
%% fbus tbus r x b rateA rateB rateC ratio angle status angmin angmax
mpc.branch = [
\t1\t2\t0.01\t0.1\t0\t0\t0\t0\t0\t0\t1\t-360\t360;
\t1\t3\t0.01\t0.1\t0\t0\t0\t0\t0\t0\t1\t-360\t360;
\t2\t3\t0.01\t0.1\t0\t0\t0\t0\t0\t0\t1\t-360\t360;
];
"""

FEEDER_CASE = """function mpc = tiny_feeder
mpc.version = '2';
mpc.baseMVA = 10;
%% bus_i type Pd Qd Gs Bs area Vm Va baseKV zone Vmax Vmin
mpc.bus = [
\t1\t3\t0\t0\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;
\t2\t1\t1\t0\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;
\t3\t1\t2\t0\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;
];
mpc.gen = [
\t1\t0\t0\t10\t-10\t1\t100\t1\t10\t0;
];
mpc.branch = [
\t1\t2\t0.001\t0.001\t0\t0\t0\t0\t0\t0\t1\t-360\t360;
\t2\t3\t0.001\t0.001\t0\t0\t0\t0\t0\t0\t1\t-360\t360;
];
"""

SIDES = 12  # ClearingConfig.polygon_sides default
P_LIMIT_23 = 1.5  # MW the polygon allows on branch 2-3
T, D3, D2, DD = 0, 1, 2, 3
TOL = 1e-6


@pytest.fixture(scope="module", params=["active", "apparent"])
def tiny(request, tmp_path_factory):
    """(system, bids) of the module docstring, for both feeder line-limit kinds."""
    shrink = math.cos(math.pi / SIDES) if request.param == "apparent" else 1.0
    folder = tmp_path_factory.mktemp("tiny_cases")
    tx_path, feeder_path = folder / "tiny_tx.m", folder / "tiny_feeder.m"
    tx_path.write_text(TX_CASE)
    feeder_path.write_text(FEEDER_CASE)
    config = SystemConfig(
        transmission_case=str(tx_path),
        feeders=[FeederSpec(str(feeder_path), 3, name="feeder")],
        dg_share=0.0,
        feeder_rating_factor=3.0,
        congested_branches={"feeder": ["2-3"]},
        congestion_factor=P_LIMIT_23 / shrink / 2.0,
        feeder_line_limit=request.param,
        tx_rating_factor=10.0,
        imbalance_mw=6.0,
    )
    system = build_system(config, direction="up")
    bids = bid_table([
        transmission_bid("T", 2, 10, 50),
        distribution_bid("D3", "feeder", 3, 5, 20),
        distribution_bid("D2", "feeder", 2, 3, 30),
        distribution_bid("Dd", "feeder", 3, 1, 15, "down"),
    ], system)
    return system, bids


def _clear(tiny, scheme, quantity=None, **options):
    system, bids = tiny
    result = build_scheme(system, bids, scheme, **options).clear(quantity=quantity)
    return result, assess(system, bids, result.activation_mw)


def _flow_23(tiny, activation):
    """Active flow on branch 2-3 after the activations [MW]: base 2 MW minus net up at bus 3."""
    return 2.0 - activation[D3] + activation[DD]


def _layer(result, name):
    (layer,) = [l for l in result.layers if l.name == name]
    return layer.outcome


def _congestion_pct(tiny, flow_mw):
    """Ex-post excess of branch 2-3 [% of its rating] at an active flow (Q = 0)."""
    rating = tiny[0].feeders[0].rating_mva[1]
    return 100.0 * (abs(flow_mw) - rating) / rating


def test_tiny_system_is_as_described(tiny):
    """The numbers the other docstrings rely on: need 6 MW up, branch 2-3 rated so that the
    LPs allow 1.5 MW, base flow 2 MW on it (33 % over a 1.5 MW active rating, 28.8 % over a
    1.553 MVA apparent rating)."""
    system, bids = tiny
    assert system.tso_need_mw == pytest.approx(6.0)
    (feeder,) = system.feeders
    assert feeder.branch_names() == ["1-2", "2-3"]
    shrink = math.cos(math.pi / SIDES) if system.feeder_line_limit == "apparent" else 1.0
    assert feeder.rating_mva[1] * shrink == pytest.approx(P_LIMIT_23)
    assert feeder.rating_mva[0] == pytest.approx(9.0)
    base = assess(system, bids, np.zeros(len(bids)))
    assert base.congestions == 1 and base.voltage_violations == 0
    assert base.max_congestion_pct == pytest.approx(_congestion_pct(tiny, 2.0), abs=1e-6)
    assert base.residual_need_mw == pytest.approx(6.0)


def test_common(tiny):
    """One LP over everything. Up at bus 3 is limited to 2 - a3 >= -1.5, i.e. a3 <= 3.5 MW.
    Cheapest 6 MW: D3 3.5 MW at 20 (70) + D2 2.5 MW at 30 (75) = 145 EUR; T (50) unused.
    Flow on 2-3 ends at -1.5 MW: safe (congestion relieved, no reverse overload)."""
    result, report = _clear(tiny, "common")
    np.testing.assert_allclose(result.activation_mw, [0.0, 3.5, 2.5, 0.0], atol=TOL)
    assert result.cost_eur == pytest.approx(145.0, abs=TOL)
    assert result.unmet_need_mw == pytest.approx(0.0, abs=TOL)
    assert report.grid_safe and report.residual_need_mw == pytest.approx(0.0, abs=TOL)


def test_fragmented(tiny):
    """DSO market (own bids only): the cheapest relief of 2-3 is D3 0.5 MW (10 EUR). With the
    free interface this lowers the TSO need to 5.5 MW, which the TSO, limited to transmission
    bids, buys from T at 50: 275 EUR. Total 285 EUR, safe, but dear: no forwarding."""
    result, report = _clear(tiny, "fragmented")
    np.testing.assert_allclose(_layer(result, "dso:feeder").activation_mw, [0, 0.5, 0, 0], atol=TOL)
    np.testing.assert_allclose(_layer(result, "tso").activation_mw, [5.5, 0, 0, 0], atol=TOL)
    assert result.cost_eur == pytest.approx(285.0, abs=TOL)
    assert report.grid_safe and report.residual_need_mw == pytest.approx(0.0, abs=TOL)


def test_ml01_forwards_blindly_and_violates(tiny):
    """DSO: D3 0.5 MW (10 EUR). Forwarded: D3 4.5 MW, D2 3 MW, Dd 1 MW. The TSO, blind to the
    feeder, covers the remaining 5.5 MW with D3 4.5 MW (90) + D2 1 MW (30). Total 130 EUR,
    cheaper than common (145), because it is not grid-safe: 2-3 carries 2 - 5 = -3 MW, twice
    the 1.5 MW the LPs allow (one congestion)."""
    result, report = _clear(tiny, "ml01")
    np.testing.assert_allclose(_layer(result, "tso").activation_mw, [0, 4.5, 1.0, 0], atol=TOL)
    np.testing.assert_allclose(result.activation_mw, [0, 5.0, 1.0, 0], atol=TOL)
    assert result.cost_eur == pytest.approx(130.0, abs=TOL)
    assert report.congestions == 1 and report.voltage_violations == 0
    assert report.max_congestion_pct == pytest.approx(_congestion_pct(tiny, -3.0), abs=1e-4)
    assert report.residual_need_mw == pytest.approx(0.0, abs=TOL)


def test_ml02_corrective_layer_fails_with_short_liquidity(tiny):
    """ml01 (130 EUR, 2-3 at -3 MW) + corrective DSO layer with the interface held: it must
    bring 2-3 to >= -1.5 MW from still-unused bids: down at bus 3 (Dd, 1 MW at 15) balanced by
    as much up at bus 2 (D2, 2 MW left, at 30). Only 1 MW of Dd exists: Dd 1 + D2 1 = 45 EUR,
    2-3 ends at -2 MW, still over its limit. Total 175 EUR, the violation is reported (by the
    layer's line slack of 0.5 MW and by the ex-post assessment), nothing crashes."""
    result, report = _clear(tiny, "ml02")
    corrective = _layer(result, "corrective:feeder")
    np.testing.assert_allclose(corrective.activation_mw, [0, 0, 1.0, 1.0], atol=TOL)
    assert corrective.line_slack == pytest.approx(0.5, abs=1e-6)
    assert corrective.interface_slack_mw == pytest.approx(0.0, abs=TOL)
    assert result.cost_eur == pytest.approx(175.0, abs=TOL)
    assert _flow_23(tiny, result.activation_mw) == pytest.approx(-2.0, abs=TOL)
    assert report.congestions == 1
    assert report.max_congestion_pct == pytest.approx(_congestion_pct(tiny, -2.0), abs=1e-4)
    assert report.residual_need_mw == pytest.approx(0.0, abs=TOL)


def test_ml02_corrective_layer_restores_safety_with_enough_liquidity(tiny):
    """As above with 2 MW of Dd offered: the corrective layer buys Dd 1.5 + D2 1.5 MW
    (1.5 x 15 + 1.5 x 30 = 67.5 EUR), 2-3 ends at exactly -1.5 MW. Total 130 + 67.5 = 197.5
    EUR, safe, and dearer than common (145)."""
    quantity = tiny[1].quantity_mw.to_numpy(float).copy()
    quantity[DD] = 2.0
    result, report = _clear(tiny, "ml02", quantity=quantity)
    np.testing.assert_allclose(_layer(result, "corrective:feeder").activation_mw,
                               [0, 0, 1.5, 1.5], atol=TOL)
    assert result.cost_eur == pytest.approx(197.5, abs=TOL)
    assert report.grid_safe and report.residual_need_mw == pytest.approx(0.0, abs=TOL)


def test_ml03_envelope_caps_the_forwarded_bid(tiny):
    """DSO: D3 0.5 MW, 2-3 at 1.5 MW. Envelope (up first, as the TSO need is up): reverse
    headroom of 2-3 is 1.5 + 1.5 = 3 MW, so D3 is capped from 4.5 to 3 MW; D2 (above 2-3) keeps
    3 MW; Dd would raise the forward flow that sits at its limit: capped to 0. Unqualified:
    up 1.5 of 7.5 MW = 20 %, down 100 %. TSO: D3 3 MW (60) + D2 2.5 MW (75). Total
    10 + 135 = 145 EUR = common, safe."""
    result, report = _clear(tiny, "ml03")
    np.testing.assert_allclose(_layer(result, "tso").activation_mw, [0, 3.0, 2.5, 0], atol=TOL)
    assert result.cost_eur == pytest.approx(145.0, abs=TOL)
    assert result.unqualified_up_pct == pytest.approx(20.0, abs=1e-4)
    assert result.unqualified_down_pct == pytest.approx(100.0, abs=1e-4)
    assert report.grid_safe and report.residual_need_mw == pytest.approx(0.0, abs=TOL)


def test_ml03_iterative_prequalification_drops_too_much(tiny):
    """Iterative method: full activation of the forwarded up bids (D3 4.5 + D2 3) overloads
    2-3 in reverse; dropping the dearest (D2) does not help, then D3 goes too: no up bid
    qualifies (100 %); Dd violates the forward limit: dropped (100 %). The TSO buys 5.5 MW of T
    (275). Total 10 + 275 = 285 EUR: safe but as dear as the fragmented market."""
    result, report = _clear(tiny, "ml03", prequalification="iterative")
    np.testing.assert_allclose(_layer(result, "tso").activation_mw, [5.5, 0, 0, 0], atol=TOL)
    assert result.cost_eur == pytest.approx(285.0, abs=TOL)
    assert result.unqualified_up_pct == pytest.approx(100.0, abs=1e-4)
    assert result.unqualified_down_pct == pytest.approx(100.0, abs=1e-4)
    assert report.grid_safe


def test_ml04_tso_sees_the_feeder(tiny):
    """DSO: D3 0.5 MW. The TSO market includes the feeder's LinDistFlow: it may add 3 MW of D3
    (up to -1.5 MW on 2-3) and 2.5 MW of D2. Total 10 + 60 + 75 = 145 EUR = common, safe."""
    result, report = _clear(tiny, "ml04")
    np.testing.assert_allclose(_layer(result, "tso").activation_mw, [0, 3.0, 2.5, 0], atol=TOL)
    assert result.cost_eur == pytest.approx(145.0, abs=TOL)
    assert report.grid_safe and report.residual_need_mw == pytest.approx(0.0, abs=TOL)


def test_ml05_tso_first_then_dso_cannot_repair(tiny):
    """TSO first, blind to the feeder, need 6 MW: D3 5 MW (100) + D2 1 MW (30) = 130; 2-3 at
    -3 MW. DSO with the interface held: as in ml02, Dd 1 + D2 1 MW = 45 EUR leaves 2-3 at
    -2 MW. Total 175 EUR, one congestion, need met."""
    result, report = _clear(tiny, "ml05")
    np.testing.assert_allclose(_layer(result, "tso").activation_mw, [0, 5.0, 1.0, 0], atol=TOL)
    np.testing.assert_allclose(_layer(result, "dso:feeder").activation_mw, [0, 0, 1.0, 1.0],
                               atol=TOL)
    assert result.cost_eur == pytest.approx(175.0, abs=TOL)
    assert report.congestions == 1
    assert report.max_congestion_pct == pytest.approx(_congestion_pct(tiny, -2.0), abs=1e-4)
    assert report.residual_need_mw == pytest.approx(0.0, abs=TOL)


def test_ml06_prequalified_tso_first(tiny):
    """Envelopes on the base state (2-3 at +2 MW): reverse headroom 2 + 1.5 = 3.5 MW caps D3 at
    3.5 MW (unqualified up 1.5 of 8 MW = 18.75 %); Dd would worsen the already violated
    forward limit: 0 (100 %). TSO: D3 3.5 (70) + D2 2.5 (75) = 145 EUR, leaving 2-3 at
    -1.5 MW; the DSO then has nothing to do. Total 145 EUR = common, safe."""
    result, report = _clear(tiny, "ml06")
    np.testing.assert_allclose(_layer(result, "tso").activation_mw, [0, 3.5, 2.5, 0], atol=TOL)
    np.testing.assert_allclose(_layer(result, "dso:feeder").activation_mw, 0.0, atol=1e-6)
    assert result.cost_eur == pytest.approx(145.0, abs=1e-5)
    assert result.unqualified_up_pct == pytest.approx(18.75, abs=1e-4)
    assert result.unqualified_down_pct == pytest.approx(100.0, abs=1e-4)
    assert report.grid_safe


def test_bid_aggregation_fine_steps(tiny):
    """Residual supply function of the feeder (net up s): feasible for 0.5 <= s <= 6.5 with
    cost 20 min(s, 3.5) + 30 max(s - 3.5, 0). Both delta = 0.25 (default) and delta = 1 have
    the step s = 6 on their grid: C(6) = 70 + 75 = 145 EUR, T unused. Total 145 EUR = common."""
    for delta in (0.25, 1.0):
        result, report = _clear(tiny, "bid_aggregation", delta_mw=delta)
        np.testing.assert_allclose(result.activation_mw, [0, 3.5, 2.5, 0], atol=TOL)
        assert result.cost_eur == pytest.approx(145.0, abs=TOL)
        assert report.grid_safe and report.residual_need_mw == pytest.approx(0.0, abs=TOL)


def test_bid_aggregation_coarse_steps(tiny):
    """delta = 0.8 MW: steps ..., 5.6, 6.4, ...; 6.4 over-supplies the 6 MW need (penalised).
    Step 5.6: C = 70 + 2.1 x 30 = 133, plus T 0.4 MW at 50 = 20: 153 EUR (vs 4.8: 109 + 60 =
    169). Total 153 EUR > common's 145: the granularity loss of a coarse delta."""
    result, report = _clear(tiny, "bid_aggregation", delta_mw=0.8)
    np.testing.assert_allclose(result.activation_mw, [0.4, 3.5, 2.1, 0], atol=TOL)
    assert result.cost_eur == pytest.approx(153.0, abs=TOL)
    assert report.grid_safe and report.residual_need_mw == pytest.approx(0.0, abs=TOL)


def test_settlement_rules_in_common(tiny):
    """Common clears D3 3.5 MW and D2 2.5 MW (see test_common).

    * pay_as_bid: D3 70, D2 75.
    * uniform (highest accepted up price, 30): D3 3.5 x 30 = 105, D2 75.
    * nodal: D2 is marginal at bus 2, LMP 30 (T at 50 is out of the money); D3 is limited by
      branch 2-3, so its DLMP is its own price 20: D3 70, D2 75.
    * vcg: C = 145. Without D2: D3 3.5 (70) + T 2.5 (125) = 195, so D2 gets
      195 - (145 - 75) = 125 (= 50 EUR/MW, T's price). Without D3 nothing relieves 2-3: D2 3
      (90) + T 3 (150) + 0.5 MW line slack x 1e5 (the line penalty) = 50240, so D3 gets
      50240 - (145 - 70) = 50165: pivotal for the DSO need, it earns the operators' penalty
      valuation.
    """
    system, bids = tiny
    scheme = build_scheme(system, bids, "common")
    result = scheme.clear()
    expected = {"pay_as_bid": [0, 70, 75, 0], "uniform": [0, 105, 75, 0],
                "nodal": [0, 70, 75, 0], "vcg": [0, 50165, 125, 0]}
    for rule, payment in expected.items():
        st = settle(scheme, result, rule)
        np.testing.assert_allclose(st.bid_payment_eur, payment, atol=1e-5, err_msg=rule)
        profit = st.fsp.set_index("fsp").profit_eur
        true_cost = np.array([0, 70, 75, 0])
        for fsp, b in (("T", T), ("D3", D3), ("D2", D2), ("Dd", DD)):
            assert profit[fsp] == pytest.approx(payment[b] - true_cost[b], abs=1e-5)


# --- statistics of a clearing -------------------------------------------------------------

def test_statistics_of_common(tiny):
    """Common clears D3 3.5 MW at 20 and D2 2.5 MW at 30 (see test_common): the joint operator
    pays 145 EUR; HHI of the one layer = 10000 ((3.5/6)^2 + (2.5/6)^2) = 10000 x 74/144."""
    system, bids = tiny
    stats = build_scheme(system, bids, "common").clear().statistics
    assert stats.cost().to_dict() == pytest.approx({"joint": 145.0}, abs=TOL)
    accepted = stats.accepted()
    assert list(accepted.index) == ["D2", "D3", "Dd", "T"]  # every FSP, sorted
    assert accepted.to_dict() == pytest.approx({"D2": 2.5, "D3": 3.5, "Dd": 0.0, "T": 0.0},
                                               abs=TOL)
    by_direction = stats.accepted(by_direction=True)
    assert list(by_direction.columns) == ["up", "down"]
    assert by_direction.loc["D3", "up"] == pytest.approx(3.5, abs=TOL)
    assert by_direction["down"].sum() == pytest.approx(0.0, abs=TOL)
    assert stats.hhi().to_dict() == pytest.approx({"common": 10000 * 74 / 144}, rel=1e-9)
    rows = stats.activations()
    assert list(zip(rows.fsp, rows.layer)) == [("D3", "common"), ("D2", "common")]
    paid = stats.payments("uniform")
    assert paid.loc["D3", "payment_eur"] == pytest.approx(105.0, abs=1e-5)  # 3.5 MW x 30
    assert paid.loc["D3", "profit_eur"] == pytest.approx(35.0, abs=1e-5)


def test_statistics_of_ml03(tiny):
    """ml03 (see test_ml03_envelope_caps_the_forwarded_bid): the DSO buys D3 0.5 MW (10 EUR),
    the TSO D3 3 MW + D2 2.5 MW (135 EUR). Offered: the DSO market all three feeder bids (up
    5 + 3 MW, down 1 MW); the TSO market T 10 MW, D3 capped to 3 MW, D2 3 MW, Dd capped to 0.
    HHI: 10000 in the DSO layer (one FSP), 10000 x (3^2 + 2.5^2) / 5.5^2 in the TSO layer."""
    system, bids = tiny
    scheme = build_scheme(system, bids, "ml03")
    stats = scheme.clear().statistics
    assert stats.cost().to_dict() == pytest.approx({"DSO:feeder": 10.0, "TSO": 135.0}, abs=TOL)
    liquidity = stats.liquidity()
    assert list(liquidity.index) == ["dso:feeder", "tso"]
    assert liquidity.loc["dso:feeder"].tolist() == ["DSO:feeder", 3, 8.0, 1.0]
    assert liquidity.loc["tso", "bids"] == 3
    assert liquidity.loc["tso", "up_mw"] == pytest.approx(16.0, abs=TOL)
    assert liquidity.loc["tso", "down_mw"] == pytest.approx(0.0, abs=TOL)
    hhi = stats.hhi()
    assert hhi["dso:feeder"] == pytest.approx(10000.0)
    assert hhi["tso"] == pytest.approx(10000 * (9 + 6.25) / 30.25, rel=1e-9)
    paid = stats.payments("pay_as_bid")
    assert paid.loc["D3", "payment_eur"] == pytest.approx(70.0, abs=1e-5)
    with pytest.raises(FlexgameInputError, match="scheme="):
        stats.payments("vcg")
    assert stats.payments("vcg", scheme).payment_eur.sum() > 0


# --- schemes as data ----------------------------------------------------------------------

def test_scheme_options_follow_the_layouts():
    """The options a scheme has come from its stages: interface and dso_model from DSO
    markets whose interface is held when fixed, prequalification from a prequalified stage,
    delta_mw from bid aggregation's residual supply, rho, tolerance_mw and max_iterations
    from I-DLFM's exchange."""
    assert list(SCHEMES) == ["common", "fragmented", "ml01", "ml02", "ml03", "ml04", "ml05",
                             "ml06", "bid_aggregation", "dso_blocking", "idlfm"]
    assert SCHEME_OPTIONS == {
        "interface": ("fragmented", "ml01", "ml02", "ml03", "ml04"),
        "dso_model": ("fragmented", "ml01", "ml02", "ml03", "ml04"),
        "prequalification": ("ml03", "ml06"),
        "envelope_weighting": ("ml03", "ml06"),
        "delta_mw": ("bid_aggregation",),
        "rho": ("idlfm",),
        "tolerance_mw": ("idlfm",),
        "max_iterations": ("idlfm",),
    }


@pytest.mark.parametrize("scheme, layers", [
    ("common", [("common", "joint")]),
    ("fragmented", [("dso:feeder", "DSO:feeder"), ("tso", "TSO")]),
    ("ml02", [("dso:feeder", "DSO:feeder"), ("tso", "TSO"),
              ("corrective:feeder", "DSO:feeder")]),
    ("ml05", [("tso", "TSO"), ("dso:feeder", "DSO:feeder")]),
    ("bid_aggregation", [("rsf:feeder", "DSO:feeder"), ("tso", "TSO")]),
    ("idlfm", [("dso:feeder", "DSO:feeder"), ("tso", "TSO")]),
])
def test_layers_and_operators_follow_the_stages(tiny, scheme, layers):
    system, bids = tiny
    result = build_scheme(system, bids, scheme).clear()
    assert [(l.name, l.operator) for l in result.layers] == layers
    assert [(r["layer"], r["operator"]) for r in result.offered] == layers


def test_a_new_scheme_is_one_entry(tiny, monkeypatch):
    """Adding a layout to SCHEMES is all a new scheme needs: here a TSO market of
    transmission bids alone (the DSOs do nothing), which buys the 6 MW from T at 50."""
    system, bids = tiny
    layout = SchemeLayout("tso_only", "the TSO alone", (
        Stage("tso", "TSO", Offers.TRANSMISSION, balance=True, ptdf=True),))
    monkeypatch.setitem(SCHEMES, "tso_only", layout)
    scheme = build_scheme(system, bids, "tso_only")
    result = scheme.clear()
    np.testing.assert_allclose(result.activation_mw, [6.0, 0, 0, 0], atol=TOL)
    assert result.cost_eur == pytest.approx(300.0, abs=TOL)
    assert scheme.layer("tso") is scheme.layers()[0].layer


def test_stage_declarations_are_checked():
    with pytest.raises(FlexgameInputError, match="per_feeder"):
        Stage("dso", "DSO", Offers.OWN_FEEDER)
    with pytest.raises(FlexgameInputError, match="DSO"):
        Stage("dso", "TSO", Offers.OWN_FEEDER, grid=Grid.OWN_FEEDER, per_feeder=True)
    with pytest.raises(FlexgameInputError, match="per_feeder"):
        Stage("tso", "TSO", Offers.ALL, interface=Interface.HELD)


# --- short reprs and a quiet solver -------------------------------------------------------

def test_reprs_are_one_short_line(tiny):
    """Every object of a clearing prints as one line with its essentials (a system's default
    repr was tens of kB)."""
    system, bids = tiny
    scheme = build_scheme(system, bids, "ml03")
    result = scheme.clear()
    layer = scheme.layer("tso")
    state = GridState.base(system)
    objects = [system, system.feeders[0], system.transmission, system.transmission.case,
               scheme, layer, layer.lp, result, result.layers[0], result.layers[0].outcome,
               assess(system, bids, result.activation_mw), state,
               BidEffects.of(system, bids), settle(scheme, result), scheme.stages[1].prequalification,
               result.statistics]
    for obj in objects:
        text = repr(obj)
        assert "\n" not in text and len(text) <= 250, (type(obj).__name__, len(text), text)
    assert repr(result) == ("ClearingResult(scheme='ml03', 2 layers, cost 145.00 EUR, "
                            "accepted 6.0 MW, unmet 0.00 MW)")


def test_highs_prints_nothing():
    """HiGHS prints a banner on stdout once per process unless its output is off before it
    starts: a fresh process that builds and solves an LP prints nothing."""
    code = ("from flexgame.markets.lp import CompiledLP\n"
            "lp = CompiledLP.from_arrays([1.0], [[1.0]], [1.0], [2.0], [0.0], [5.0])\n"
            "assert lp.solve().optimal\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout == ""
