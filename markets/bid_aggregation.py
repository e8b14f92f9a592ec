"""Bid aggregation (ALEXANDER D3.3 §3.4 and §4.1.1; Ananduta, Sanjab & Marques 2024).

Each DSO builds a residual supply function (RSF) of its feeder: for interface-flow steps
s = k * delta [MW of net upward activation, i.e. reduction of the power the feeder draws], it
solves its feeder LP with its own needs and constraints and the net activation held at s,
and records the cost (penalties for unmet limits included, so unsafe steps are priced out).
A MILP then clears the transmission bids together with exactly one step per feeder against
the TSO need and the PTDF line limits; the chosen step is disaggregated to the feeder's bids
from the LP solved for that step. A smaller delta gets closer to the common market at the
price of more LPs (one per step).

The step grid is fixed when the scheme is built (from the offered quantities then); steps
that later quantities cannot reach are priced by their interface-slack penalty.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo

from flexgame.markets.lp import CompiledLP
from flexgame.markets.market_layer import tie_break


class BidAggregation:
    """The bid-aggregation pipeline of a :class:`markets.schemes.Scheme`."""

    def __init__(self, scheme):
        self.scheme = scheme
        system, bids, cfg = scheme.system, scheme.bids, scheme.config
        self.delta = cfg.delta_mw
        self.step_layers = scheme._dso_layers(held=True)
        q = bids.quantity_mw.to_numpy()
        self.steps = {}
        for n, members in scheme.feeder_bids.items():
            up = q[members][scheme.direction[members] == "up"].sum()
            down = q[members][scheme.direction[members] == "down"].sum()
            k = np.arange(-int(np.floor(down / self.delta + 1e-9)),
                          int(np.floor(up / self.delta + 1e-9)) + 1)
            self.steps[n] = k * self.delta
        tx_bids = np.flatnonzero(scheme.is_tx)
        self.tso = scheme._layer(tx_bids, balance=True, transmission=True, feeders=[])
        self._build_milp(tx_bids)

    def _build_milp(self, tx_bids: np.ndarray) -> None:
        """min sum price a + sum_f sum_s C_f(s) z_fs + penalties, one step per feeder."""
        scheme, system = self.scheme, self.scheme.system
        tx, pen = system.transmission, scheme.config.penalties
        bids = scheme.bids
        sign = np.where(bids.direction.to_numpy()[tx_bids] == "up", 1.0, -1.0)
        names = list(self.steps)
        m = pyo.ConcreteModel()
        m.T = pyo.RangeSet(0, len(tx_bids) - 1) if len(tx_bids) else pyo.Set(initialize=[])
        m.a = pyo.Var(m.T, bounds=(0, 0))
        m.FS = pyo.Set(initialize=[(fi, si) for fi, n in enumerate(names)
                                   for si in range(len(self.steps[n]))], dimen=2)
        m.z = pyo.Var(m.FS, domain=pyo.Binary)
        m.one_step = pyo.Constraint(
            range(len(names)), rule=lambda m, fi: sum(m.z[f, s] for f, s in m.FS if f == fi) == 1
        )
        step_mw = {(fi, si): self.steps[n][si] for fi, n in enumerate(names)
                   for si in range(len(self.steps[n]))}
        m.unmet_up, m.unmet_down = pyo.Var(bounds=(0, None)), pyo.Var(bounds=(0, None))
        m.balance = pyo.Constraint(
            expr=sum(sign[i] * m.a[i] for i in m.T) + sum(step_mw[k] * m.z[k] for k in m.FS)
            + m.unmet_up - m.unmet_down == 0
        )
        n_bus = len(tx.buses)
        tx_at = [[] for _ in range(n_bus)]
        for i, b in enumerate(bids.tx_bus.to_numpy()[tx_bids]):
            tx_at[tx.bus_index(b)].append(i)
        feeder_at = [[] for _ in range(n_bus)]
        for fi, n in enumerate(names):
            feeder_at[tx.bus_index(system.feeder(n).coupling_bus)].append(fi)
        m.dinj = pyo.Var(range(n_bus))
        m.inj_def = pyo.Constraint(
            range(n_bus), rule=lambda m, n: m.dinj[n] - sum(sign[i] * m.a[i] for i in tx_at[n])
            - sum(step_mw[k] * m.z[k] for k in m.FS if k[0] in feeder_at[n]) == 0
        )
        m.line_slack = pyo.Var(range(tx.n_lines), bounds=(0, None))
        flow = [sum(tx.ptdf[l, n] * m.dinj[n] for n in range(n_bus) if abs(tx.ptdf[l, n]) > 1e-10)
                for l in range(tx.n_lines)]
        m.line_max = pyo.Constraint(range(tx.n_lines),
                                    rule=lambda m, l: flow[l] - m.line_slack[l] <= 0)
        m.line_min = pyo.Constraint(range(tx.n_lines),
                                    rule=lambda m, l: -flow[l] - m.line_slack[l] <= 0)
        m.cost = pyo.Objective(
            expr=sum(0 * m.a[i] for i in m.T) + sum(0 * m.z[k] for k in m.FS)
            + pen.unmet_need * (m.unmet_up + m.unmet_down)
            + pen.line * sum(m.line_slack[l] for l in range(tx.n_lines)),
            sense=pyo.minimize,
        )
        self.milp = CompiledLP.from_pyomo(m)
        self.model, self.names, self.tx_bids = m, names, tx_bids
        self.a_cols = self.milp.cols(m.a) if len(tx_bids) else np.zeros(0, dtype=np.int32)
        self.z_cols = {n: self.milp.cols(m.z, [(fi, si) for si in range(len(self.steps[n]))])
                       for fi, n in enumerate(names)}
        self.balance_row = self.milp.row(m.balance)
        self.line_rows = (self.milp.rows(m.line_max), self.milp.rows(m.line_min))

    def residual_supply(self, run) -> dict[str, list]:
        """Per feeder and step: (cost incl. penalties [EUR], layer outcome)."""
        rsf = {}
        for n, layer in self.step_layers.items():
            rsf[n] = [layer.solve(run.price, run.remaining, run.state, 0.0, {n: s})
                      for s in self.steps[n]]
        return rsf

    def clear(self, run) -> None:
        price = run.price  # every bid is offered for the first time here
        rsf = self.residual_supply(run)
        lp, tx = self.milp, self.scheme.system.transmission
        if len(self.tx_bids):
            lp.set_costs(self.a_cols, price[self.tx_bids] + tie_break(self.tx_bids))
            lp.set_col_bounds(self.a_cols, 0.0, run.remaining[self.tx_bids])
        for n in self.names:
            lp.set_costs(self.z_cols[n], [o.objective_eur for o in rsf[n]])
        need = run.state.residual_need_mw
        lp.set_row_bounds([self.balance_row], need, need)
        f0 = tx.flows(run.state.tx_injection)
        lp.set_row_bounds(self.line_rows[0], -np.inf, tx.rating_mw - f0)
        lp.set_row_bounds(self.line_rows[1], -np.inf, tx.rating_mw + f0)
        sol = lp.solve()
        for n in self.names:
            members = self.scheme.feeder_bids[n]
            up = self.scheme.direction[members] == "up"
            run.available.append(dict(layer=f"rsf:{n}", operator=f"DSO:{n}",
                                      bids=int((run.remaining[members] > 0).sum()),
                                      up_mw=float(run.remaining[members][up].sum()),
                                      down_mw=float(run.remaining[members][~up].sum())))
            chosen = int(np.argmax(sol.x[self.z_cols[n]]))
            # disaggregation: the feeder LP solved for the chosen step
            run.apply(f"rsf:{n}", f"DSO:{n}", rsf[n][chosen], price)
        # transmission bids given the chosen steps: an LP, which also yields their prices
        run.clear("tso", "TSO", self.tso)
