"""Resources, bids and FSPs: reproducibility, D3.3 price ranges, liquidity, aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flexgame.markets.bids import (
    AGGREGATIONS, BID_COLUMNS, CASES, DEFAULT_PRICES, TSO_NEED_DIRECTION, BidConfig,
    PriceRanges, bid_table, critical_buses, distribution_bid, generate_bids, transmission_bid,
    validate_bids,
)
from flexgame.markets.errors import FlexgameInputError


def _bids(system, seed=0, **kwargs) -> pd.DataFrame:
    return generate_bids(system, BidConfig(**kwargs), np.random.default_rng(seed))


def _price_class(row) -> str:
    return f"critical_{row.direction}" if row.critical else f"{row.level}_{row.direction}"


def test_bid_table_shape(bids_a, system):
    assert list(bids_a.columns) == BID_COLUMNS
    assert list(bids_a.index) == list(range(len(bids_a)))
    assert (bids_a.quantity_mw > 0).all()
    assert set(bids_a.direction) == {"up", "down"}
    assert set(bids_a.level) == {"transmission", "distribution"}
    assert (bids_a.price_eur_per_mw == bids_a.cost_eur_per_mw).all()  # truthful
    validate_bids(bids_a)
    # distribution bids sit on a bus of their feeder and affect its coupling bus
    for row in bids_a[bids_a.level == "distribution"].itertuples():
        f = system.feeder(row.feeder)
        assert row.tx_bus == f.coupling_bus
        assert f.bus_index(row.bus) > 0  # never the root
    tx = bids_a[bids_a.level == "transmission"]
    assert (tx.feeder == "").all() and (tx.bus == tx.tx_bus).all()


@pytest.mark.parametrize("case", CASES)
def test_same_seed_same_bids(system, system_down, case):
    sys_ = system_down if TSO_NEED_DIRECTION[case] == "down" else system
    kwargs = dict(case=case, liquidity=0.7, aggregation="random_pools", pool_size=4)
    pd.testing.assert_frame_equal(_bids(sys_, 3, **kwargs), _bids(sys_, 3, **kwargs))


@pytest.mark.parametrize("case, direction", [("D", "up"), ("A", "down")])
def test_case_and_need_direction_must_agree(system, system_down, case, direction):
    """A case fixes the direction of the TSO need (D3.3 §4.2): drawing case D's bids for a
    system with an upward need (or A's for a downward one) is refused, naming the fix."""
    sys_ = system if direction == "up" else system_down
    with pytest.raises(FlexgameInputError, match=f"case {case} .* direction="):
        _bids(sys_, case=case)


def test_different_seed_different_bids(system):
    a, b = _bids(system, 1), _bids(system, 2)
    assert not a.equals(b)
    assert not np.allclose(a.price_eur_per_mw.to_numpy()[:10], b.price_eur_per_mw.to_numpy()[:10])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", CASES)
def test_prices_within_case_ranges(system, system_down, case, seed):
    sys_ = system_down if TSO_NEED_DIRECTION[case] == "down" else system
    bids = _bids(sys_, seed, case=case)
    ranges = DEFAULT_PRICES[case]
    classes = bids.apply(_price_class, axis=1)
    expected_classes = {"transmission_up", "transmission_down", "distribution_up",
                        "distribution_down"}
    if case == "C":
        expected_classes |= {"critical_up", "critical_down"}
    assert set(classes) == expected_classes
    for cls, group in bids.groupby(classes):
        lo, hi = ranges[cls]
        assert group.cost_eur_per_mw.between(lo, hi).all(), (case, cls)


def _extreme(bids, level, direction, fn, critical=False):
    sel = bids[(bids.level == level) & (bids.direction == direction) & (bids.critical == critical)]
    assert len(sel) > 0
    return fn(sel.price_eur_per_mw)


@pytest.mark.parametrize("case", ["A", "D"])
def test_case_a_d_distribution_dearer_than_transmission(system, system_down, case):
    bids = _bids(system_down if case == "D" else system, 4, case=case)
    for direction in ("up", "down"):
        assert (_extreme(bids, "distribution", direction, min)
                >= _extreme(bids, "transmission", direction, max))
    assert _extreme(bids, "transmission", "down", max) <= 25.0
    assert _extreme(bids, "transmission", "up", min) >= 30.0
    assert _extreme(bids, "distribution", "up", max) <= 55.0


def test_case_b_transmission_up_expensive(system):
    bids = _bids(system, 4, case="B")
    assert _extreme(bids, "transmission", "up", min) >= 90.0
    assert _extreme(bids, "transmission", "up", max) <= 165.0
    assert _extreme(bids, "distribution", "up", max) <= 55.0


def test_case_c_critical_bids(system):
    bids = _bids(system, 4, case="C")
    crit = bids[bids.critical]
    assert set(crit.direction) == {"up", "down"}
    assert (crit.level == "distribution").all()
    assert (_extreme(bids, "distribution", "up", min, critical=True)
            > _extreme(bids, "transmission", "up", max))
    # critical bids sit below the tightened branches of their feeder
    for row in crit.itertuples():
        f = system.feeder(row.feeder)
        j = f.bus_index(row.bus)
        below = {int(b) for k in system.congested[f.name] for b in f.subtree_buses(k)}
        assert j in below
        assert j in critical_buses(system, f.name, BidConfig().critical_bids_per_feeder)
    assert not _bids(system, 4, case="B").critical.any()


def test_case_d_is_downward():
    assert TSO_NEED_DIRECTION == {"A": "up", "B": "up", "C": "up", "D": "down"}
    assert DEFAULT_PRICES["D"] == DEFAULT_PRICES["A"]


@pytest.mark.parametrize("liquidity", [0.5, 0.25])
def test_liquidity_keeps_share_of_resources(system, liquidity):
    full = _bids(system, 5)
    part = _bids(system, 5, liquidity=liquidity)
    assert len(part) == round(liquidity * len(full))
    assert set(part.resource) <= set(full.resource)
    # kept resources are the same resources: same bus, direction and quantity
    merged = part.merge(full, on="resource", suffixes=("", "_full"))
    assert len(merged) == len(part)
    assert (merged.bus == merged.bus_full).all()
    assert np.allclose(merged.quantity_mw, merged.quantity_mw_full)


def test_aggregation_none_one_fsp_per_resource(bids_a):
    assert bids_a.fsp.is_unique


def test_aggregation_by_feeder(system):
    bids = _bids(system, 6, aggregation="by_feeder")
    dist = bids[bids.level == "distribution"]
    owners = dist.groupby("feeder").fsp.unique()
    assert len(owners) == len(system.feeders)
    assert all(len(o) == 1 for o in owners)
    assert dist.fsp.nunique() == len(system.feeders)
    tx = bids[bids.level == "transmission"]
    assert tx.fsp.is_unique and not set(tx.fsp) & set(dist.fsp)


@pytest.mark.parametrize("pool_size", [1, 3, 10])
def test_random_pools_bounded(system, pool_size):
    bids = _bids(system, 7, aggregation="random_pools", pool_size=pool_size)
    sizes = bids.groupby("fsp").size()
    assert sizes.max() <= pool_size
    assert len(sizes) == int(np.ceil(len(bids) / pool_size))
    if pool_size > 1:
        assert sizes.max() == pool_size


@pytest.mark.parametrize("liquidity", [0, 1.5, -0.1, float("nan")])
def test_bad_liquidity(system, liquidity):
    with pytest.raises(FlexgameInputError, match="liquidity"):
        _bids(system, liquidity=liquidity)


def test_unknown_case(system):
    with pytest.raises(FlexgameInputError) as err:
        _bids(system, case="E")
    assert "case='E'" in str(err.value)
    for c in CASES:
        assert c in str(err.value)


def test_unknown_aggregation(system):
    with pytest.raises(FlexgameInputError) as err:
        _bids(system, aggregation="by_area")
    assert "'by_area'" in str(err.value)
    for a in AGGREGATIONS:
        assert a in str(err.value)


def test_bad_pool_size(system):
    with pytest.raises(FlexgameInputError, match="pool_size=0"):
        _bids(system, aggregation="random_pools", pool_size=0)


def test_bad_price_range_override(system):
    cfg = BidConfig(prices=PriceRanges(transmission_up=(50.0, 40.0)))
    with pytest.raises(FlexgameInputError, match="transmission_up"):
        generate_bids(system, cfg, np.random.default_rng(0))


def test_price_override_used(system):
    cfg = BidConfig(prices=PriceRanges(transmission_up=(70.0, 71.0)))
    bids = generate_bids(system, cfg, np.random.default_rng(0))
    sel = bids[(bids.level == "transmission") & (bids.direction == "up")]
    assert sel.price_eur_per_mw.between(70.0, 71.0).all()


def test_validate_bids_rejects_negative_quantity(bids_a):
    bad = bids_a.copy()
    bad.loc[3, "quantity_mw"] = -1.0
    with pytest.raises(FlexgameInputError) as err:
        validate_bids(bad)
    assert "bid 3" in str(err.value) and "-1.0" in str(err.value)


def test_validate_bids_rejects_bad_direction_and_price(bids_a):
    bad = bids_a.copy()
    bad.loc[5, "direction"] = "sideways"
    with pytest.raises(FlexgameInputError, match=r"bid 5 .*'sideways'"):
        validate_bids(bad)
    bad = bids_a.copy()
    bad.loc[2, "price_eur_per_mw"] = np.inf
    with pytest.raises(FlexgameInputError, match="bid 2"):
        validate_bids(bad)


def test_validate_bids_rejects_missing_columns(bids_a):
    with pytest.raises(FlexgameInputError, match="tan_phi"):
        validate_bids(bids_a.drop(columns="tan_phi"))


# --- bid tables by hand -------------------------------------------------------------------

def test_bid_table_from_helpers(system):
    """Rows from transmission_bid / distribution_bid give a validated table: resource ids are
    the row numbers, prices the costs (truthful), a distribution bid's tx_bus its feeder's
    coupling bus (from the system, given to the row or to the table)."""
    bids = bid_table([
        transmission_bid("gen2", 2, 5.0, 30.0),
        distribution_bid("load7", "case69", 7, 0.2, 45.0, "down", tan_phi=0.5),
        distribution_bid("dg9", "case141", 9, 0.1, 50.0, system=system),
    ], system)
    assert list(bids.columns) == BID_COLUMNS
    assert bids.resource.tolist() == [0, 1, 2] and list(bids.index) == [0, 1, 2]
    assert bids.tx_bus.tolist() == [2, 14, 9]
    assert bids.feeder.tolist() == ["", "case69", "case141"]
    assert (bids.price_eur_per_mw == bids.cost_eur_per_mw).all()
    assert bids.tan_phi.tolist() == [0.0, 0.5, 0.0] and not bids.critical.any()
    assert bids.bus.dtype.kind == "i" and bids.tx_bus.dtype.kind == "i"


def test_bid_table_defaults_and_own_values():
    """Missing columns take their defaults; given ones (resource, price) are kept."""
    bids = bid_table([dict(fsp="a", level="transmission", bus=3, direction="up",
                           quantity_mw=1.0, cost_eur_per_mw=10.0, price_eur_per_mw=12.0,
                           resource=7)])
    row = bids.iloc[0]
    assert (row.resource, row.tx_bus, row.feeder, row.price_eur_per_mw) == (7, 3, "", 12.0)


@pytest.mark.parametrize("row, with_system, message", [
    (distribution_bid("x", "case69", 7, 1, 40), False, "needs its feeder's coupling bus"),
    (distribution_bid("x", "nowhere", 7, 1, 40), True, "bid 0: no feeder 'nowhere'"),
    (distribution_bid("x", "case69", 700, 1, 40), True, "bid 0: feeder 'case69' has no bus 700"),
    ({**distribution_bid("x", "case69", 7, 1, 40), "tx_bus": 9}, True,
     "bid 0: tx_bus=9 is not the coupling bus 14"),
    (transmission_bid("x", 99, 1, 40), True, "bid 0: transmission bus 99 does not exist"),
    (transmission_bid("x", 2, 1, 40, direction="sideways"), True, "direction='sideways'"),
    (dict(fsp="x", bus=2), True, r"bid 0 lacks \['level', 'direction'"),
])
def test_bid_table_names_the_bad_bid(system, row, with_system, message):
    with pytest.raises(FlexgameInputError, match=message):
        bid_table([row], system if with_system else None)
