"""I-DLFM (FLEXGRID D5.1 §2.4; :mod:`flexgame.markets.idlfm`): the TSO and the DSOs exchange
only interface prices and flows (ADMM) and reach the common market's cost.

The tiny system is :mod:`tiny_market`'s congested variant: one feeder at transmission bus 3
whose branch 2-3 allows 1.5 MW against a base flow of 2 MW (the DSO needs 0.5 MW up at feeder
bus 3), and the bids of tests/test_schemes_tiny.py: T (transmission bus 2, 10 MW up at 50),
D3 (feeder bus 3, 5 MW up at 20), D2 (feeder bus 2, 3 MW up at 30), Dd (feeder bus 3, 1 MW
down at 15). Upward activation at bus 3 beyond 3.5 MW reverses the flow on 2-3 past its limit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tiny_market import bid_table, feeder_bid, tiny_system, tx_bid

from flexgame.experiments.evaluation import clearing_config
from flexgame.markets.bids import BidConfig, direction_sign, generate_bids
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.grid_assessment import assess
from flexgame.markets.idlfm import IDLFMStage, exchange_of
from flexgame.markets.schemes import ClearingConfig, build_scheme

T, D3, D2, DD = 0, 1, 2, 3
REL = 1e-4  # the brief's agreement with the common market's cost


def _tiny(folder, need_mw):
    system = tiny_system(folder, need_mw, congested=True)
    bids = bid_table([tx_bid("T", 2, 10, 50), feeder_bid("D3", 3, 5, 20),
                      feeder_bid("D2", 2, 3, 30), feeder_bid("Dd", 3, 1, 15, "down")], system)
    return system, bids


def _both(system, bids, **options):
    common = build_scheme(system, bids, "common").clear()
    result = build_scheme(system, bids, "idlfm", **options).clear()
    return common, result


@pytest.mark.parametrize("need_mw, cost, price, delivered", [
    # the feeder delivers all 6 MW: D3 up to the 2-3 limit (3.5 MW), then D2 (marginal, 30)
    (6.0, 3.5 * 20 + 2.5 * 30, 30.0, 6.0),
    # the feeder's 6.5 MW are not enough: T sets the price at the interface (50)
    (10.0, 3.5 * 20 + 3 * 30 + 3.5 * 50, 50.0, 6.5),
])
def test_tiny_system_reaches_the_common_market(tmp_path, need_mw, cost, price, delivered):
    """Hand-checked: I-DLFM's cost is common's, the agreed interface flow is what the common
    market takes from the feeder, and the interface price is the marginal bid's."""
    system, bids = _tiny(tmp_path, need_mw)
    common, result = _both(system, bids)
    assert common.cost_eur == pytest.approx(cost, abs=1e-6)
    assert result.cost_eur == pytest.approx(common.cost_eur, rel=REL)
    np.testing.assert_allclose(result.activation_mw, common.activation_mw, atol=1e-5)
    ex = exchange_of(result)
    assert ex.status == "converged" and ex.converged
    assert ex.feeders == ("feeder",)
    assert ex.net_activation_mw[0] == pytest.approx(delivered, abs=1e-5)
    assert ex.interface_price_eur_per_mw[0] == pytest.approx(price, abs=1e-3)
    # the feeder drew 3 MW (1 + 2 MW of load) and now draws 3 MW less than it delivers
    assert ex.interface_flow_mw[0] == pytest.approx(3.0 - delivered, abs=1e-5)
    report = assess(system, bids, result.activation_mw)
    assert report.grid_safe and report.residual_need_mw == pytest.approx(0.0, abs=1e-6)


def test_a_price_at_the_unmet_need_penalty_is_reached_in_few_rounds(tmp_path):
    """Need 30 MW against 16.5 MW deliverable (T 10, the feeder 6.5): the common market leaves
    13.5 MW unmet, so the interface price is the unmet-need penalty, which the price climbs to
    by rho x (the mismatch) per round. With rho fixed at 20 EUR/MW^2 that took 39 rounds;
    balancing rho between the residuals (doubling it while the DSO cannot move) took 8."""
    system, bids = _tiny(tmp_path, 30.0)
    common, result = _both(system, bids)
    assert common.cost_eur == pytest.approx(3.5 * 20 + 3 * 30 + 10 * 50, abs=1e-6)
    assert common.unmet_need_mw == pytest.approx(13.5, abs=1e-6)
    assert result.cost_eur == pytest.approx(common.cost_eur, rel=REL)
    assert result.unmet_need_mw == pytest.approx(common.unmet_need_mw, abs=1e-5)
    ex = exchange_of(result)
    assert ex.converged and ex.iterations <= 20
    penalty = ClearingConfig().penalties.unmet_need
    assert ex.interface_price_eur_per_mw[0] == pytest.approx(penalty, rel=1e-6)


def test_one_round_is_reported_not_converged(tmp_path):
    """max_iterations=1, rho=20 EUR/MW^2, need 6 MW, hand-computed first round from
    x = y = u = 0: the TSO takes x = 50 / rho = 2.5 MW from the feeder (min 50 (6 - x) +
    10 x^2); the DSO, centred at 2.5, offers y = 2.5 - 20 / rho = 1.5 MW from D3 (min 20 y +
    10 (y - 2.5)^2; 1.5 MW also relieves branch 2-3). Residuals: 1 MW apart, y moved by 1.5
    MW (30 EUR/MW), price rho u = 20 EUR/MW. The result is then the DSO market at 1.5 MW
    (D3, 30 EUR) and the TSO market for the other 4.5 MW (T, 225 EUR): consistent and safe,
    dearer than common (145 EUR), and marked not converged."""
    system, bids = _tiny(tmp_path, 6.0)
    common, result = _both(system, bids, rho=20.0, max_iterations=1)
    ex = exchange_of(result)
    assert ex.status == "not converged" and not ex.converged
    assert ex.iterations == 1
    assert ex.primal_residual_mw == pytest.approx(1.0, abs=1e-6)
    assert ex.dual_residual_eur_per_mw == pytest.approx(30.0, abs=1e-4)
    assert ex.interface_price_eur_per_mw[0] == pytest.approx(20.0, abs=1e-4)
    np.testing.assert_allclose(result.activation_mw, [4.5, 1.5, 0, 0], atol=1e-6)
    assert result.cost_eur == pytest.approx(255.0, abs=1e-4) and result.cost_eur > common.cost_eur
    assert assess(system, bids, result.activation_mw).grid_safe


@pytest.fixture(scope="module", params=["A", "B", "C", "D"])
def case(request):
    """(case, system, bids): truthful bids of a D3.3 case on the default system, seed 0 (case
    D's need is downward)."""
    cfg = BidConfig(case=request.param)
    system = request.getfixturevalue("system_down" if cfg.direction == "down" else "system")
    return request.param, system, generate_bids(system, cfg, np.random.default_rng(0))


def test_default_system_reaches_the_common_market(case):
    """Cases A-D on the default system (two feeders): common's cost within 1e-4, grid-safe
    and the need met wherever common is, the residuals within the tolerance, every interface
    price the same where the transmission grid is not congested (one marginal price)."""
    name, system, bids = case
    common, result = _both(system, bids)
    assert result.cost_eur == pytest.approx(common.cost_eur, rel=REL)
    ex = exchange_of(result)
    assert ex.converged and ex.iterations < ClearingConfig().max_iterations
    assert ex.primal_residual_mw <= ex.tolerance_mw
    assert ex.dual_residual_eur_per_mw <= ex.rho * ex.tolerance_mw
    report, common_report = (assess(system, bids, r.activation_mw) for r in (result, common))
    if common_report.grid_safe:
        assert report.grid_safe, name
    assert abs(report.residual_need_mw) <= abs(common_report.residual_need_mw) + 1e-6
    # the DSO layers deliver the agreed flows; the TSO layer (transmission bids) the rest
    sign = direction_sign(bids)
    dso = {l.name: l.outcome for l in result.layers if l.operator.startswith("DSO:")}
    for f, y in zip(ex.feeders, ex.net_activation_mw):
        assert sign @ dso[f"dso:{f}"].activation_mw == pytest.approx(y, abs=1e-6)
    (tso,) = [l.outcome for l in result.layers if l.operator == "TSO"]
    assert (bids.level.to_numpy()[tso.activation_mw > 0] == "transmission").all()


@pytest.mark.parametrize("name", ["A", "C"])
def test_illiquid_markets_reach_the_common_market(system, name):
    """60 % of the bids offering (drawn as in tests/test_scheme_guarantees.py): in case A the
    need is partly unmet, so the interface prices reach the unmet-need penalty; in case C the
    exchange takes dozens of rounds. Common's cost within 1e-4 and the same safety."""
    bids = generate_bids(system, BidConfig(case=name), np.random.default_rng(0))
    q = bids.quantity_mw.to_numpy(float).copy()
    q[np.random.default_rng(100).random(len(q)) >= 0.6] = 0.0
    common = build_scheme(system, bids, "common").clear(quantity=q)
    result = build_scheme(system, bids, "idlfm").clear(quantity=q)
    ex = exchange_of(result)
    assert ex.converged and result.cost_eur == pytest.approx(common.cost_eur, rel=REL)
    assert result.unmet_need_mw == pytest.approx(common.unmet_need_mw, abs=1e-5)
    if common.unmet_need_mw > 1e-6:
        penalty = ClearingConfig().penalties.unmet_need
        np.testing.assert_allclose(ex.interface_price_eur_per_mw, penalty, rtol=1e-6)
    assert (assess(system, bids, result.activation_mw).grid_safe
            >= assess(system, bids, common.activation_mw).grid_safe)


def test_messages_are_counted_per_round_and_feeder(case):
    """Per round, the TSO sends each DSO one message (its interface flow and price) and each
    DSO answers with one (its interface flow); fewer rounds allowed, fewer messages."""
    _, system, bids = case
    scheme = build_scheme(system, bids, "idlfm")
    (stage,) = [s for s in scheme.stages if isinstance(s, IDLFMStage)]
    ex = exchange_of(scheme.clear())
    assert ex is stage.exchange
    n = len(system.feeders)
    assert ex.messages_to_dsos == ex.messages_to_tso == ex.iterations * n
    assert ex.messages == 2 * n * ex.iterations
    assert ex.kpis()["coordination_messages"] == ex.messages
    assert set(ex.kpis()) >= {f"interface_price_{f.name}" for f in system.feeders}
    short = exchange_of(build_scheme(system, bids, "idlfm", max_iterations=1).clear())
    assert short.iterations == 1 and short.messages == 2 * n


def test_clearings_do_not_depend_on_earlier_ones(case):
    """Each clearing starts its exchange afresh: clearing other prices in between changes
    nothing (the strategic loop clears thousands of profiles with one built scheme)."""
    _, system, bids = case
    scheme = build_scheme(system, bids, "idlfm")
    first = scheme.clear()
    scheme.clear(price=bids.price_eur_per_mw.to_numpy() * 1.5)
    again = scheme.clear()
    np.testing.assert_array_equal(first.activation_mw, again.activation_mw)
    assert exchange_of(first).iterations == exchange_of(again).iterations


def test_options_belong_to_idlfm_only():
    """rho, tolerance_mw and max_iterations are I-DLFM's: checked with the rest of the
    settings, and flagged as inert in other schemes."""
    for key, value in (("rho", 0.0), ("tolerance_mw", -1.0), ("max_iterations", 0)):
        with pytest.raises(FlexgameInputError, match=key):
            ClearingConfig(scheme="idlfm", **{key: value}).validate()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clearing_config("common", rho=5.0)
    assert any("rho=5.0 has no effect with scheme common" in str(w.message) for w in caught)
