"""The LP of one step of a residual supply function in sensitivity form: a feeder's DSO market
with its interface held, smaller than the layer's LinDistFlow LP and with the same optimum.

A feeder's LinDistFlow variables (branch flows P, Q [MW, MVAr] and squared voltages v
[p.u.^2]; Baran & Wu 1989, as in :mod:`flexgame.markets.distribution`) are affine in the
activations ``a`` [MW] of its bids, so every limit row of the layer (the directions of each
line limit, the voltage limits, the interface limit) reads

    G_r a - s_r <= h_r(state),

with ``G`` the rows' sensitivities per MW of activation
(:func:`~flexgame.markets.prequalification.limit_sensitivities`), ``h`` their headroom at the
grid state (:func:`~flexgame.markets.prequalification.limit_headroom`) and ``s_r`` the slack
of the row's limit (one per branch for its directions, one per bus and side for the voltage
limits, one for the interface limit), at the layer's penalties. Eliminating P, Q and v from
the layer's LP (:class:`~flexgame.markets.market_layer.MarketLayer` with the feeder's
LinDistFlow and its held interface, the "step markets" of ALEXANDER D3.3 §3.4) leaves an LP
in the activations and the slacks with the same feasible activations, the same costs and
penalties, hence the same optimal value and activations. A row that no activation within
the quantities on offer can bring to its limit (``sum_b max(G_rb, 0) q_b`` below ``h_r``)
never binds and never has slack, so it is left out: on the default system with case A's
bids, 20 of case69's 274 limit rows and 26 of case141's 562 remain, and bid aggregation
clears 115 profiles per second instead of 31 with random pools of 14 resources (2 cores,
``python benchmarks/bench_startup.py --skip cli build table``).

Which rows are left out depends on the quantities offered and the grid state, fixed when the
model is built: :meth:`ReducedFeederLayer.covers` tells whether a clearing's data keeps every
left-out row out of reach, and the residual-supply stage falls back to the layer's LP when
it does not (an FSP offering more than declared, or another grid state).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from flexgame.markets.distribution import limit_directions
from flexgame.markets.grid_state import GridState
from flexgame.markets.lp import INF, CompiledLP, LPSolution
from flexgame.markets.market_layer import LayerOutcome, MarketLayer, bid_values
from flexgame.markets.prequalification import limit_headroom, limit_sensitivities
from flexgame.markets.ties import tie_break

REACH_MARGIN = 1e-6
"""A limit row is left out only when the activations on offer stay this far [MW, MVA or
p.u.^2] inside its limit, so that solver tolerances never decide whether it binds."""


def _limit_slacks(n_branches: int, n_buses: int, n_directions: int,
                  interface_limit: bool) -> tuple[np.ndarray, np.ndarray]:
    """For the rows of :func:`limit_sensitivities` (directions of every branch, branch-major;
    upper then lower voltage limits per bus; the interface limit both ways), the slack each
    row's limit shares, and per slack its kind: 0 line (branch or interface limit),
    1 voltage."""
    slack_of_row = np.r_[np.repeat(np.arange(n_branches), n_directions),
                         n_branches + np.arange(2 * n_buses),
                         np.full(2 if interface_limit else 0, n_branches + 2 * n_buses)]
    kind = np.r_[np.zeros(n_branches), np.ones(2 * n_buses),
                 np.zeros(1 if interface_limit else 0)].astype(np.int64)
    return slack_of_row.astype(np.int64), kind


class ReducedFeederLayer:
    """A market layer of one feeder with its interface held (the layer of an RSF), in
    sensitivity form; the same interface as the layer's for what a residual supply function
    needs (:meth:`load`, :meth:`hold`, :attr:`lp`, :attr:`iface_cols`, :meth:`read`).

    Args:
        layer: the layer (one feeder's LinDistFlow, its interface held, no TSO balance or
            transmission limits).
        bids: the bid table; its quantities are the most any clearing offers (see
            :meth:`covers`).
        state: the grid state the limit rows are chosen at.
    """

    def __init__(self, layer: MarketLayer, bids: pd.DataFrame, state: GridState):
        (feeder,) = layer.feeders
        if layer.held != [feeder.name] or layer.has_balance or layer.has_transmission:
            raise ValueError(f"{layer!r} is not one feeder's market with its interface held")
        self.layer, self.feeder, self.candidates = layer, feeder, layer.candidates
        self._angles, self._shrink = limit_directions(layer.system.feeder_line_limit,
                                                      layer.polygon_sides)
        g = limit_sensitivities(feeder, bids, self.candidates, self._angles).tocsr()
        increase = g.maximum(0).tocsr()  # how far each row can move per MW towards its limit
        self.n_limit_rows = increase.shape[0]
        self._headroom_of: tuple[bytes, np.ndarray] | None = None
        reach = increase @ np.maximum(bids.quantity_mw.to_numpy(float)[self.candidates], 0)
        keep = reach > self.headroom(state) - REACH_MARGIN
        self.rows, self.left_out = np.flatnonzero(keep), np.flatnonzero(~keep)
        self.left_out_increase = increase[self.left_out]
        slack_of_row, kind = _limit_slacks(feeder.n_branches, feeder.n_buses,
                                           len(self._angles), feeder.has_interface_limit)
        slacks, slack_pos = np.unique(slack_of_row[self.rows], return_inverse=True)
        n_a, n_s, n_r = len(self.candidates), len(slacks), len(self.rows)
        penalties = layer.penalties
        a_matrix = sp.vstack([
            sp.hstack([g[self.rows], sp.csr_matrix((-np.ones(n_r), (np.arange(n_r), slack_pos)),
                                                   shape=(n_r, n_s)), sp.csr_matrix((n_r, 2))]),
            sp.csr_matrix(np.r_[layer.sign, np.zeros(n_s), 1.0, -1.0][None, :]),
        ])
        slack_cost = np.where(kind[slacks] == 0, penalties.line, penalties.voltage)
        cost = np.r_[np.zeros(n_a), slack_cost, penalties.interface, penalties.interface]
        self.lp = CompiledLP.from_arrays(
            cost, a_matrix, np.r_[np.full(n_r, -INF), 0.0], np.r_[self.headroom(state)[self.rows], 0.0],
            np.zeros(n_a + n_s + 2), np.r_[np.zeros(n_a), np.full(n_s + 2, INF)])
        self.a_cols = np.arange(n_a)
        self.line_slack_cols = n_a + np.flatnonzero(kind[slacks] == 0)
        self.voltage_slack_cols = n_a + np.flatnonzero(kind[slacks] == 1)
        self.iface_cols = np.array([n_a + n_s, n_a + n_s + 1])
        self.held_row = n_r  # after the limit rows kept, in the order of :attr:`rows`

    def __repr__(self) -> str:
        return (f"ReducedFeederLayer({self.feeder.name!r}, {len(self.candidates)} bids, "
                f"{len(self.rows)} of {self.n_limit_rows} limit rows)")

    def headroom(self, state: GridState) -> np.ndarray:
        """Headroom of every limit row at ``state`` (the last state's kept)."""
        p, q = state.feeder_p[self.feeder.name], state.feeder_q[self.feeder.name]
        key = p.tobytes() + q.tobytes()
        if self._headroom_of is None or self._headroom_of[0] != key:
            self._headroom_of = key, limit_headroom(self.feeder, state, self._angles,
                                                    self._shrink)
        return self._headroom_of[1]

    def covers(self, available_mw: np.ndarray, state: GridState) -> bool:
        """Whether the rows left out stay out of reach of the bids' quantities
        ``available_mw`` (full bid table) at ``state``, so that this model's optimum is the
        layer's."""
        if not len(self.left_out):
            return True
        reach = self.left_out_increase @ np.maximum(available_mw[self.candidates], 0.0)
        return bool(np.all(reach <= self.headroom(state)[self.left_out] - REACH_MARGIN))

    def load(self, price: np.ndarray, available_mw: np.ndarray, state: GridState,
             need_mw: float = 0.0) -> None:
        """Set the data of a clearing (as :meth:`MarketLayer.load`; the layer has no TSO
        need, ``need_mw`` is ignored). Only for data it :meth:`covers`."""
        cand, lp = self.candidates, self.lp
        lp.set_costs(self.a_cols, price[cand] if self.layer.pro_rata is not None else
                     price[cand] + tie_break(cand))
        lp.set_col_bounds(self.a_cols, 0.0, np.maximum(available_mw[cand], 0.0))
        lp.set_row_bounds(np.arange(len(self.rows)), -INF, self.headroom(state)[self.rows])

    def hold(self, held_targets: dict[str, float] | None = None) -> None:
        """Set the feeder's net activation [MW] (default 0)."""
        target = (held_targets or {}).get(self.feeder.name, 0.0)
        self.lp.set_row_bound(self.held_row, target, target)

    def read(self, sol: LPSolution, price: np.ndarray, available_mw: np.ndarray
             ) -> LayerOutcome:
        """The layer's outcome from a solution of this model (as :meth:`MarketLayer.read`,
        with ties split in bid order: a pro-rata split is the layer's own second stage)."""
        if self.layer.pro_rata is not None:
            raise ValueError("a reduced feeder layer splits ties in bid order only")
        x = sol.require_optimal(repr(self)).x
        activation, marginal = bid_values(self.layer.n_bids, self.candidates, x[self.a_cols],
                                          sol.reduced_cost[self.a_cols], price)
        return LayerOutcome(
            activation_mw=activation, marginal_value=marginal,
            cost_eur=float(price @ activation), objective_eur=sol.objective, unmet_need_mw=0.0,
            line_slack=float(x[self.line_slack_cols].sum()),
            voltage_slack=float(x[self.voltage_slack_cols].sum()),
            interface_slack_mw=float(x[self.iface_cols].sum()))
