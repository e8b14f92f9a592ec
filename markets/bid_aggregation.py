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

The step grid is fixed when the scheme is built (from the offered quantities then). An RSF
is defined on the interface flows its feeder can deliver (Ananduta et al.): a step that the
feeder's bids cannot deliver within its limits, which its LP meets only with interface slack,
is not offered to the MILP. Pricing it by its slack penalty instead would let the MILP buy a
step that falls short by a few kW whenever that penalty is cheaper than the next step (about
1 kW at 1e4 EUR/MW in case B with seeds 32 and 80), leaving the TSO stage to cover the
shortfall and the interface off its step. Only when no step is deliverable (a feeder whose own
limits cannot be met) are all offered, priced by their penalties.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd

from flexgame.markets import lp_builder
from flexgame.markets.bids import direction_sign
from flexgame.markets.constraints import (
    Activations, Penalties, add_ptdf_limits, add_tso_balance, positions_at,
)
from flexgame.markets.grid_state import GridState
from flexgame.markets.lp import CompiledLP, LPSolution
from flexgame.markets.lp_builder import LPBuilder, positions
from flexgame.markets.market_layer import LayerOutcome, MarketLayer, bus_positions
from flexgame.markets.pipeline import BuiltLayer, ClearingRun
from flexgame.markets.reduced_layer import ReducedFeederLayer
from flexgame.markets.system import InterconnectedSystem
from flexgame.markets.ties import tie_break


def step_grid(quantity_mw: np.ndarray, up: np.ndarray, delta_mw: float) -> np.ndarray:
    """Interface-flow steps of a feeder [MW]: multiples of ``delta_mw`` from minus its
    offered downward MW to its offered upward MW (``up``: which of the bids are upward)."""
    k = np.arange(-int(np.floor(quantity_mw[~up].sum() / delta_mw + 1e-9)),
                  int(np.floor(quantity_mw[up].sum() / delta_mw + 1e-9)) + 1)
    return k * delta_mw


INTEGRALITY_TOLERANCE = 1e-9
"""Distance from 0 or 1 up to which a step variable of the relaxed MILP counts as integral."""
DELIVERABLE_SLACK_MW = 1e-9
"""Interface slack [MW] up to which a step counts as delivered (solver precision)."""


class RSF:
    """One feeder's residual supply function: the model its steps were solved with (the
    feeder's layer or its :class:`ReducedFeederLayer`), its LP solution per step, the cost
    per step [EUR] (the LP objective, penalties included), which steps the feeder delivers
    (without interface slack; all when none does) and the disaggregations of the steps chosen
    so far (by step index)."""

    def __init__(self, model: MarketLayer | ReducedFeederLayer, solutions: list[LPSolution]):
        self.model, self.solutions = model, solutions
        self.cost_eur = np.array([s.objective for s in solutions])
        slack = np.array([s.x[model.iface_cols].sum() for s in solutions])
        deliverable = slack <= DELIVERABLE_SLACK_MW
        self.offered = deliverable if deliverable.any() else np.ones(len(solutions), bool)
        self.chosen: dict[int, LayerOutcome] = {}


RSF_CACHE_SIZE = 8
"""Residual supply functions kept per feeder, keyed by that feeder's bid data (least
recently used dropped first): in a strategic loop one FSP changes its bids between
clearings, so the functions of the feeders where it has no resources are reused (an FSP
pooling resources of every feeder changes them all)."""


class ResidualSupplyStage:
    """The RSF stage of bid aggregation, built once per scheme.

    A feeder's RSF depends only on its own bids (the prices and quantities its DSO's market
    is offered) and its feeder's grid state, so it is computed once per such data and kept in
    a small cache per feeder (``cache_size`` functions, least recently used dropped; 0: no
    cache), with the disaggregations of its chosen steps. An RSF is one parametric sweep of
    the feeder's LP over the held interface's target: the LP is loaded once, and only the
    target changes from step to step (each step warm from the one before). The LP is the
    feeder's layer in sensitivity form (:class:`ReducedFeederLayer`: the same optimum, a
    fraction of the rows), or the layer's own LP for data the reduced one does not cover.
    The sweep starts from a fixed basis (the optimal basis of the first step at the declared
    bids and the base grid state), so that its numbers do not depend on the clearings before:
    every clearing equals, bit for bit, the clearing of a freshly built scheme, in whatever
    order profiles are cleared (serial or in worker processes).

    Args:
        system, bids: the scenario.
        layers: per feeder, its DSO's market with the interface held (the target is the
            step); their outcomes are recorded as the layers ``rsf:<feeder>``.
        delta_mw: the step [MW].
        penalties: slack prices of the MILP.
        base_state: the grid state before the stage (the scheme's base state).
        cache_size: residual supply functions kept per feeder.
    """

    def __init__(self, system: InterconnectedSystem, bids: pd.DataFrame,
                 layers: list[BuiltLayer], delta_mw: float, penalties: Penalties,
                 base_state: GridState, cache_size: int = RSF_CACHE_SIZE):
        self.system, self.layers = system, layers
        self.penalties = penalties
        q = bids.quantity_mw.to_numpy()
        self.steps = [step_grid(q[s.layer.candidates], s.layer.sign > 0, delta_mw)
                      for s in layers]
        self.tx_bids = np.flatnonzero((bids.level == "transmission").to_numpy())
        self._sign = direction_sign(bids)[self.tx_bids]
        tx = system.transmission
        self._tx_at = positions_at(bus_positions(tx, bids.tx_bus.to_numpy()[self.tx_bids]),
                                   len(tx.buses))
        self._feeder_at = positions_at(
            [tx.bus_index(system.feeder(s.feeder).coupling_bus) for s in layers], len(tx.buses))
        self.cache_size = cache_size
        self._cache: list[OrderedDict] = [OrderedDict() for _ in layers]
        self.rsf_computed = self.rsf_reused = 0  # feeders' RSFs computed / taken from the cache
        self.rsf_on_layer_lp = 0  # RSFs the reduced LPs did not cover (solved on the layers')
        self.reduced = [ReducedFeederLayer(s.layer, bids, base_state)
                        if len(s.layer.candidates) else None for s in layers]
        self.milp, cols, rows = self._build_milp().compile()
        self.relaxation = self.milp.relaxation()
        self.milp_solves = 0  # clearings whose relaxation was fractional (the MILP solved)
        self.a_cols = positions(cols["a"], "a")
        z = positions(cols["z"], "z")
        starts = np.cumsum([0, *map(len, self.steps)])
        self.z_cols = [z[lo:hi] for lo, hi in zip(starts[:-1], starts[1:])]
        self.balance_row = int(positions(rows["balance"], "balance")[0])
        self.line_rows = (positions(rows["line_max"], "line_max"),
                          positions(rows["line_min"], "line_min"))
        self._declared = tuple(bids[c].to_numpy(dtype=float)
                               for c in ("price_eur_per_mw", "quantity_mw"))
        self._base_state = base_state
        self._start_basis: dict = {}
        self._relaxation_basis = None

    def _start(self, fi: int, model: MarketLayer | ReducedFeederLayer) -> None:
        """Put ``model``'s LP (feeder ``fi``'s layer or its reduced layer) at its starting
        basis, whatever it solved before: the optimal basis of the feeder's first step for
        the declared bids at the base grid state, solved from scratch (once per model, at
        its first use)."""
        built = self.layers[fi]
        highs = model.lp.highs
        highs.clearSolver()
        key = (fi, model is built.layer)
        if key not in self._start_basis:
            model.load(*self._declared, self._base_state, 0.0)
            model.hold({built.feeder: self.steps[fi][0]})
            model.lp.solve().require_optimal(
                f"residual supply function of {built.feeder} at the declared bids")
            self._start_basis[key] = highs.getBasis()
            highs.clearSolver()
        highs.setBasis(self._start_basis[key])

    def _build_milp(self) -> LPBuilder:
        """min sum price a + sum_f sum_s C_f(s) z_fs + penalties, one step per feeder, as
        arrays (:mod:`flexgame.markets.lp_builder`): the same MILP as :meth:`pyomo_milp`
        compiled."""
        b, penalties = LPBuilder(), self.penalties
        n_tx = len(self.tx_bids)
        fs = [(fi, si) for fi, steps in enumerate(self.steps) for si in range(len(steps))]
        step_mw = np.array([self.steps[fi][si] for fi, si in fs], dtype=float)
        of_feeder = np.array([fi for fi, _ in fs], dtype=np.int64)
        a = b.var("a", n_tx, 0.0, 0.0)
        z = b.var("z", len(fs), 0.0, 1.0, integer=True)
        tx_pos, zs = np.arange(n_tx), np.arange(len(fs))
        b.rows("one_step", len(self.steps), [(z, of_feeder, zs, 1.0)], 1.0, 1.0)
        balance_cost = lp_builder.tso_balance(
            b, [(a, tx_pos, self._sign), (z, zs, step_mw)], penalties)
        bus, pos = lp_builder.grouped(self._tx_at, range(len(self._tx_at)))
        # steps of the feeders at each bus, in (feeder, step) order
        z_at = [[k for k in zs if of_feeder[k] in self._feeder_at[n]]
                for n in range(len(self._feeder_at))]
        z_bus, z_pos = lp_builder.grouped(z_at, range(len(z_at)))
        line_cost = lp_builder.ptdf_limits(
            b, self.system.transmission,
            [(a, bus, pos, self._sign[pos]), (z, z_bus, z_pos, step_mw[z_pos])], penalties)
        # 0 x a + 0 x z as Pyomo orders it: a single term added to a longer sum goes last
        zero_costs = [(a, tx_pos), (z, zs)]
        for group, idx in (zero_costs[::-1] if n_tx == 1 and len(fs) > 1 else zero_costs):
            b.cost(group, idx, 0.0)
        for group, idx, coef in balance_cost + line_cost:
            b.cost(group, idx, coef)
        return b

    def pyomo_milp(self):
        """The MILP written in Pyomo with :mod:`flexgame.markets.constraints` (the
        formulation; :meth:`_build_milp` assembles the same MILP directly, and the tests hold
        the two equal)."""
        import pyomo.environ as pyo

        tx_bids, sign = self.tx_bids, self._sign
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
            m, acts.net_up(m.T) + sum(step_mw[k] * m.z[k] for k in m.FS), self.penalties)
        tx_at, feeder_at = self._tx_at, self._feeder_at
        line_cost = add_ptdf_limits(
            m, self.system.transmission, lambda n: acts.net_up(tx_at[n])
            + sum(step_mw[k] * m.z[k] for k in m.FS if k[0] in feeder_at[n]), self.penalties)
        m.cost = pyo.Objective(
            expr=sum(0 * m.a[i] for i in m.T) + sum(0 * m.z[k] for k in m.FS)
            + balance_cost + line_cost,
            sense=pyo.minimize,
        )
        return m

    def pyomo_reference(self) -> tuple[CompiledLP, dict]:
        """:meth:`pyomo_milp` compiled by Pyomo and the columns and rows read off it: what
        :attr:`milp`, :attr:`a_cols`, :attr:`z_cols`, :attr:`balance_row` and
        :attr:`line_rows` must equal."""
        m = self.pyomo_milp()
        lp = CompiledLP.from_pyomo(m)
        return lp, dict(
            a_cols=lp.cols(m.a) if len(self.tx_bids) else np.zeros(0, dtype=np.int32),
            z_cols=[lp.cols(m.z, [(fi, si) for si in range(len(steps))])
                    for fi, steps in enumerate(self.steps)],
            balance_row=lp.row(m.balance), line_rows=(lp.rows(m.line_max), lp.rows(m.line_min)))

    # --- residual supply functions ----------------------------------------------------------
    @staticmethod
    def _key(run: ClearingRun, built: BuiltLayer) -> tuple:
        """What a feeder's RSF depends on: the prices and quantities of its DSO market's bids
        and its feeder's grid state (the steps and the layer are fixed)."""
        cand, name = built.layer.candidates, built.feeder
        return (run.price[cand].tobytes(), run.remaining[cand].tobytes(),
                run.state.feeder_p[name].tobytes(), run.state.feeder_q[name].tobytes())

    def _solve_rsf(self, fi: int, run: ClearingRun) -> RSF:
        """Feeder ``fi``'s RSF: its LP (the reduced layer's where it covers the run's data,
        else the layer's) loaded with the run's data once, then solved for every step in
        order, only the held interface's target changing: the first step from the starting
        basis, each next one warm from the step before. Its numbers thus depend on its data
        only, not on what this LP solved before."""
        built, reduced = self.layers[fi], self.reduced[fi]
        model = built.layer
        if reduced is not None and reduced.covers(run.remaining, run.state):
            model = reduced
        else:
            self.rsf_on_layer_lp += 1
        self._start(fi, model)
        model.load(run.price, run.remaining, run.state, 0.0)
        solutions = []
        for step in self.steps[fi]:
            model.hold({built.feeder: step})
            solutions.append(model.lp.solve().require_optimal(
                f"residual supply function of {built.feeder} at {step:g} MW"))
        self.rsf_computed += 1
        return RSF(model, solutions)

    def _entry(self, fi: int, run: ClearingRun) -> tuple[RSF, bool]:
        """Feeder ``fi``'s RSF for this run's data, computed if not cached; and whether it
        was computed now."""
        cache = self._cache[fi]
        key = self._key(run, self.layers[fi])
        rsf = cache.get(key)
        if rsf is not None:
            cache.move_to_end(key)
            self.rsf_reused += 1
            return rsf, False
        rsf = self._solve_rsf(fi, run)
        if self.cache_size > 0:
            cache[key] = rsf
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
        return rsf, True

    def _delivered(self, fi: int, run: ClearingRun, rsf: RSF, chosen: int) -> LayerOutcome:
        """The disaggregation of feeder ``fi``'s chosen step (cached with its RSF): the
        feeder's bids that deliver it, read off the step's LP solution, or, when the layer
        splits ties pro rata, the layer's LP solved again at the step from its starting basis
        with its tied bids split (the split's QP from a cold start, as in a freshly built
        scheme)."""
        if chosen not in rsf.chosen:
            built = self.layers[fi]
            layer, step = built.layer, {built.feeder: self.steps[fi][chosen]}
            if layer.pro_rata is None:
                out = rsf.model.read(rsf.solutions[chosen], run.price, run.remaining)
            else:
                self._start(fi, layer)
                layer.pro_rata.face.highs.clearSolver()
                out = layer.solve(run.price, run.remaining, run.state, 0.0, step)
            rsf.chosen[chosen] = out
        return rsf.chosen[chosen]

    def _load(self, lp: CompiledLP, price: np.ndarray, remaining: np.ndarray,
              state: GridState, step_costs: list[np.ndarray], offered: list[np.ndarray]
              ) -> None:
        """Put a clearing's data into ``lp`` (the MILP or its relaxation: same columns and
        rows): the transmission bids' prices [EUR/MW] and quantities [MW], per feeder its
        steps' costs [EUR] and which are offered, the TSO need and the line headroom at
        ``state``."""
        tx = self.system.transmission
        if len(self.tx_bids):
            lp.set_costs(self.a_cols, price[self.tx_bids] + tie_break(self.tx_bids))
            lp.set_col_bounds(self.a_cols, 0.0, remaining[self.tx_bids])
        for cols, cost, on in zip(self.z_cols, step_costs, offered):
            lp.set_costs(cols, cost)
            lp.set_col_bounds(cols, 0.0, on.astype(float))
        need = state.residual_need_mw
        lp.set_row_bounds([self.balance_row], need, need)
        lp_builder.load_line_headroom(lp, tx, state.tx_injection, *self.line_rows)

    def _start_relaxation(self) -> None:
        """Put the relaxation at its starting basis, whatever it solved before: its optimal
        basis for the declared transmission bids at the base grid state with every step
        offered at no cost, solved from scratch (once). A fixed starting basis makes the
        choice depend on the clearing's data only; this one is a few pivots away from a
        clearing's optimum (0.25 ms a solve on the default system, against 0.8 ms from
        scratch)."""
        relaxed = self.relaxation
        relaxed.highs.clearSolver()
        if self._relaxation_basis is None:
            self._load(relaxed, *self._declared, self._base_state,
                       [np.zeros(len(s)) for s in self.steps],
                       [np.ones(len(s), bool) for s in self.steps])
            relaxed.solve().require_optimal("bid aggregation's MILP, relaxed, at its start")
            self._relaxation_basis = relaxed.highs.getBasis()
            relaxed.highs.clearSolver()
        relaxed.highs.setBasis(self._relaxation_basis)

    def choose(self, run: ClearingRun, rsfs: list[RSF]) -> np.ndarray:
        """The step chosen per feeder (indices into its steps): an optimum of the MILP.

        Its LP relaxation is solved first, from its starting basis (so that the choice
        depends on the data only): when every step variable is 0 or 1 there (within
        :data:`INTEGRALITY_TOLERANCE`), that solution is optimal for the MILP too, whose
        feasible set lies inside the relaxation's (where the MILP has several optima, this
        is one of them). On the default system with random pools it was integral in 159 of
        160 clearings at randomly raised prices (cases A-D), solved in about 0.3 ms against
        4 ms for the MILP; otherwise the MILP is solved."""
        data = (run.price, run.remaining, run.state, [r.cost_eur for r in rsfs],
                [r.offered for r in rsfs])
        relaxed = self.relaxation
        self._start_relaxation()
        self._load(relaxed, *data)
        sol = relaxed.solve().require_optimal("bid aggregation's MILP, relaxed")
        z = [sol.x[cols] for cols in self.z_cols]
        if not all(np.all(np.minimum(v, 1.0 - v) <= INTEGRALITY_TOLERANCE) for v in z):
            self._load(self.milp, *data)
            self.milp_solves += 1
            sol = self.milp.solve().require_optimal("bid aggregation's MILP")
            z = [sol.x[cols] for cols in self.z_cols]
        return np.array([int(np.argmax(v)) for v in z], dtype=np.int64)

    def clear(self, run: ClearingRun) -> None:
        price = run.price  # every bid is offered for the first time here
        rsfs = [self._entry(fi, run)[0] for fi in range(len(self.layers))]
        chosen = self.choose(run, rsfs)
        delivered = [self._delivered(fi, run, rsf, int(chosen[fi]))
                     for fi, rsf in enumerate(rsfs)]
        for s, outcome in zip(self.layers, delivered):
            run.offer(s.name, s.operator, s.layer, run.remaining)
            run.apply(s.name, s.operator, outcome, price)
