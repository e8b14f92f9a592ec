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

import numpy as np
import pandas as pd
import pytest

from flexgame.markets.bids import BID_COLUMNS
from flexgame.markets.grid_assessment import assess
from flexgame.markets.schemes import build_scheme
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


def _bid(resource, fsp, level, feeder, bus, tx_bus, direction, mw, price):
    return dict(resource=resource, fsp=fsp, level=level, feeder=feeder, bus=bus, tx_bus=tx_bus,
                direction=direction, quantity_mw=float(mw), cost_eur_per_mw=float(price),
                price_eur_per_mw=float(price), tan_phi=0.0, critical=False)


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
    bids = pd.DataFrame([
        _bid(0, "T", "transmission", "", 2, 2, "up", 10, 50),
        _bid(1, "D3", "distribution", "feeder", 3, 3, "up", 5, 20),
        _bid(2, "D2", "distribution", "feeder", 2, 3, "up", 3, 30),
        _bid(3, "Dd", "distribution", "feeder", 3, 3, "down", 1, 15),
    ])[BID_COLUMNS]
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
      (90) + T 3 (150) + 0.5 MW line slack x 1e4 = 5240, so D3 gets 5240 - (145 - 70) = 5165:
      pivotal for the DSO need, it earns the operators' penalty valuation.
    """
    system, bids = tiny
    scheme = build_scheme(system, bids, "common")
    result = scheme.clear()
    expected = {"pay_as_bid": [0, 70, 75, 0], "uniform": [0, 105, 75, 0],
                "nodal": [0, 70, 75, 0], "vcg": [0, 5165, 125, 0]}
    for rule, payment in expected.items():
        st = settle(scheme, result, rule)
        np.testing.assert_allclose(st.bid_payment_eur, payment, atol=1e-5, err_msg=rule)
        profit = st.fsp.set_index("fsp").profit_eur
        true_cost = np.array([0, 70, 75, 0])
        for fsp, b in (("T", T), ("D3", D3), ("D2", D2), ("Dd", DD)):
            assert profit[fsp] == pytest.approx(payment[b] - true_cost[b], abs=1e-5)
