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
count as procurement cost. The model is written with the pieces of
:mod:`flexgame.markets.constraints` (:meth:`MarketLayer.pyomo_model`) and built once, as arrays,
with their twins in :mod:`flexgame.markets.lp_builder` (the same LP, bit for bit, in a few ms);
prices, quantities, the grid state (right-hand sides), the need and interface targets change
between solves without rebuilding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexgame.markets import lp_builder
from flexgame.markets.bids import direction_sign
from flexgame.markets.constraints import (
    Activations, Penalties, add_held_interfaces, add_interface_limit, add_lindistflow,
    add_ptdf_limits, add_tso_balance, positions_at,
)
from flexgame.markets.distribution import limit_directions
from flexgame.markets.errors import require_choice
from flexgame.markets.grid_state import GridState
from flexgame.markets.lp import CompiledLP
from flexgame.markets.lp_builder import LPBuilder, positions
from flexgame.markets.reprs import names
from flexgame.markets.system import InterconnectedSystem
from flexgame.markets.ties import TIE_RULES, ProRata, tie_break


def bus_positions(network, buses) -> list[int]:
    """``network.bus_index(b)`` for every bus number in ``buses`` (of a transmission network
    or a feeder), with one dictionary instead of a search per bus."""
    index = {}
    for i, b in enumerate(network.buses.tolist()):
        index.setdefault(b, i)
    out = []
    for b in buses.tolist() if isinstance(buses, np.ndarray) else buses:
        i = index.get(b)
        out.append(network.bus_index(b) if i is None else i)  # raises the usual error
    return out


def bid_values(n_bids: int, candidates: np.ndarray, accepted: np.ndarray,
               reduced_cost: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bid of the full table (``n_bids``), its accepted MW (the LP's values ``accepted``
    of the ``candidates``' columns, below 1e-9 MW counted as none) and its marginal value
    c_b - d_b [EUR/MW] from the columns' ``reduced_cost`` d_b (NaN outside the layer)."""
    activation, marginal = np.zeros(n_bids), np.full(n_bids, np.nan)
    if len(candidates):
        activation[candidates] = np.clip(accepted, 0.0, None)
        activation[activation < 1e-9] = 0.0
        marginal[candidates] = price[candidates] - reduced_cost
    return activation, marginal


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
        price_range: when asked for (``solve(..., ranging=True)``), per bid the declared
            prices (lower, upper) [EUR/MW] strictly between which this layer's solution
            stays the same, all other data unchanged, also when several bids move at once
            within theirs (cost ranging of the LP's nonbasic columns,
            :meth:`~flexgame.markets.lp.CompiledLP.cost_ranges`: a bid accepted in part gets
            the empty range; -inf / inf where no price would change it, and for bids
            offering nothing or outside the layer); else None.
    """

    activation_mw: np.ndarray
    marginal_value: np.ndarray
    cost_eur: float
    objective_eur: float
    unmet_need_mw: float
    line_slack: float
    voltage_slack: float
    interface_slack_mw: float
    price_range: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        accepted = self.activation_mw > 0
        return (f"LayerOutcome(accepted {self.activation_mw.sum():.2f} MW of {accepted.sum()} "
                f"bids, cost {self.cost_eur:.2f} EUR, unmet {self.unmet_need_mw:.2f} MW, slacks: "
                f"line {self.line_slack:.3g} MW|MVA, voltage {self.voltage_slack:.3g} p.u.^2, "
                f"interface {self.interface_slack_mw:.3g} MW)")


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
        cand = self.candidates
        self.sign = direction_sign(bids)[cand]
        self.penalties, self.polygon_sides = penalties, polygon_sides
        self._tan_phi = bids.tan_phi.to_numpy()[cand]
        tx = system.transmission
        # per transmission bus / feeder bus / feeder: positions of the layer's bids there
        self._tx_at = (positions_at(bus_positions(tx, bids.tx_bus.to_numpy()[cand]),
                                    len(tx.buses)) if transmission else None)
        feeder, bus = bids.feeder.to_numpy()[cand], bids.bus.to_numpy()[cand]
        self._local = [np.flatnonzero(feeder == f.name) for f in self.feeders]
        self._at_bus = [positions_at(bus_positions(f, bus[local]), f.n_buses, local)
                        for f, local in zip(self.feeders, self._local)]
        self._members = [np.flatnonzero(feeder == n) for n in self.held]
        self.lp, cols, rows = self._build().compile()
        self.__dict__.update(self._index_model(lambda name: positions(cols[name], name),
                                               lambda name: positions(rows[name], name)))
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

    def _build(self) -> LPBuilder:
        """The layer's LP as arrays (:mod:`flexgame.markets.lp_builder`): the same LP as
        :meth:`pyomo_model` compiled, column for column and row for row."""
        b, penalties, nb = LPBuilder(), self.penalties, len(self.candidates)
        a = b.var("a", nb, 0.0, 0.0)
        everyone = np.arange(nb)
        penalty_costs = []
        if self.has_balance:
            penalty_costs += lp_builder.tso_balance(b, [(a, everyone, self.sign)], penalties)
        if self.has_transmission:
            bus, pos = lp_builder.grouped(self._tx_at, range(len(self._tx_at)))
            penalty_costs += lp_builder.ptdf_limits(b, self.system.transmission,
                                                    [(a, bus, pos, self.sign[pos])], penalties)
        if self.feeders:
            angles, shrink = limit_directions(self.system.feeder_line_limit, self.polygon_sides)
        for fi, (f, local) in enumerate(zip(self.feeders, self._local)):
            penalty_costs += lp_builder.lindistflow(b, fi, f, a, self.sign, self._tan_phi,
                                                    self._at_bus[fi], angles, shrink, penalties)
            if f.has_interface_limit:
                penalty_costs += lp_builder.interface_limit(b, fi, a, self.sign, local,
                                                            penalties)
        if self.held:
            penalty_costs += lp_builder.held_interfaces(b, a, self.sign, self._members,
                                                        penalties)
        for group, idx, coef in penalty_costs:
            b.cost(group, idx, coef)
        b.cost(a, everyone, 0.0)  # bid prices are set per solve
        return b

    def pyomo_model(self):
        """The layer's model written in Pyomo with :mod:`flexgame.markets.constraints` (the
        formulation; :meth:`_build` assembles the same LP directly, and the tests hold the
        two equal)."""
        import pyomo.environ as pyo

        m = pyo.ConcreteModel()
        nb = len(self.candidates)
        penalties = self.penalties
        m.B = pyo.RangeSet(0, nb - 1) if nb else pyo.Set(initialize=[])
        m.a = pyo.Var(m.B, bounds=(0, 0))
        acts = Activations(m.a, self.sign, self._tan_phi)
        penalty_costs = []
        if self.has_balance:
            penalty_costs.append(add_tso_balance(m, acts.net_up(m.B), penalties))
        if self.has_transmission:
            tx_at = self._tx_at
            penalty_costs.append(add_ptdf_limits(m, self.system.transmission,
                                                 lambda n: acts.net_up(tx_at[n]), penalties))
        if self.feeders:
            m.feeder = pyo.Block(range(len(self.feeders)))
            angles, shrink = limit_directions(self.system.feeder_line_limit, self.polygon_sides)
        for fi, (f, local) in enumerate(zip(self.feeders, self._local)):
            penalty_costs += add_lindistflow(m.feeder[fi], f, acts, self._at_bus[fi], angles,
                                             shrink, penalties)
            if f.has_interface_limit:
                penalty_costs.append(
                    add_interface_limit(m.feeder[fi], acts.net_up(local), penalties))
        if self.held:
            penalty_costs.append(add_held_interfaces(m, acts, self._members, penalties))
        objective = 0
        for cost in penalty_costs:
            objective += cost
        # bid prices are set per solve: 0 x a puts the bid columns into the objective
        m.cost = pyo.Objective(expr=objective + sum(0 * m.a[i] for i in m.B), sense=pyo.minimize)
        return m

    def pyomo_reference(self) -> tuple[CompiledLP, dict]:
        """:meth:`pyomo_model` compiled by Pyomo and the layer's index arrays read off it:
        what :attr:`lp` and the index attributes must equal."""
        m = self.pyomo_model()
        lp = CompiledLP.from_pyomo(m)
        return lp, self._index_model(lambda name: lp.cols(m.find_component(name)),
                                     lambda name: lp.rows(m.find_component(name)))

    def _index_model(self, cols, rows) -> dict:
        """Columns and rows :meth:`solve` reads, given ``cols(name)`` / ``rows(name)``: the
        positions of a variable / constraint of the model by its Pyomo name, in index
        order."""
        out = {"a_cols": cols("a") if len(self.candidates) else np.zeros(0, dtype=np.int32)}
        if self.has_balance:
            out["balance_row"] = int(rows("balance")[0])
            out["unmet_cols"] = np.array([int(cols("unmet_up")[0]),
                                          int(cols("unmet_down")[0])])
        if self.has_transmission:
            out["line_max_rows"], out["line_min_rows"] = rows("line_max"), rows("line_min")
            out["line_slack_cols"] = cols("line_slack")
        feeder_rows, feeder_slack_cols, voltage_slack_cols = [], [], []
        interface_rows = []  # (feeder, row of interface_max, row of interface_min)
        for fi, f in enumerate(self.feeders):
            pre = f"feeder[{fi}]."
            # p_balance and q_balance are indexed by f.child, in that order
            feeder_rows.append((rows(pre + "p_balance"), rows(pre + "q_balance")))
            line_slack = cols(pre + "s_over")
            if f.has_interface_limit:
                line_slack = np.r_[line_slack, int(cols(pre + "interface_over")[0])]
                interface_rows.append((f, int(rows(pre + "interface_max")[0]),
                                       int(rows(pre + "interface_min")[0])))
            feeder_slack_cols.append(line_slack)
            voltage_slack_cols.append(np.r_[cols(pre + "v_low"), cols(pre + "v_high")])
        out.update(feeder_rows=feeder_rows, feeder_slack_cols=feeder_slack_cols,
                   interface_rows=interface_rows, voltage_slack_cols=voltage_slack_cols)
        out["held_rows"] = rows("held") if self.held else np.zeros(0, dtype=np.int32)
        out["iface_cols"] = (np.r_[cols("iface_up"), cols("iface_down")]
                             if self.held else np.zeros(0, dtype=np.int32))
        return out

    def solve(self, price: np.ndarray, available_mw: np.ndarray, state: GridState,
              need_mw: float = 0.0, held_targets: dict[str, float] | None = None,
              split_ties: bool = True, ranging: bool = False) -> LayerOutcome:
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
            ranging: also return :attr:`LayerOutcome.price_range` (bid-order ties only:
                a pro-rata split is a second stage that ranging does not cover).
        """
        self.load(price, available_mw, state, need_mw)
        self.hold(held_targets)
        return self.read(self.lp.solve(), price, available_mw, split_ties, ranging)

    def load(self, price: np.ndarray, available_mw: np.ndarray, state: GridState,
             need_mw: float = 0.0) -> None:
        """Set the LP's data for a clearing (arguments as in :meth:`solve`) except the held
        interfaces' targets (:meth:`hold`)."""
        lp, cand = self.lp, self.candidates
        if len(cand):
            lp.set_costs(self.a_cols, price[cand] if self.pro_rata is not None else
                         price[cand] + tie_break(cand))
            lp.set_col_bounds(self.a_cols, 0.0, np.maximum(available_mw[cand], 0.0))
        if self.has_balance:
            lp.set_row_bounds([self.balance_row], need_mw, need_mw)
        if self.has_transmission:
            lp_builder.load_line_headroom(lp, self.system.transmission, state.tx_injection,
                                          self.line_max_rows, self.line_min_rows)
        for (p_rows, q_rows), f in zip(self.feeder_rows, self.feeders):
            p, q = state.feeder_p[f.name][f.child], state.feeder_q[f.name][f.child]
            lp.set_row_bounds(p_rows, p, p)
            lp.set_row_bounds(q_rows, q, q)
        for f, max_row, min_row in self.interface_rows:
            drawn = f.interface_mw(state.feeder_p[f.name])
            lp.set_row_bounds([max_row, min_row], -np.inf,
                              [f.interface_limit_mw - drawn, f.interface_limit_mw + drawn])

    def hold(self, held_targets: dict[str, float] | None = None) -> None:
        """Set the net activation of each held interface [MW] (default 0: held), the only
        data that changes between the steps of a residual supply function."""
        if self.held:
            targets = np.array([(held_targets or {}).get(n, 0.0) for n in self.held])
            self.lp.set_row_bounds(self.held_rows, targets, targets)

    def read(self, sol, price: np.ndarray, available_mw: np.ndarray, split_ties: bool = True,
             ranging: bool = False) -> LayerOutcome:
        """The layer's outcome from its LP solution ``sol`` (of the data last loaded; the
        arguments as in :meth:`solve`).

        Raises:
            SolverError: the solution (or its pro-rata split) is not optimal.
        """
        cand = self.candidates
        x = sol.require_optimal(repr(self)).x
        if self.pro_rata is not None and split_ties and len(cand):
            x = self.pro_rata.split(sol, price[cand], available_mw[cand])
        activation, marginal = bid_values(self.n_bids, cand, x[self.a_cols],
                                          sol.reduced_cost[self.a_cols], price)
        price_range = self._price_range(sol, price, available_mw) if ranging else None
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
            price_range=price_range,
        )

    def _price_range(self, sol, price: np.ndarray, available_mw: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Per bid, the declared prices (lower, upper) [EUR/MW] of the LP's cost ranging at
        the last solve (see :attr:`LayerOutcome.price_range`)."""
        if self.pro_rata is not None:
            raise ValueError("price ranging needs ties=bid_order (a pro-rata split is a second "
                             "stage)")
        lower, upper = np.full(self.n_bids, -np.inf), np.full(self.n_bids, np.inf)
        cand = self.candidates
        if len(cand):
            lo, hi = self.lp.cost_ranges(self.a_cols, sol.reduced_cost)
            offering = available_mw[cand] > 0
            shift = price[cand] - self.lp.cost[self.a_cols]  # the tie-break step, negated
            lower[cand[offering]] = (lo + shift)[offering]
            upper[cand[offering]] = (hi + shift)[offering]
        return lower, upper
