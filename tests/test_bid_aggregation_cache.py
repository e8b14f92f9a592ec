"""Bid aggregation keeps each feeder's residual supply function (RSF) by the feeder's bid
data and recomputes only the feeders whose bids changed: its clearings equal, bit for bit,
those of a freshly built scheme (no cache, no solve history), along a sequence of single-FSP
price changes as in a strategic loop."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.markets.bid_aggregation import ResidualSupplyStage
from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.schemes import ClearingConfig, Scheme


def _rsf_stage(scheme: Scheme) -> ResidualSupplyStage:
    (stage,) = [s for s in scheme.stages if isinstance(s, ResidualSupplyStage)]
    return stage


def assert_same_clearing(got, expected) -> None:
    assert got.activation_mw.tobytes() == expected.activation_mw.tobytes()
    assert got.cost_eur == expected.cost_eur
    assert got.objective_eur == expected.objective_eur
    assert got.unmet_need_mw == expected.unmet_need_mw
    assert [r.name for r in got.layers] == [r.name for r in expected.layers]
    for a, b in zip(got.layers, expected.layers):
        assert a.outcome.activation_mw.tobytes() == b.outcome.activation_mw.tobytes(), a.name
        assert a.outcome.objective_eur == b.outcome.objective_eur, a.name
        assert a.outcome.marginal_value.tobytes() == b.outcome.marginal_value.tobytes(), a.name


@pytest.mark.parametrize("case, options", [("B", {}), ("C", dict(ties="pro_rata", delta_mw=0.5))])
def test_cached_clearings_equal_fresh_schemes(system, case, options):
    bids = generate_bids(system, BidConfig(case=case), np.random.default_rng(1))
    config = ClearingConfig(scheme="bid_aggregation", **options)
    cached = Scheme(system, bids, config)
    uncached = Scheme(system, bids, config)
    _rsf_stage(uncached).cache_size = 0
    rng = np.random.default_rng(7)
    base = bids.price_eur_per_mw.to_numpy(float)
    fsps = bids.fsp.unique()
    price = base.copy()
    profiles = []
    for _ in range(12):  # one FSP re-prices at a time; some profiles come back
        fsp = rng.choice(fsps)
        own = (bids.fsp == fsp).to_numpy()
        price = price.copy()
        price[own] = base[own] * rng.choice([1.0, 1.2, 1.5, 2.0])
        profiles.append(price)
    profiles += profiles[:3]
    for price in profiles:
        expected = Scheme(system, bids, config).clear(price=price)
        assert_same_clearing(cached.clear(price=price), expected)
        assert_same_clearing(uncached.clear(price=price), expected)
    stage = _rsf_stage(cached)
    assert stage.rsf_reused > 0  # the feeders an FSP's change did not touch
    assert all(len(c) <= stage.cache_size for c in stage._cache)
    assert _rsf_stage(uncached).rsf_reused == 0


def test_cache_is_bounded_and_keyed_by_the_feeders_bids(system, bids_a):
    scheme = Scheme(system, bids_a, ClearingConfig(scheme="bid_aggregation"))
    stage = _rsf_stage(scheme)
    stage.cache_size = 2
    base = bids_a.price_eur_per_mw.to_numpy(float)
    feeder_bids = (bids_a.feeder == stage.layers[0].feeder).to_numpy()
    for k in range(5):
        price = base.copy()
        price[feeder_bids] *= 1 + 0.1 * k  # only the first feeder's bids change
        scheme.clear(price=price)
    assert len(stage._cache[0]) == 2 and len(stage._cache[1]) == 1
    assert stage.rsf_computed == 5 + 1 and stage.rsf_reused == 4


@pytest.mark.parametrize("case", ["A", "B", "C"])
def test_rsf_sweep_equals_each_step_solved_from_scratch(system, case):
    """An RSF is one sweep of the feeder's LP over the held target (loaded once, warm from
    step to step, from a fixed starting basis); each step's cost must be the optimum of the
    feeder's LP built and solved from scratch at that step."""
    bids = generate_bids(system, BidConfig(case=case), np.random.default_rng(3))
    scheme = Scheme(system, bids, ClearingConfig(scheme="bid_aggregation"))
    stage = _rsf_stage(scheme)
    price = bids.price_eur_per_mw.to_numpy(float) * np.random.default_rng(4).uniform(1, 2, len(bids))
    scheme.clear(price=price)
    quantity = bids.quantity_mw.to_numpy(float)
    for fi, built in enumerate(stage.layers):
        (rsf,) = stage._cache[fi].values()
        assert len(rsf.cost_eur) == len(stage.steps[fi]) > 1
        fresh = Scheme(system, bids, ClearingConfig(scheme="bid_aggregation"))
        layer = _rsf_stage(fresh).layers[fi].layer
        for step, cost in zip(stage.steps[fi], rsf.cost_eur):
            layer.lp.highs.clearSolver()
            expected = layer.solve(price, quantity, scheme.base_state, 0.0,
                                   {built.feeder: step}, split_ties=False)

            assert cost == pytest.approx(expected.objective_eur, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("case, grid, draws", [("A", "system", 12), ("D", "system_down", 40)])
def test_steps_chosen_are_an_optimum_of_the_milp(request, case, grid, draws, monkeypatch):
    """The steps chosen from the relaxed MILP, when it is integral, cost what the MILP's
    own optimum costs: at randomly raised prices, the clearing equals (in cost, and in
    activations where the optimum is unique) that of a scheme that always solves the MILP,
    with zero optimality gap; that scheme solves the MILP every time. In case D one of the
    draws has a fractional relaxation, which the MILP then decides."""
    import flexgame.markets.bid_aggregation as ba

    system = request.getfixturevalue(grid)
    bids = generate_bids(system, BidConfig(case=case, aggregation="random_pools",
                                           pool_size=14), np.random.default_rng(0))
    config = ClearingConfig(scheme="bid_aggregation")
    relaxed_first, milp_only = Scheme(system, bids, config), Scheme(system, bids, config)
    _rsf_stage(milp_only).milp.highs.setOptionValue("mip_rel_gap", 0.0)
    rng = np.random.default_rng(1)
    base = bids.price_eur_per_mw.to_numpy(float)
    for _ in range(draws):
        price = base * rng.uniform(1.0, 2.5, len(base))
        got = relaxed_first.clear(price=price)
        with monkeypatch.context() as m:
            m.setattr(ba, "INTEGRALITY_TOLERANCE", -1.0)  # never integral: the MILP
            expected = milp_only.clear(price=price)
        assert got.objective_eur == pytest.approx(expected.objective_eur, rel=1e-9, abs=1e-9)
        assert got.cost_eur == pytest.approx(expected.cost_eur, rel=1e-9, abs=1e-9)
        assert np.allclose(got.activation_mw, expected.activation_mw, atol=1e-9)
    assert _rsf_stage(milp_only).milp_solves == draws
    solves = _rsf_stage(relaxed_first).milp_solves
    assert solves >= 1 if case == "D" else solves < draws  # D: the fallback was exercised
