"""One market layer: the follower LP a market operator clears.

A layer selects accepted quantities ``a_b`` [MW] of its bids at least declared cost,
subject to any of:

* the TSO balance: sum_b sign_b a_b + unmet_up - unmet_down = need (sign +1 up, -1 down);
* transmission line limits with the PTDF: |f0 + PTDF dinj| <= F (+ slack);
* LinDistFlow of selected feeders (flows, squared voltages, voltage limits, line limits on
  |P|, or on |S| through an inscribed regular polygon: see ``limit_directions``), and the
  limit of their interface flow where the feeder has one;
* a held interface: the feeder's net activation in this layer equals a target (+ slack).

Equally priced bids are split by the layer's tie rule (:mod:`flexgame.markets.ties`): in
bid-id order (a tiny cost step by bid id) or pro rata (a second stage after the LP).

Every limit has a non-negative slack priced at a penalty, so an infeasible layer still
returns a solution whose slacks are its unmet need and residual violations; penalties never
count as procurement cost. The model is built once from the pieces of
:mod:`flexgame.markets.constraints`; prices, quantities, the grid state (right-hand sides),
the need and interface targets change between solves without rebuilding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from flexgame.markets.bids import direction_sign
from flexgame.markets.constraints import (
    Activations, Penalties, add_held_interfaces, add_interface_limit, add_lindistflow,
    add_ptdf_limits, add_tso_balance, positions_at,
)
from flexgame.markets.distribution import limit_directions
from flexgame.markets.errors import require_choice
from flexgame.markets.grid_state import GridState
from flexgame.markets.lp import CompiledLP
from flexgame.markets.reprs import names
from flexgame.markets.system import InterconnectedSystem
from flexgame.markets.ties import TIE_RULES, ProRata, tie_break


@dataclass(frozen=True)
class LayerOutcome:
    """What one solve of a layer returns (arrays aligned with the full bid table).

    Attributes:
        activation_mw: accepted quantity per bid (0 outside the layer).
        marginal_value: per bid, the value of one more MW of it at the optimum, c_b - d_b
            (its LMP / DLMP for its location, direction and power factor) [EUR/MW].
        cost_eur: declared cost sum_b price_b a_b (penalties excluded).
        objective_eur: LP objective including penalties.
        unmet_need_mw: |balance slack|.
        line_slack: total line slack, feeder interface limits included [MW or MVA];
            voltage_slack: total [p.u.^2].
        interface_slack_mw: total deviation from held interface flows.
        optimal: solver status optimal.
    """

    activation_mw: np.ndarray
    marginal_value: np.ndarray
    cost_eur: float
    objective_eur: float
    unmet_need_mw: float
    line_slack: float
    voltage_slack: float
    interface_slack_mw: float
    optimal: bool

    def __repr__(self) -> str:
        accepted = self.activation_mw > 0
        return (f"LayerOutcome(accepted {self.activation_mw.sum():.2f} MW of {accepted.sum()} "
                f"bids, cost {self.cost_eur:.2f} EUR, unmet {self.unmet_need_mw:.2f} MW, slacks: "
                f"line {self.line_slack:.3g} MW|MVA, voltage {self.voltage_slack:.3g} p.u.^2, "
                f"interface {self.interface_slack_mw:.3g} MW"
                f"{'' if self.optimal else ', NOT optimal'})")


class MarketLayer:
    """A market layer built once for a fixed set of candidate bids and constraints.

    Args:
        system: the interconnected system.
        bids: the full bid table (rows are bid ids).
        candidates: bid ids this layer may accept (others are not in the model).
        balance: include the TSO balance row.
        transmission: include PTDF line limits.
        feeders: names of feeders whose LinDistFlow constraints (and interface limits, where
            a feeder has one) are included.
        held_interfaces: names of feeders whose net activation in this layer is held at a
            target (set per solve, default 0).
        penalties: slack prices.
        polygon_sides: sides of the polygon inscribed in |S| circles (apparent limits only).
        ties: how equally priced bids split, "bid_order" or "pro_rata"
            (:mod:`flexgame.markets.ties`).
    """

    def __init__(self, system: InterconnectedSystem, bids: pd.DataFrame,
                 candidates: np.ndarray, *, balance: bool, transmission: bool,
                 feeders: list[str], held_interfaces: list[str] = (),
                 penalties: Penalties, polygon_sides: int, ties: str = "bid_order"):
        require_choice("ties", ties, TIE_RULES)
        self.system, self.n_bids = system, len(bids)
        self.candidates = np.asarray(candidates, dtype=int)
        self.feeders = [system.feeder(n) for n in feeders]
        self.held = list(held_interfaces)
        self.has_balance, self.has_transmission = balance, transmission
        sub = bids.iloc[self.candidates]
        self.sign = direction_sign(sub)
        m = pyo.ConcreteModel()
        nb = len(self.candidates)
        m.B = pyo.RangeSet(0, nb - 1) if nb else pyo.Set(initialize=[])
        m.a = pyo.Var(m.B, bounds=(0, 0))
        acts = Activations(m.a, self.sign, sub.tan_phi.to_numpy())
        penalty_costs = []
        if balance:
            penalty_costs.append(add_tso_balance(m, acts.net_up(m.B), penalties))
        if transmission:
            tx = system.transmission
            tx_at = positions_at([tx.bus_index(b) for b in sub.tx_bus], len(tx.buses))
            penalty_costs.append(
                add_ptdf_limits(m, tx, lambda n: acts.net_up(tx_at[n]), penalties))
        if self.feeders:
            m.feeder = pyo.Block(range(len(self.feeders)))
            angles, shrink = limit_directions(system.feeder_line_limit, polygon_sides)
        for fi, f in enumerate(self.feeders):
            local = np.flatnonzero((sub.feeder == f.name).to_numpy())
            at_bus = positions_at([f.bus_index(b) for b in sub.bus.to_numpy()[local]],
                                  f.n_buses, local)
            penalty_costs += add_lindistflow(m.feeder[fi], f, acts, at_bus, angles, shrink,
                                             penalties)
            if f.has_interface_limit:
                penalty_costs.append(
                    add_interface_limit(m.feeder[fi], acts.net_up(local), penalties))
        if self.held:
            members = [np.flatnonzero((sub.feeder == n).to_numpy()) for n in self.held]
            penalty_costs.append(add_held_interfaces(m, acts, members, penalties))
        objective = 0
        for cost in penalty_costs:
            objective += cost
        # bid prices are set per solve: 0 x a puts the bid columns into the objective
        m.cost = pyo.Objective(expr=objective + sum(0 * m.a[i] for i in m.B), sense=pyo.minimize)
        self.model = m
        self.lp = CompiledLP.from_pyomo(m)
        self._index_model()
        self.pro_rata = ProRata(self.lp, self.a_cols) if ties == "pro_rata" else None

    def __repr__(self) -> str:
        parts = [f"{len(self.candidates)} bids"]
        parts += ["TSO balance"] if self.has_balance else []
        parts += ["PTDF limits"] if self.has_transmission else []
        if self.feeders:
            parts.append("LinDistFlow of " + names([f.name for f in self.feeders]))
        limited = [f.name for f in self.feeders if f.has_interface_limit]
        if limited:
            parts.append("interface limit of " + names(limited))
        if self.held:
            parts.append("held interface of " + names(self.held))
        if self.pro_rata is not None:
            parts.append("ties pro rata")
        return f"MarketLayer({', '.join(parts)}; {self.lp.n_rows} rows x {self.lp.n_cols} columns)"

    def _index_model(self) -> None:
        m, lp = self.model, self.lp
        self.a_cols = lp.cols(m.a) if len(self.candidates) else np.zeros(0, dtype=np.int32)
        if self.has_balance:
            self.balance_row = lp.row(m.balance)
            self.unmet_cols = np.array([lp.col(m.unmet_up), lp.col(m.unmet_down)])
        if self.has_transmission:
            self.line_max_rows, self.line_min_rows = lp.rows(m.line_max), lp.rows(m.line_min)
            self.line_slack_cols = lp.cols(m.line_slack)
        self.feeder_rows = []
        self.feeder_slack_cols = []
        self.interface_rows = []  # (feeder, row of interface_max, row of interface_min)
        self.voltage_slack_cols = []
        for fi, f in enumerate(self.feeders):
            blk = m.feeder[fi]
            self.feeder_rows.append((lp.rows(blk.p_balance, list(f.child)),
                                     lp.rows(blk.q_balance, list(f.child))))
            line_slack = lp.cols(blk.s_over)
            if f.has_interface_limit:
                line_slack = np.r_[line_slack, lp.col(blk.interface_over)]
                self.interface_rows.append(
                    (f, lp.row(blk.interface_max), lp.row(blk.interface_min)))
            self.feeder_slack_cols.append(line_slack)
            self.voltage_slack_cols.append(np.r_[lp.cols(blk.v_low), lp.cols(blk.v_high)])
        self.held_rows = lp.rows(m.held) if self.held else np.zeros(0, dtype=np.int32)
        self.iface_cols = (np.r_[lp.cols(m.iface_up), lp.cols(m.iface_down)]
                           if self.held else np.zeros(0, dtype=np.int32))

    def solve(self, price: np.ndarray, available_mw: np.ndarray, state: GridState,
              need_mw: float = 0.0, held_targets: dict[str, float] | None = None,
              split_ties: bool = True) -> LayerOutcome:
        """Clear the layer.

        Args:
            price: declared price per bid of the full table [EUR/MW].
            available_mw: quantity each bid may still offer in this layer [MW].
            state: grid state before this layer (sets flows, voltages, line headroom).
            need_mw: TSO need this layer must meet (> 0 upward); used with a balance row.
            held_targets: net activation per held feeder [MW] (default 0: interface held).
            split_ties: with pro-rata ties, run the pro-rata stage; False leaves tied bids
                as the LP splits them, for a caller that needs only the layer's cost and
                objective (they are the same either way).
        """
        lp, cand = self.lp, self.candidates
        if len(cand):
            lp.set_costs(self.a_cols, price[cand] if self.pro_rata is not None else
                         price[cand] + tie_break(cand))
            lp.set_col_bounds(self.a_cols, 0.0, np.maximum(available_mw[cand], 0.0))
        if self.has_balance:
            lp.set_row_bounds([self.balance_row], need_mw, need_mw)
        if self.has_transmission:
            tx = self.system.transmission
            f0 = tx.flows(state.tx_injection)
            lp.set_row_bounds(self.line_max_rows, -np.inf, tx.rating_mw - f0)
            lp.set_row_bounds(self.line_min_rows, -np.inf, tx.rating_mw + f0)
        for (p_rows, q_rows), f in zip(self.feeder_rows, self.feeders):
            p, q = state.feeder_p[f.name][f.child], state.feeder_q[f.name][f.child]
            lp.set_row_bounds(p_rows, p, p)
            lp.set_row_bounds(q_rows, q, q)
        for f, max_row, min_row in self.interface_rows:
            drawn = f.interface_mw(state.feeder_p[f.name])
            lp.set_row_bounds([max_row, min_row], -np.inf,
                              [f.interface_limit_mw - drawn, f.interface_limit_mw + drawn])
        if self.held:
            targets = np.array([(held_targets or {}).get(n, 0.0) for n in self.held])
            lp.set_row_bounds(self.held_rows, targets, targets)
        sol = lp.solve()
        x, optimal = sol.x, sol.optimal
        if self.pro_rata is not None and split_ties and len(cand):
            x, optimal = self.pro_rata.split(sol, price[cand], available_mw[cand])
        activation = np.zeros(self.n_bids)
        marginal = np.full(self.n_bids, np.nan)
        if len(cand):
            activation[cand] = np.clip(x[self.a_cols], 0.0, None)
            activation[activation < 1e-9] = 0.0
            marginal[cand] = price[cand] - sol.reduced_cost[self.a_cols]
        line = float(x[self.line_slack_cols].sum()) if self.has_transmission else 0.0
        line += sum(float(x[c].sum()) for c in self.feeder_slack_cols)
        return LayerOutcome(
            activation_mw=activation,
            marginal_value=marginal,
            cost_eur=float(price @ activation),
            objective_eur=sol.objective,
            unmet_need_mw=float(x[self.unmet_cols].sum()) if self.has_balance else 0.0,
            line_slack=line,
            voltage_slack=sum(float(x[c].sum()) for c in self.voltage_slack_cols),
            interface_slack_mw=float(x[self.iface_cols].sum()) if self.held else 0.0,
            optimal=optimal,
        )
