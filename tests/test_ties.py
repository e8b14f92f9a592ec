"""Ties: ClearingConfig.ties = "bid_order" (default) or "pro_rata" (:mod:`flexgame.markets.ties`),
hand-checked on the tiny system of :mod:`tiny_market` (transmission never binds; the feeder's
branch 2-3 carries 2 MW in its base state, limited to |P| <= 1.5 MW in the congested variant,
so the net upward activation at feeder bus 3 must stay within [0.5, 3.5] MW)."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.markets.bids import TSO_NEED_DIRECTION, BidConfig, generate_bids
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.grid_assessment import assess
from flexgame.markets.schemes import SCHEMES, ClearingConfig, build_scheme
from flexgame.markets.ties import ProRata
from tiny_market import bid_table, feeder_bid, tiny_system, tx_bid

TOL = 1e-7  # MW, EUR: the pro-rata QP is exact to rounding


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("ties")


def _clear(system, rows, scheme="common", **options):
    bids = bid_table(rows, system)
    result = build_scheme(system, bids, scheme, **options).clear()
    return result, assess(system, bids, result.activation_mw)


def test_two_tied_bids_split_in_proportion(folder):
    """Need 5 MW, A offers 4 and B 6 MW, both at 30 EUR/MW. pro_rata: each gets 5/10 of its
    quantity, A 2 and B 3 MW; bid_order: A (the lower bid id) fully, 4 MW, then B 1 MW. The
    cost is 150 EUR either way."""
    system = tiny_system(folder, 5.0)
    rows = [tx_bid("A", 2, 4, 30), tx_bid("B", 2, 6, 30)]
    pro_rata, _ = _clear(system, rows, ties="pro_rata")
    bid_order, _ = _clear(system, rows)
    np.testing.assert_allclose(pro_rata.activation_mw, [2.0, 3.0], atol=TOL)
    np.testing.assert_allclose(bid_order.activation_mw, [4.0, 1.0], atol=TOL)
    assert pro_rata.cost_eur == pytest.approx(150.0, abs=TOL)
    assert bid_order.cost_eur == pytest.approx(150.0, abs=TOL)


def test_pro_rata_does_not_depend_on_the_row_order(folder):
    """The same bids with B's row first: pro_rata still gives A 2 and B 3 MW; bid_order now
    fills B first (5 MW) and leaves A out."""
    system = tiny_system(folder, 5.0)
    rows = [tx_bid("B", 2, 6, 30), tx_bid("A", 2, 4, 30)]
    pro_rata, _ = _clear(system, rows, ties="pro_rata")
    bid_order, _ = _clear(system, rows)
    np.testing.assert_allclose(pro_rata.activation_mw, [3.0, 2.0], atol=TOL)
    np.testing.assert_allclose(bid_order.activation_mw, [5.0, 0.0], atol=TOL)


def test_only_the_tied_bids_at_the_margin_share(folder):
    """C (2 MW at 20) is cheaper and fully accepted; the remaining 3 MW of the need are
    shared by A (4 MW) and B (6 MW) at 30: A 1.2, B 1.8 MW; D at 40 is out. 40 + 90 = 130
    EUR."""
    system = tiny_system(folder, 5.0)
    rows = [tx_bid("A", 2, 4, 30), tx_bid("B", 3, 6, 30), tx_bid("C", 2, 2, 20),
            tx_bid("D", 3, 5, 40)]
    result, _ = _clear(system, rows, ties="pro_rata")
    np.testing.assert_allclose(result.activation_mw, [1.2, 1.8, 2.0, 0.0], atol=TOL)
    assert result.cost_eur == pytest.approx(130.0, abs=TOL)


@pytest.mark.parametrize("need, pro_rata, bid_order", [
    (5.0, [2.0, 3.0, 0.0], [3.5, 1.5, 0.0]),
    (9.0, [3.5, 5.5, 0.0], [3.5, 5.5, 0.0]),
])
def test_grid_limits_hold_in_a_congested_feeder(folder, need, pro_rata, bid_order):
    """Congested feeder; A (4 MW at bus 3) and B (6 MW at bus 2) both at 20 EUR/MW, T at 50.
    Need 5 MW: the pro-rata split A 2, B 3 keeps 2-3 at 0 MW, within its limits; bid order
    would take A's 4 MW first, but 2-3 allows only 3.5 MW up at bus 3: A 3.5, B 1.5. Need 9
    MW: pro rata would give A 3.6 MW, over the 3.5 MW the branch allows: A 3.5, B the
    remaining 5.5 MW under both rules. 20 EUR/MW x need, grid-safe."""
    system = tiny_system(folder, need, congested=True)
    rows = [feeder_bid("A", 3, 4, 20), feeder_bid("B", 2, 6, 20), tx_bid("T", 2, 10, 50)]
    for ties, expected in (("pro_rata", pro_rata), ("bid_order", bid_order)):
        result, report = _clear(system, rows, ties=ties)
        np.testing.assert_allclose(result.activation_mw, expected, atol=TOL, err_msg=ties)
        assert result.cost_eur == pytest.approx(20.0 * need, abs=TOL)
        assert report.grid_safe and report.residual_need_mw == pytest.approx(0.0, abs=TOL)


@pytest.mark.parametrize("scheme, a_mw, safe", [
    ("ml01", 0.5 + 8.5 * 3.5 / 9.5, False),
    ("ml03", 0.5 + 8.5 * 3.0 / 9.0, True),
    ("ml06", 9.0 * 3.5 / 9.5, True),
    ("ml04", 3.5, True),
])
def test_sequential_schemes_split_each_layer(folder, scheme, a_mw, safe):
    """Congested feeder, need 9 MW, A and B as above. The DSO market (ml01, ml03, ml04) buys
    A 0.5 MW: only A relieves 2-3, so B is not tied with it there. The TSO market then
    shares the remaining 8.5 MW between A's remaining 3.5 MW and B's 6 MW in proportion
    (ml01, blind to the feeder: 2-3 ends at -1.63 MW, over its limit); with ml03's envelope
    A is capped at 3 MW first (2-3 may go from 1.5 to -1.5 MW); ml06 caps A at 3.5 MW in
    the base state and shares 9 MW; ml04's TSO market, which sees the feeder, stops A at
    3.5 MW in total. B gets the rest of the 9 MW; 180 EUR in every case."""
    system = tiny_system(folder, 9.0, congested=True)
    rows = [feeder_bid("A", 3, 4, 20), feeder_bid("B", 2, 6, 20), tx_bid("T", 2, 10, 50)]
    result, report = _clear(system, rows, scheme, ties="pro_rata")
    np.testing.assert_allclose(result.activation_mw, [a_mw, 9.0 - a_mw, 0.0], atol=TOL)
    assert result.cost_eur == pytest.approx(180.0, abs=TOL)
    assert report.grid_safe is safe


def test_the_split_does_not_depend_on_the_solve_history(folder):
    """Re-clearing after clearings with other prices and quantities gives the same split (the
    QP's minimiser is unique), and the pro-rata model is the one built with the scheme."""
    system = tiny_system(folder, 5.0)
    bids = bid_table([tx_bid("A", 2, 4, 30), tx_bid("B", 2, 6, 30), tx_bid("C", 3, 3, 30)],
                     system)
    scheme = build_scheme(system, bids, "common", ties="pro_rata")
    face = scheme.common.pro_rata.face
    first = scheme.clear().activation_mw
    np.testing.assert_allclose(first, np.array([4, 6, 3]) * 5 / 13, atol=TOL)
    rng = np.random.default_rng(0)
    for _ in range(5):
        scheme.clear(price=30 * rng.uniform(0.8, 1.2, 3), quantity=rng.uniform(1, 8, 3))
    np.testing.assert_allclose(scheme.clear().activation_mw, first, atol=1e-12)
    assert scheme.common.pro_rata.face is face


def test_tied_bids_are_those_sharing_a_price_at_the_margin():
    """Positions offering > 0 MW with a zero reduced cost whose price another such bid has."""
    price = np.array([30.0, 30.0, 30.0, 20.0, 40.0, 40.0])
    offered = np.array([4.0, 0.0, 6.0, 2.0, 1.0, 1.0])
    reduced_cost = np.array([0.0, 0.0, 0.0, -10.0, 0.0, 10.0])
    np.testing.assert_array_equal(ProRata.tied(price, offered, reduced_cost), [0, 2])


def test_every_scheme_clears_pro_rata_on_the_default_system(system):
    """Case B with prices rounded to 10 EUR/MW (many ties): every layer of every scheme
    solves to optimality under pro_rata (a layer that does not raises SolverError); the common market's cost is the same under both
    rules and the schemes that respect every grid limit stay grid-safe."""
    bids = generate_bids(system, BidConfig(case="B"), np.random.default_rng(0))
    assert TSO_NEED_DIRECTION["B"] == "up"
    price = np.round(bids.price_eur_per_mw.to_numpy(float) / 10) * 10
    for name in SCHEMES:
        result = build_scheme(system, bids, name, ties="pro_rata").clear(price=price)
        if name in ("common", "ml03", "ml04", "bid_aggregation"):
            assert assess(system, bids, result.activation_mw).grid_safe, name
        if name == "common":
            bid_order = build_scheme(system, bids, name).clear(price=price)
            assert result.cost_eur == pytest.approx(bid_order.cost_eur, rel=1e-9)
            assert np.abs(result.activation_mw - bid_order.activation_mw).sum() > 1.0


def test_default_and_unknown_rules():
    assert ClearingConfig().ties == "bid_order"
    with pytest.raises(FlexgameInputError, match="ties='random' is not allowed"):
        ClearingConfig(ties="random").validate()


def test_bid_order_builds_no_second_stage(folder):
    system = tiny_system(folder, 5.0)
    bids = bid_table([tx_bid("A", 2, 4, 30), tx_bid("B", 2, 6, 30)], system)
    assert build_scheme(system, bids, "common").common.pro_rata is None
    scheme = build_scheme(system, bids, "common", ties="pro_rata")
    assert "ties=pro_rata" in repr(scheme) and "ties pro rata" in repr(scheme.common)
