"""A feeder's step market in sensitivity form (:class:`ReducedFeederLayer`) has the optimum of
the layer's LinDistFlow LP at every step of a residual supply function: the same objective,
activations, slacks and bid marginal values, on active and apparent line limits, with an interface limit, up and
down; the limit rows it leaves out are never binding; and data that could reach a left-out
row is solved on the layer's LP instead."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.markets.bid_aggregation import ResidualSupplyStage
from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.distribution import limit_directions
from flexgame.markets.prequalification import limit_headroom
from flexgame.markets.schemes import ClearingConfig, Scheme
from flexgame.markets.system import SystemConfig, build_system

GRIDS = {"active": {}, "apparent": dict(feeder_line_limit="apparent"),
         "interface": dict(interface_limit_share=0.9)}


def _stage(scheme: Scheme) -> ResidualSupplyStage:
    (stage,) = [s for s in scheme.stages if isinstance(s, ResidualSupplyStage)]
    return stage


def _same_outcome(got, expected, scale: float) -> None:
    tol = 1e-9 * scale
    assert got.objective_eur == pytest.approx(expected.objective_eur, rel=1e-9, abs=tol)
    assert got.cost_eur == pytest.approx(expected.cost_eur, rel=1e-9, abs=tol)
    np.testing.assert_allclose(got.activation_mw, expected.activation_mw, atol=1e-7)
    # the bids' marginal values (DLMPs): the same duals, as no step here is dual degenerate
    np.testing.assert_allclose(got.marginal_value, expected.marginal_value, atol=1e-6)
    for slack in ("line_slack", "voltage_slack", "interface_slack_mw"):
        assert getattr(got, slack) == pytest.approx(getattr(expected, slack), abs=1e-7), slack


@pytest.mark.parametrize("case, grid, direction", [
    ("A", "active", "up"), ("B", "apparent", "up"), ("C", "interface", "up"),
    ("D", "active", "down"), ("B", "active", "up"),
])
def test_every_step_has_the_layers_optimum(case, grid, direction):
    system = build_system(SystemConfig(**GRIDS[grid]), direction=direction)
    bids = generate_bids(system, BidConfig(case=case), np.random.default_rng(5))
    stage = _stage(Scheme(system, bids, ClearingConfig(scheme="bid_aggregation")))
    rng = np.random.default_rng(6)
    quantity = bids.quantity_mw.to_numpy(float)
    for price in (bids.price_eur_per_mw.to_numpy(float),
                  bids.price_eur_per_mw.to_numpy(float) * rng.uniform(1, 3, len(bids))):
        for built, reduced in zip(stage.layers, stage.reduced):
            assert reduced.covers(quantity, stage._base_state)
            assert len(reduced.rows) < reduced.n_limit_rows  # rows were left out
            layer = built.layer
            for step in stage.steps[stage.layers.index(built)]:
                held = {built.feeder: step}
                layer.lp.highs.clearSolver()
                expected = layer.solve(price, quantity, stage._base_state, 0.0, held)
                reduced.load(price, quantity, stage._base_state)
                reduced.hold(held)
                reduced.lp.highs.clearSolver()
                got = reduced.read(reduced.lp.solve(), price, quantity)
                _same_outcome(got, expected, scale=1.0 + abs(expected.objective_eur))


def test_left_out_rows_never_bind(system, bids_a):
    """At every step, the grid state after the layer's own activations (LinDistFlow solved
    anew, :meth:`GridState.after`) keeps each left-out row inside its limit by at least the
    margin the reduction assumed."""
    from flexgame.markets.grid_state import BidEffects
    from flexgame.markets.reduced_layer import REACH_MARGIN

    stage = _stage(Scheme(system, bids_a, ClearingConfig(scheme="bid_aggregation")))
    effects = BidEffects.of(system, bids_a)
    price = bids_a.price_eur_per_mw.to_numpy(float)
    quantity = bids_a.quantity_mw.to_numpy(float)
    for fi, (built, reduced) in enumerate(zip(stage.layers, stage.reduced)):
        assert len(reduced.left_out) > 0
        for step in stage.steps[fi]:
            out = built.layer.solve(price, quantity, stage._base_state, 0.0,
                                    {built.feeder: step})
            after = stage._base_state.after(effects, out.activation_mw)
            headroom = limit_headroom(reduced.feeder, after, *limit_directions("active", 12))
            assert np.all(headroom[reduced.left_out] >= REACH_MARGIN - 1e-9)


def test_data_beyond_the_reduction_is_solved_on_the_layers_lp(system, bids_a):
    """Offering far more than declared can reach rows the reduction left out: the stage then
    solves that feeder's residual supply function on the layer's own LP, and the clearing
    equals a scheme whose reduced layers are never used."""
    config = ClearingConfig(scheme="bid_aggregation")
    scheme, plain = Scheme(system, bids_a, config), Scheme(system, bids_a, config)
    stage, plain_stage = _stage(scheme), _stage(plain)
    plain_stage.reduced = [None] * len(plain_stage.layers)
    quantity = bids_a.quantity_mw.to_numpy(float) * 20
    assert not all(r.covers(quantity, stage._base_state) for r in stage.reduced)
    got = scheme.clear(quantity=quantity)
    expected = plain.clear(quantity=quantity)
    assert stage.rsf_on_layer_lp >= 1
    assert got.objective_eur == pytest.approx(expected.objective_eur, rel=1e-9)
    np.testing.assert_allclose(got.activation_mw, expected.activation_mw, atol=1e-7)
