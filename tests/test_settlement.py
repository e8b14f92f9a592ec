"""Payments on arrays (``bid_payments``, the strategic loop's) equal the settlement tables
(``settle``) under every rule, and the tables follow each rule's definition."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.schemes import build_scheme
from flexgame.markets.settlement import SETTLEMENTS, _vcg_payments, bid_payments, settle

SCHEMES = ["common", "fragmented", "ml01", "ml03", "ml05", "bid_aggregation"]


@pytest.fixture(scope="module", params=["A", "D"])
def case_bids(request, system, system_down):
    """(system, bids) of case A (upward need) or D (downward), resources pooled into FSPs
    of 14 (22 FSPs: VCG re-clears once per accepted FSP), seed 0."""
    grid = system if request.param == "A" else system_down
    bids = generate_bids(grid, BidConfig(case=request.param, aggregation="random_pools",
                                         pool_size=14), np.random.default_rng(0))
    return grid, bids


@pytest.mark.parametrize("name", SCHEMES)
def test_array_payments_equal_the_tables(case_bids, name):
    """For random declared prices (1 to 2 times the true cost), every rule's payment per
    bid on arrays equals ``settle``'s (exactly; VCG up to the rounding of its re-clearings,
    which start from another solver state), and the tables follow the rules: per (bid,
    layer) the declared price (pay_as_bid), the highest declared price of the layer's
    accepted bids of its direction (uniform), the marginal value (nodal), the Clarke payment
    spread over the layers by accepted MW (vcg); a bid's payment sums its rows."""
    grid, bids = case_bids
    scheme = build_scheme(grid, bids, name)
    rng = np.random.default_rng(SCHEMES.index(name))
    cost = bids.cost_eur_per_mw.to_numpy(float)
    result = scheme.clear(cost * rng.uniform(1.0, 2.0, len(cost)),
                          bids.quantity_mw.to_numpy(float), None)
    assert result.activation_mw.sum() > 0
    for rule in SETTLEMENTS:
        paid = settle(scheme, result, rule)
        arrays = bid_payments(scheme, result, rule)
        if rule == "vcg":  # C(-i) re-cleared from another warm start: equal to rounding
            np.testing.assert_allclose(arrays, paid.bid_payment_eur, rtol=1e-12, atol=1e-9)
        else:
            assert np.array_equal(arrays, paid.bid_payment_eur), rule
        table = paid.payments
        expected = {
            "pay_as_bid": table.price_eur_per_mw,
            "uniform": table.groupby(["layer", "direction"]).price_eur_per_mw.transform("max"),
            "nodal": table.marginal_value_eur_per_mw,
        }
        if rule in expected:
            assert np.array_equal(table.payment_eur_per_mw, expected[rule]), rule
        by_bid = np.zeros(len(bids))
        np.add.at(by_bid, table.bid.to_numpy(int), table.payment_eur.to_numpy(float))
        assert np.array_equal(by_bid, paid.bid_payment_eur), rule
        assert np.array_equal(table.payment_eur, table.accepted_mw * table.payment_eur_per_mw)
    np.testing.assert_allclose(settle(scheme, result, "vcg").bid_payment_eur,
                               _vcg_payments(scheme, result), rtol=1e-12, atol=1e-9)
    assert np.array_equal(bid_payments(scheme, result, "pay_as_bid"),
                          result.declared_cost_by_bid())
