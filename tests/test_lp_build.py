"""The clearing LPs assembled as arrays (:mod:`flexgame.markets.lp_builder`) are exactly the
LPs Pyomo compiles from their formulation (:mod:`flexgame.markets.constraints`): same
columns, rows, coefficients, bounds and integrality, bit for bit, and the same index arrays
for every market layer of every scheme (and bid aggregation's MILP), on the default system,
its variants (apparent line limits with polygons, interface limits, pro-rata ties, a
transmission-only system) and the tiny system."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.markets.bids import TSO_NEED_DIRECTION, BidConfig, generate_bids
from flexgame.markets.bid_aggregation import ResidualSupplyStage
from flexgame.markets.lp import CompiledLP
from flexgame.markets.schemes import SCHEMES, ClearingConfig, Scheme
from flexgame.markets.system import SystemConfig, build_system
from tiny_market import bid_table, feeder_bid, tiny_system, tx_bid


def assert_same_lp(mine: CompiledLP, reference: CompiledLP, where: str) -> None:
    assert (mine.n_rows, mine.n_cols, mine.n_integer) == \
        (reference.n_rows, reference.n_cols, reference.n_integer), where
    for name in ("cost", "col_lower", "col_upper", "row_lower", "row_upper"):
        a, b = getattr(mine, name), getattr(reference, name)
        assert a.tobytes() == b.tobytes(), f"{where}: {name}"
    for name in ("indptr", "indices", "data"):
        a, b = getattr(mine.a_matrix, name), getattr(reference.a_matrix, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{where}: A.{name}"
    lp_a, lp_b = mine.highs.getLp(), reference.highs.getLp()
    assert list(lp_a.integrality_) == list(lp_b.integrality_), f"{where}: integrality"
    assert lp_a.offset_ == lp_b.offset_, f"{where}: offset"


def assert_same_index(layer, reference: dict, where: str) -> None:
    for name, expected in reference.items():
        got = getattr(layer, name)
        if name == "interface_rows":
            got = [(f.name, int(r), int(s)) for f, r, s in got]
            expected = [(f.name, int(r), int(s)) for f, r, s in expected]
            assert got == expected, f"{where}: {name}"
        elif name == "feeder_rows":
            assert len(got) == len(expected), where
            for (p, q), (p0, q0) in zip(got, expected):
                np.testing.assert_array_equal(p, p0, err_msg=f"{where}: {name}")
                np.testing.assert_array_equal(q, q0, err_msg=f"{where}: {name}")
        elif isinstance(expected, list):
            assert len(got) == len(expected), where
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(a, b, err_msg=f"{where}: {name}")
        else:
            np.testing.assert_array_equal(got, expected, err_msg=f"{where}: {name}")


def assert_scheme_matches_pyomo(scheme: Scheme) -> None:
    for built in scheme.layers():
        where = f"{scheme.name} {built.name}"
        reference, index = built.layer.pyomo_reference()
        assert_same_lp(built.layer.lp, reference, where)
        assert_same_index(built.layer, index, where)
    for stage in scheme.stages:
        if isinstance(stage, ResidualSupplyStage):
            reference, index = stage.pyomo_reference()
            assert_same_lp(stage.milp, reference, f"{scheme.name} MILP")
            np.testing.assert_array_equal(stage.a_cols, index["a_cols"])
            assert stage.balance_row == index["balance_row"]
            for a, b in zip(stage.z_cols, index["z_cols"], strict=True):
                np.testing.assert_array_equal(a, b)
            for a, b in zip(stage.line_rows, index["line_rows"], strict=True):
                np.testing.assert_array_equal(a, b)


def _scenario(case: str, **system_options):
    system = build_system(SystemConfig(**system_options), direction=TSO_NEED_DIRECTION[case])
    return system, generate_bids(system, BidConfig(case=case), np.random.default_rng(0))


@pytest.mark.parametrize("case", ["A", "C"])
def test_every_scheme_builds_the_pyomo_lp(case):
    system, bids = _scenario(case)
    for name in SCHEMES:
        assert_scheme_matches_pyomo(Scheme(system, bids, ClearingConfig(scheme=name)))


@pytest.mark.parametrize("system_options, clearing", [
    (dict(feeder_line_limit="apparent"), dict(polygon_sides=12)),  # cos(pi/2) = 6e-17
    (dict(feeder_line_limit="apparent"), dict(polygon_sides=7)),
    (dict(interface_limit_share=0.9, coupling_load="add"), {}),
    ({}, dict(ties="pro_rata", interface="fixed", delta_mw=0.5)),
    (dict(feeders=[]), {}),
])
def test_variants_build_the_pyomo_lp(system_options, clearing):
    system, bids = _scenario("B", **system_options)
    # every kind of layer: balance, PTDF and all feeders; own feeder with and without a held
    # interface; bid aggregation's MILP
    for name in ("common", "fragmented", "ml02", "bid_aggregation"):
        if name == "bid_aggregation" and not system.feeders:
            continue
        options = {k: v for k, v in clearing.items()
                   if k not in ("interface", "delta_mw") or name in _uses(k)}
        assert_scheme_matches_pyomo(Scheme(system, bids, ClearingConfig(scheme=name, **options)))


def _uses(option: str) -> tuple[str, ...]:
    from flexgame.markets.schemes import SCHEME_OPTIONS

    return SCHEME_OPTIONS[option]


@pytest.mark.parametrize("rows", [
    [tx_bid("T", 2, 4, 30), feeder_bid("A", 3, 2, 10), feeder_bid("B", 2, 3, 20, "down"),
     feeder_bid("C", 3, 1, 25)],
    [tx_bid("T", 2, 4, 30), tx_bid("U", 1, 2, 35), feeder_bid("A", 3, 2, 10)],  # one each
    [feeder_bid("A", 3, 0.1, 10), feeder_bid("B", 2, 0.1, 12)],  # one step, no transmission
])
def test_tiny_system_builds_the_pyomo_lp(tmp_path, rows):
    system = tiny_system(tmp_path, 5.0, congested=True)
    bids = bid_table(rows, system)
    for name in SCHEMES:
        assert_scheme_matches_pyomo(Scheme(system, bids, ClearingConfig(scheme=name)))
