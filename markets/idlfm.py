"""The Interactive Distribution Level Flexibility Market (I-DLFM) of FLEXGRID D5.1 (seed 003,
§2.4, "Interactive Distribution Level Flexibility Market (I-DLFM) architecture" and its
variants and pros and cons): the TSO and every DSO clear their own market and exchange only
interface prices and interface flows, round after round, until they agree. It is the
decentralised form of the common TSO-DSO market (D5.1 §2.3, "Centralized common TSO-DSO
Market Model"; ALEXANDER D3.3 §4.1), which D5.1 uses as its benchmark, and "a
privacy-preserving solution, in which participants may exchange the minimum information per
iteration cycle (e.g. Lagrangian dual variables or else price updates)".

The decomposition. Let y_f [MW] be feeder f's net upward activation (the reduction of the
power the feeder draws at its transmission coupling bus; > 0 upward, as a bid's sign). The
common market's LP splits exactly into

* the TSO's problem g_T(x): its need (balance row) and the transmission line limits (PTDF),
  with the transmission bids and one free variable x_f per feeder, an upward injection at
  the feeder's coupling bus (the TSO's copy of y_f);
* each DSO's problem g_f(y_f): its own feeder's bids and LinDistFlow limits (voltages, line
  ratings, the interface limit where the feeder has one) with its net activation y_f,

coupled only by x_f = y_f (penalties of every slack stay in their problem, as in the common
market). ADMM in the scaled consensus form of Boyd, Parikh, Chu, Peleato & Eckstein,
"Distributed optimization and statistical learning via the alternating direction method of
multipliers" (Found. Trends Mach. Learn. 3(1), 2011), eqs. (3.5)-(3.7) with A = I, B = -I:

    x^{k+1}   = argmin_x  g_T(x) + rho/2 ||x - y^k + u^k||^2            (TSO)
    y_f^{k+1} = argmin_y  g_f(y) + rho/2 (x_f^{k+1} - y + u_f^k)^2      (each DSO, in parallel)
    u^{k+1}   = u^k + x^{k+1} - y^{k+1}

with the primal residual r = x - y [MW] and the dual residual s = rho (y^{k+1} - y^k)
[EUR/MW] (§3.3, eqs. 3.8-3.12). lambda_f = rho u_f is the interface price [EUR/MW, per MW of
the product]: what the TSO pays per MW of upward flexibility delivered across feeder f's
interface (at the optimum, the common market's marginal value of upward power at the
coupling bus; negative where the TSO buys downward flexibility, as in case D). It stops when
max_f |r_f| <= tolerance and max_f |y_f^{k+1} - y_f^k| = max |s| / rho <= tolerance (both
in MW), or after ``max_iterations`` rounds, which it then reports as not converged with its
residuals. rho starts at its setting and is balanced between the two residuals during the
first rounds (Boyd et al. §3.4.1), keeping the prices lambda: a price that must climb far (to
the unmet-need penalty when the feeders cannot deliver what the TSO lacks) climbs by rho |r|
per round, which a fixed rho makes a matter of thousands of rounds.

Messages per round: the TSO (the coordinator) sends each DSO its proposed interface flow
x_f and price lambda_f (the DSO's proximal centre is x_f + lambda_f / rho); each DSO answers
with its interface flow y_f. Nothing else crosses the TSO-DSO boundary: no bid, no feeder
data, no transmission data.

Each subproblem is built once (a QP: the LP of the market plus the diagonal quadratic
rho/2 (.)^2 of the augmented Lagrangian, solved by HiGHS); a round changes only the TSO's
linear cost on x (-rho times its centre) and each DSO's held-interface target (its centre),
and, when rho is rebalanced, the weight of the quadratic terms.

The consistent result. ADMM's iterates agree only within the tolerance, so the activations
are not read off them: the DSOs' interface flows y_f of the last round are the agreed ones;
each DSO market then clears its feeder with its interface held at y_f (the scheme's DSO
layers: an LP whose limits are its feeder's, so its activations are safe for its feeder as
far as its bids allow), and the TSO market of the transmission bids clears the need those
activations leave, at the state they leave (the scheme's next stage). The TSO need is thus
met and the transmission limits kept by the last market, whatever the residual mismatch; at
convergence the result is the common market's within the tolerance. Each layer is recorded
with its operator as in the other schemes (``dso:<feeder>`` by ``DSO:<feeder>``, ``tso`` by
the TSO), so per-operator costs and layer-wise settlements (uniform, nodal) split the common
market's purchases by who buys the bids; the DSO layers' outcomes carry the exchange
(:class:`ExchangeOutcome`, :func:`exchange_of`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexgame.markets import lp_builder
from flexgame.markets.bids import direction_sign
from flexgame.markets.constraints import Penalties, positions_at
from flexgame.markets.errors import SolverError
from flexgame.markets.grid_state import GridState
from flexgame.markets.lp_builder import LPBuilder, positions
from flexgame.markets.market_layer import LayerOutcome, bus_positions
from flexgame.markets.pipeline import BuiltLayer, ClearingRun
from flexgame.markets.system import InterconnectedSystem
from flexgame.markets.ties import tie_break

STATUSES = ("converged", "not converged")
""":attr:`InterfaceExchange.status`."""
RESIDUAL_RATIO = 10.0
"""Boyd et al.'s mu (§3.4.1): rho changes when one residual exceeds this times the other."""
RHO_STEP = 2.0
"""Boyd et al.'s tau (§3.4.1): the factor rho changes by."""
RHO_SPAN = 1e6
"""rho stays within its setting divided and multiplied by this."""
ADAPTIVE_ROUNDS = 100
"""Rounds during which rho is balanced; fixed after them, as ADMM's convergence proof needs
(Boyd et al. §3.4.1)."""


@dataclass(frozen=True)
class InterfaceExchange:
    """What crossed the TSO-DSO boundary in one I-DLFM clearing, and how it ended.

    Attributes:
        converged: both residuals fell within the tolerance before ``max_iterations``.
        iterations: ADMM rounds run.
        primal_residual_mw: max_f |x_f - y_f| of the last round [MW].
        dual_residual_eur_per_mw: rho max_f |y_f - y_f(previous round)| of the last round
            [EUR/MW].
        rho: the penalty parameter of the last round [EUR/MW^2] (balanced from its setting,
            see :meth:`IDLFMStage.negotiate`).
        tolerance_mw: the stopping tolerance of both residuals [MW] (the dual one divided by
            rho).
        feeders: the feeders' names, the order of the arrays below.
        interface_price_eur_per_mw: lambda_f = rho u_f per feeder [EUR/MW]: the price of a MW
            of upward flexibility (less drawn) across the feeder's interface.
        net_activation_mw: the agreed y_f per feeder: the DSO's last interface flow, as net
            upward activation of its bids [MW].
        interface_flow_mw: the power each feeder draws at its coupling bus once it delivers
            y_f [MW] (the state before the stage minus y_f).
    """

    converged: bool
    iterations: int
    primal_residual_mw: float
    dual_residual_eur_per_mw: float
    rho: float
    tolerance_mw: float
    feeders: tuple[str, ...]
    interface_price_eur_per_mw: np.ndarray
    net_activation_mw: np.ndarray
    interface_flow_mw: np.ndarray

    @property
    def messages_to_dsos(self) -> int:
        """Messages the TSO sent: one per feeder per round (its proposed interface flow x_f
        and the interface price lambda_f)."""
        return self.iterations * len(self.feeders)

    @property
    def messages_to_tso(self) -> int:
        """Messages the DSOs sent: one per feeder per round (its interface flow y_f)."""
        return self.iterations * len(self.feeders)

    @property
    def messages(self) -> int:
        """Messages exchanged in both directions."""
        return self.messages_to_dsos + self.messages_to_tso

    @property
    def status(self) -> str:
        """``converged`` or ``not converged`` (stopped at max_iterations)."""
        return STATUSES[0] if self.converged else STATUSES[1]

    def __repr__(self) -> str:
        return (f"InterfaceExchange({self.status} after {self.iterations} rounds, "
                f"{self.messages} messages, residuals {self.primal_residual_mw:.2g} MW / "
                f"{self.dual_residual_eur_per_mw:.2g} EUR/MW)")

    def kpis(self) -> dict:
        """The exchange as a flat record (metrics.json keys, registered in
        :data:`flexgame.markets.metrics.METRICS`)."""
        return {"coordination_status": self.status,
                "coordination_iterations": self.iterations,
                "coordination_messages": self.messages,
                "primal_residual_mw": self.primal_residual_mw,
                "dual_residual_eur_per_mw": self.dual_residual_eur_per_mw,
                **{f"interface_price_{f}": float(p)
                   for f, p in zip(self.feeders, self.interface_price_eur_per_mw)}}


@dataclass(frozen=True)
class ExchangeOutcome(LayerOutcome):
    """A DSO layer's outcome in I-DLFM, with the exchange that fixed its interface flow (the
    same :class:`InterfaceExchange` for every feeder of the clearing)."""

    exchange: InterfaceExchange | None = None


def exchange_of(result) -> InterfaceExchange | None:
    """The I-DLFM exchange of a :class:`~flexgame.markets.results.ClearingResult` (None for
    a scheme without one, and for a system without feeders, where nothing is exchanged)."""
    for record in result.layers:
        exchange = getattr(record.outcome, "exchange", None)
        if exchange is not None:
            return exchange
    return None


class TSOSubproblem:
    """The TSO's ADMM step: min price a + penalties + rho/2 ||x - centre||^2 over the
    transmission bids a and the feeders' upward injections x [MW] at their coupling buses,
    subject to the TSO balance (sum sign a + sum x + unmet = need) and the PTDF line limits;
    a QP built once (:mod:`flexgame.markets.lp_builder`, as bid aggregation's MILP)."""

    def __init__(self, system: InterconnectedSystem, bids: pd.DataFrame, feeders: list[str],
                 rho: float, penalties: Penalties):
        self.system = system
        self.tx_bids = np.flatnonzero((bids.level == "transmission").to_numpy())
        self.sign = direction_sign(bids)[self.tx_bids]
        tx = system.transmission
        tx_at = positions_at(bus_positions(tx, bids.tx_bus.to_numpy()[self.tx_bids]),
                             len(tx.buses))
        x_at = positions_at([tx.bus_index(system.feeder(f).coupling_bus) for f in feeders],
                            len(tx.buses))
        b, n_tx, n_f = LPBuilder(), len(self.tx_bids), len(feeders)
        a = b.var("a", n_tx, 0.0, 0.0)
        x = b.var("x", n_f)
        tx_pos, fs = np.arange(n_tx), np.arange(n_f)
        costs = lp_builder.tso_balance(b, [(a, tx_pos, self.sign), (x, fs, 1.0)], penalties)
        bus, pos = lp_builder.grouped(tx_at, range(len(tx_at)))
        x_bus, x_pos = lp_builder.grouped(x_at, range(len(x_at)))
        costs += lp_builder.ptdf_limits(b, tx, [(a, bus, pos, self.sign[pos]),
                                                (x, x_bus, x_pos, 1.0)], penalties)
        b.cost(a, tx_pos, 0.0)
        b.cost(x, fs, 0.0)
        for group, idx, coef in costs:
            b.cost(group, idx, coef)
        self.lp, cols, rows = b.compile()
        self.a_cols = positions(cols["a"], "a")
        self.x_cols = positions(cols["x"], "x")
        self.balance_row = int(positions(rows["balance"], "balance")[0])
        self.line_rows = (positions(rows["line_max"], "line_max"),
                          positions(rows["line_min"], "line_min"))
        self.rho = None
        self.set_rho(rho)

    def set_rho(self, rho: float) -> None:
        """The weight of the quadratic term [EUR/MW^2] (its Hessian: data, not a rebuild)."""
        if rho != self.rho:
            self.lp.set_quadratic(self.x_cols, np.full(len(self.x_cols), rho))
            self.rho = rho

    def __repr__(self) -> str:
        return (f"TSOSubproblem({len(self.tx_bids)} transmission bids, {len(self.x_cols)} "
                f"interface flows, rho {self.rho:g} EUR/MW^2)")

    def load(self, price: np.ndarray, offered_mw: np.ndarray, state: GridState) -> None:
        """Set the clearing's data: bid prices [EUR/MW] and offered MW (full bid table), the
        residual need and the line headroom at ``state``; start from scratch."""
        lp, tx = self.lp, self.system.transmission
        lp.highs.clearSolver()
        if len(self.tx_bids):
            lp.set_costs(self.a_cols, price[self.tx_bids] + tie_break(self.tx_bids))
            lp.set_col_bounds(self.a_cols, 0.0, np.maximum(offered_mw[self.tx_bids], 0.0))
        need = state.residual_need_mw
        lp.set_row_bounds([self.balance_row], need, need)
        lp_builder.load_line_headroom(lp, tx, state.tx_injection, *self.line_rows)

    def solve(self, centre_mw: np.ndarray) -> np.ndarray:
        """x [MW per feeder] minimising the TSO's cost plus rho/2 ||x - centre||^2 (the
        linear part -rho centre is the only data changed)."""
        self.lp.set_costs(self.x_cols, -self.rho * np.asarray(centre_mw, float))
        sol = self.lp.solve().require_optimal(f"I-DLFM {self!r}")
        return sol.x[self.x_cols].copy()


class DSOSubproblem:
    """A DSO's ADMM step on its feeder's market (a scheme's DSO layer with its interface
    held, built for this use): the held row sum sign a + dev_up - dev_down = centre with the
    deviations priced rho/2 (dev_up^2 + dev_down^2) instead of the interface penalty, so that
    it returns y = sum sign a minimising the feeder's cost + rho/2 (y - centre)^2 (at the
    optimum one deviation is 0, so the two squares are (y - centre)^2)."""

    def __init__(self, built: BuiltLayer, rho: float):
        self.built, self.layer, self.rho = built, built.layer, None
        self.layer.lp.set_costs(self.layer.iface_cols, np.zeros(2))
        self.set_rho(rho)

    def set_rho(self, rho: float) -> None:
        """The weight of the quadratic term [EUR/MW^2] (its Hessian: data, not a rebuild)."""
        if rho != self.rho:
            self.layer.lp.set_quadratic(self.layer.iface_cols, np.full(2, rho))
            self.rho = rho

    def __repr__(self) -> str:
        return f"DSOSubproblem({self.built.feeder!r}, rho {self.rho:g} EUR/MW^2)"

    def load(self, price: np.ndarray, offered_mw: np.ndarray, state: GridState) -> None:
        """Set the feeder market's data for the clearing; start from scratch."""
        self.layer.lp.highs.clearSolver()
        self.layer.load(price, offered_mw, state)

    def solve(self, centre_mw: float) -> float:
        """The feeder's net upward activation y [MW] minimising its cost plus
        rho/2 (y - centre)^2 (the held target, the only data changed)."""
        layer = self.layer
        layer.hold({self.built.feeder: centre_mw})
        sol = layer.lp.solve().require_optimal(f"I-DLFM {self!r}")
        return float(layer.sign @ sol.x[layer.a_cols]) if len(layer.candidates) else 0.0


class IDLFMStage:
    """I-DLFM's exchange and its DSO markets at the agreed interface flows, built once per
    scheme (the scheme's next stage, the TSO market of the transmission bids, clears the
    need they leave).

    Args:
        system, bids: the scenario.
        layers: per feeder, its DSO's market with the interface held (recorded as the layers
            ``dso:<feeder>``; cleared at the agreed flows).
        subproblems: per feeder, another such market, turned into the DSO's ADMM QP.
        rho: ADMM penalty parameter [EUR/MW^2].
        tolerance_mw: stopping tolerance of the primal residual and of the dual residual
            divided by rho [MW].
        max_iterations: most ADMM rounds.
        penalties: slack prices (the TSO's problem; the DSOs' are in their layers).

    Attributes:
        exchange: the :class:`InterfaceExchange` of the last clearing (None before one).
    """

    def __init__(self, system: InterconnectedSystem, bids: pd.DataFrame,
                 layers: list[BuiltLayer], subproblems: list[BuiltLayer], rho: float,
                 tolerance_mw: float, max_iterations: int, penalties: Penalties):
        self.system, self.layers = system, layers
        self.feeders = tuple(b.feeder for b in layers)
        self.rho, self.tolerance_mw, self.max_iterations = rho, tolerance_mw, max_iterations
        self.tso = TSOSubproblem(system, bids, list(self.feeders), rho, penalties)
        self.dsos = [DSOSubproblem(b, rho) for b in subproblems]
        self.exchange: InterfaceExchange | None = None

    def __repr__(self) -> str:
        return (f"IDLFMStage({len(self.feeders)} feeders, rho {self.rho:g} EUR/MW^2, "
                f"tolerance {self.tolerance_mw:g} MW, at most {self.max_iterations} rounds)")

    def negotiate(self, run: ClearingRun) -> InterfaceExchange:
        """ADMM rounds from x = y = lambda = 0 and rho at its setting (every clearing starts
        afresh, so that its result does not depend on earlier clearings) until both
        residuals are within the tolerance or ``max_iterations`` rounds have run.

        rho is balanced between the residuals (Boyd et al. 2011 §3.4.1, eq. 3.43, with their
        mu = 10 and tau = 2: :data:`RESIDUAL_RATIO`, :data:`RHO_STEP`), comparing the
        primal residual with the DSOs' move (both in MW, as the stopping rule), during the
        first :data:`ADAPTIVE_ROUNDS` rounds; the prices lambda = rho u are kept when rho
        changes. Where a price must climb far (the TSO values the feeder's last MW at the
        unmet-need penalty while the DSO cannot deliver it, so the copies stay apart at
        their kinks), a fixed rho raises it by rho |r| per round: thousands of rounds; the
        balancing doubles rho while the DSOs do not move."""
        for problem in (self.tso, *self.dsos):
            problem.set_rho(self.rho)
            problem.load(run.price, run.remaining, run.state)
        n = len(self.feeders)
        y, price = np.zeros(n), np.zeros(n)
        rho, used, rounds, primal, change = self.rho, self.rho, 0, np.inf, np.inf
        while rounds < self.max_iterations:
            rounds += 1
            x = self.tso.solve(y - price / rho)  # TSO -> DSO f: x_f and lambda_f
            y_next = np.array([d.solve(x[f] + price[f] / rho)  # DSO f -> TSO: y_f
                               for f, d in enumerate(self.dsos)])
            price = price + rho * (x - y_next)  # both sides update lambda_f from x_f, y_f
            primal = float(np.max(np.abs(x - y_next), initial=0.0))
            change = float(np.max(np.abs(y_next - y), initial=0.0))
            y, used = y_next, rho
            if primal <= self.tolerance_mw and change <= self.tolerance_mw:
                break
            if rounds <= ADAPTIVE_ROUNDS:
                if primal > RESIDUAL_RATIO * change:
                    rho = min(rho * RHO_STEP, self.rho * RHO_SPAN)
                elif change > RESIDUAL_RATIO * primal:
                    rho = max(rho / RHO_STEP, self.rho / RHO_SPAN)
                for problem in (self.tso, *self.dsos):
                    problem.set_rho(rho)
        converged = primal <= self.tolerance_mw and change <= self.tolerance_mw
        drawn = np.array([self.system.feeder(f).interface_mw(run.state.feeder_p[f])
                          for f in self.feeders])
        return InterfaceExchange(
            converged=bool(converged), iterations=rounds, primal_residual_mw=primal,
            dual_residual_eur_per_mw=used * change,
            rho=used, tolerance_mw=self.tolerance_mw, feeders=self.feeders,
            interface_price_eur_per_mw=price, net_activation_mw=y,
            interface_flow_mw=drawn - y)

    def clear(self, run: ClearingRun) -> None:
        self.exchange = exchange = self.negotiate(run)
        price = run.price
        for built, y in zip(self.layers, exchange.net_activation_mw):
            run.offer(built.name, built.operator, built.layer, run.remaining)
            try:
                out = built.layer.solve(price, run.remaining, run.state, 0.0,
                                        {built.feeder: float(y)}, ranging=run.ranging)
            except SolverError as error:
                raise SolverError(f"layer {built.name}: {error}") from None
            fields = {f.name: getattr(out, f.name) for f in dataclasses.fields(LayerOutcome)}
            run.apply(built.name, built.operator, ExchangeOutcome(**fields, exchange=exchange),
                      price)
