"""Bid aggregation's residual-supply stage (ALEXANDER D3.3 §3.4 and §4.1.1; Ananduta, Sanjab
& Marques 2024).

Each DSO builds a residual supply function (RSF) of its feeder: for interface-flow steps
s = k * delta [MW of net upward activation, i.e. reduction of the power the feeder draws], it
solves its feeder LP with its own needs and constraints and the net activation held at s,
and records the cost (penalties for unmet limits included, so unsafe steps are priced out).
A MILP then clears the transmission bids together with exactly one step per feeder against
the TSO need and the PTDF line limits; the chosen step is disaggregated to the feeder's bids
from the LP solved for that step. The transmission bids are cleared afterwards by the
scheme's next stage (a TSO market), which also yields their prices. A smaller delta gets
closer to the common market at the price of more LPs (one per step).

The step grid is fixed when the scheme is built (from the offered quantities then); steps
that later quantities cannot reach are priced by their interface-slack penalty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from flexgame.markets.bids import direction_sign
from flexgame.markets.constraints import (
    Activations, Penalties, add_ptdf_limits, add_tso_balance, positions_at,
)
from flexgame.markets.lp import CompiledLP
from flexgame.markets.pipeline import BuiltLayer, ClearingRun
from flexgame.markets.system import InterconnectedSystem
from flexgame.markets.ties import tie_break


def step_grid(quantity_mw: np.ndarray, up: np.ndarray, delta_mw: float) -> np.ndarray:
    """Interface-flow steps of a feeder [MW]: multiples of ``delta_mw`` from minus its
    offered downward MW to its offered upward MW (``up``: which of the bids are upward)."""
    k = np.arange(-int(np.floor(quantity_mw[~up].sum() / delta_mw + 1e-9)),
                  int(np.floor(quantity_mw[up].sum() / delta_mw + 1e-9)) + 1)
    return k * delta_mw


class ResidualSupplyStage:
    """The RSF stage of bid aggregation, built once per scheme.

    Args:
        system, bids: the scenario.
        layers: per feeder, its DSO's market with the interface held (the target is the
            step); their outcomes are recorded as the layers ``rsf:<feeder>``.
        delta_mw: the step [MW].
        penalties: slack prices of the MILP.
    """

    def __init__(self, system: InterconnectedSystem, bids: pd.DataFrame,
                 layers: list[BuiltLayer], delta_mw: float, penalties: Penalties):
        self.system, self.layers = system, layers
        q = bids.quantity_mw.to_numpy()
        self.steps = [step_grid(q[s.layer.candidates], s.layer.sign > 0, delta_mw)
                      for s in layers]
        self.tx_bids = np.flatnonzero((bids.level == "transmission").to_numpy())
        self._build_milp(bids, penalties)

    def _build_milp(self, bids: pd.DataFrame, penalties: Penalties) -> None:
        """min sum price a + sum_f sum_s C_f(s) z_fs + penalties, one step per feeder."""
        tx, tx_bids = self.system.transmission, self.tx_bids
        sign = direction_sign(bids)[tx_bids]
        m = pyo.ConcreteModel()
        m.T = pyo.RangeSet(0, len(tx_bids) - 1) if len(tx_bids) else pyo.Set(initialize=[])
        m.a = pyo.Var(m.T, bounds=(0, 0))
        m.FS = pyo.Set(initialize=[(fi, si) for fi, steps in enumerate(self.steps)
                                   for si in range(len(steps))], dimen=2)
        m.z = pyo.Var(m.FS, domain=pyo.Binary)
        m.one_step = pyo.Constraint(
            range(len(self.steps)),
            rule=lambda m, fi: sum(m.z[f, s] for f, s in m.FS if f == fi) == 1
        )
        step_mw = {(fi, si): steps[si] for fi, steps in enumerate(self.steps)
                   for si in range(len(steps))}
        acts = Activations(m.a, sign, np.zeros(len(tx_bids)))
        balance_cost = add_tso_balance(
            m, acts.net_up(m.T) + sum(step_mw[k] * m.z[k] for k in m.FS), penalties)
        tx_at = positions_at([tx.bus_index(b) for b in bids.tx_bus.to_numpy()[tx_bids]],
                             len(tx.buses))
        feeder_at = positions_at(
            [tx.bus_index(self.system.feeder(s.feeder).coupling_bus) for s in self.layers],
            len(tx.buses))
        line_cost = add_ptdf_limits(
            m, tx, lambda n: acts.net_up(tx_at[n])
            + sum(step_mw[k] * m.z[k] for k in m.FS if k[0] in feeder_at[n]), penalties)
        m.cost = pyo.Objective(
            expr=sum(0 * m.a[i] for i in m.T) + sum(0 * m.z[k] for k in m.FS)
            + balance_cost + line_cost,
            sense=pyo.minimize,
        )
        self.milp = lp = CompiledLP.from_pyomo(m)
        self.a_cols = lp.cols(m.a) if len(tx_bids) else np.zeros(0, dtype=np.int32)
        self.z_cols = [lp.cols(m.z, [(fi, si) for si in range(len(steps))])
                       for fi, steps in enumerate(self.steps)]
        self.balance_row = lp.row(m.balance)
        self.line_rows = (lp.rows(m.line_max), lp.rows(m.line_min))

    def residual_supply(self, run: ClearingRun) -> list[list]:
        """Per feeder and step: the outcome of its DSO's market with the net activation held
        at the step (its objective, penalties included, is the RSF's cost [EUR]). Pro-rata
        ties are split only for the chosen steps (:meth:`disaggregate`): the costs do not
        depend on them."""
        return [[s.layer.solve(run.price, run.remaining, run.state, 0.0, {s.feeder: step},
                               split_ties=False)
                 for step in steps] for s, steps in zip(self.layers, self.steps)]

    @staticmethod
    def disaggregate(run: ClearingRun, built: BuiltLayer, step_mw: float, outcome):
        """The feeder's bids that deliver its chosen step: the outcome of the LP solved for
        the step, re-solved with its tied bids split when the layer splits them pro rata."""
        if built.layer.pro_rata is None:
            return outcome
        return built.layer.solve(run.price, run.remaining, run.state, 0.0,
                                 {built.feeder: step_mw})

    def clear(self, run: ClearingRun) -> None:
        price = run.price  # every bid is offered for the first time here
        rsf = self.residual_supply(run)
        lp, tx = self.milp, self.system.transmission
        if len(self.tx_bids):
            lp.set_costs(self.a_cols, price[self.tx_bids] + tie_break(self.tx_bids))
            lp.set_col_bounds(self.a_cols, 0.0, run.remaining[self.tx_bids])
        for cols, outcomes in zip(self.z_cols, rsf):
            lp.set_costs(cols, [o.objective_eur for o in outcomes])
        need = run.state.residual_need_mw
        lp.set_row_bounds([self.balance_row], need, need)
        f0 = tx.flows(run.state.tx_injection)
        lp.set_row_bounds(self.line_rows[0], -np.inf, tx.rating_mw - f0)
        lp.set_row_bounds(self.line_rows[1], -np.inf, tx.rating_mw + f0)
        sol = lp.solve()
        delivered = []
        for s, steps, cols, outcomes in zip(self.layers, self.steps, self.z_cols, rsf):
            chosen = int(np.argmax(sol.x[cols]))
            delivered.append(self.disaggregate(run, s, steps[chosen], outcomes[chosen]))
        for s, outcome in zip(self.layers, delivered):
            run.offer(s.name, s.operator, s.layer, run.remaining)
            run.apply(s.name, s.operator, outcome, price)
