"""Synthetic urban LV grids (report 001 ch. 5 calibration) and the three feeder types."""

from __future__ import annotations

import numpy as np
import pytest
from flexgame.markets.envelopes import compute_envelopes
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.lv_feeder import radial_lv_feeder
from flexgame.markets.lv_grids import (
    GridConfig,
    classify,
    classify_envelopes,
    feeder_length_m,
    generate_feeder,
    generate_grid,
)

TOL = 1e-6


@pytest.fixture(scope="module")
def grid():
    return generate_grid(2024)


def _signature(lv):
    f = lv.feeder
    return (f.parent.tolist(), f.r_pu.tolist(), f.x_pu.tolist(), f.rating_mva.tolist(),
            lv.user_bus.tolist(), lv.capacity_kw.tolist(), lv.distance_m.tolist())


def test_seeded_reproducibility(grid):
    again = generate_grid(2024)
    assert [_signature(a) for a in grid] == [_signature(b) for b in again]
    other = generate_grid(2025)
    assert [_signature(a) for a in grid] != [_signature(b) for b in other]
    a = generate_feeder(np.random.default_rng(5))
    b = generate_feeder(np.random.default_rng(5))
    assert _signature(a) == _signature(b)


def test_exact_totals_match_chapter(grid):
    cfg = GridConfig()
    assert (cfg.n_feeders, cfg.n_connection_points, cfg.n_users) == (49, 712, 2267)
    assert len(grid) == 49
    assert sum(lv.feeder.n_buses - 1 for lv in grid) == 712
    assert sum(lv.n_users for lv in grid) == 2267
    # every feeder has >= 1 connection point, every connection point >= 1 user
    for lv in grid:
        assert set(lv.user_bus.tolist()) == set(range(1, lv.feeder.n_buses))


def test_calibration_independent_feeders():
    """Feeders drawn one by one (no exact totals): means close to 14.5 connection points and
    46.3 users per feeder over 5 grids (245 feeders)."""
    cfg = GridConfig(exact_totals=False)
    feeders = [lv for seed in range(5) for lv in generate_grid(seed, cfg)]
    n_cp = np.array([lv.feeder.n_buses - 1 for lv in feeders])
    n_users = np.array([lv.n_users for lv in feeders])
    assert abs(n_cp.mean() / (712 / 49) - 1) < 0.15
    assert abs(n_users.mean() / (2267 / 49) - 1) < 0.2
    assert n_cp.std() > 3 and n_users.std() > 10          # unevenly distributed


def test_spacing_capacities_and_buildings(grid):
    cfg = GridConfig()
    kva, _ = cfg.capacity_options_kva()
    assert kva.min() == pytest.approx(3.68) and kva.max() == pytest.approx(25.1, abs=0.01)
    per_cp = []
    branching = 0
    for lv in grid:
        br = lv.feeder.case.branch
        lengths = br.LENGTH_M.to_numpy()
        head = br.F_BUS.to_numpy() == 1                    # from the LV busbar
        assert head.sum() == 1
        assert np.all(lengths[~head] == 13.0)
        assert 13.0 <= lengths[head][0] <= 60.0
        assert np.all((lv.capacity_kw >= 3.65) & (lv.capacity_kw <= 25.15))
        assert np.all(np.isin(np.round(lv.capacity_kw, 6), np.round(kva, 6)))
        per_cp.extend(np.bincount(lv.user_bus)[1:].tolist())
        children = np.bincount(lv.feeder.parent[1:], minlength=lv.feeder.n_buses)
        branching += int((children[1:] >= 2).sum())
        assert lv.distance_m.max() <= feeder_length_m(lv) + 1e-9
    per_cp = np.array(per_cp)
    assert per_cp.mean() == pytest.approx(2267 / 712)
    assert (per_cp == 1).mean() > 0.4                      # mostly single-user houses
    assert per_cp.max() >= 10                              # and multi-user buildings
    assert branching > 0                                   # backbones with branches
    # both phases counts represented: single-phase 16 A and three-phase capacities
    caps = np.concatenate([lv.capacity_kw for lv in grid])
    assert (caps < 4).any() and (caps > 20).any()


def test_single_phase_model_is_weaker():
    rng = np.random.default_rng(3)
    bal = generate_feeder(np.random.default_rng(3), GridConfig(), n_connection_points=10)
    sp1 = generate_feeder(rng, GridConfig(impedance_model="single_phase"),
                          n_connection_points=10)
    assert np.allclose(sp1.feeder.r_pu, 2 * bal.feeder.r_pu)
    assert np.allclose(sp1.feeder.rating_mva * np.sqrt(3), bal.feeder.rating_mva)
    with pytest.raises(FlexgameInputError):
        generate_feeder(rng, GridConfig(impedance_model="nope"))
    with pytest.raises(FlexgameInputError):
        generate_feeder(rng, GridConfig(), n_connection_points=3, users_per_cp=[1, 0, 2])


def test_type1_short_stiff_feeder():
    lv = generate_feeder(np.random.default_rng(0), GridConfig(), n_connection_points=2,
                         users_per_cp=[1, 1])
    c = classify(lv, details=True)
    assert c.type == 1
    assert c.fair_kw == pytest.approx(c.capacity_kw, rel=1e-6)
    assert c.optimal_kw == pytest.approx(c.capacity_kw, rel=1e-6)


def test_type2_identical_users_same_distance():
    # four 20 kW users on one bus behind a 50 kVA line: the line binds, whatever the policy
    lv = radial_lv_feeder([-1, 0], [1e-3], [0.0], [0.05], [1, 1, 1, 1], 20.0)
    c = classify(lv, details=True)
    assert c.type == 2
    assert c.optimal_kw == pytest.approx(100.0, rel=1e-6)      # 50 kW each direction
    assert c.fair_kw == pytest.approx(100.0, rel=1e-6)
    assert classify(lv, weights="equal") == 2


def test_type3_long_feeder_users_along_it():
    # 10 buses in a chain, one 10 kW user on each, voltage binds: optimal favours the near ones
    n = 10
    lv = radial_lv_feeder([-1] + list(range(n)), [0.5] * n, [0.0] * n, [np.inf] * n,
                          list(range(1, n + 1)), 10.0)
    c = classify(lv, details=True)
    assert c.type == 3
    assert c.optimal_kw > c.fair_kw * 1.05
    assert c.optimal_kw < c.capacity_kw


def test_classify_tolerance():
    lv = radial_lv_feeder([-1, 0], [1e-3], [0.0], [0.05], [1, 1, 1, 1], 20.0)
    fair, opt = compute_envelopes(lv, "fair", weights="capacity"), compute_envelopes(lv)
    assert classify_envelopes(fair, opt, rtol=0.01).type == 2
    # a constructed 3 % gap: type 3 at rtol 1 %, type 2 at rtol 5 %
    from dataclasses import replace
    fair3 = replace(fair, import_kw=fair.import_kw * 0.97, export_kw=fair.export_kw * 0.97)
    assert classify_envelopes(fair3, opt, rtol=0.01).type == 3
    assert classify_envelopes(fair3, opt, rtol=0.05).type == 2


@pytest.mark.parametrize("weights", ["capacity", "equal"])
def test_generated_feeders_fair_le_optimal_le_capacity(grid, weights):
    types = set()
    for lv in grid:
        fair = compute_envelopes(lv, "fair", weights=weights)
        opt = compute_envelopes(lv, "optimal")
        for e in (fair, opt):
            assert np.all(e.import_kw <= e.capacity_kw + TOL)
            assert np.all(e.export_kw <= e.capacity_kw + TOL)
            assert np.all(e.import_kw >= 0) and np.all(e.export_kw >= 0)
        for d in ("total_import_kw", "total_export_kw"):
            assert getattr(fair, d) <= getattr(opt, d) + TOL
            assert getattr(opt, d) <= lv.capacity_kw.sum() + TOL
        types.add(classify_envelopes(fair, opt).type)
    assert types <= {1, 2, 3} and len(types) >= 2
